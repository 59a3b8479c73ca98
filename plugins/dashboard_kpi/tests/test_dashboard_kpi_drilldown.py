"""The LOTs and units behind a bar of the quality view (``GET /kpi/drilldown``): a Pareto bar lists
the LOTs and units with failed records of that code in the range — a LOT started before the range
included — and a yield bar the items first tried there; every count equals the bar's
(``/kpi/pareto``, ``/kpi/yield``) and a plain SQL count, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from mes_dashboard_kpi.drilldown import _bar, drilldown, encode_cursor
from mes_dashboard_kpi.ranges import Range
from sqlalchemy import event, text, update

from mes_kernel import cursors
from mes_kernel.db import lot_counts
from mes_kernel.db import partitions as monthly
from mes_kernel.db.models import Line, Lot, Process, Station
from mes_kernel.services.rollups import fold_shards, rebuild
from mes_kernel.testing.helpers import register_lots_at, run_sql

API = "/api/v1"
HOUR = timedelta(hours=1)
DAY = (datetime.now(UTC) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)


@pytest.fixture(autouse=True)
def _uncached(monkeypatch):
    monkeypatch.setenv("MES_DASHBOARD_CACHE_SECONDS", "0")


async def _record(
    client, headers, *, lot, at, process_id="ASSY-10", result="pass", serial=None, defect=None, station="ST-K1"
):
    body = {
        "idempotency_key": uuid.uuid4().hex,
        "lot_number": lot,
        "process_id": process_id,
        "worker_id": "W-1",
        "station": station,
        "result": result,
        "serial_number": serial,
        "defect_code": defect,
        "recorded_at": at.isoformat(),
    }
    r = await client.post(f"{API}/process-records", json=body, headers=headers)
    assert r.status_code == 201, r.text


@pytest.fixture
async def plant(client, kernel, admin_headers, worker_headers):
    """LINE-K (station ST-K1) and LINE-M (ST-M1), steps ASSY-10 and PACK-30, and records on DAY:

    - LOT-A (NH-7, created a month before DAY): A-1 fails D-SCRATCH twice then passes, A-2 passes;
    - LOT-B (NH-7): B-1 fails D-DENT, B-2 fails D-SCRATCH; B-1 passes PACK-30;
    - LOT-C (NH-9): a LOT-level record fails D-SCRATCH, and one three days before DAY;
    - LOT-M (NH-7) on LINE-M: M-1 fails D-SCRATCH;
    - at 18:45 UTC the day before DAY (00:15 in Kolkata, in an hour that starts before the day
      there): A-3 fails D-SCRATCH.
    """
    async with kernel.sessionmaker() as session:
        lines = [Line(code="LINE-K", name="Line K", config={}), Line(code="LINE-M", name="Line M", config={})]
        session.add_all(lines)
        session.add_all(
            [
                Process(id="ASSY-10", name="Assembly", sequence=10),
                Process(id="PACK-30", name="Pack", sequence=30),
            ]
        )
        await session.flush()
        session.add_all(
            [
                Station(code="ST-K1", line_id=lines[0].id, heartbeat={}),
                Station(code="ST-M1", line_id=lines[1].id, heartbeat={}),
            ]
        )
        await session.commit()
    lots = {
        "LOT-A": ("NH-7", "LINE-K", ["A-1", "A-2", "A-3"]),
        "LOT-B": ("NH-7", "LINE-K", ["B-1", "B-2"]),
        "LOT-C": ("NH-9", "LINE-K", []),
        "LOT-M": ("NH-7", "LINE-M", ["M-1"]),
    }
    for lot, (product, line_code, serials) in lots.items():
        r = await client.post(
            f"{API}/lots", json={"lot_number": lot, "product": product, "line": line_code}, headers=admin_headers
        )
        assert r.status_code == 201, r.text
        if serials:
            r = await client.post(f"{API}/lots/{lot}/units", json={"serial_numbers": serials}, headers=admin_headers)
            assert r.status_code == 201, r.text
    await register_lots_at(kernel, DAY - timedelta(days=7))  # before the records' station times
    async with kernel.sessionmaker() as session:  # a LOT started before the range: the usual case
        await session.execute(update(Lot).where(Lot.lot_number == "LOT-A").values(created_at=DAY - timedelta(days=30)))
        await session.commit()
    at = DAY + timedelta(hours=8)
    w = worker_headers
    await _record(client, w, lot="LOT-A", at=at, serial="A-1", result="fail", defect="D-SCRATCH")
    await _record(client, w, lot="LOT-A", at=at + timedelta(minutes=5), serial="A-1", result="fail", defect="D-SCRATCH")
    await _record(client, w, lot="LOT-A", at=at + timedelta(minutes=9), serial="A-1")
    await _record(client, w, lot="LOT-A", at=at + timedelta(minutes=1), serial="A-2")
    await _record(client, w, lot="LOT-B", at=at + timedelta(hours=2), serial="B-1", result="fail", defect="D-DENT")
    await _record(client, w, lot="LOT-B", at=at + timedelta(hours=2), serial="B-2", result="fail", defect="D-SCRATCH")
    await _record(client, w, lot="LOT-B", at=at + timedelta(hours=3), serial="B-1", process_id="PACK-30")
    await _record(client, w, lot="LOT-C", at=at + timedelta(hours=4), result="fail", defect="D-SCRATCH")
    await _record(client, w, lot="LOT-C", at=DAY - timedelta(days=3), result="fail", defect="D-SCRATCH")
    await _record(client, w, lot="LOT-M", at=at, serial="M-1", result="fail", defect="D-SCRATCH", station="ST-M1")
    await _record(
        client, w, lot="LOT-A", at=DAY - timedelta(hours=5, minutes=15), serial="A-3", result="fail", defect="D-SCRATCH"
    )


async def _drill(client, headers, **params):
    r = await client.get(f"{API}/kpi/drilldown", params=params, headers=headers)
    assert r.status_code == 200, (params, r.text)
    return r.json()


async def _all_units(client, headers, **params):
    """Every unit of the drill-down, a page of one at a time."""
    units, cursor = [], None
    while True:
        page = await _drill(client, headers, **params, limit=1, **({"cursor": cursor} if cursor else {}))
        units += page["units"]
        cursor = page["next_cursor"]
        if cursor is None:
            return units


def _stored(settings, moment: datetime):
    """A UTC time as the database compares it (SQLite: SQLAlchemy's text)."""
    return moment if settings.database_url.startswith("postgresql") else moment.strftime("%Y-%m-%d %H:%M:%S.%f")


async def test_a_pareto_bar_lists_the_lots_and_units_with_that_defect_in_the_range(client, plant, quality_headers):
    day = {"from": DAY.date().isoformat(), "to": DAY.date().isoformat(), "tz": "UTC"}
    drill = await _drill(client, quality_headers, kind="defect", key="D-SCRATCH", **day)
    # LOT-A was created a month before the range and holds two of the scratches; LOT-M (LINE-M) too.
    assert drill["totals"] == {"count": 5, "listed": 5, "units": 4, "lots": 4} and drill["archived"] is None
    assert [(x["lot_number"], x["count"], x["units"], x["product"]) for x in drill["lots"]] == [
        ("LOT-A", 2, 1, "NH-7"),
        ("LOT-B", 1, 1, "NH-7"),
        ("LOT-C", 1, 1, "NH-9"),
        ("LOT-M", 1, 1, "NH-7"),
    ]
    assert [(u["serial_number"], u["lot_number"], u["count"]) for u in drill["units"]] == [
        ("A-1", "LOT-A", 2),
        ("B-2", "LOT-B", 1),
        (None, "LOT-C", 1),  # a LOT-level record
        ("M-1", "LOT-M", 1),
    ]
    a1 = drill["units"][0]
    assert datetime.fromisoformat(a1["first_at"]) == DAY + timedelta(hours=8)
    assert datetime.fromisoformat(a1["last_at"]) == DAY + timedelta(hours=8, minutes=5)
    one_line = await _drill(client, quality_headers, kind="defect", key="D-SCRATCH", line="LINE-K", **day)
    assert one_line["totals"] == {"count": 4, "listed": 4, "units": 3, "lots": 3} and one_line["line"] == "LINE-K"
    assert await _all_units(client, quality_headers, kind="defect", key="D-SCRATCH", **day) == drill["units"]
    nothing = await _drill(client, quality_headers, kind="defect", key="D-NONE", **day)
    assert nothing["totals"] == {"count": 0, "listed": 0, "units": 0, "lots": 0}
    assert nothing["units"] == nothing["lots"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"tz": "UTC"},
        {"tz": "UTC", "line": "LINE-K"},
        {"tz": "Asia/Kolkata"},  # days start at 18:30 UTC: the range holds the hours from 19:00 (not A-3's)
        {"tz": "Asia/Kolkata", "days": 1},  # from the day before: A-3's scratch counts
        {"tz": "America/New_York", "line": "LINE-M"},
    ],
)
async def test_every_bar_s_drilldown_counts_what_the_bar_and_plain_sql_count(
    client, plant, settings, quality_headers, params
):
    params = dict(params)
    days = params.pop("days", 0)
    span = {"from": (DAY - timedelta(days=days)).date().isoformat(), "to": DAY.date().isoformat(), **params}
    pareto = (await client.get(f"{API}/kpi/pareto", params=span, headers=quality_headers)).json()
    assert pareto["items"], pareto
    line_sql, line_params = "", {}
    if "line" in params:
        line_sql, line_params = " AND line_id = (SELECT id FROM lines WHERE code = :line)", {"line": params["line"]}
    for bar in pareto["items"]:
        drill = await _drill(client, quality_headers, kind="defect", key=bar["defect_code"], **span)
        assert drill["totals"]["count"] == bar["count"], (bar, drill["totals"])
        since, until = datetime.fromisoformat(drill["from"]), datetime.fromisoformat(drill["to"])
        hour = timedelta(hours=1)
        first = since if since.minute == 0 else since.replace(minute=0) + hour
        last = until if until.minute == 0 else until.replace(minute=0) + hour
        [(count, units, lots)] = await run_sql(
            settings,
            "SELECT count(*), count(DISTINCT coalesce(serial_number, lot_number)), count(DISTINCT lot_number) "
            "FROM process_records WHERE result = 'fail' AND defect_code = :code "
            "AND event_at >= :first AND event_at < :last" + line_sql,
            code=bar["defect_code"],
            first=_stored(settings, first),
            last=_stored(settings, last),
            **line_params,
        )
        assert drill["totals"] == {"count": count, "listed": count, "units": units, "lots": lots}, bar
        assert drill["archived"] is None
        assert sum(x["count"] for x in drill["lots"]) == bar["count"]
        units_seen = await _all_units(client, quality_headers, kind="defect", key=bar["defect_code"], **span)
        assert sum(u["count"] for u in units_seen) == bar["count"] and len(units_seen) == units
    for group in ("process", "station", "product"):
        yields = (
            await client.get(f"{API}/kpi/yield", params={**span, "group_by": group}, headers=quality_headers)
        ).json()
        for bar in yields["items"]:
            drill = await _drill(
                client, quality_headers, kind=group, **({"key": bar["key"]} if bar["key"] else {}), **span
            )
            assert {k: drill["totals"][k] for k in ("total", "first_pass", "passed")} == {
                "total": bar["total"],
                "first_pass": bar["first_pass"],
                "passed": bar["passed"],
            }, (group, bar, drill["totals"])
            assert drill["totals"]["first_pass_yield"] == bar["first_pass_yield"]
            assert sum(x["total"] for x in drill["lots"]) == bar["total"]
            units_seen = await _all_units(
                client, quality_headers, kind=group, **({"key": bar["key"]} if bar["key"] else {}), **span
            )
            assert len(units_seen) == bar["total"] == drill["totals"]["listed"]
            assert sum(u["first_passed"] for u in units_seen) == bar["first_pass"]
            assert sum(u["passed"] for u in units_seen) == bar["passed"]
            loss = await _drill(
                client,
                quality_headers,
                kind=group,
                outcome="first_fail",
                **({"key": bar["key"]} if bar["key"] else {}),
                **span,
            )
            assert loss["totals"]["listed"] == bar["total"] - bar["first_pass"]
            assert sum(x["total"] - x["first_pass"] for x in loss["lots"]) == bar["total"] - bar["first_pass"]
            if group == "process":
                [(total, first_pass, passed)] = await run_sql(
                    settings,
                    "SELECT count(*), coalesce(sum(CASE WHEN first_passed THEN 1 ELSE 0 END), 0), "
                    "coalesce(sum(CASE WHEN last_passed THEN 1 ELSE 0 END), 0) FROM process_items "
                    "WHERE process_id = :key AND hour_start >= :since AND hour_start < :until" + line_sql,
                    key=bar["key"],
                    since=_stored(settings, since),
                    until=_stored(settings, until),
                    **line_params,
                )
                assert (drill["totals"]["total"], drill["totals"]["first_pass"], drill["totals"]["passed"]) == (
                    total,
                    first_pass,
                    passed,
                )


