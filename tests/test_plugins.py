"""The plugin contract, proven from outside: pip-installed third-party plugins, good and broken."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from fastapi import APIRouter

from mes_kernel import hookimpl
from mes_kernel.drivers import DriverLoadError, list_drivers, load_driver


def _plugin(body, name):
    return next(p for p in body["plugins"] if p["name"] == name)


async def test_third_party_plugin_contributes_route_driver_breaker_health_and_panel(
    third_party, client, admin_headers, viewer_headers
):
    body = (await client.get("/api/v1/plugins", headers=admin_headers)).json()
    meter = _plugin(body, "sample_meter")
    assert meter["state"] == "loaded", meter
    assert meter["distribution"] == "mes-sample-meter" and meter["version"] == "1.2.0"
    assert "GET /api/v1/sample/reading" in meter["routes"]
    assert {d["name"] for d in meter["drivers"]} == {"fake_meter", "broken_meter"}
    assert meter["breakers"] == ["sample_meter"]
    assert meter["panels"] == ["sample-reading"]
    assert meter["health_checks"] == ["meter"]
    assert "mes_startup" in meter["hooks"]

    reading = await client.get("/api/v1/sample/reading", headers=viewer_headers)
    assert reading.status_code == 200, reading.text
    # started: the plugin's async mes_startup hook was awaited
    assert {k: reading.json()[k] for k in ("value", "started")} == {"value": 42.0, "started": True}

    panels = (await client.get("/api/v1/dashboard/panels", headers=viewer_headers)).json()
    panel = next(p for p in panels if p["id"] == "sample-reading")
    assert (panel["plugin"], panel["kind"], panel["endpoint"]) == ("sample_meter", "stat", "/api/v1/sample/reading")

    health = (await client.get("/api/v1/health", headers=admin_headers)).json()
    assert health["components"]["plugins"]["checks"]["sample_meter"]["checks"]["meter"]["status"] == "UP"
    assert "/api/v1/sample/reading" in (await client.get("/openapi.json")).json()["paths"]


async def test_broken_and_incompatible_plugins_are_shown_with_reasons_while_the_rest_serve(
    third_party, client, admin_headers
):
    body = (await client.get("/api/v1/plugins", headers=admin_headers)).json()
    broken = _plugin(body, "broken_import")
    assert broken["state"] == "failed" and "vendor_sdk" in broken["reason"]
    future = _plugin(body, "future_plugin")
    assert future["state"] == "incompatible" and ">=2.0,<3" in future["reason"]
    # the reasons as codes with their values, for the dashboard to word in the reader's language
    assert broken["reason_code"] == "IMPORT_FAILED" and "vendor_sdk" in broken["reason_params"]["error"]
    assert future["reason_code"] == "KERNEL_API_MISMATCH" and future["reason_params"]["spec"] == ">=2.0,<3"
    assert _plugin(body, "sample_meter")["reason_code"] is None
    assert (await client.get("/api/v1/future/ping")).status_code == 404  # never mounted
    assert (await client.get("/api/v1/sample/reading", headers=admin_headers)).status_code == 200


async def test_hanging_health_check_reports_down_within_its_timeout(third_party, client, admin_headers):
    r = await client.get("/api/v1/health", headers=admin_headers)
    body = r.json()
    stuck = body["components"]["plugins"]["checks"]["hanging_health"]["checks"]["stuck_device"]
    assert stuck["status"] == "DOWN" and "timed out after 0.5s" in stuck["reason"]
    assert body["status"] == "DEGRADED" and r.status_code == 200  # not critical: no 503
    assert stuck["duration_ms"] < 5000



class SlowToGiveUpPlugin:
    """A check that, once out of time, takes its time to unwind: a device call stuck in a busy thread,
    or a database connection handed back through one."""

    MES_KERNEL_API = ">=1.0"

    def __init__(self):
        self.release = asyncio.Event()
        self.unwound = asyncio.Event()

    @hookimpl
    def mes_register_health_checks(self, kernel):
        from mes_kernel.contracts import HealthCheck

        async def stuck():
            try:
                await asyncio.Event().wait()
            finally:
                await asyncio.shield(self.release.wait())  # a cancelled call that returns only later
                self.unwound.set()

        return [HealthCheck("stuck_device", stuck, timeout=0.1)]


SLOW_TO_GIVE_UP = SlowToGiveUpPlugin()


@pytest.mark.mes_plugins(SLOW_TO_GIVE_UP)
async def test_a_check_slow_to_give_up_does_not_hold_the_tree(client, admin_headers):
    plugin = SLOW_TO_GIVE_UP
    plugin.release, plugin.unwound = asyncio.Event(), asyncio.Event()  # this test's loop (one per backend)
    r = await client.get("/api/v1/health", headers=admin_headers)  # was a 500 (TimeoutError) on a busy CI machine
    assert r.status_code == 200, r.text
    stuck = r.json()["components"]["plugins"]["checks"]["SlowToGiveUpPlugin"]["checks"]["stuck_device"]
    assert (stuck["status"], stuck["reason_code"]) == ("DOWN", "CHECK_TIMED_OUT")
    assert not plugin.unwound.is_set()  # answered while the check was still unwinding
    plugin.release.set()
    await asyncio.wait_for(plugin.unwound.wait(), timeout=30)


async def test_anonymous_health_shows_states_only(third_party, client):
    body = (await client.get("/api/v1/health")).json()
    stuck = body["components"]["plugins"]["checks"]["hanging_health"]["checks"]["stuck_device"]
    assert stuck["status"] == "DOWN" and "reason" not in stuck and "details" not in stuck


@pytest.fixture
def safe_mode_settings(settings):
    return settings.model_copy(update={"plugins_safe_mode": True})


async def test_safe_mode_loads_no_third_party_plugin(third_party, safe_mode_settings):
    from mes_kernel.app import create_app

    app = create_app(safe_mode_settings)
    async with app.router.lifespan_context(app):
        records = {r["name"]: r for r in app.state.kernel.plugins.snapshot()}
    assert records["sample_meter"]["state"] == "disabled"
    assert "safe mode" in records["sample_meter"]["reason"]
    bundled = [r for r in records.values() if r["bundled"]]
    assert bundled and all(r["state"] == "loaded" for r in bundled), bundled


async def test_deny_list_disables_a_plugin(third_party, settings):
    from mes_kernel.app import create_app

    app = create_app(settings.model_copy(update={"plugins_deny": ["sample_meter"]}))
    async with app.router.lifespan_context(app):
        record = next(r for r in app.state.kernel.plugins.snapshot() if r["name"] == "sample_meter")
    assert record["state"] == "disabled" and "PLUGINS_DENY" in record["reason"]


def test_driver_load_failure_names_driver_namespace_and_package(third_party):
    assert [d.name for d in list_drivers("mes.drivers.sample_meter")] == ["broken_meter", "fake_meter"]
    with pytest.raises(DriverLoadError) as err:
        load_driver("mes.drivers.sample_meter", "broken_meter")
    message = str(err.value)
    assert "broken_meter" in message and "mes.drivers.sample_meter" in message and "mes-sample-meter" in message
    with pytest.raises(DriverLoadError, match="no such driver.*fake_meter"):
        load_driver("mes.drivers.sample_meter", "nope")
    with pytest.raises(DriverLoadError, match="TypeError"):
        load_driver("mes.drivers.sample_meter", "fake_meter", colour="blue")
    assert load_driver("mes.drivers.sample_meter", "fake_meter", value=7.0).value == 7.0


async def test_open_breaker_refuses_with_retry_after_then_recovers(third_party, client, admin_headers, kernel):
    now = [1_000_000.0]
    kernel.breakers.clock = lambda: now[0]
    for _ in range(2):
        failed = await client.get("/api/v1/sample/reading?fail=true", headers=admin_headers)
        assert failed.status_code == 500 and failed.json()["detail"]["code"] == "INTERNAL_ERROR"
    refused = await client.get("/api/v1/sample/reading", headers=admin_headers)
    assert refused.status_code == 503
    assert refused.json()["detail"]["code"] == "SERVICE_UNAVAILABLE"
    assert refused.json()["detail"]["retry_after"] == 5 and refused.headers["retry-after"] == "5"
    state = (await client.get("/api/v1/health/circuit-breakers")).json()["sample_meter:M-1"]
    assert state["state"] == "open" and state["failure_count"] == 2 and state["opens"] == 1
    assert "meter does not answer" in state["last_failure_reason"]
    health = (await client.get("/api/v1/health", headers=admin_headers)).json()
    assert health["components"]["breakers"]["checks"]["sample_meter:M-1"]["status"] == "DEGRADED"

    now[0] += 5.0  # recovery timeout passes: the next call is a trial
    assert (await client.get("/api/v1/sample/reading", headers=admin_headers)).status_code == 200
    state = (await client.get("/api/v1/health/circuit-breakers")).json()["sample_meter:M-1"]
    assert state["state"] == "closed" and state["failure_count"] == 0


async def test_failed_trial_reopens_the_breaker(third_party, client, admin_headers, kernel):
    now = [2_000_000.0]
    kernel.breakers.clock = lambda: now[0]
    for _ in range(2):
        await client.get("/api/v1/sample/reading?fail=true", headers=admin_headers)
    now[0] += 5.0
    assert (await client.get("/api/v1/sample/reading?fail=true", headers=admin_headers)).status_code == 500
    assert (await client.get("/api/v1/sample/reading", headers=admin_headers)).status_code == 503
    state = (await client.get("/api/v1/health/circuit-breakers")).json()["sample_meter:M-1"]
    assert state["state"] == "open" and state["opens"] == 2


def test_plugin_cli_commands_join_the_mes_command(third_party, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(third_party), "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db"}
    out = subprocess.run(
        [sys.executable, "-m", "mes_kernel.cli", "sample", "read"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "42.0"


class OneTestPlugin:
    """Registered test by test through the test kit's marker."""

    MES_KERNEL_API = ">=1.0,<2"
    router = APIRouter(prefix="/one-test", tags=["one-test"])

    @staticmethod
    @router.get("/hello")
    async def hello():
        return {"hello": "plant"}

    @staticmethod
    @router.get("/reading")
    async def reading():
        """A device call that ran out of time and said no more than ``TimeoutError``."""
        async with asyncio.timeout(0):
            await asyncio.sleep(1)

    @hookimpl
    def mes_register_routers(self, kernel):
        return [self.router]


