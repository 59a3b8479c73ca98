"""Health aggregation: kernel checks, every plugin's checks, breakers and stations, as one tree.

Checks run concurrently, each under its own timeout; one that raises or hangs is reported DOWN with
its reason and never holds the answer past its budget. Every reason the kernel gives carries a
stable ``reason_code`` and its ``reason_params`` beside the English ``reason`` (:class:`Reason`), so
the dashboard words it in its reader's language. Only a critical check DOWN makes the whole
answer DOWN (and the endpoint 503); an open breaker is DEGRADED. Results are cached briefly so a
storm of probes does not hammer the database.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from datetime import UTC, datetime
from typing import Any

import psutil
from sqlalchemy import select, text

from .contracts import CheckResult, HealthCheck, Reason, Status
from .db.models import Station
from .deadlines import answers_within, wait_at_most

DISK_WARN_PERCENT = 90.0
MEMORY_WARN_PERCENT = 90.0


def kernel_checks(kernel) -> list[HealthCheck]:
    settings = kernel.settings

    async def database() -> CheckResult:
        async with kernel.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return CheckResult(Status.UP, details={"dialect": kernel.engine.dialect.name})

    async def redis() -> CheckResult:
        # Redis only shares state between processes (L2 cache, rate-limit counts, breaker states);
        # every one of them falls back to its in-process copy, so an outage degrades, never stops.
        try:
            await wait_at_most(kernel.redis.ping(), max(settings.health_check_timeout - 0.25, 0.1))
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            return CheckResult(
                Status.DEGRADED,
                reason=Reason(
                    "REDIS_UNREACHABLE",
                    f"unreachable ({reason}); serving from the in-process cache, limits and breakers",
                    {"error": _error(exc)},
                ),
                details={"configured": True, "mode": "in-process fallback"},
            )
        return CheckResult(Status.UP, details={"configured": True, "mode": "shared"})

    async def disk() -> CheckResult:
        usage = shutil.disk_usage(kernel.files_dir)
        percent = round(100 * usage.used / usage.total, 1)
        status = Status.UP if percent < DISK_WARN_PERCENT else Status.DEGRADED
        return CheckResult(
            status,
            reason=None
            if status is Status.UP
            else Reason("DISK_NEARLY_FULL", f"disk {percent}% used", {"percent": percent}),
            details={"usage_percent": percent, "free_bytes": usage.free},
        )

    async def memory() -> CheckResult:
        percent = psutil.virtual_memory().percent
        status = Status.UP if percent < MEMORY_WARN_PERCENT else Status.DEGRADED
        return CheckResult(
            status,
            reason=None
            if status is Status.UP
            else Reason("MEMORY_NEARLY_FULL", f"memory {percent}% used", {"percent": percent}),
            details={"usage_percent": percent},
        )

    timeout = settings.health_check_timeout
    checks = [HealthCheck("database", database, critical=True, timeout=timeout)]
    if kernel.redis is not None:
        checks.append(HealthCheck("redis", redis, critical=False, timeout=timeout))
    return checks + [
        HealthCheck("disk", disk, timeout=timeout),
        HealthCheck("memory", memory, timeout=timeout),
    ]


NOT_CONFIGURED = "NOT_CONFIGURED"


def _error(exc: BaseException) -> str:
    """An exception as ``"<Class>: <message>"``: the dashboard words the kind of failure by its class."""
    return f"{type(exc).__name__}: {exc}".strip(": ") or type(exc).__name__


def _why(reason: Reason | None) -> dict[str, Any]:
    return reason.fields() if reason else {"reason": None, "reason_code": None, "reason_params": {}}


def _node(result: CheckResult, *, critical: bool) -> dict[str, Any]:
    return {"status": Status(result.status).value, "critical": critical, **result.why(), "details": result.details}


def redis_not_configured() -> dict[str, Any]:
    """The tree's entry for Redis in the embedded mode: neither UP nor critical, just absent."""
    return {
        "status": NOT_CONFIGURED,
        "critical": False,
        **Reason("REDIS_NOT_CONFIGURED", "no REDIS_URL: one process with its own cache, limits and breakers").fields(),
        "details": {"configured": False, "mode": "in-process"},
        "duration_ms": 0.0,
    }


async def run_check(check: HealthCheck) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        result = await wait_at_most(check.check(), check.timeout)  # a late check is left to unwind
        if not isinstance(result, CheckResult):
            kind = type(result).__name__
            result = CheckResult(
                Status.DOWN,
                Reason("CHECK_NOT_A_RESULT", f"check returned {kind}, not CheckResult", {"type": kind}),
            )
    except TimeoutError:
        result = CheckResult(Status.DOWN, _timed_out(check.timeout))
    except Exception as exc:
        result = CheckResult(
            Status.DOWN, Reason("CHECK_FAILED", f"{type(exc).__name__}: {exc}", {"error": _error(exc)})
        )
    out = {
        **_node(result, critical=check.critical),
        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
    }
    if result.components:
        out["checks"] = {name: _node(sub, critical=False) for name, sub in result.components.items()}
    return out


