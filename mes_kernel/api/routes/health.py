"""Health: the aggregated tree, liveness, readiness and circuit breakers."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from ... import __version__
from ...deadlines import wait_at_most
from ...health import redact_states_only
from ...metrics import observe_health
from ...startup import database_answers, database_wait
from ..deps import OptionalPrincipal

router = APIRouter(prefix="/health", tags=["health"])


def _now() -> str:
    return datetime.now(UTC).isoformat()


@router.get("", summary="Aggregated health: kernel, plugins, breakers, stations",
            description="200 when UP or DEGRADED, 503 when a critical component is DOWN. Anonymous callers see "
            "states only; authenticated users with `health:details` also see reasons and details.")
async def health(request: Request, principal: OptionalPrincipal):
    tree = await request.app.state.health.run()
    observe_health(tree)
    body = {**tree, "version": __version__}
    table = request.app.state.permissions
    if principal is None or not table.allows(principal.role, "health:details"):
        body = redact_states_only(body)
    return JSONResponse(status_code=503 if tree["status"] == "DOWN" else 200, content=body)


@router.get("/liveness", summary="The process answers (no dependency checked)")
async def liveness():
    return {"status": "alive", "timestamp": _now()}


@router.get("/readiness", summary="Database reachable, migrations at head (Redis is not needed)",
            description="503 with the reason while the database is unreachable or behind. Redis is left out on "
            "purpose: without it every process serves from its own cache, limits and breakers, and a load "
            "balancer must not take every node out at once because Redis went away.")
async def readiness(request: Request):
    kernel = request.app.state.kernel
    timeout = kernel.settings.health_check_timeout
    if kernel.state.get("database_waiting") and await database_answers(kernel, timeout=timeout) is None:
        # Back while the start-up waiter sleeps out its pause (up to 30 s): wake it, so readiness
        # follows the database within a probe or two rather than a whole pause.
        await database_wait(kernel).nudge(timeout=2 * timeout)
    if waiting := kernel.state.get("database_waiting"):
        return JSONResponse(status_code=503, content={"status": "not_ready", "timestamp": _now(),
                                                      "message": f"waiting for the database: {waiting}"})
    async def at_head() -> bool:
        from ...migrate import current_matches_head

        async with kernel.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            return await conn.run_sync(current_matches_head)

    try:
        if not await wait_at_most(at_head(), timeout):  # a connection slow to hand back does not hold the probe
            return JSONResponse(status_code=503, content={"status": "not_ready", "timestamp": _now(),
                                                          "message": "database schema is not at head; "
                                                          "run `mes db upgrade`"})
    except TimeoutError:
        return JSONResponse(status_code=503, content={"status": "not_ready", "timestamp": _now(),
                                                      "message": f"the database did not answer within {timeout:g}s"})
    except Exception as exc:
        return JSONResponse(status_code=503, content={"status": "not_ready", "timestamp": _now(),
                                                      "message": f"{type(exc).__name__}: {exc}"})
    return {"status": "ready", "timestamp": _now()}


@router.get("/circuit-breakers", summary="Every breaker: state, failure count, last failure, opens")
async def circuit_breakers(request: Request):
    return await request.app.state.kernel.breakers.snapshot()