@pytest.mark.mes_plugins(OneTestPlugin())
async def test_test_kit_registers_a_plugin_for_one_test(client, admin_headers):
    assert (await client.get("/api/v1/one-test/hello")).json() == {"hello": "plant"}
    names = [p["name"] for p in (await client.get("/api/v1/plugins", headers=admin_headers)).json()["plugins"]]
    assert "OneTestPlugin" in names


@pytest.mark.mes_plugins(OneTestPlugin())
async def test_a_timeout_nobody_caught_is_busy_retry_not_a_500(client):
    r = await client.get("/api/v1/one-test/reading")
    assert r.status_code == 503, r.text
    assert r.json()["detail"]["code"] == "SERVICE_UNAVAILABLE" and r.headers["retry-after"] == "5"


class RaisingRoutesPlugin:
    MES_KERNEL_API = ">=1.0"

    @hookimpl
    def mes_register_routers(self, kernel):
        raise RuntimeError("router factory exploded")


@pytest.mark.mes_plugins(RaisingRoutesPlugin())
async def test_a_hook_that_raises_marks_only_that_plugin_failed(client, admin_headers):
    body = (await client.get("/api/v1/plugins", headers=admin_headers)).json()
    record = _plugin(body, "RaisingRoutesPlugin")
    assert record["state"] == "failed" and "router factory exploded" in record["reason"]
    assert (await client.get("/api/v1/health/liveness")).status_code == 200