async def breaker_component(kernel) -> dict[str, Any]:
    snapshot = await kernel.breakers.snapshot()
    items = {}
    for name, state in snapshot.items():
        status = Status.UP if state["state"] == "closed" else Status.DEGRADED
        why = _why(_breaker_reason(state) if status is not Status.UP else None)
        items[name] = {"status": status.value, "critical": False, **why, "details": state}
    return items


def _breaker_reason(state: dict[str, Any]) -> Reason:
    failure = state["last_failure_reason"] or ""
    text = f"circuit {state['state']}: {failure}".strip(": ")
    if state["state"] == "half_open":
        return Reason("BREAKER_HALF_OPEN", text, {"error": failure})
    return Reason("BREAKER_OPEN", text, {"error": failure})


def _driver_problem(problem: dict[str, Any]) -> dict[str, Any]:
    """One driver a station's heartbeat says is missing or of the wrong version, as a coded reason."""
    device, driver, kind = problem.get("device"), problem.get("driver"), problem.get("problem")
    text = f"{device}: {driver} {kind}" + (
        f" (wanted {problem['wanted']}, installed {problem.get('installed')})" if problem.get("wanted") else ""
    )
    params = {
        "device": device,
        "driver": driver,
        "wanted": problem.get("wanted"),
        "installed": problem.get("installed"),
    }
    if kind == "missing":
        return Reason("STATION_DRIVER_MISSING", text, params).fields()
    if kind == "wrong_version":
        return Reason("STATION_DRIVER_WRONG_VERSION", text, params).fields()
    return Reason("STATION_DRIVER_PROBLEM", text, {**params, "problem": kind}).fields()


async def station_component(kernel) -> dict[str, Any]:
    silent_after = kernel.settings.station_silent_after_seconds
    async with kernel.sessionmaker() as session:
        stations = (await session.execute(select(Station))).scalars().all()
    now = datetime.now(UTC)
    items = {}
    for station in stations:
        beat = station.heartbeat or {}
        problems = beat.get("driver_problems") or []
        reason: Reason | None = None
        if station.last_heartbeat_at is None:
            status, age = Status.DEGRADED, None
            reason = Reason("STATION_NEVER_REPORTED", "never reported")
        else:
            age = (now - station.last_heartbeat_at).total_seconds()
            status = Status.UP if age <= silent_after else Status.DEGRADED
            if status is Status.DEGRADED:
                reason = Reason("STATION_SILENT", f"silent for {int(age)}s", {"seconds": int(age)})
        if problems and status is Status.UP:
            status = Status.DEGRADED
            each = [_driver_problem(p) for p in problems if isinstance(p, dict)]
            text = "drivers: " + "; ".join(p["reason"] for p in each)
            reason = Reason("STATION_DRIVER_PROBLEMS", text, {"problems": each})
        items[station.code] = {
            "status": status.value,
            "critical": False,
            **_why(reason),
            "details": {
                "heartbeat_age_seconds": age,
                "outbox_depth": beat.get("outbox_depth"),
                "oldest_queued_age_seconds": beat.get("oldest_queued_age_seconds"),
                "agent_version": beat.get("agent_version"),
                "config_version": beat.get("config_version"),
                "driver_problems": problems,
            },
        }
    return items


def _group_status(items: dict[str, Any]) -> Status:
    worst = Status.UP
    for item in items.values():
        if item["status"] == NOT_CONFIGURED:
            continue
        state = Status(item["status"])
        if state is Status.DOWN and not item.get("critical"):
            state = Status.DEGRADED  # a non-critical component DOWN degrades the whole, no more
        worst = Status.worst([worst, state])
    return worst


def _timed_out(seconds: float) -> Reason:
    return Reason("CHECK_TIMED_OUT", f"timed out after {seconds}s", {"seconds": seconds})


def _timed_out_node(seconds: float, *, critical: bool) -> dict[str, Any]:
    """The node of a check (or a group of them) still running when its time was up."""
    return {**_node(CheckResult(Status.DOWN, _timed_out(seconds)), critical=critical), "duration_ms": seconds * 1000}


