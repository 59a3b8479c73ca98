"""A small real HTTP server implementing the kernel's station contract, for tests and benchmarks.

It deduplicates by idempotency key exactly as the kernel promises (same body → 200 with the
original, different body → 409 ``IDEMPOTENCY_CONFLICT``), so station tests do not depend on the
kernel's timing. Run it in a thread with :class:`ServerThread` (uvicorn on 127.0.0.1, port 0).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

TOKEN = "mst_test_station_token"


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"detail": {"code": code, "message": message}}, status_code=status)


def _hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass
class ContractState:
    """Everything the server holds; tests read and steer it directly."""

    token: str = TOKEN
    lots: dict[str, str] | None = None  # lot_number → status; None accepts every LOT
    users: dict[str, str] = field(default_factory=lambda: {"alice": "secret"})
    templates: list[dict[str, Any]] = field(default_factory=list)
    clock_skew: float = 0.0  # seconds added to the server_time it reports
    fail_with: int | None = None  # answer every contract call with this status
    delay: float = 0.0  # seconds each record request waits before answering
    hold_after: int | None = None  # once this many records are stored, hold answers ...
    hold_seconds: float = 0.0  # ... for this long (to kill a client mid-send)
    batch_route: bool = True  # False: answer 404 on the batch route, like a server without it
    #: the answer of ``GET /stations/me/cache`` (the kernel's shape); None answers 404, as before the route
    station_cache: dict[str, Any] | None = None
    firmware_images: list[dict[str, Any]] = field(default_factory=list)  # ``GET /firmware/images`` items
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    record_hashes: dict[str, str] = field(default_factory=dict)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    heartbeats: list[dict[str, Any]] = field(default_factory=list)
    record_posts: int = 0  # every record seen, duplicates included
    duplicates: int = 0
    batch_requests: int = 0
    flash_jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    revoked_access: set[str] = field(default_factory=set)  # worker access tokens answered with 401
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # refresh token → username
    user_requests: list[str] = field(default_factory=list)  # the bearer token of each worker-side read
    lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def store_record(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Validate and store one record: ``(http status, answer)`` as the kernel would."""
        key = body.get("idempotency_key")
        problems = [f for f in ("idempotency_key", "lot_number", "process_id", "worker_id") if not body.get(f)]
        if body.get("result") not in ("pass", "fail"):
            problems.append("result")
        if problems:
            return 422, {"code": "VALIDATION_ERROR", "message": "invalid field(s): " + ", ".join(problems)}
        # as the kernel: the outbox sequence number says where it was queued, not what it is
        digest = _hash({k: v for k, v in body.items() if k != "station_seq"})
        with self.lock:
            self.record_posts += 1
            if key in self.records:
                if self.record_hashes[key] != digest:
                    return 409, {
                        "code": "IDEMPOTENCY_CONFLICT",
                        "message": f"key {key} used with another body",
                    }
                self.duplicates += 1
                return 200, self.records[key]
            if self.lots is not None:
                status = self.lots.get(body["lot_number"])
                if status is None:
                    return 404, {"code": "NOT_FOUND", "message": f"no LOT {body['lot_number']}"}
                if status == "closed":
                    return 409, {"code": "LOT_CLOSED", "message": f"LOT {body['lot_number']} is closed"}
            record = {**body, "id": next(self._ids), "created_at": datetime.now(UTC).isoformat()}
            self.records[key] = record
            self.record_hashes[key] = digest
        return 201, record

    async def maybe_hold(self) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.hold_after is not None and len(self.records) >= self.hold_after and self.hold_seconds:
            await asyncio.sleep(self.hold_seconds)


