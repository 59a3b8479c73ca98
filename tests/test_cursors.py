"""Opaque tokens a client hands back are signed: a changed, cut, foreign or forged one answers 422
``INVALID_CURSOR`` naming its parameter, never a 500 and never another position."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import select

from mes_kernel import cursors
from mes_kernel.db.models import Line, Lot, Station, StationToken
from mes_kernel.security import STATION_TOKEN_PREFIX, new_opaque_token, token_digest

API = "/api/v1"
SECRET = "a-secret-key-for-these-tests-0123456789"


def _flip(token: str, i: int) -> str:
    """``token`` with character ``i`` replaced by another of the base64url alphabet (or the dot moved)."""
    c = token[i]
    other = "A" if c != "A" else "B"
    return token[:i] + other + token[i + 1 :]


def test_a_token_opens_only_unchanged_whole_and_for_its_key_and_purpose():
    token = cursors.sign("2026-12-01T00:00:00+00:00|3|4", secret=SECRET, purpose="history:lot:1")
    assert cursors.unsign(token, secret=SECRET, purpose="history:lot:1") == "2026-12-01T00:00:00+00:00|3|4"
    for i in range(len(token)):
        assert cursors.unsign(_flip(token, i), secret=SECRET, purpose="history:lot:1") is None, i
    for n in range(len(token)):
        assert cursors.unsign(token[:n], secret=SECRET, purpose="history:lot:1") is None, n
    assert cursors.unsign(token, secret=SECRET + "x", purpose="history:lot:1") is None
    assert cursors.unsign(token, secret=SECRET, purpose="history:lot:2") is None
    assert cursors.unsign(token, secret=SECRET, purpose="history:unit:1") is None
    too_long = "A" * cursors.MAX_LENGTH + token  # well-formed but longer than any token: not read at all
    junks = ("", ".", "a.b", token + "=", token + "\n", " " + token, "é" + token, token.replace(".", ".."), too_long)
    for junk in junks:
        assert cursors.unsign(junk, secret=SECRET, purpose="history:lot:1") is None, junk
    # a payload that is not UTF-8, signed: refused as a token, never a UnicodeDecodeError
    body, _, _ = token.partition(".")
    raw = b"\xff\xfe"
    tag = base64.urlsafe_b64encode(cursors._tag(raw, secret=SECRET, purpose="p")).decode().rstrip("=")
    assert (
        cursors.unsign(base64.urlsafe_b64encode(raw).decode().rstrip("=") + "." + tag, secret=SECRET, purpose="p")
        is None
    )


async def _history_pages(client, headers, path: str) -> tuple[dict, dict]:
    first = await client.get(path, params={"limit": 1}, headers=headers)
    assert first.status_code == 200, first.text
    cursor = first.json()["next_before"]
    assert cursor
    second = await client.get(path, params={"limit": 1, "before": cursor}, headers=headers)
    assert second.status_code == 200, second.text
    return first.json(), second.json()


def _refused(r, field: str) -> None:
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert (detail["code"], detail["field"]) == ("INVALID_CURSOR", field), detail


async def test_history_cursors_page_on_and_a_changed_cut_foreign_or_forged_one_is_refused(
    client, kernel, viewer_headers, make_lot
):
    lot = await make_lot(units=3)
    other = await make_lot(units=2)
    path = f"{API}/lots/{lot['lot_number']}/history"
    first, second = await _history_pages(client, viewer_headers, path)
    assert first["events"][0]["id"] != second["events"][0]["id"]  # the round trip: the next older event
    cursor = first["next_before"]

    async def ask(before: str, where: str = path):
        return await client.get(where, params={"limit": 1, "before": before}, headers=viewer_headers)

    for i in (0, len(cursor) // 2, cursor.index(".") + 1, len(cursor) - 1):  # payload and tag bytes
        _refused(await ask(_flip(cursor, i)), "before")
    for n in (1, cursor.index("."), cursor.index(".") + 1, len(cursor) - 1):
        _refused(await ask(cursor[:n]), "before")
    # the same position signed with another key: a server with another SECRET_KEY, or a guess
    payload = base64.urlsafe_b64decode(cursor.partition(".")[0] + "==").decode()
    forged = cursors.sign(payload, secret="another-key-0123456789abcdef0123456789", purpose="history:lot:1")
    _refused(await ask(forged), "before")
    _refused(await ask("A" * 3000 + cursor), "before")  # longer than any cursor: the same code as every other
    # another LOT's cursor on this LOT's history, and this LOT's on the other's and on a unit's
    other_first, _ = await _history_pages(client, viewer_headers, f"{API}/lots/{other['lot_number']}/history")
    _refused(await ask(other_first["next_before"]), "before")
    _refused(await ask(cursor, f"{API}/lots/{other['lot_number']}/history"), "before")
    _refused(await ask(cursor, f"{API}/units/{lot['serial_numbers'][0]}/history"), "before")
    # the old unsigned form (a cursor given before the upgrade): refused, the client starts again
    _refused(await ask(base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")), "before")


async def test_a_signed_cursor_of_an_impossible_position_is_refused_not_a_500(client, kernel, viewer_headers, make_lot):
    """Signed with the server's own key (as a leaked key would allow): the position is still checked."""
    lot = await make_lot(units=2)
    path = f"{API}/lots/{lot['lot_number']}/history"
    first, _ = await _history_pages(client, viewer_headers, path)
    secret = kernel.settings.secret_key
    async with kernel.sessionmaker() as session:
        lot_id = (await session.execute(select(Lot.id).where(Lot.lot_number == lot["lot_number"]))).scalar_one()
    assert cursors.unsign(first["next_before"], secret=secret, purpose=f"history:lot:{lot_id}")
    for payload in (
        "0001-01-01T00:00:00+05:00|1|1",  # before year 1 in UTC
        "2026-11-30T10:00:00|1|1",  # no zone
        "2026-11-30T10:00:00+00:00|-1|1",
        "2026-11-30T10:00:00+00:00|1|99999999999999999999",
        "2026-11-30T10:00:00+00:00|1",
        "no|position|here",
    ):
        before = cursors.sign(payload, secret=secret, purpose=f"history:lot:{lot_id}")
        r = await client.get(path, params={"before": before}, headers=viewer_headers)
        _refused(r, "before")


