"""The RBAC matrix: every kernel route under /api/v1 x every role (and stations, and anonymous callers).

The table below is the specification, written by hand from the roles in DESIGN.md and issue 2;
``test_every_kernel_route_is_in_the_matrix`` fails when the app grows a route the table lacks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from mes_kernel.app import API_PREFIX, TAGS, create_app
from mes_kernel.settings import Settings

ADMIN, MANAGER, WORKER, VIEWER, STATION, ANONYMOUS = (
    "admin",
    "production_manager",
    "worker",
    "viewer",
    "station",
    "anonymous",
)
CALLERS = (ADMIN, MANAGER, WORKER, VIEWER, STATION, ANONYMOUS)
USERS = frozenset({ADMIN, MANAGER, WORKER, VIEWER})
SIGNED_IN = USERS | {STATION}
EVERYONE = SIGNED_IN | {ANONYMOUS}
LINE_READERS = SIGNED_IN
LOT_READERS = SIGNED_IN
LOT_WRITERS = frozenset({ADMIN, MANAGER})
RECORDERS = frozenset({ADMIN, MANAGER, WORKER, STATION})
ADMIN_ONLY = frozenset({ADMIN})


@dataclass
class Ctx:
    """What the requests of the matrix refer to: a LOT with units, station tokens to revoke …"""

    client: Any
    lot_number: str
    serial_number: str
    token_ids: dict[str, int] = field(default_factory=dict)
    attachment_id: int = 0


Builder = Callable[[Ctx, str], Awaitable[tuple[str, Any]]]


@dataclass(frozen=True)
class Rule:
    """Who gets a 2xx; everyone else signed in gets 403 and anonymous callers 401, unless ``special``."""

    allowed: frozenset[str]
    request: Builder
    special: dict[str, str] = field(default_factory=dict)


def req(path: str, body: Any = None) -> Builder:
    """A request whose path may use {lot}, {serial}, {tag} and whose JSON body may use {tag}."""

    async def build(ctx: Ctx, caller: str) -> tuple[str, Any]:
        fill = {"lot": ctx.lot_number, "serial": ctx.serial_number, "tag": caller.replace("_", "-")}
        return path.format(**fill), _fill(body, fill)

    return build


def _fill(body: Any, fill: dict[str, str]) -> Any:
    if isinstance(body, str):
        return body.format(**fill)
    if isinstance(body, dict):
        return {k: _fill(v, fill) for k, v in body.items()}
    if isinstance(body, list):
        return [_fill(v, fill) for v in body]
    return body


async def _refresh_body(ctx: Ctx, caller: str) -> tuple[str, Any]:
    r = await ctx.client.post(API_PREFIX + "/auth/login", json={"username": "admin", "password": "password-admin"})
    assert r.status_code == 200, r.text
    return "/auth/refresh", {"refresh_token": r.json()["refresh_token"]}


async def _revoke_token(ctx: Ctx, caller: str) -> tuple[str, Any]:
    return f"/stations/ST-01/tokens/{ctx.token_ids[caller]}", None


async def _attachment_content(ctx: Ctx, caller: str) -> tuple[str, Any]:
    return f"/completions/attachments/{ctx.attachment_id}/content", None


def _record(key: str) -> dict[str, Any]:
    return {
        "idempotency_key": key,
        "lot_number": "{lot}",
        "process_id": "ASSY-10",
        "worker_id": "W-1",
        "result": "pass",
    }


MATRIX: dict[tuple[str, str], Rule] = {
    # auth
    ("POST", "/auth/login"): Rule(EVERYONE, req("/auth/login", {"username": "admin", "password": "password-admin"})),
    ("POST", "/auth/refresh"): Rule(EVERYONE, _refresh_body),
    # A station has no refresh token to give back: it is refused as unauthenticated for this route.
    ("POST", "/auth/logout"): Rule(
        USERS, req("/auth/logout", {"refresh_token": "mrt_not-a-known-token-{tag}"}), special={STATION: "401"}
    ),
    ("GET", "/auth/me"): Rule(SIGNED_IN, req("/auth/me")),
    # every person sets their own language; a station has no settings of its own
    ("PATCH", "/auth/me"): Rule(USERS, req("/auth/me", {"language": "ko"})),
    # users
    ("GET", "/users"): Rule(ADMIN_ONLY, req("/users")),
    ("POST", "/users"): Rule(
        ADMIN_ONLY, req("/users", {"username": "new-{tag}", "password": "long-password-1", "role": "viewer"})
    ),
    ("PATCH", "/users/{username}"): Rule(ADMIN_ONLY, req("/users/worker", {"full_name": "Worker {tag}"})),
    ("POST", "/users/{username}/unlock"): Rule(ADMIN_ONLY, req("/users/worker/unlock")),
    # lots and units
    ("POST", "/lots"): Rule(LOT_WRITERS, req("/lots", {"lot_number": "LOT-RBAC-{tag}", "product": "PRD-1"})),
    ("GET", "/lots"): Rule(LOT_READERS, req("/lots")),
    ("GET", "/lots/{lot_number}"): Rule(LOT_READERS, req("/lots/{lot}")),
    ("PATCH", "/lots/{lot_number}"): Rule(LOT_WRITERS, req("/lots/{lot}", {"note": "by {tag}"})),
    ("POST", "/lots/{lot_number}/units"): Rule(
        LOT_WRITERS, req("/lots/{lot}/units", {"serial_numbers": ["{lot}-{tag}"]})
    ),
    ("GET", "/lots/{lot_number}/units"): Rule(LOT_READERS, req("/lots/{lot}/units")),
    ("GET", "/lots/{lot_number}/history"): Rule(LOT_READERS, req("/lots/{lot}/history")),
    ("GET", "/units/{serial_number}"): Rule(LOT_READERS, req("/units/{serial}")),
    ("GET", "/units/{serial_number}/history"): Rule(LOT_READERS, req("/units/{serial}/history")),
    # routing steps and records
    ("GET", "/processes"): Rule(LOT_READERS, req("/processes")),
    ("POST", "/processes"): Rule(LOT_WRITERS, req("/processes", {"id": "P-{tag}", "name": "step", "sequence": 5})),
    ("PATCH", "/processes/{process_id}"): Rule(LOT_WRITERS, req("/processes/ASSY-10", {"ideal_cycle_seconds": 30})),
    ("GET", "/processes/{process_id}/defect-codes"): Rule(LOT_READERS, req("/processes/ASSY-10/defect-codes")),
    ("PUT", "/processes/{process_id}/defect-codes"): Rule(
        LOT_WRITERS, req("/processes/ASSY-10/defect-codes", {"defect_codes": [{"code": "D-{tag}"}]})
    ),
    ("POST", "/process-records"): Rule(RECORDERS, req("/process-records", _record("rbac-one-{tag}"))),
    ("POST", "/process-records/batch"): Rule(
        RECORDERS, req("/process-records/batch", {"records": [_record("rbac-batch-{tag}")]})
    ),
    # stations: managed by admins, seen by managers and viewers; only stations report
    ("GET", "/stations"): Rule(frozenset({ADMIN, MANAGER, VIEWER}), req("/stations")),
    ("POST", "/stations"): Rule(ADMIN_ONLY, req("/stations", {"code": "ST-{tag}", "line": "LINE-A"})),
    ("POST", "/stations/{code}/tokens"): Rule(ADMIN_ONLY, req("/stations/ST-01/tokens", {"name": "{tag}"})),
    ("GET", "/stations/{code}/tokens"): Rule(ADMIN_ONLY, req("/stations/ST-01/tokens")),
    ("DELETE", "/stations/{code}/tokens/{token_id}"): Rule(ADMIN_ONLY, _revoke_token),
    # moving a station between lines is line configuration (lines:manage); onto its own line: no change
    ("PUT", "/stations/{code}/line"): Rule(ADMIN_ONLY, req("/stations/ST-01/line", {"line": "LINE-A"})),
    # An admin holds every permission but is no station: heartbeats and events are refused.
    ("POST", "/stations/heartbeat"): Rule(frozenset({STATION}), req("/stations/heartbeat", {"agent_version": "1.0"})),
    ("GET", "/stations/me/config"): Rule(frozenset({STATION}), req("/stations/me/config")),
    ("GET", "/stations/me/cache"): Rule(frozenset({STATION}), req("/stations/me/cache")),
    # completion files: the schema is public (equipment vendors read it); attachments go with records
    ("GET", "/completions/schema"): Rule(EVERYONE, req("/completions/schema")),
    ("PUT", "/completions/attachments"): Rule(
        RECORDERS, req("/completions/attachments?record_key=rbac-{tag}&name=empty.bin")
    ),
    ("GET", "/completions/attachments"): Rule(LOT_READERS, req("/completions/attachments?record_key=rbac-x")),
    ("GET", "/completions/attachments/{attachment_id}/content"): Rule(LOT_READERS, _attachment_content),
    ("POST", "/stations/events"): Rule(
        frozenset({STATION}),
        req("/stations/events", {"idempotency_key": "rbac-event-{tag}", "type": "scan", "payload": {"code": "X"}}),
    ),
    # lines and devices
    ("GET", "/lines"): Rule(LINE_READERS, req("/lines")),
    ("GET", "/lines/{code}"): Rule(LINE_READERS, req("/lines/LINE-A")),
    ("PUT", "/lines/{code}"): Rule(ADMIN_ONLY, req("/lines/LINE-{tag}", {"name": "Line {tag}"})),
    ("POST", "/lines/validate"): Rule(ADMIN_ONLY, req("/lines/validate", {"code": "LINE-V", "name": "v"})),
    ("GET", "/devices"): Rule(LINE_READERS, req("/devices")),
    # audit trail: admins only
    ("GET", "/audit"): Rule(ADMIN_ONLY, req("/audit")),
    ("GET", "/audit/verify"): Rule(ADMIN_ONLY, req("/audit/verify")),
    # health: public (probes and load balancers carry no token)
    ("GET", "/health"): Rule(EVERYONE, req("/health")),
    ("GET", "/health/liveness"): Rule(EVERYONE, req("/health/liveness")),
    ("GET", "/health/readiness"): Rule(EVERYONE, req("/health/readiness")),
    ("GET", "/health/circuit-breakers"): Rule(EVERYONE, req("/health/circuit-breakers")),
    # plugins and dashboard panels
    ("GET", "/plugins"): Rule(frozenset({ADMIN, MANAGER, VIEWER}), req("/plugins")),
    # run-time plugin switches: admins only
    ("POST", "/plugins/{name}/disable"): Rule(ADMIN_ONLY, req("/plugins/Switchable/disable", {"reason": "{tag}"})),
    ("POST", "/plugins/{name}/enable"): Rule(ADMIN_ONLY, req("/plugins/Switchable/enable")),
    ("GET", "/dashboard/panels"): Rule(SIGNED_IN, req("/dashboard/panels")),
}


def expected(rule: Rule, caller: str) -> str:
    if caller in rule.special:
        return rule.special[caller]
    if caller in rule.allowed:
        return "2xx"
    return "401" if caller == ANONYMOUS else "403"


def status_class(status: int) -> str:
    if 200 <= status < 300:
        return "2xx"
    if status in (401, 403):
        return str(status)
    return "4xx" if 400 <= status < 500 else str(status)


def kernel_routes(app) -> set[tuple[str, str]]:
    """(method, path below /api/v1) of every kernel route, from the OpenAPI document."""
    kernel_tags = {t["name"] for t in TAGS}
    found = set()
    for path, operations in app.openapi()["paths"].items():
        if not path.startswith(API_PREFIX + "/"):
            continue
        for method, operation in operations.items():
            if kernel_tags & set(operation.get("tags", [])):
                found.add((method.upper(), path[len(API_PREFIX) :]))
    return found


class Switchable:
    """A plugin with no routes, for the run-time switch routes to act on."""

    MES_KERNEL_API = ">=1.0"


@pytest.fixture
def app(settings):
    """The kernel alone: plugin routes are not part of this matrix."""
    return create_app(settings, load_entry_points=False, extra_plugins=[Switchable()])


def test_every_kernel_route_is_in_the_matrix(tmp_path):
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/unused.db", files_dir=str(tmp_path / "files"), _env_file=None
    )
    routes = kernel_routes(create_app(settings, load_entry_points=False))
    assert len(routes) >= 30
    missing = sorted(routes - set(MATRIX))
    stale = sorted(set(MATRIX) - routes)
    assert not missing, f"kernel routes without an RBAC rule: {missing}"
    assert not stale, f"RBAC rules for routes the kernel does not have: {stale}"


async def test_rbac_matrix(
    client, app, kernel, make_lot, admin_headers, manager_headers, worker_headers, viewer_headers, station_headers
):
    assert kernel_routes(app) == set(MATRIX)
    headers = {
        ADMIN: admin_headers,
        MANAGER: manager_headers,
        WORKER: worker_headers,
        VIEWER: viewer_headers,
        STATION: station_headers,
        ANONYMOUS: {},
    }
    lot = await make_lot("LOT-RBAC", units=1)
    ctx = Ctx(client=client, lot_number=lot["lot_number"], serial_number=lot["serial_numbers"][0])
    for caller in CALLERS:
        r = await client.post(
            f"{API_PREFIX}/stations/ST-01/tokens", json={"name": f"spare-{caller}"}, headers=admin_headers
        )
        assert r.status_code == 201, r.text
        ctx.token_ids[caller] = r.json()["id"]

    r = await client.put(
        f"{API_PREFIX}/completions/attachments",
        params={"record_key": "rbac-x", "name": "a.bin"},
        content=b"abc",
        headers={**station_headers, "Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 201, r.text
    ctx.attachment_id = r.json()["id"]

    mismatches = []
    for (method, route), rule in MATRIX.items():
        for caller in CALLERS:
            path, body = await rule.request(ctx, caller)
            r = await client.request(method, API_PREFIX + path, json=body, headers=headers[caller])
            got, want = status_class(r.status_code), expected(rule, caller)
            if got != want:
                mismatches.append(f"{method} {route} as {caller}: expected {want}, got {r.status_code} {r.text[:160]}")
            elif got in ("401", "403"):
                assert r.json()["detail"]["code"], r.text
    assert not mismatches, "\n".join(mismatches)

    # Nothing a refused caller sent was stored.
    listed = (await client.get(f"{API_PREFIX}/lots?q=LOT-RBAC-", headers=admin_headers)).json()
    assert sorted(item["lot_number"] for item in listed["items"]) == ["LOT-RBAC-admin", "LOT-RBAC-production-manager"]
