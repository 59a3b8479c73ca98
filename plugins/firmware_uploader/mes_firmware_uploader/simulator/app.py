"""A firmware-uploader HTTP service for demos and tests: verifies SHA-256, reports progress, injects faults.

The protocol (what the ``http_uploader`` driver speaks):

``POST /upload``            multipart: ``serial``, ``sha256`` (hex), ``file`` (the image bytes).
                            202 ``{"flash_id", "status": "flashing", "size", "sha256"}`` when the bytes
                            hash to ``sha256``; 422 ``{"error": "HASH_MISMATCH", "expected", "received"}``
                            when they do not; 400 ``{"error": ...}`` for a malformed request.
``GET /flashes/{flash_id}`` ``{"flash_id", "serial", "status": "flashing|done|failed", "progress": 0-100,
                            "sha256", "error"}``.
``GET /flashes``            every flash this service has seen, newest last.
``GET /health``             200 ``{"status": "ready", ...}`` when the service can flash.

Faults, switched at runtime (``PUT /admin/faults {"fault": ..., "count": N, "seconds": S}``,
``DELETE /admin/faults`` clears; ``count`` limits the fault to the next N uploads):

``http_5xx``  uploads and health answer 503.
``timeout``   uploads and health never answer (until the fault is cleared or the server stops).
``corrupt``   a byte is flipped on receipt, so the hash check fails: 422 ``HASH_MISMATCH``.
``slow``      flashes take ``seconds`` (default 5) instead of the normal flash time.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .. import __version__
from ..faults import FAULTS

HANG_LIMIT_SECONDS = 600.0


@dataclass
class Flash:
    """One flash the service accepted; its progress follows the clock."""

    flash_id: str
    serial: str
    size: int
    sha256: str
    started_at: float
    seconds: float

    def view(self, now: float) -> dict[str, Any]:
        progress = 100 if self.seconds <= 0 else min(100, int((now - self.started_at) / self.seconds * 100))
        return {
            "flash_id": self.flash_id,
            "serial": self.serial,
            "status": "done" if progress >= 100 else "flashing",
            "progress": progress,
            "size": self.size,
            "sha256": self.sha256,
            "error": None,
        }


@dataclass
class UploaderState:
    """Everything the service remembers: flashes, the active fault, and how long a flash takes."""

    flash_seconds: float = 0.5
    fault: str | None = None
    fault_remaining: int | None = None
    slow_seconds: float = 5.0
    flashes: dict[str, Flash] = field(default_factory=dict)
    requests: int = 0
    release: asyncio.Event | None = None
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def set_fault(self, fault: str | None, count: int | None = None, seconds: float | None = None) -> None:
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        self.fault = fault
        self.fault_remaining = count
        if seconds is not None:
            self.slow_seconds = seconds
        if fault != "timeout" and self.release is not None:
            self.release.set()  # let requests held by an earlier "timeout" fault go

    def take_fault(self) -> str | None:
        """The fault that applies to this upload, counting it down when it was given a count."""
        fault = self.fault
        if fault is not None and self.fault_remaining is not None:
            self.fault_remaining -= 1
            if self.fault_remaining <= 0:
                self.fault, self.fault_remaining = None, None
        return fault

    def faults_view(self) -> dict[str, Any]:
        return {
            "fault": self.fault,
            "remaining": self.fault_remaining,
            "slow_seconds": self.slow_seconds,
            "known": list(FAULTS),
        }


def _error(status: int, error: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, **extra}, status_code=status)


async def _hang(state: UploaderState) -> JSONResponse:
    """Never answer (within reason): wait until the fault is cleared or the server stops."""
    if state.release is None or state.release.is_set():
        state.release = asyncio.Event()
    try:
        await asyncio.wait_for(state.release.wait(), HANG_LIMIT_SECONDS)
    except TimeoutError:
        pass
    return _error(504, "TIMEOUT", message="the simulated device never answered")


def create_app(state: UploaderState | None = None) -> Starlette:
    """The simulator's ASGI app over ``state`` (a fresh one when not given)."""
    state = state or UploaderState()

    async def health(_request: Request) -> JSONResponse:
        if state.fault == "http_5xx":
            return _error(503, "UNAVAILABLE", message="simulated 5xx fault")
        if state.fault == "timeout":
            return await _hang(state)
        busy = sum(1 for f in state.flashes.values() if f.view(time.monotonic())["status"] == "flashing")
        return JSONResponse(
            {
                "status": "ready",
                "service": "mes-firmware-uploader-simulator",
                "version": __version__,
                "flashes_in_progress": busy,
                "flashes_total": len(state.flashes),
                "fault": state.fault,
            }
        )

    async def upload(request: Request) -> JSONResponse:
        state.requests += 1
        fault = state.take_fault()
        if fault == "http_5xx":
            return _error(503, "UNAVAILABLE", message="simulated 5xx fault")
        if fault == "timeout":
            return await _hang(state)
        form = await request.form(max_part_size=64 * 1024 * 1024)
        try:
            serial = str(form.get("serial") or "").strip()
            expected = str(form.get("sha256") or "").strip().lower()
            upload_file = form.get("file")
            if not serial or not isinstance(upload_file, UploadFile):
                return _error(400, "BAD_REQUEST", message="fields 'serial' and 'file' are required")
            digest = hashlib.sha256()
            size = 0
            first = True
            while chunk := await upload_file.read(64 * 1024):
                if fault == "corrupt" and first:
                    chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                first = False
                digest.update(chunk)
                size += len(chunk)
        finally:
            await form.close()
        received = digest.hexdigest()
        if expected and received != expected:
            return _error(422, "HASH_MISMATCH", expected=expected, received=received, serial=serial)
        flash_id = f"F{next(state._ids):06d}"
        seconds = state.slow_seconds if fault == "slow" else state.flash_seconds
        flash = Flash(flash_id, serial, size, received, time.monotonic(), seconds)
        state.flashes[flash_id] = flash
        return JSONResponse(flash.view(time.monotonic()), status_code=202)

    async def flash_status(request: Request) -> JSONResponse:
        flash = state.flashes.get(request.path_params["flash_id"])
        if flash is None:
            return _error(404, "NOT_FOUND", message="no such flash")
        return JSONResponse(flash.view(time.monotonic()))

    async def flash_list(_request: Request) -> JSONResponse:
        now = time.monotonic()
        return JSONResponse({"flashes": [f.view(now) for f in state.flashes.values()]})

    async def faults(request: Request) -> JSONResponse:
        if request.method == "DELETE":
            state.set_fault(None)
        elif request.method == "PUT":
            try:
                body = await request.json()
                state.set_fault(body.get("fault"), body.get("count"), body.get("seconds"))
            except (ValueError, AttributeError) as exc:
                return _error(400, "BAD_REQUEST", message=str(exc))
        return JSONResponse(state.faults_view())

    app = Starlette(
        routes=[
            Route("/health", health),
            Route("/upload", upload, methods=["POST"]),
            Route("/flashes", flash_list),
            Route("/flashes/{flash_id}", flash_status),
            Route("/admin/faults", faults, methods=["GET", "PUT", "DELETE"]),
        ]
    )
    app.state.uploader = state
    return app