async def test_a_yield_bar_lists_its_items_with_their_first_and_final_outcome(client, plant, quality_headers):
    day = {"from": DAY.date().isoformat(), "to": DAY.date().isoformat(), "tz": "UTC", "line": "LINE-K"}
    drill = await _drill(client, quality_headers, kind="process", key="ASSY-10", **day)
    assert {k: drill["totals"][k] for k in ("total", "first_pass", "passed", "lots")} == {
        "total": 5,
        "first_pass": 1,
        "passed": 2,
        "lots": 3,
    }
    # most first-try failures first
    assert [(x["lot_number"], x["total"], x["first_pass"], x["passed"]) for x in drill["lots"]] == [
        ("LOT-B", 2, 0, 0),
        ("LOT-A", 2, 1, 2),
        ("LOT-C", 1, 0, 0),
    ]
    assert [
        (u["serial_number"], u["lot_number"], u["station"], u["first_passed"], u["passed"]) for u in drill["units"]
    ] == [
        ("A-1", "LOT-A", "ST-K1", False, True),
        ("A-2", "LOT-A", "ST-K1", True, True),
        ("B-1", "LOT-B", "ST-K1", False, False),
        ("B-2", "LOT-B", "ST-K1", False, False),
        (None, "LOT-C", "ST-K1", False, False),
    ]
    failed = await _drill(client, quality_headers, kind="process", key="ASSY-10", outcome="failed", **day)
    assert [u["lot_number"] for u in failed["units"]] == ["LOT-B", "LOT-B", "LOT-C"]
    # the bar's numbers, whatever the lists show; the lists hold the loss
    assert {k: v for k, v in failed["totals"].items() if k not in ("lots", "listed")} == {
        k: v for k, v in drill["totals"].items() if k not in ("lots", "listed")
    }
    assert (failed["totals"]["listed"], failed["totals"]["lots"]) == (3, 2)
    assert [(x["lot_number"], x["total"], x["passed"]) for x in failed["lots"]] == [("LOT-B", 2, 0), ("LOT-C", 1, 0)]
    first_fail = await _drill(client, quality_headers, kind="process", key="ASSY-10", outcome="first_fail", **day)
    assert [u["serial_number"] for u in first_fail["units"]] == ["A-1", "B-1", "B-2", None]
    product = await _drill(client, quality_headers, kind="product", key="NH-9", **day)
    assert product["totals"]["total"] == 1 and product["lots"][0]["lot_number"] == "LOT-C"
    station = await _drill(client, quality_headers, kind="station", key="ST-K1", **day)
    assert station["totals"]["total"] == 6  # five assemblies and B-1's pack
    no_station = await _drill(client, quality_headers, kind="station", **day)
    assert no_station["totals"]["total"] == 0 and no_station["key"] is None