class HealthAggregator:
    """Runs every check concurrently and caches the tree for ``cache_seconds``."""

    def __init__(self, kernel, plugin_checks: list[tuple[str, HealthCheck]], cache_seconds: float):
        self.kernel = kernel
        self.kernel_checks = kernel_checks(kernel)
        self.plugin_checks = plugin_checks
        self.cache_seconds = cache_seconds
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._inflight: asyncio.Future | None = None

    def invalidate(self) -> None:
        """Forget the cached tree (the configuration changed: other checks run now)."""
        self._cached = None

    async def run(self) -> dict[str, Any]:
        """The latest tree: cached for ``cache_seconds``; callers arriving while a round of checks
        is running share that round instead of starting (or queueing for) another."""
        if self._cached and time.monotonic() - self._cached[0] < self.cache_seconds:
            return self._cached[1]
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._run())
            self._inflight.add_done_callback(self._finished)
        return await asyncio.shield(self._inflight)

    def _finished(self, future: asyncio.Future) -> None:
        self._inflight = None
        if not future.cancelled() and future.exception() is None:
            self._cached = (time.monotonic(), future.result())

    def _serving(self, plugin: str) -> bool:
        manager, runtime = self.kernel.plugins, self.kernel.runtime
        if manager is not None and not manager.is_active(plugin):
            return False
        return not (runtime is not None and runtime.is_idle(plugin))

    async def _run(self) -> dict[str, Any]:
        started = time.perf_counter()
        serving = [(p, c) for p, c in self.plugin_checks if self._serving(p)]
        checks = self.kernel_checks + [c for _, c in serving]
        budget = max(c.timeout for c in checks) + 1.0
        late_group = {"error": _timed_out_node(budget, critical=False)}
        results = await answers_within(
            budget,
            [(run_check(c), _timed_out_node(c.timeout, critical=c.critical)) for c in checks]
            + [
                (self._safe(breaker_component(self.kernel)), late_group),
                (self._safe(station_component(self.kernel)), late_group),
            ],
        )
        n = len(self.kernel_checks)
        kernel_items = {c.name: r for c, r in zip(self.kernel_checks, results[:n], strict=True)}
        if self.kernel.redis is None:
            kernel_items = {"database": kernel_items.pop("database"), "redis": redis_not_configured(), **kernel_items}
        plugins: dict[str, dict[str, Any]] = {}
        for (plugin, check), result in zip(serving, results[n : n + len(serving)], strict=True):
            plugins.setdefault(plugin, {})[check.name] = result
        plugin_nodes = {
            p: {"status": _group_status(c).value, "critical": any(v["critical"] for v in c.values()),
                "state": "loaded", "checks": c}
            for p, c in plugins.items()
        }
        plugin_nodes.update(self._plugin_state_nodes(exclude=set(plugins)))
        breakers, stations = results[-2], results[-1]
        components = {
            "kernel": {"status": _group_status(kernel_items).value, "checks": kernel_items},
            "plugins": {"status": _group_status(plugin_nodes).value, "checks": dict(sorted(plugin_nodes.items()))},
            "breakers": {"status": _group_status(breakers).value, "checks": breakers},
            "stations": {"status": _group_status(stations).value, "checks": stations},
        }
        overall = Status.worst([Status(c["status"]) for c in components.values()])
        critical_down = [name for name, item in kernel_items.items() if item["critical"] and item["status"] == "DOWN"]
        critical_down += [
            f"{p}.{k}" for p, c in plugins.items() for k, v in c.items() if v["critical"] and v["status"] == "DOWN"
        ]
        if critical_down:
            overall = Status.DOWN
        return {
            "status": overall.value,
            "timestamp": datetime.now(UTC).isoformat(),
            "critical_down": critical_down,
            "components": components,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        }

    def _plugin_state_nodes(self, *, exclude: set[str]) -> dict[str, Any]:
        """One non-critical node per plugin whose checks did not run: failed and incompatible ones
        (DEGRADED, with the reason), disabled and idle ones (UP, with the reason), and loaded ones
        that declare no check (UP)."""
        manager, runtime = self.kernel.plugins, self.kernel.runtime
        nodes: dict[str, Any] = {}
        if manager is None:
            return nodes
        for name in manager.records:
            if name in exclude:
                continue
            state, reason = manager.state_of(name)
            record = manager.records[name]
            # the plugin's own code (devices.pluginReason.* in the web's catalogs), as /plugins gives it
            why = {"reason": reason, "reason_code": record.reason_code, "reason_params": record.reason_params}
            if state == "disabled" and record.state == "loaded":  # switched off: the administrator's words
                why.update(reason_code="SWITCHED_OFF", reason_params={})
            status = Status.DEGRADED if state in ("failed", "incompatible") else Status.UP
            if state == "loaded" and runtime is not None and runtime.is_idle(name):
                state, why = "idle", Reason("PLUGIN_IDLE", "enabled on no line").fields()
            nodes[name] = {"status": status.value, "critical": False, "state": state, **why, "checks": {}}
        return nodes

    @staticmethod
    async def _safe(coro) -> dict[str, Any]:
        try:
            return await coro
        except Exception as exc:
            failed = Reason("CHECK_FAILED", f"{type(exc).__name__}: {exc}", {"error": _error(exc)})
            return {"error": {"status": "DOWN", "critical": False, **failed.fields(), "details": {}}}


def redact_states_only(tree: dict[str, Any]) -> dict[str, Any]:
    """What an anonymous caller sees: states, no reasons or details."""
    hidden = ("reason", "reason_code", "reason_params", "details", "critical_down")

    def strip(node):
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k not in hidden}
        return node

    return strip(tree)
