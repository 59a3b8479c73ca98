"""Writing to a device through the contract's ``audited_write``, as the plugin guide shows it: the
guide's example is the sample third-party meter's setpoint route, driven here over HTTP (SQLite, and
PostgreSQL + Redis when configured) — every attempt audited with its outcome, the plugin's own codes,
the breaker's exceptions as the failures, and nothing sent that the audit trail could not keep."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from mes_kernel.db.models import AuditEntry
from mes_kernel.testing.helpers import put_line

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "sample_plugins" / "mes_sample_meter" / "mes_sample_meter" / "plugin.py"
API = "/api/v1/sample/meters"


def _guide_example() -> str:
    guide = (ROOT / "docs" / "plugin-guide.md").read_text()
    section = guide[guide.index("### Writing to a device: `audited_write`") :]
    start = section.index("```python\n") + len("```python\n")
    return section[start : section.index("```", start)]


def test_the_guides_write_example_is_the_sample_plugins_route():
    example = _guide_example().strip()
    assert "await audited_write(" in example
    assert example in SAMPLE.read_text(), "docs/plugin-guide.md's audited_write example drifted from the sample"


@pytest.fixture
async def setpoints(third_party, client, admin_headers, kernel) -> list[float]:
    """Two meters of the sample plugin on a line, one answering and one silent; the setpoints the
    meters were sent (the fake driver's record), empty at the start. The breakers' clock stands
    still, so an open breaker stays open however slow the machine is."""
    from mes_sample_meter.drivers import FakeMeter

    FakeMeter.setpoints.clear()
    kernel.breakers.clock = lambda: 1_000.0
    meters = [
        {"code": "MTR-OK", "kind": "sample_meter", "driver": "fake_meter", "config": {}},
        {"code": "MTR-GONE", "kind": "sample_meter", "driver": "fake_meter", "config": {"failing": True}},
    ]
    await put_line(client, admin_headers, "LINE-M", meters)
    return FakeMeter.setpoints


async def _audit(kernel, entity_id: str) -> list[AuditEntry]:
    async with kernel.sessionmaker() as session:
        query = select(AuditEntry).where(AuditEntry.entity == "meter_setpoint", AuditEntry.entity_id == entity_id)
        return list((await session.execute(query.order_by(AuditEntry.id))).scalars())


async def test_a_setpoint_is_written_and_audited_with_its_outcome(setpoints, client, kernel, manager_headers):
    r = await client.post(f"{API}/MTR-OK/setpoint", params={"value": 12.5}, headers=manager_headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"device": "MTR-OK", "setpoint": 12.5}
    assert setpoints == [12.5]
    (entry,) = await _audit(kernel, "MTR-OK:setpoint")
    assert (entry.action, entry.actor) == ("update", "user:manager")
    assert entry.after == {"value": 12.5, "driver": "fake_meter", "outcome": "written"}


async def test_a_meter_that_does_not_answer_fails_audited_then_its_breaker_refuses(
    setpoints, client, kernel, admin_headers
):
    url = f"{API}/MTR-GONE/setpoint"
    for _ in range(2):  # the sample breaker opens after 2 failures
        r = await client.post(url, params={"value": 5}, headers=admin_headers)
        assert r.status_code == 502, r.text
        assert r.json()["detail"] == {
            "code": "METER_WRITE_FAILED",
            "message": "setting the setpoint of MTR-GONE failed: ConnectionError: meter does not answer",
            "device": "MTR-GONE",
            "field": "name",
        }
    r = await client.post(url, params={"value": 5}, headers=admin_headers)
    assert r.status_code == 503 and r.json()["detail"]["code"] == "SERVICE_UNAVAILABLE"
    assert int(r.headers["Retry-After"]) > 0
    entries = await _audit(kernel, "MTR-GONE:setpoint")  # the refused third attempt sent nothing
    assert [e.after for e in entries] == [
        {"value": 5.0, "driver": "fake_meter", "outcome": "failed", "error": "ConnectionError: meter does not answer"}
    ] * 2
    assert setpoints == []


async def test_a_value_the_meter_refuses_is_422_audited_and_not_charged_to_the_breaker(
    setpoints, client, kernel, admin_headers
):
    url = f"{API}/MTR-OK/setpoint"
    for _ in range(3):
        r = await client.post(url, params={"value": -1}, headers=admin_headers)
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert (detail["code"], detail["field"]) == ("METER_VALUE_INVALID", "value")
        assert "outside the setpoint range" in detail["message"]
    state = await kernel.breakers.state("sample_meter", "MTR-OK")
    assert (state.state, state.failures) == ("closed", 0)
    assert [e.after["outcome"] for e in await _audit(kernel, "MTR-OK:setpoint")] == ["failed"] * 3
    r = await client.post(url, params={"value": 7}, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert setpoints == [7.0]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
async def test_a_value_the_audit_trail_cannot_keep_never_reaches_the_meter(
    setpoints, client, kernel, admin_headers, value
):
    r = await client.post(f"{API}/MTR-OK/setpoint", params={"value": value}, headers=admin_headers)
    assert r.status_code == 422, r.text
    assert (r.json()["detail"]["code"], r.json()["detail"]["field"]) == ("METER_VALUE_INVALID", "value")
    assert setpoints == [], "the meter was written without an audit entry"
    assert await _audit(kernel, "MTR-OK:setpoint") == []