async def test_a_bar_s_units_page_by_first_hour_then_item_then_step_each_once(
    client, plant, quality_headers, settings
):
    """A page follows the order of the bar's own index (hour, item, step): a page reads its rows
    whatever the range. A station's bar holds items of two steps; one a page, each comes once."""
    day = {"from": DAY.date().isoformat(), "to": DAY.date().isoformat(), "tz": "UTC"}
    units = await _all_units(client, quality_headers, kind="station", key="ST-K1", **day)
    hour = DAY + timedelta(hours=8)
    assert [(u["first_hour"], u["serial_number"] or u["lot_number"], u["process"]) for u in units] == [
        (hour.isoformat(), "A-1", "ASSY-10"),
        (hour.isoformat(), "A-2", "ASSY-10"),
        ((hour + timedelta(hours=2)).isoformat(), "B-1", "ASSY-10"),
        ((hour + timedelta(hours=2)).isoformat(), "B-2", "ASSY-10"),
        ((hour + timedelta(hours=3)).isoformat(), "B-1", "PACK-30"),
        ((hour + timedelta(hours=4)).isoformat(), "LOT-C", "ASSY-10"),
    ]
    losses = await _all_units(client, quality_headers, kind="process", key="ASSY-10", outcome="first_fail", **day)
    assert [u["serial_number"] or u["lot_number"] for u in losses] == ["A-1", "M-1", "B-1", "B-2", "LOT-C"]
    # A cursor opens only the list it was given for: not another bar's, range's, line's or
    # outcome's (its page would silently skip units), nor one made up or signed with another key.
    station = {"kind": "station", "key": "ST-K1", **day}
    page = await _drill(client, quality_headers, **station, limit=2)
    given = page["next_cursor"]
    second = await _drill(client, quality_headers, **station, limit=2, cursor=given)
    assert second["units"][0]["serial_number"] == "B-1"
    secret, position = settings.secret_key, '["' + DAY.isoformat() + '", "A-1", "ASSY-10"]'
    span = Range(DAY, DAY + timedelta(days=1), ZoneInfo("UTC"))
    elsewhere = [
        {**station, "key": "ST-M1"},
        {**station, "kind": "process", "key": "ASSY-10"},
        {**station, "from": (DAY - timedelta(days=1)).date().isoformat()},
        {**station, "line": "LINE-K"},
        {**station, "outcome": "failed"},
    ]
    forged = [
        *[(params, given) for params in elsewhere],
        (station, given[:-2] + ("AA" if not given.endswith("AA") else "BB")),  # changed
        (station, base64.urlsafe_b64encode(position.encode()).decode()),  # unsigned
        (station, cursors.sign(position, secret="another-" + secret, purpose="drilldown")),
        # signed for this bar, but not a position this server writes
        *[
            (station, encode_cursor(*bad, secret=secret, bar=_bar("station", "ST-K1", span, None, "all")))
            for bad in (("A-1",), ("not an hour", "A-1", "P"), (DAY.replace(tzinfo=None).isoformat(), "A-1", "P"))
        ],
    ]
    for params, cursor in forged:
        r = await client.get(f"{API}/kpi/drilldown", params={**params, "cursor": cursor}, headers=quality_headers)
        assert r.status_code == 422 and r.json()["detail"]["code"] == "INVALID_CURSOR", (cursor, r.text)


