"""Every reason in ``/api/v1/health`` carries a stable ``reason_code`` and its ``reason_params``
beside the English ``reason``, so the dashboard words it in its reader's language (the web's
catalogs hold ``health.reason.<code>``; its catalog test fails on a code without a text). The
bundled plugins' reasons are checked in their own tests (``uncoded_reasons``)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from mes_kernel import health
from mes_kernel.contracts import CheckResult, HealthCheck, Reason, Status
from mes_kernel.db.base import utcnow
from mes_kernel.db.models import Station
from mes_kernel.testing.helpers import uncoded_reasons

API = "/api/v1"


async def _stations(kernel) -> None:
    now = utcnow()
    problems = [
        {"device": "PRN-1", "driver": "zpl_tcp", "problem": "missing", "wanted": None, "installed": None},
        {"device": "SCN-1", "driver": "hid", "problem": "wrong_version", "wanted": "2.0", "installed": "1.4"},
        {"device": "UPL-1", "driver": "acme", "problem": "unheard_of"},
    ]
    async with kernel.sessionmaker() as session:
        session.add_all(
            [
                Station(code="ST-NEVER", heartbeat={}),
                Station(code="ST-SILENT", heartbeat={}, last_heartbeat_at=now - timedelta(hours=2)),
                Station(code="ST-DRIVERS", heartbeat={"driver_problems": problems}, last_heartbeat_at=now),
            ]
        )
        await session.commit()


async def _open_a_breaker(kernel) -> str:
    name, cfg = next(iter(kernel.breakers.configs.items()))
    failure = cfg.expected_exceptions[0]

    async def fails():
        raise failure("device away")

    for _ in range(cfg.failure_threshold):
        with contextlib.suppress(failure):
            await kernel.breakers.call(name, None, fails)
    return name


async def test_every_reason_of_a_troubled_kernel_is_coded(client, app, kernel, admin_headers, monkeypatch):
    monkeypatch.setattr(health, "DISK_WARN_PERCENT", 0.0)  # the checks read these when they run
    monkeypatch.setattr(health, "MEMORY_WARN_PERCENT", 0.0)
    await _stations(kernel)
    breaker = await _open_a_breaker(kernel)
    app.state.health.invalidate()
    tree = (await client.get(f"{API}/health", headers=admin_headers)).json()
    assert uncoded_reasons(tree) == []

    checks = tree["components"]["kernel"]["checks"]
    assert checks["disk"]["reason_code"] == "DISK_NEARLY_FULL"
    assert checks["disk"]["reason_params"] == {"percent": checks["disk"]["details"]["usage_percent"]}
    assert checks["memory"]["reason_code"] == "MEMORY_NEARLY_FULL"
    if kernel.redis is None:
        assert checks["redis"]["reason_code"] == "REDIS_NOT_CONFIGURED"

    node = tree["components"]["breakers"]["checks"][breaker]
    assert node["reason_code"] == "BREAKER_OPEN" and "device away" in node["reason_params"]["error"]

    stations = tree["components"]["stations"]["checks"]
    assert stations["ST-NEVER"]["reason_code"] == "STATION_NEVER_REPORTED"
    assert stations["ST-SILENT"]["reason_code"] == "STATION_SILENT"
    assert 7200 <= stations["ST-SILENT"]["reason_params"]["seconds"] < 7200 + 600
    drivers = stations["ST-DRIVERS"]
    assert drivers["reason_code"] == "STATION_DRIVER_PROBLEMS"
    assert [(p["reason_code"], p["reason_params"]["device"]) for p in drivers["reason_params"]["problems"]] == [
        ("STATION_DRIVER_MISSING", "PRN-1"),
        ("STATION_DRIVER_WRONG_VERSION", "SCN-1"),
        ("STATION_DRIVER_PROBLEM", "UPL-1"),
    ]
    # the English stays as it was, for logs and API users
    assert drivers["reason"].startswith("drivers: PRN-1: zpl_tcp missing; SCN-1: hid wrong_version (wanted 2.0")


async def test_anonymous_callers_see_no_reason_codes_either(client, kernel):
    await _stations(kernel)
    tree = (await client.get(f"{API}/health")).json()
    assert "reason_code" not in str(tree) and "reason_params" not in str(tree)


async def test_a_check_that_fails_hangs_or_answers_nonsense_is_down_with_a_code():
    async def raises() -> CheckResult:
        raise ConnectionRefusedError("refused")

    async def hangs() -> CheckResult:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def nonsense():
        return "fine"

    failed = await health.run_check(HealthCheck("raises", raises))
    timed_out = await health.run_check(HealthCheck("hangs", hangs, timeout=0.05))
    odd = await health.run_check(HealthCheck("nonsense", nonsense))
    assert (failed["status"], failed["reason_code"]) == ("DOWN", "CHECK_FAILED")
    assert failed["reason_params"] == {"error": "ConnectionRefusedError: refused"}
    assert (timed_out["reason_code"], timed_out["reason_params"]) == ("CHECK_TIMED_OUT", {"seconds": 0.05})
    assert (odd["reason_code"], odd["reason_params"]) == ("CHECK_NOT_A_RESULT", {"type": "str"})


async def test_a_plugin_check_reason_and_its_devices_keep_their_codes():
    async def printers() -> CheckResult:
        parts = {
            "PRN-1": CheckResult(Status.DOWN, Reason("PRINTER_SILENT", "no reply to ~HS (printer silent)")),
            "PRN-2": CheckResult(Status.DOWN, "an older driver's words"),
        }
        return CheckResult(
            Status.DOWN, Reason("DEVICES_NOT_UP", "two printers down", {"problems": []}), components=parts
        )

    node = await health.run_check(HealthCheck("printers", printers))
    assert (node["reason"], node["reason_code"]) == ("two printers down", "DEVICES_NOT_UP")
    assert node["checks"]["PRN-1"]["reason_code"] == "PRINTER_SILENT"
    # plain text (a third-party plugin's) passes as it is, without a code: the dashboard shows the text
    assert node["checks"]["PRN-2"]["reason"] == "an older driver's words"
    assert uncoded_reasons(node) == ["checks.PRN-2: an older driver's words"]