def create_contract_app(state: ContractState) -> Starlette:
    """The Starlette app; every route is under ``/api/v1`` like the kernel's."""

    def authorised(request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {state.token}"

    def gate(request: Request) -> JSONResponse | None:
        if state.fail_with:
            return _error(state.fail_with, "SERVICE_UNAVAILABLE", "the test server is failing on purpose")
        if not authorised(request):
            return _error(401, "UNAUTHORIZED", "bad station token")
        return None

    async def process_record(request: Request) -> JSONResponse:
        if (refused := gate(request)) is not None:
            return refused
        status, answer = state.store_record(await request.json())
        await state.maybe_hold()
        if status >= 400:
            return JSONResponse({"detail": answer}, status_code=status)
        return JSONResponse(answer, status_code=status)

    async def process_record_batch(request: Request) -> JSONResponse:
        if (refused := gate(request)) is not None:
            return refused
        if not state.batch_route:
            return _error(404, "NOT_FOUND", "Not Found")
        records = (await request.json()).get("records")
        if not isinstance(records, list) or len(records) > 500:
            return _error(422, "VALIDATION_ERROR", "records must be a list of at most 500")
        state.batch_requests += 1
        results = []
        for body in records:
            status, answer = state.store_record(body)
            item: dict[str, Any] = {"idempotency_key": body.get("idempotency_key")}
            if status == 201:
                item.update(status="created", record=answer)
            elif status == 200:
                item.update(status="duplicate", record=answer)
            else:
                item.update(status="error", error=answer)
            results.append(item)
        await state.maybe_hold()
        return JSONResponse({"results": results})

    async def station_event(request: Request) -> JSONResponse:
        if (refused := gate(request)) is not None:
            return refused
        body = await request.json()
        key = body.get("idempotency_key")
        if not key or not body.get("type"):
            return _error(422, "VALIDATION_ERROR", "idempotency_key and type are required")
        with state.lock:
            if key in state.events:
                if _hash(state.events[key]["body"]) != _hash(body):
                    return _error(409, "IDEMPOTENCY_CONFLICT", f"key {key} used with another body")
                return JSONResponse(state.events[key], status_code=200)
            state.events[key] = {"id": next(state._ids), "body": body}
        return JSONResponse(state.events[key], status_code=201)

    async def heartbeat(request: Request) -> JSONResponse:
        if (refused := gate(request)) is not None:
            return refused
        state.heartbeats.append(await request.json())
        now = datetime.now(UTC) + timedelta(seconds=state.clock_skew)
        return JSONResponse({"server_time": now.isoformat()})

    async def login(request: Request) -> JSONResponse:
        body = await request.json()
        if state.users.get(body.get("username")) != body.get("password"):
            return _error(401, "INVALID_CREDENTIALS", "wrong username or password")
        return JSONResponse(_token_pair(body["username"]))

    def _token_pair(username: str) -> dict[str, Any]:
        n = next(state._ids)
        refresh = f"refresh-{username}-{n}"
        state.refresh_tokens[refresh] = username
        return {"access_token": f"user-{username}-{n}", "refresh_token": refresh, "token_type": "bearer"}

    async def refresh(request: Request) -> JSONResponse:
        username = state.refresh_tokens.pop((await request.json()).get("refresh_token", ""), None)
        if username is None:
            return _error(401, "INVALID_REFRESH_TOKEN", "refresh token unknown or used")
        return JSONResponse(_token_pair(username))

    def user_or_station(request: Request) -> JSONResponse | None:
        if state.fail_with:
            return _error(state.fail_with, "SERVICE_UNAVAILABLE", "failing on purpose")
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ")
        state.user_requests.append(token)
        if token != state.token and (not token.startswith("user-") or token in state.revoked_access):
            return _error(401, "UNAUTHORIZED", "not authenticated (or token expired)")
        return None

    async def lookup(request: Request) -> JSONResponse:
        if (refused := user_or_station(request)) is not None:
            return refused
        code = (await request.json()).get("code", "")
        if code.startswith("SN"):
            return JSONResponse(
                {
                    "kind": "unit",
                    "code": code,
                    "unit": {"serial_number": code},
                    "lot": {"lot_number": "LOT-1"},
                    "next_process": {"process_id": "ASSY-10"},
                }
            )
        if state.lots is None or code in state.lots:
            return JSONResponse({"kind": "lot", "code": code, "lot": {"lot_number": code}, "next_process": None})
        return _error(404, "NOT_FOUND", f"unknown code {code}")

    def station_only(request: Request) -> JSONResponse | None:
        """The agent's background syncs go with the station token (not counted in ``user_requests``)."""
        if request.headers.get("authorization", "") != f"Bearer {state.token}":
            return _error(401, "UNAUTHORIZED", "station token required")
        return None

    async def station_cache(request: Request) -> JSONResponse:
        if (refused := station_only(request)) is not None:
            return refused
        if state.station_cache is None:
            return _error(404, "NOT_FOUND", "no station cache configured")
        return JSONResponse(state.station_cache)

    async def firmware_images(request: Request) -> JSONResponse:
        if station_only(request) is not None:  # a worker's read (the window asks in the worker's name)
            if (refused := user_or_station(request)) is not None:
                return refused
        product = request.query_params.get("product")
        return JSONResponse({"items": [i for i in state.firmware_images if not product or i.get("product") == product]})

    async def templates(request: Request) -> JSONResponse:
        if (refused := user_or_station(request)) is not None:
            return refused
        return JSONResponse(state.templates)

    async def firmware_upload(request: Request) -> JSONResponse:
        if (refused := user_or_station(request)) is not None:
            return refused
        body = await request.json()
        job_id = str(next(state._ids))
        state.flash_jobs[job_id] = {
            "id": job_id,
            "status": "queued",
            "progress": 0,
            "started": time.monotonic(),
            **body,
        }
        return JSONResponse({"job_id": job_id, "status": "queued"}, status_code=202)

    async def firmware_job(request: Request) -> JSONResponse:
        if (refused := user_or_station(request)) is not None:
            return refused
        job = state.flash_jobs.get(request.path_params["job_id"])
        if job is None:
            return _error(404, "NOT_FOUND", "no such job")
        elapsed = time.monotonic() - job["started"]
        progress = min(100, int(elapsed * 200))
        return JSONResponse(
            {
                **{k: v for k, v in job.items() if k != "started"},
                "progress": progress,
                "status": "done" if progress >= 100 else "running",
            }
        )

    async def liveness(request: Request) -> JSONResponse:
        return JSONResponse({"status": "UP"})

    return Starlette(
        routes=[
            Route("/api/v1/process-records", process_record, methods=["POST"]),
            Route("/api/v1/process-records/batch", process_record_batch, methods=["POST"]),
            Route("/api/v1/stations/events", station_event, methods=["POST"]),
            Route("/api/v1/stations/heartbeat", heartbeat, methods=["POST"]),
            Route("/api/v1/auth/login", login, methods=["POST"]),
            Route("/api/v1/auth/refresh", refresh, methods=["POST"]),
            Route("/api/v1/scans/lookup", lookup, methods=["POST"]),
            Route("/api/v1/labels/templates", templates, methods=["GET"]),
            Route("/api/v1/stations/me/cache", station_cache, methods=["GET"]),
            Route("/api/v1/firmware/images", firmware_images, methods=["GET"]),
            Route("/api/v1/firmware/upload", firmware_upload, methods=["POST"]),
            Route("/api/v1/firmware/jobs/{job_id}", firmware_job, methods=["GET"]),
            Route("/api/v1/health/liveness", liveness, methods=["GET"]),
        ]
    )


class ServerThread:
    """Serve an ASGI app with uvicorn in a daemon thread on 127.0.0.1 (port 0 = pick one)."""

    def __init__(self, app: Any, port: int = 0):
        self.app = app
        self.requested_port = port
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> ServerThread:
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.requested_port,
            log_level="warning",
            lifespan="auto",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="contract-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        self.requested_port = self.port  # a restart comes back on the same port
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is None:
            return
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._server = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    """``python -m mes_station.testing.contract_server PORT`` — serve the contract in the foreground."""
    import sys

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8765
    uvicorn.run(create_contract_app(ContractState()), host="127.0.0.1", port=port, log_level="info")


if __name__ == "__main__":
    main()