async def test_bad_drilldown_input_answers_a_code_naming_the_field(client, plant, quality_headers):
    base = {"kind": "defect", "key": "D-SCRATCH"}
    cases = [
        ({"from": "2026-03-02", "to": "2026-03-01"}, 422, "INVALID_RANGE", "to"),
        ({"from": "2025-01-01", "to": "2026-01-03"}, 422, "INVALID_RANGE", "to"),
        ({"from": "2026-03-01T06:00:00"}, 422, "INVALID_RANGE", "from"),
        ({"from": "0001-01-01", "to": "0001-01-02", "tz": "Asia/Seoul"}, 422, "INVALID_RANGE", "from"),
        ({"tz": "Mars/Olympus"}, 422, "INVALID_TIMEZONE", "tz"),
        ({"cursor": "A" * 3000 + ".B"}, 422, "INVALID_CURSOR", "cursor"),
        ({"line": "NO-SUCH-LINE"}, 422, "LINE_NOT_FOUND", "line"),
        ({"cursor": "!!not-a-cursor"}, 422, "INVALID_CURSOR", "cursor"),
        ({"cursor": ""}, 200, None, None),
        ({"key": ""}, 422, "KEY_REQUIRED", "key"),
        ({"kind": "process", "key": "NOPE"}, 422, "PROCESS_NOT_FOUND", "key"),
        ({"kind": "station", "key": "NOPE"}, 422, "STATION_NOT_FOUND", "key"),
        ({"kind": "product", "key": None}, 422, "KEY_REQUIRED", "key"),
    ]
    for extra, status, code, field in cases:
        params = {k: v for k, v in {**base, **extra}.items() if v is not None}
        r = await client.get(f"{API}/kpi/drilldown", params=params, headers=quality_headers)
        assert r.status_code == status, (extra, r.text)
        if code:
            assert (r.json()["detail"]["code"], r.json()["detail"]["field"]) == (code, field), extra
    for params in ({"kind": "lots"}, {"limit": 0}, {"limit": 501}, {"outcome": "maybe"}, {"key": "x" * 65}):
        r = await client.get(f"{API}/kpi/drilldown", params={**base, **params}, headers=quality_headers)
        assert r.status_code == 422 and r.json()["detail"]["code"] == "VALIDATION_ERROR", (params, r.text)


