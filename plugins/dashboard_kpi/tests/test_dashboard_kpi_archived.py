"""Reports over archived months (PostgreSQL): ``mes db partitions archive`` takes a month's records
offline and keeps its rollups, so every KPI answers as before, while a drill-down over the month
says which months are archived and how many of the bar's records it can no longer list — its
``totals`` keeping the bar's count apart from what is listed. Restored, the month lists again."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from mes_kernel.db import archive, partitions
from mes_kernel.db.base import make_engine
from mes_kernel.db.models import Line, Station
from mes_kernel.services.rollups import rebuild
from mes_kernel.testing.helpers import run_sql

API = "/api/v1"
pytestmark = pytest.mark.postgres_only

NOW = partitions.Month.of(datetime.now(UTC))
OLD = partitions.Month(NOW.year - (NOW.month <= 3), (NOW.month - 4) % 12 + 1)  # three months back: archived
LATER = OLD.next()  # two months back: stays online


@pytest.fixture(autouse=True)
def _uncached(monkeypatch):
    monkeypatch.setenv("MES_DASHBOARD_CACHE_SECONDS", "0")


async def _post(client, headers, *, lot, serial, result, defect=None) -> int:
    body = {
        "idempotency_key": uuid.uuid4().hex,
        "lot_number": lot,
        "process_id": "ASSY-10",
        "worker_id": "W-1",
        "station": "ST-K1",
        "result": result,
        "serial_number": serial,
        "defect_code": defect,
    }
    r = await client.post(f"{API}/process-records", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def _move(settings, ids: list[int], at: datetime) -> None:
    """Records (with their keys and history entries) as if received and made at ``at``."""
    await run_sql(
        settings,
        "UPDATE process_record_keys k SET created_at = :at FROM process_records r "
        "WHERE r.id = ANY(:ids) AND k.idempotency_key = r.idempotency_key",
        at=at,
        ids=ids,
    )
    await run_sql(
        settings, "UPDATE process_records SET created_at = :at, event_at = :at WHERE id = ANY(:ids)", at=at, ids=ids
    )
    await run_sql(
        settings,
        "UPDATE trace_events SET received_at = :at, recorded_at = :at "
        "WHERE kind = 'process_record' AND source_id = ANY(:ids)",
        at=at,
        ids=ids,
    )


@pytest.fixture
async def months(client, kernel, settings, make_lot, worker_headers):
    """LINE-K (ST-K1), LOT-A (A-1, A-2 fail D-SCRATCH, A-3 passes) in OLD; LOT-B (B-1 fails
    D-SCRATCH then passes, B-2 passes) in LATER; rollups rebuilt from the records where they now lie."""
    async with kernel.sessionmaker() as session:
        line = Line(code="LINE-K", name="Line K", config={})
        session.add(line)
        await session.flush()
        session.add(Station(code="ST-K1", line_id=line.id, heartbeat={}))
        await session.commit()
    a = await make_lot("LOT-A", product="NH-7", units=3)
    b = await make_lot("LOT-B", product="NH-7", units=2)
    w = worker_headers
    old = [
        await _post(client, w, lot="LOT-A", serial=a["serial_numbers"][0], result="fail", defect="D-SCRATCH"),
        await _post(client, w, lot="LOT-A", serial=a["serial_numbers"][1], result="fail", defect="D-SCRATCH"),
        await _post(client, w, lot="LOT-A", serial=a["serial_numbers"][2], result="pass"),
    ]
    later = [
        await _post(client, w, lot="LOT-B", serial=b["serial_numbers"][0], result="fail", defect="D-SCRATCH"),
        await _post(client, w, lot="LOT-B", serial=b["serial_numbers"][0], result="pass"),
        await _post(client, w, lot="LOT-B", serial=b["serial_numbers"][1], result="pass"),
    ]
    engine = make_engine(settings)
    try:
        await partitions.ensure_partitions(engine, today=OLD.start.date(), ahead=1)
    finally:
        await engine.dispose()
    await _move(settings, old, OLD.start + timedelta(days=3))
    await _move(settings, later, LATER.start + timedelta(days=3))
    async with kernel.sessionmaker() as session:
        await rebuild(session)
        await session.commit()
    return {"a": a, "b": b}


SPAN = {
    "from": OLD.start.date().isoformat(),
    "to": (LATER.next().start - timedelta(days=1)).date().isoformat(),
    "tz": "UTC",
}
REPORTS = [
    ("pareto", {}),
    ("yield", {"group_by": "process"}),
    ("yield", {"group_by": "station"}),
    ("yield", {"group_by": "product"}),
    ("output", {"bucket": "day"}),
    ("output", {"bucket": "week"}),
    ("oee", {}),
    ("oee", {"bucket": "week"}),
]


async def _reports(client, headers) -> dict:
    """Every range report of the plugin over the two months, for all lines and for LINE-K."""
    answers = {}
    for path, params in REPORTS:
        for line in ({}, {"line": "LINE-K"}):
            r = await client.get(f"{API}/kpi/{path}", params={**SPAN, **params, **line}, headers=headers)
            assert r.status_code == 200, (path, r.text)
            answers[(path, tuple(sorted({**params, **line}.items())))] = r.json()
    return answers


async def _drill(client, headers, **params) -> dict:
    r = await client.get(f"{API}/kpi/drilldown", params={**SPAN, **params}, headers=headers)
    assert r.status_code == 200, (params, r.text)
    return r.json()


async def test_an_archived_month_keeps_every_report_and_its_drilldown_says_what_it_cannot_list(
    client, kernel, settings, months, quality_headers, tmp_path
):
    before = await _reports(client, quality_headers)
    pareto = before[("pareto", ())]
    assert [(i["defect_code"], i["count"]) for i in pareto["items"]] == [("D-SCRATCH", 3)]
    online = await _drill(client, quality_headers, kind="defect", key="D-SCRATCH")
    assert online["totals"] == {"count": 3, "listed": 3, "units": 3, "lots": 2} and online["archived"] is None

    engine = make_engine(settings)
    try:
        done = await archive.archive_partitions(
            engine, database_url=settings.database_url, before=LATER.start.date(), backup_dir=tmp_path / "backups"
        )
    finally:
        await engine.dispose()
    assert [d["month"] for d in done] == [OLD.label]
    assert await run_sql(settings, "SELECT count(*) FROM process_records") == [(3,)]

    # Every report counts as it did: the archived month's rollups stay (docs/kpi.md).
    assert await _reports(client, quality_headers) == before
    label = f"{OLD.year:04d}-{OLD.month:02d}"
    for line in ({}, {"line": "LINE-K"}):
        drill = await _drill(client, quality_headers, kind="defect", key="D-SCRATCH", **line)
        # The bar's 3, of which 1 (LATER's) is listed; the 2 of the archived month are named, not lost.
        assert drill["totals"] == {"count": 3, "listed": 1, "units": 1, "lots": 1}, drill
        assert drill["archived"] == {"months": [label], "not_listed": 2}
        assert [lot["lot_number"] for lot in drill["lots"]] == ["LOT-B"]
        assert [u["serial_number"] for u in drill["units"]] == [months["b"]["serial_numbers"][0]]
    # A yield bar's items stay listed (their process_items rows are kept with the rollups).
    yields = before[("yield", (("group_by", "process"),))]["items"]
    step = await _drill(client, quality_headers, kind="process", key="ASSY-10")
    assert {k: step["totals"][k] for k in ("total", "first_pass", "passed")} == {
        k: yields[0][k] for k in ("total", "first_pass", "passed")
    }
    assert step["totals"]["listed"] == step["totals"]["total"] == 5
    assert step["archived"] == {"months": [label], "not_listed": 0}
    loss = await _drill(client, quality_headers, kind="process", key="ASSY-10", outcome="first_fail")
    assert loss["totals"]["listed"] == 3 and loss["archived"] == {"months": [label], "not_listed": 0}
    # A range after the archived month (its records' station times end with it) names none.
    after = {"from": LATER.start.date().isoformat(), "to": SPAN["to"]}
    later = await _drill(client, quality_headers, kind="defect", key="D-SCRATCH", **after)
    assert later["totals"] == {"count": 1, "listed": 1, "units": 1, "lots": 1} and later["archived"] is None

    [dump] = (tmp_path / "backups" / "partitions").glob(f"process_data_{OLD.label}-*.dump")
    engine = make_engine(settings)
    try:
        await archive.restore_month(engine, database_url=settings.database_url, dump=dump)
    finally:
        await engine.dispose()
    restored = await _drill(client, quality_headers, kind="defect", key="D-SCRATCH")
    assert restored["totals"] == online["totals"] and restored["archived"] is None
    assert await _reports(client, quality_headers) == before
