"""Lines at run time, in one process: the kernel enforces per-line plugin scope, plugins switch off and
on live, and every kernel sharing the database follows a change within 2 s (Redis or, embedded,
the periodic version check)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import httpx
import pytest
from fastapi import APIRouter
from sqlalchemy import select

from mes_kernel import hookimpl
from mes_kernel.api.deps import KernelDep, Principal, require_permission
from mes_kernel.contracts import BreakerConfig, CheckResult, HealthCheck, Panel, Permission, Status
from mes_kernel.db.models import AuditEntry, PluginState

PROPAGATION_SECONDS = 2.0  # the promise: every worker of every node follows within 2 s


class LineProbe:
    """A device plugin as a third party writes it: a station-callable route through a breaker, a
    check that covers only the lines enabling it, a panel and a permission."""

    MES_KERNEL_API = ">=1.0,<2"
    name = "LineProbe"

    def __init__(self) -> None:
        self.checked_lines: list[list[str]] = []
        self.router = APIRouter(prefix="/probe", tags=["probe"])
        self.router.add_api_route("/read", self.read, methods=["GET"], summary="Read the probe")

    async def read(
        self, kernel: KernelDep, fail: bool = False, principal: Principal = require_permission("probe:read")
    ):
        async def measure():
            if fail:
                raise ConnectionError("probe does not answer")
            return 7.5

        return {"value": await kernel.breakers.call("probe", "P-1", measure), "caller": principal.name}

    @hookimpl
    def mes_register_routers(self, kernel):
        return [self.router]

    @hookimpl
    def mes_register_permissions(self):
        return [Permission("probe:read", "Read the probe", ("worker", "viewer", "station"))]

    @hookimpl
    def mes_register_breakers(self):
        return [
            BreakerConfig("probe", failure_threshold=5, recovery_timeout=60, expected_exceptions=(ConnectionError,))
        ]

    @hookimpl
    def mes_register_health_checks(self, kernel):
        async def probe():
            lines = kernel.enabled_lines(self.name)
            self.checked_lines.append(lines)
            return CheckResult(Status.UP, details={"lines": lines})

        return [HealthCheck("probe", probe)]

    @hookimpl
    def mes_register_panels(self):
        return [Panel("probe-panel", "Probe", "stat", "/probe/read", permission="probe:read")]


async def _station(client, admin_headers, code: str, line: str) -> dict[str, str]:
    r = await client.post("/api/v1/stations", json={"code": code, "line": line}, headers=admin_headers)
    assert r.status_code == 201, r.text
    r = await client.post(f"/api/v1/stations/{code}/tokens", json={"name": "test"}, headers=admin_headers)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def _put_line(client, headers, code: str, **document) -> dict:
    r = await client.put(f"/api/v1/lines/{code}", json=document, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def _eventually(probe, what: str, *, within: float = PROPAGATION_SECONDS):
    """Poll ``probe`` (async, truthy when done) until ``within`` seconds pass; fail naming ``what``."""
    started = time.monotonic()
    while True:
        result = await probe()
        if result:
            return time.monotonic() - started
        if time.monotonic() - started > within:
            pytest.fail(f"{what}: not seen within {within}s (last: {result!r})")
        await asyncio.sleep(0.05)


@pytest.mark.mes_plugins(LineProbe())
async def test_a_station_of_a_line_that_does_not_enable_a_plugin_is_refused(client, admin_headers, worker_headers):
    await _put_line(client, admin_headers, "LINE-A", plugins=["LineProbe"])
    await _put_line(client, admin_headers, "LINE-B", plugins=[])
    on_a = await _station(client, admin_headers, "ST-A", "LINE-A")
    on_b = await _station(client, admin_headers, "ST-B", "LINE-B")

    assert (await client.get("/api/v1/probe/read", headers=on_a)).json() == {"value": 7.5, "caller": "ST-A"}
    refused = await client.get("/api/v1/probe/read", headers=on_b)
    assert refused.status_code == 403
    assert refused.json()["detail"] | {"message": None} == {
        "code": "PLUGIN_NOT_ENABLED",
        "message": None,
        "plugin": "LineProbe",
        "line": "LINE-B",
    }
    # people keep their role-based rights: no line binds a user
    assert (await client.get("/api/v1/probe/read", headers=worker_headers)).status_code == 200

    # enabling it on LINE-B applies at once, with no restart
    await _put_line(client, admin_headers, "LINE-B", plugins=["LineProbe"])
    assert (await client.get("/api/v1/probe/read", headers=on_b)).status_code == 200
    plugin = next(
        p
        for p in (await client.get("/api/v1/plugins", headers=admin_headers)).json()["plugins"]
        if p["name"] == "LineProbe"
    )
    assert plugin["lines"] == ["LINE-A", "LINE-B"] and plugin["idle"] is False


@pytest.mark.mes_plugins(probe := LineProbe())
async def test_a_plugin_enabled_on_no_line_is_idle_its_check_and_panel_gone(client, admin_headers, viewer_headers):
    await _put_line(client, admin_headers, "LINE-A", plugins=["LineProbe"])
    await _put_line(client, admin_headers, "LINE-B", plugins=[])
    tree = (await client.get("/api/v1/health", headers=admin_headers)).json()
    node = tree["components"]["plugins"]["checks"]["LineProbe"]
    assert node["state"] == "loaded" and node["checks"]["probe"]["details"] == {"lines": ["LINE-A"]}
    assert "probe-panel" in {
        p["id"] for p in (await client.get("/api/v1/dashboard/panels", headers=viewer_headers)).json()
    }

    await _put_line(client, admin_headers, "LINE-A", plugins=[])
    runs = len(probe.checked_lines)
    tree = (await client.get("/api/v1/health", headers=admin_headers)).json()
    node = tree["components"]["plugins"]["checks"]["LineProbe"]
    assert node == {
        "status": "UP",
        "critical": False,
        "state": "idle",
        "reason": "enabled on no line",
        "reason_code": "PLUGIN_IDLE",
        "reason_params": {},
        "checks": {},
    }
    assert len(probe.checked_lines) == runs  # the check did not run
    assert "probe-panel" not in {
        p["id"] for p in (await client.get("/api/v1/dashboard/panels", headers=viewer_headers)).json()
    }


@pytest.mark.mes_plugins(LineProbe())
async def test_disabling_a_plugin_refuses_its_routes_stops_checks_hides_panels_and_withdraws_permissions(
    client, admin_headers, worker_headers, kernel
):
    r = await client.post(
        "/api/v1/plugins/LineProbe/disable", json={"reason": "probe recalibration"}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["reason"], r.json()["enabled"]) == ("disabled", "probe recalibration", False)
    assert r.json()["reason_code"] == "SWITCHED_OFF"  # worded by the dashboard, the reason shown as typed

    refused = await client.get("/api/v1/probe/read", headers=admin_headers)
    assert refused.status_code == 403
    assert (refused.json()["detail"]["code"], refused.json()["detail"]["plugin"]) == ("PLUGIN_DISABLED", "LineProbe")
    assert "/api/v1/probe/read" in (await client.get("/openapi.json")).json()["paths"]  # still in /docs
    me = (await client.get("/api/v1/auth/me", headers=worker_headers)).json()
    assert "probe:read" not in me["permissions"] and "lots:read" in me["permissions"]
    tree = (await client.get("/api/v1/health", headers=admin_headers)).json()
    node = tree["components"]["plugins"]["checks"]["LineProbe"]
    assert (node["state"], node["reason"], node["checks"]) == ("disabled", "probe recalibration", {})
    assert "probe-panel" not in {
        p["id"] for p in (await client.get("/api/v1/dashboard/panels", headers=admin_headers)).json()
    }
    async with kernel.sessionmaker() as session:
        audit = (await session.execute(select(AuditEntry).where(AuditEntry.entity == "plugin"))).scalars().all()
    assert [(a.entity_id, a.actor, a.after["enabled"]) for a in audit] == [("LineProbe", "user:admin", False)]

    r = await client.post("/api/v1/plugins/LineProbe/enable", headers=admin_headers)
    assert r.status_code == 200 and r.json()["state"] == "loaded"
    assert (await client.get("/api/v1/probe/read", headers=worker_headers)).status_code == 200
    assert "probe:read" in (await client.get("/api/v1/auth/me", headers=worker_headers)).json()["permissions"]


@pytest.mark.mes_plugins(LineProbe())
async def test_switching_an_unknown_plugin_is_404_and_writes_nothing(client, admin_headers, worker_headers, kernel):
    r = await client.post("/api/v1/plugins/no_such_plugin/disable", headers=admin_headers)
    assert r.status_code == 404
    assert r.json()["detail"]["code"] == "PLUGIN_NOT_FOUND" and r.json()["detail"]["plugin"] == "no_such_plugin"
    assert (await client.post("/api/v1/plugins/LineProbe/disable", headers=worker_headers)).status_code == 403
    bad = await client.post("/api/v1/plugins/LineProbe/disable", json={"reason": 5}, headers=admin_headers)
    assert bad.status_code == 422
    async with kernel.sessionmaker() as session:
        assert (await session.execute(select(PluginState))).scalars().all() == []
    assert (await client.get("/api/v1/probe/read", headers=worker_headers)).status_code == 200


@pytest.mark.mes_plugins(LineProbe())
async def test_a_line_enabling_a_plugin_that_is_not_installed_is_refused_and_nothing_is_written(
    client, admin_headers, kernel
):
    await _put_line(client, admin_headers, "LINE-A", plugins=["LineProbe"])
    r = await client.put(
        "/api/v1/lines/LINE-A", json={"plugins": ["LineProbe", "ghost_printer"]}, headers=admin_headers
    )
    assert r.status_code == 422 and r.json()["detail"]["code"] == "INVALID_LINE_CONFIG"
    assert "ghost_printer" in r.json()["detail"]["errors"][0]["msg"]
    line = (await client.get("/api/v1/lines/LINE-A", headers=admin_headers)).json()
    assert (line["plugins"], line["config_version"]) == (["LineProbe"], 1)
    assert kernel.runtime.lines["LINE-A"].plugins == ("LineProbe",)


@pytest.mark.mes_plugins(LineProbe())
async def test_every_change_bumps_the_line_version_and_breakers_show_effective_values(client, admin_headers, kernel):
    assert (await _put_line(client, admin_headers, "LINE-A", plugins=["LineProbe"]))["config_version"] == 1
    same = await _put_line(client, admin_headers, "LINE-A", plugins=["LineProbe"])
    assert same["config_version"] == 1  # nothing changed: no new version
    changed = await _put_line(
        client,
        admin_headers,
        "LINE-A",
        plugins=["LineProbe"],
        breakers={"probe": {"failure_threshold": 2, "recovery_timeout": 9}},
    )
    assert changed["config_version"] == 2
    station = await _station(client, admin_headers, "ST-A", "LINE-A")

    for _ in range(2):
        failed = await client.get("/api/v1/probe/read?fail=true", headers=station)
        assert failed.status_code == 500
    refused = await client.get("/api/v1/probe/read", headers=station)
    assert refused.status_code == 503 and refused.headers["retry-after"] == "9"  # the line's numbers, not 5 / 60
    view = (await client.get("/api/v1/health/circuit-breakers")).json()["probe:P-1"]
    assert {
        k: view[k] for k in ("state", "failure_threshold", "recovery_timeout", "line", "config_version", "overridden")
    } == {
        "state": "open",
        "failure_threshold": 2,
        "recovery_timeout": 9.0,
        "line": "LINE-A",
        "config_version": 2,
        "overridden": True,
    }
    assert (await client.get("/api/v1/health/circuit-breakers")).json()["probe"]["failure_threshold"] == 5


@pytest.mark.mes_plugins(LineProbe())
async def test_a_disabled_plugin_stays_disabled_after_a_restart(app, client, admin_headers, settings):
    from mes_kernel.app import create_app

    assert (await client.post("/api/v1/plugins/LineProbe/disable", headers=admin_headers)).status_code == 200
    again = create_app(settings, extra_plugins=[LineProbe()])
    async with again.router.lifespan_context(again):
        transport = httpx.ASGITransport(app=again, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://mes.test") as second:
            r = await second.get("/api/v1/probe/read", headers=admin_headers)
    assert r.status_code == 403 and r.json()["detail"]["code"] == "PLUGIN_DISABLED"


@pytest.mark.mes_plugins(LineProbe())
async def test_a_second_kernel_on_the_same_database_follows_within_two_seconds(client, admin_headers, settings):
    """Two kernels sharing one database: over Redis on PostgreSQL runs, by the version check alone on
    SQLite (embedded, no Redis)."""
    from mes_kernel.app import create_app

    other = create_app(settings, extra_plugins=[LineProbe()])
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://mes.test") as node_b:
            await _put_line(
                client, admin_headers, "LINE-A", plugins=["LineProbe"], breakers={"probe": {"failure_threshold": 3}}
            )
            scope_b = other.state.kernel

            async def b_has_override():
                cfg = scope_b.breakers.config_for("probe", line="LINE-A")
                return cfg.failure_threshold == 3 and scope_b.breakers.line_versions.get("LINE-A") == 1

            await _eventually(b_has_override, "the breaker override on the second kernel")

            assert (await client.post("/api/v1/plugins/LineProbe/disable", headers=admin_headers)).status_code == 200

            async def b_refuses():
                r = await node_b.get("/api/v1/probe/read", headers=admin_headers)
                return r.status_code == 403 and r.json()["detail"]["code"] == "PLUGIN_DISABLED"

            await _eventually(b_refuses, "the plugin disabled through the first kernel, refused by the second")

            assert (await client.post("/api/v1/plugins/LineProbe/enable", headers=admin_headers)).status_code == 200

            async def b_serves():
                return (await node_b.get("/api/v1/probe/read", headers=admin_headers)).status_code == 200

            await _eventually(b_serves, "the plugin enabled again")


@pytest.mark.sqlite_only
async def test_mes_line_apply_in_another_process_reaches_the_running_embedded_server(
    third_party, client, kernel, settings, tmp_path
):
    assert kernel.redis is None  # embedded: only the version check can carry it
    env = {
        **os.environ,
        "PYTHONPATH": str(third_party),
        "DATABASE_URL": settings.database_url,
        "FILES_DIR": str(tmp_path / "cli-files"),
        "LOG_LEVEL": "INFO",
        "LOG_JSON": "false",
    }
    env.pop("REDIS_URL", None)
    line_file = tmp_path / "line-a.toml"
    line_file.write_text(
        '[line]\ncode = "LINE-A"\n\n[plugins]\nenabled = ["sample_meter"]\n\n'
        "[breakers.sample_meter]\nfailure_threshold = 4\nrecovery_timeout = 12\n"
    )
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "mes_kernel.cli", "line", "apply", str(line_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "kernel_started" not in out.stderr + out.stdout  # a CLI command is not a server start

    async def followed():
        cfg = kernel.breakers.config_for("sample_meter", line="LINE-A")
        return (cfg.failure_threshold, cfg.recovery_timeout) == (4, 12.0)

    await _eventually(followed, "a line applied by `mes line apply` in another process")
    assert kernel.enabled_lines("sample_meter") == ["LINE-A"]
    assert kernel.enabled_lines("label_printer") == []


@pytest.mark.sqlite_only
async def test_mes_plugins_disable_in_another_process_reaches_the_running_embedded_server(
    third_party, client, kernel, settings, admin_headers, tmp_path
):
    env = {
        **os.environ,
        "PYTHONPATH": str(third_party),
        "DATABASE_URL": settings.database_url,
        "FILES_DIR": str(tmp_path / "cli-files"),
    }
    env.pop("REDIS_URL", None)

    def mes(*args):
        return subprocess.run(
            [sys.executable, "-m", "mes_kernel.cli", *args], env=env, capture_output=True, text=True, timeout=120
        )

    assert (await client.get("/api/v1/sample/reading", headers=admin_headers)).status_code == 200
    out = await asyncio.to_thread(mes, "plugins", "disable", "sample_meter", "--reason", "meter swapped")
    assert out.returncode == 0, out.stderr

    async def refused():
        r = await client.get("/api/v1/sample/reading", headers=admin_headers)
        return r.status_code == 403 and r.json()["detail"]["code"] == "PLUGIN_DISABLED"

    await _eventually(refused, "a plugin disabled by `mes plugins disable` in another process")
    listed = next(
        p
        for p in (await client.get("/api/v1/plugins", headers=admin_headers)).json()["plugins"]
        if p["name"] == "sample_meter"
    )
    assert (listed["state"], listed["reason"], listed["enabled"]) == ("disabled", "meter swapped", False)

    unknown = await asyncio.to_thread(mes, "plugins", "enable", "no_such_plugin")
    assert unknown.returncode == 1 and "no plugin named 'no_such_plugin'" in unknown.stderr


@pytest.mark.mes_plugins(LineProbe())
async def test_a_station_on_no_line_reaches_no_plugin_once_lines_exist(client, kernel, admin_headers):
    from mes_kernel.db.models import Line, Station, StationToken
    from mes_kernel.security import STATION_TOKEN_PREFIX, new_opaque_token, token_digest

    async with kernel.sessionmaker() as session:
        station = Station(code="ST-LOOSE", name="", heartbeat={})
        session.add(station)
        session.add(Line(code="LINE-X", name="", config={"plugins": ["LineProbe"], "breakers": {}}))
        await session.flush()
        token = new_opaque_token(STATION_TOKEN_PREFIX)
        session.add(StationToken(station_id=station.id, name="t", token_hash=token_digest(token)))
        await session.commit()
    await kernel.runtime.refresh(force=True)
    r = await client.get("/api/v1/probe/read", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403, r.text
    assert r.json()["detail"] | {"message": None} == {
        "code": "PLUGIN_NOT_ENABLED", "plugin": "LineProbe", "line": None, "message": None,
    }
    assert (await client.get("/api/v1/probe/read", headers=admin_headers)).status_code == 200


@pytest.mark.mes_plugins(LineProbe())
async def test_a_station_is_shown_only_the_permissions_of_plugins_its_line_enables(app, client, admin_headers):
    await _put_line(client, admin_headers, "LINE-A", plugins=["LineProbe"])
    await _put_line(client, admin_headers, "LINE-B", plugins=[])
    on_a = await _station(client, admin_headers, "ST-A", "LINE-A")
    on_b = await _station(client, admin_headers, "ST-B", "LINE-B")

    async def permissions(headers) -> set[str]:
        r = await client.get("/api/v1/auth/me", headers=headers)
        assert r.status_code == 200, r.text
        return set(r.json()["permissions"])

    assert "probe:read" in await permissions(on_a)
    on_b_sees = await permissions(on_b)
    assert "probe:read" not in on_b_sees and {"stations:heartbeat", "records:write"} <= on_b_sees
    # the bundled plugins are not enabled on LINE-B either: none of their permissions
    plugin_perms = {p.name for p, owner in app.state.permissions.all() if owner != "kernel"}
    assert plugin_perms and not (on_b_sees & plugin_perms)

    # disabled at run time: gone for the station of LINE-A too, back when enabled
    assert (await client.post("/api/v1/plugins/LineProbe/disable", headers=admin_headers)).status_code == 200
    assert "probe:read" not in await permissions(on_a)
    assert (await client.post("/api/v1/plugins/LineProbe/enable", headers=admin_headers)).status_code == 200
    assert "probe:read" in await permissions(on_a)
    # the line enables it later: the station of LINE-B holds it at once
    await _put_line(client, admin_headers, "LINE-B", plugins=["LineProbe"])
    assert "probe:read" in await permissions(on_b)


class LifecycleProbe(LineProbe):
    """A plugin with background work: started by ``mes_startup``, stopped by ``mes_shutdown``."""

    name = "LifecycleProbe"

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.ticks = 0
        self.task: asyncio.Task | None = None

    async def _tick(self) -> None:
        while True:
            self.ticks += 1
            await asyncio.sleep(0.01)

    @hookimpl
    def mes_register_routers(self, kernel):
        return []

    @hookimpl
    def mes_register_breakers(self):
        return []

    @hookimpl
    def mes_register_permissions(self):
        return []

    @hookimpl
    def mes_register_panels(self):
        return []

    @hookimpl
    async def mes_startup(self, kernel):
        self.events.append("startup")
        self.task = asyncio.create_task(self._tick())

    @hookimpl
    async def mes_shutdown(self, kernel):
        self.events.append("shutdown")
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None


@pytest.mark.mes_plugins(lifecycle := LifecycleProbe())
async def test_a_plugin_switched_off_stops_its_work_and_one_switched_on_starts_it_without_a_restart(
    app, client, admin_headers, settings
):
    # one instance serves each database's run of this test: look at what this run added
    assert lifecycle.events[-1] == "startup" and lifecycle.task is not None
    seen = len(lifecycle.events) - 1
    r = await client.post("/api/v1/plugins/LifecycleProbe/disable", headers=admin_headers)
    assert r.status_code == 200, r.text
    assert lifecycle.events[seen:] == ["startup", "shutdown"] and lifecycle.task is None
    stopped_at = lifecycle.ticks
    await asyncio.sleep(0.05)
    assert lifecycle.ticks == stopped_at  # its background work stopped

    # a kernel starting while the switch is off (stored in the database) never starts it ...
    from mes_kernel.app import create_app

    second = LifecycleProbe()
    again = create_app(settings, extra_plugins=[second])
    async with again.router.lifespan_context(again):
        assert second.events == [] and again.state.kernel.plugins.running == {
            n for n in again.state.kernel.plugins.loaded() if n != "LifecycleProbe"
        }
        # ... until it is switched on: then its start-up runs, in that kernel too
        r = await client.post("/api/v1/plugins/LifecycleProbe/enable", headers=admin_headers)
        assert r.status_code == 200
        await again.state.kernel.runtime.refresh()
        assert second.events == ["startup"] and second.task is not None
    assert second.events == ["startup", "shutdown"]  # stopped with its kernel
    assert lifecycle.events[seen:] == ["startup", "shutdown", "startup"]