async def test_quality_managers_may_drill_down_executives_and_workers_may_not(
    client, plant, quality_headers, viewer_headers, manager_headers, executive_headers, worker_headers
):
    params = {"kind": "defect", "key": "D-SCRATCH"}
    for headers in (quality_headers, viewer_headers, manager_headers):
        assert (await client.get(f"{API}/kpi/drilldown", params=params, headers=headers)).status_code == 200
    for headers, permission in ((executive_headers, "lots:read"), (worker_headers, "kpi:read")):
        r = await client.get(f"{API}/kpi/drilldown", params=params, headers=headers)
        assert r.status_code == 403 and r.json()["detail"]["permission"] == permission, r.text


_ITEM_LOTS = (
    "SELECT p.process_id, p.item, l.lot_number FROM process_items p LEFT JOIN lots l ON l.id = p.lot_id "
    "ORDER BY p.process_id, p.item"
)


async def test_every_item_knows_its_lot_as_recorded_and_after_a_rebuild(plant, kernel, settings):
    """``process_items.lot_id`` (what a yield bar's drill-down groups by) is the LOT of the item's
    records: written with the first record, and again by ``mes kpi rebuild``."""
    expected = await run_sql(
        settings,
        "SELECT DISTINCT process_id, coalesce(serial_number, lot_number), lot_number FROM process_records "
        "ORDER BY 1, 2",
    )
    assert [tuple(row) for row in await run_sql(settings, _ITEM_LOTS)] == [tuple(row) for row in expected]
    async with kernel.sessionmaker() as session, session.begin():
        await rebuild(session)
        if kernel.engine.dialect.name == "postgresql":  # the per-LOT triggers count again after it
            paused = await session.execute(text(f"SELECT current_setting('{lot_counts.PAUSED}', true)"))
            assert paused.scalar() == "off"
    assert [tuple(row) for row in await run_sql(settings, _ITEM_LOTS)] == [tuple(row) for row in expected]