class PerDevicePlugin:
    """A check that covers several devices reports each as its own node of the tree."""

    MES_KERNEL_API = ">=1.0"

    @hookimpl
    def mes_register_health_checks(self, kernel):
        from mes_kernel.contracts import CheckResult, HealthCheck, Status

        async def devices():
            parts = {"DEV-1": CheckResult(Status.UP), "DEV-2": CheckResult(Status.DOWN, "paper out")}
            return CheckResult(Status.DEGRADED, "DEV-2: paper out", components=parts)

        return [HealthCheck("devices", devices)]


@pytest.mark.mes_plugins(PerDevicePlugin())
async def test_a_check_over_several_devices_shows_each_device(client, admin_headers):
    tree = (await client.get("/api/v1/health", headers=admin_headers)).json()
    node = tree["components"]["plugins"]["checks"]["PerDevicePlugin"]["checks"]["devices"]
    assert node["checks"]["DEV-1"]["status"] == "UP"
    assert node["checks"]["DEV-2"] == {
        "status": "DOWN",
        "critical": False,
        "reason": "paper out",  # plain text from a plugin: no code, the dashboard shows it as it is
        "reason_code": None,
        "reason_params": {},
        "details": {},
    }


class PanelsPlugin:
    MES_KERNEL_API = ">=1.0"

    @hookimpl
    def mes_register_permissions(self):
        from mes_kernel.contracts import Permission

        return [Permission("secret:read", "Read the secret panel", ("production_manager",))]

    @hookimpl
    def mes_register_panels(self):
        from mes_kernel.contracts import Panel

        return [
            Panel("open", "Open", "stat", "/open"),
            Panel("secret", "Secret", "stat", "/s", permission="secret:read"),
        ]