async def test_unit_history_cursors_are_the_units_own(client, viewer_headers, make_lot):
    lot = await make_lot(units=2)
    first_serial, second_serial = lot["serial_numbers"]
    # a unit has its registration; a record adds a second event
    path = f"{API}/units/{first_serial}/history"
    r = await client.get(path, params={"limit": 1}, headers=viewer_headers)
    assert r.status_code == 200, r.text
    lot_first, _ = await _history_pages(client, viewer_headers, f"{API}/lots/{lot['lot_number']}/history")
    r = await client.get(path, params={"before": lot_first["next_before"]}, headers=viewer_headers)
    _refused(r, "before")
    r = await client.get(f"{API}/units/{second_serial}/history", params={"before": "x.y"}, headers=viewer_headers)
    _refused(r, "before")


async def _second_station(kernel) -> dict[str, str]:
    token = new_opaque_token(STATION_TOKEN_PREFIX)
    async with kernel.sessionmaker() as session:
        line_id = (await session.execute(select(Line.id).where(Line.code == "LINE-A"))).scalar_one()
        station = Station(code="ST-02", name="Station 2", line_id=line_id, heartbeat={})
        session.add(station)
        await session.flush()
        session.add(StationToken(station_id=station.id, name="test", token_hash=token_digest(token)))
        await session.commit()
    return {"Authorization": f"Bearer {token}"}


async def test_sync_cursors_and_pages_are_the_stations_own_and_unforgeable(client, kernel, station_headers, make_lot):
    await make_lot(units=3)  # a LOT on no line: every station caches it
    other = await _second_station(kernel)
    cache = f"{API}/stations/me/cache"
    full = (await client.get(cache, headers=station_headers)).json()
    cursor = full["cursor"]
    r = await client.get(cache, params={"since": cursor}, headers=station_headers)
    assert r.status_code == 200 and r.json()["mode"] == "delta", r.text  # the round trip
    _refused(await client.get(cache, params={"since": cursor}, headers=other), "since")
    for i in (0, len(cursor) - 1):
        _refused(await client.get(cache, params={"since": _flip(cursor, i)}, headers=station_headers), "since")
    _refused(await client.get(cache, params={"since": cursor[:-3]}, headers=station_headers), "since")

    paged = (await client.get(cache, params={"max_units": 1}, headers=station_headers)).json()
    page = paged["next_page"]
    assert page
    r = await client.get(cache, params={"max_units": 1, "page": page}, headers=station_headers)
    assert r.status_code == 200 and r.json()["mode"] == "full", r.text
    _refused(await client.get(cache, params={"max_units": 1, "page": page}, headers=other), "page")
    _refused(await client.get(cache, params={"page": _flip(page, len(page) // 2)}, headers=station_headers), "page")
    _refused(await client.get(cache, params={"page": page[:10]}, headers=station_headers), "page")
    # a sync cursor is no page token, nor the other way round
    _refused(await client.get(cache, params={"page": cursor}, headers=station_headers), "page")
    _refused(await client.get(cache, params={"since": page}, headers=station_headers), "since")


@pytest.mark.parametrize("secret", ["short", "ü-non-ascii-secret-ü"])
def test_any_secret_signs(secret):
    token = cursors.sign("p", secret=secret, purpose="x")
    assert cursors.unsign(token, secret=secret, purpose="x") == "p"
