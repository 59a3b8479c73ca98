"""Moving a station to another line, or off every line: ``PUT /api/v1/stations/{code}/line`` (and
``mes station move``). A line configuration never takes a station from another line (it refuses
one that belongs to another), so this is how a station changes lines — its silence split at the
move, both lines' stations following."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from mes_kernel.db.models import Alert, AuditEntry, Device, Line, ProcessRecord, Station
from mes_kernel.services.silence import raise_silence, silent_key

API = "/api/v1"
NOW = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)  # after the fixtures register


@pytest.fixture(autouse=True)
def _clock(kernel):
    kernel.clock = lambda: NOW


async def _versions(kernel) -> dict[str, int]:
    async with kernel.sessionmaker() as session:
        return dict((await session.execute(select(Line.code, Line.config_version))).all())


async def test_a_silent_station_moved_to_another_line_and_off_every_line(
    client, kernel, admin_headers, station_headers
):
    r = await client.put(f"{API}/lines/LINE-B", json={"name": "Line B"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    async with kernel.sessionmaker() as session:  # never heard: silent since its registration
        station = (await session.execute(select(Station).where(Station.code == "ST-01"))).scalar_one()
        assert await raise_silence(session=session, station=station, age=600)
        line_a = station.line_id
    before = await _versions(kernel)

    r = await client.put(f"{API}/stations/ST-01/line", json={"line": "LINE-B"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.json()["line"] == "LINE-B"
    after = await _versions(kernel)
    assert after == {"LINE-A": before["LINE-A"] + 1, "LINE-B": before["LINE-B"] + 1}  # both lines' stations follow
    async with kernel.sessionmaker() as session:
        line_b = (await session.execute(select(Line.id).where(Line.code == "LINE-B"))).scalar()
        alerts = (await session.execute(
            select(Alert).where(Alert.key == silent_key("ST-01")).order_by(Alert.id)
        )).scalars().all()
        audit = (await session.execute(
            select(AuditEntry).where(AuditEntry.entity == "station").order_by(AuditEntry.id.desc())
        )).scalars().first()
    old, new = alerts
    assert (old.detail["line_id"], old.resolved_at, old.detail["moved_to_line_id"]) == (line_a, NOW, line_b)
    assert (new.detail["line_id"], new.raised_at, new.resolved_at) == (line_b, NOW, None)
    assert (audit.entity_id, audit.before, audit.after) == ("ST-01", {"line": "LINE-A"}, {"line": "LINE-B"})

    again = await client.put(f"{API}/stations/ST-01/line", json={"line": "LINE-B"}, headers=admin_headers)
    assert again.status_code == 200 and await _versions(kernel) == after  # its own line: nothing changes

    r = await client.put(f"{API}/stations/ST-01/line", json={"line": None}, headers=admin_headers)
    assert r.status_code == 200 and r.json()["line"] is None, r.text
    async with kernel.sessionmaker() as session:
        open_alerts = (await session.execute(
            select(Alert).where(Alert.key == silent_key("ST-01"), Alert.resolved_at.is_(None))
        )).scalars().all()
    assert [a.detail["line_id"] for a in open_alerts] == [None]  # off every line: counts for none


async def test_bad_moves_are_refused_with_a_code_and_change_nothing(
    client, kernel, admin_headers, worker_headers, station_headers
):
    async with kernel.sessionmaker() as session:  # a device of LINE-A bound to the station
        station = (await session.execute(select(Station).where(Station.code == "ST-01"))).scalar_one()
        session.add(Device(code="MTR-1", kind="label_printer", driver="zpl_tcp", config={}, enabled=True,
                           line_id=station.line_id, station_id=station.id))
        await session.commit()
    assert (await client.put(f"{API}/lines/LINE-B", json={"name": "Line B"}, headers=admin_headers)).status_code == 200
    before = await _versions(kernel)
    cases = [
        ("ST-01", {"line": "LINE-B"}, admin_headers, 409, "STATION_HAS_DEVICES"),
        ("NOPE", {"line": "LINE-B"}, admin_headers, 404, "STATION_NOT_FOUND"),
        ("ST-01", {"line": "LINE-Z"}, admin_headers, 422, "LINE_NOT_FOUND"),
        ("ST-01", {}, admin_headers, 422, "VALIDATION_ERROR"),
        ("ST-01", {"line": "LINE-B", "name": "x"}, admin_headers, 422, "VALIDATION_ERROR"),
        ("ST-01", {"line": 7}, admin_headers, 422, "VALIDATION_ERROR"),
        ("ST-01", {"line": "LINE-B"}, worker_headers, 403, "FORBIDDEN"),
    ]
    for code, body, headers, status, error in cases:
        r = await client.put(f"{API}/stations/{code}/line", json=body, headers=headers)
        assert (r.status_code, r.json()["detail"]["code"]) == (status, error), (code, body, r.text)
    assert r.status_code == 403
    conflict = await client.put(f"{API}/stations/ST-01/line", json={"line": "LINE-B"}, headers=admin_headers)
    assert conflict.json()["detail"]["devices"] == ["MTR-1"]
    missing = await client.put(f"{API}/stations/ST-01/line", json={"line": "LINE-Z"}, headers=admin_headers)
    assert missing.json()["detail"]["field"] == "line"
    assert await _versions(kernel) == before
    async with kernel.sessionmaker() as session:
        station = (await session.execute(select(Station).where(Station.code == "ST-01"))).scalar_one()
        assert station.line_id == (await session.execute(select(Line.id).where(Line.code == "LINE-A"))).scalar()


async def test_its_records_and_its_token_follow_a_move_at_once(
    client, kernel, admin_headers, station_headers, make_lot
):
    """The station's line is cached (its records' line, its token's principal, 5 minutes each):
    a move retires both at once — through the API on this worker, and from another process (the
    CLI, which reaches no cache of the server's) at the server's next configuration check."""
    from mes_kernel.services.stations import move_station
    from mes_kernel.testing.helpers import record_body

    lot = (await make_lot())["lot_number"]
    r = await client.put(f"{API}/lines/LINE-B", json={"name": "Line B", "plugins": []}, headers=admin_headers)
    assert r.status_code == 200, r.text

    async def recorded_on() -> str | None:
        body = record_body(lot)
        r = await client.post(f"{API}/process-records", json=body, headers=station_headers)
        assert r.status_code in (200, 201), r.text
        async with kernel.sessionmaker() as session:
            query = (
                select(Line.code)
                .join(ProcessRecord, ProcessRecord.line_id == Line.id)
                .where(ProcessRecord.idempotency_key == body["idempotency_key"])
            )
            return (await session.execute(query)).scalar()

    async def label_templates() -> int:  # a plugin route: LINE-B enables no plugin
        return (await client.get(f"{API}/labels/templates", headers=station_headers)).status_code

    assert (await recorded_on(), await label_templates()) == ("LINE-A", 200)  # both now cached
    r = await client.put(f"{API}/stations/ST-01/line", json={"line": "LINE-B"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert (await recorded_on(), await label_templates()) == ("LINE-B", 403)
    async with kernel.sessionmaker() as session:  # `mes station move ST-01 --line LINE-A`, elsewhere
        await move_station(session=session, code="ST-01", line_code="LINE-A", actor="cli", at=NOW)
        await session.commit()
    await kernel.runtime.refresh()  # the server's check of the configuration, every second
    assert (await recorded_on(), await label_templates()) == ("LINE-A", 200)


async def test_a_line_name_empty_or_too_long_is_422_worded_in_characters(client, admin_headers):
    for line, words in (("", "at least 1 character"), ("L" * 65, "at most 64 characters")):
        r = await client.put(f"{API}/stations/ST-01/line", json={"line": line}, headers=admin_headers)
        assert r.status_code == 422, r.text
        error = r.json()["detail"]["errors"][0]
        assert error["loc"] == ["body", "line"] and words in error["msg"], r.text