@pytest.mark.mes_plugins(PanelsPlugin())
async def test_panels_are_listed_only_for_roles_that_may_read_them(client, viewer_headers, manager_headers):
    viewer = {p["id"] for p in (await client.get("/api/v1/dashboard/panels", headers=viewer_headers)).json()}
    manager = {p["id"] for p in (await client.get("/api/v1/dashboard/panels", headers=manager_headers)).json()}
    assert "open" in viewer and "secret" not in viewer
    assert {"open", "secret"} <= manager


class HangingShutdownPlugin:
    """A plugin whose shut-down never returns (a protocol library waiting on a dead peer)."""

    MES_KERNEL_API = ">=1.0"

    def __init__(self, *, deaf: bool = False) -> None:
        self.shutdown_started = False
        self.deaf = deaf  # when cancelled, goes on waiting (a client closing its session with the dead peer)
        self.release: asyncio.Event | None = None

    @hookimpl
    async def mes_shutdown(self, kernel):
        self.shutdown_started = True
        self.release = asyncio.Event()
        try:
            await asyncio.Event().wait()
        finally:
            if self.deaf:
                await asyncio.shield(self.release.wait())


@pytest.mark.parametrize("deaf", [False, True], ids=["hangs", "hangs-deaf-to-cancellation"])
async def test_a_plugin_whose_shutdown_hangs_does_not_hang_the_kernel(settings, monkeypatch, deaf):
    from mes_kernel import plugins
    from mes_kernel.app import create_app

    monkeypatch.setattr(plugins, "SHUTDOWN_TIMEOUT", 0.5)
    plugin = HangingShutdownPlugin(deaf=deaf)
    app = create_app(settings, extra_plugins=[plugin])

    async def run_and_stop():
        async with app.router.lifespan_context(app):
            pass

    stopping = asyncio.ensure_future(run_and_stop())
    done, _ = await asyncio.wait({stopping}, timeout=60)  # not wait_for: it would wait for a deaf hook
    assert stopping in done and stopping.exception() is None  # the hook is given up on after 0.5 s
    assert plugin.shutdown_started
    plugin.release.set()  # the deaf hook unwinds now, on its own