@pytest.mark.parametrize(
    ("kind", "key", "daily", "hourly_index"),
    [
        ("process", "ASSY-10", "kpi_daily_lots", "pk_kpi_hourly_lots"),
        ("station", "ST-K1", "kpi_daily_station_lots", "ix_kpi_hourly_lots_station_hour"),
    ],
)
async def test_a_bar_s_lots_are_summed_from_the_per_lot_rollups_not_the_items(
    plant, kernel, kind, key, daily, hourly_index
):
    """The per-LOT counts behind a step's (a station's) bar are read from ``kpi_daily_lots``
    (``kpi_daily_station_lots``) for whole UTC days and ``kpi_hourly_lots`` (the hours at either
    end, and rows not folded yet), never by grouping the bar's items: at 10 M records a step's week
    is 470,000 items (0.75 s even from a covering index), a step's month 60,000 LOT-hour rows and a
    station's 25,600. On PostgreSQL each is an index scan of its rollup's key (step or station, day
    or hour), the unfolded rows of the partial index — not a scan of a table."""
    statements = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        if "GROUP BY" in statement:
            statements.append((statement, parameters))

    postgres = kernel.engine.dialect.name == "postgresql"
    if postgres:  # the day's rows folded into shard 0 and kpi_daily_lots, as the kernel's fold does
        async with kernel.sessionmaker() as session, session.begin():
            await fold_shards(session)
    event.listen(kernel.engine.sync_engine, "before_cursor_execute", keep)
    try:
        async with kernel.sessionmaker() as session:
            lots = []
            # a whole day, and the same day with an hour either side (no records there)
            for since, until in ((DAY, DAY + timedelta(days=1)), (DAY - HOUR, DAY + timedelta(days=1) + HOUR)):
                drill = await drilldown(
                    session=session,
                    kind=kind,
                    key=key,
                    span=Range(since, until, ZoneInfo("UTC")),
                    line=None,
                    secret="s" * 32,
                )
                lots.append([(x["lot_number"], x["total"], x["first_pass"], x["passed"]) for x in drill["lots"]])
    finally:
        event.remove(kernel.engine.sync_engine, "before_cursor_execute", keep)
    # ST-K1 is LINE-K's station: LOT-M (LINE-M) is not on its bar
    on_the_bar = ["LOT-B", "LOT-A", "LOT-C", "LOT-M"] if kind == "process" else ["LOT-B", "LOT-A", "LOT-C"]
    assert [lot for lot, *_ in lots[0]] == on_the_bar
    assert lots[1] == lots[0]
    assert not [s for s, _ in statements if "FROM process_items" in s], statements
    per_lot = [(s, p) for s, p in statements if "FROM kpi_hourly_lots" in s]
    assert len(per_lot) == 2, statements
    if not postgres:
        return
    async with kernel.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        # a handful of rows: the planner would rather read the table; how it reads a big one is asked
        for setting in ("enable_seqscan", "enable_bitmapscan"):
            await conn.exec_driver_sql(f"SET {setting} = off")
        statement, parameters = per_lot[1]
        plan = (await conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters)).scalar()
        await conn.exec_driver_sql("RESET ALL")
    scans = sorted(
        (n["Relation Name"], n.get("Index Name"))
        for n in _nodes(plan[0]["Plan"])
        if n.get("Relation Name") in ("kpi_hourly_lots", daily)
    )
    hourly = [("kpi_hourly_lots", "ix_kpi_hourly_lots_unfolded"), *[("kpi_hourly_lots", hourly_index)] * 2]
    expected = [(daily, f"pk_{daily}"), *hourly]
    assert scans == sorted(expected), scans


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def test_a_pareto_bar_reads_only_the_months_received_within_a_day_of_its_range(plant, kernel):
    """PostgreSQL: records are partitioned by month of receipt (``created_at``) and a bar's range is
    one of station times (``event_at``), which prunes no partition: every month's index was walked
    through the code's failures. A station time lies at most a day ahead of its receipt
    (``STATION_TIME_MAX_LEAD_SECONDS`` ≤ 86,400), so the read adds ``created_at ≥ range start − 1
    day`` (``partitions.received_from``): the planner leaves out every month that ended before, and
    the indexes carry ``created_at`` (0031), so nothing is read from the table. A record received
    in the previous month, 23 h 50 min before its station time at the start of this month, is
    still listed."""
    if kernel.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no partitions")
    month = DAY.replace(day=1)
    await monthly.ensure_partitions(kernel.engine, today=(month - timedelta(days=200)).date(), ahead=9)
    # A-3's failure happened 10 minutes into the month and reached the server 23 h 50 min before
    await run_sql(
        kernel.settings,
        "UPDATE process_records SET event_at = :at, created_at = :received WHERE serial_number = 'A-3'",
        at=month + timedelta(minutes=10),
        received=month - timedelta(hours=23, minutes=50),
    )
    statements = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        if "FROM process_records" in statement:
            statements.append((statement, parameters))

    event.listen(kernel.engine.sync_engine, "before_cursor_execute", keep)
    try:
        async with kernel.sessionmaker() as session:
            drill = await drilldown(
                session=session,
                kind="defect",
                key="D-SCRATCH",
                span=Range(month, month + HOUR, ZoneInfo("UTC")),
                line=None,
                secret="s" * 32,
            )
    finally:
        event.remove(kernel.engine.sync_engine, "before_cursor_execute", keep)
    assert [(u["serial_number"], u["count"]) for u in drill["units"]] == [("A-3", 1)]
    assert drill["totals"] == {"count": 1, "listed": 1, "units": 1, "lots": 1}
    partitions = await run_sql(
        kernel.settings,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'process_records'::regclass",
    )
    reach = month - timedelta(days=1)
    older = {name for (name,) in partitions if (m := monthly.month_of_partition(name)) and m.next().start <= reach}
    kept = {name for (name,) in partitions} - older
    assert len(older) >= 5 and monthly.Month.of(reach).name in kept, (older, kept)
    assert len(statements) == 2, statements  # the LOTs, and the units' page
    async with kernel.engine.connect() as conn:
        for statement, parameters in statements:
            plan = (await conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters)).scalar()
            scans = [n for n in _nodes(plan[0]["Plan"]) if n.get("Relation Name", "").startswith("process_records")]
            assert {n["Relation Name"] for n in scans} == kept, statement
            assert {n["Node Type"] for n in scans} <= {"Index Only Scan", "Seq Scan"}, scans  # Seq: an empty one
            assert [n for n in scans if n["Node Type"] == "Index Only Scan"], scans
