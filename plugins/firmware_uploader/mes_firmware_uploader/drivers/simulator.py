"""``simulator``: an in-process fake uploader with the same faults as the simulator service."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from typing import Any

import httpx

from mes_kernel.contracts import CheckResult, Reason, Status

from .. import __version__
from ..faults import FAULTS
from .base import (
    FirmwareImage,
    FirmwareUploaderDriver,
    FlashFailed,
    FlashOutcome,
    ProgressCallback,
    no_progress,
)

_FAKE_URL = "simulator://uploader"


class SimulatorDriver(FirmwareUploaderDriver):
    """Flashes nothing, but reads and hashes the image and reports progress like a real uploader.

    Faults (``fault=`` in the device config, or :meth:`inject` at runtime) raise what the HTTP
    driver would: ``http_5xx`` → ``httpx.HTTPStatusError``, ``timeout`` → ``httpx.ReadTimeout``
    after ``timeout`` seconds, ``corrupt`` → :class:`FlashFailed` (hash mismatch), ``slow`` → a flash
    taking ``slow_seconds``.

    :param flash_seconds: how long a normal flash takes.
    :param steps: how many progress reports a flash makes.
    :param timeout: how long the ``timeout`` fault waits before raising.
    :param fault: a fault switched on from the start.
    """

    name = "simulator"
    version = __version__

    def __init__(
        self,
        flash_seconds: float = 0.05,
        steps: int = 5,
        timeout: float = 30.0,
        slow_seconds: float = 5.0,
        fault: str | None = None,
    ):
        self.flash_seconds = float(flash_seconds)
        self.steps = max(1, int(steps))
        self.timeout = float(timeout)
        self.slow_seconds = float(slow_seconds)
        self.fault: str | None = None
        self.fault_remaining: int | None = None
        self.flashed: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self.inject(fault)

    def inject(self, fault: str | None, count: int | None = None) -> None:
        """Switch a fault on (for the next ``count`` flashes, or until cleared), or off with ``None``."""
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        self.fault, self.fault_remaining = fault, count

    def _take_fault(self) -> str | None:
        fault = self.fault
        if fault is not None and self.fault_remaining is not None:
            self.fault_remaining -= 1
            if self.fault_remaining <= 0:
                self.fault, self.fault_remaining = None, None
        return fault

    async def flash(
        self,
        *,
        serial_number: str,
        image: FirmwareImage,
        on_progress: ProgressCallback = no_progress,
    ) -> FlashOutcome:
        started = time.monotonic()
        fault = self._take_fault()
        request = httpx.Request("POST", f"{_FAKE_URL}/upload")
        if fault == "http_5xx":
            response = httpx.Response(503, request=request, json={"error": "UNAVAILABLE"})
            raise httpx.HTTPStatusError("simulated 503 from the uploader", request=request, response=response)
        if fault == "timeout":
            await asyncio.sleep(self.timeout)
            raise httpx.ReadTimeout("simulated uploader never answered", request=request)
        await on_progress(0, "uploading")
        received = await asyncio.to_thread(_sha256_of, image, fault == "corrupt")
        if received != image.sha256:
            raise FlashFailed(
                "the uploader received bytes that do not match the image's SHA-256 (corrupted transfer)",
                reason="TRANSFER_CORRUPTED",
                detail={"expected": image.sha256, "received": received},
            )
        seconds = self.slow_seconds if fault == "slow" else self.flash_seconds
        for step in range(1, self.steps + 1):
            await asyncio.sleep(seconds / self.steps)
            await on_progress(int(step * 100 / self.steps), "flashing" if step < self.steps else "verifying")
        flash_id = f"S{next(self._ids):06d}"
        self.flashed.append({"flash_id": flash_id, "serial_number": serial_number, "sha256": received})
        return FlashOutcome(flash_id, received, round(time.monotonic() - started, 3), {"size": image.size})

    async def health(self) -> CheckResult:
        if self.fault == "http_5xx":
            why = Reason(
                "UPLOADER_HTTP_ERROR", "simulated uploader answers HTTP 503", {"url": "simulator", "status": 503}
            )
            return CheckResult(Status.DOWN, why)
        if self.fault == "timeout":
            return CheckResult(Status.DOWN, Reason("UPLOADER_SILENT", "simulated uploader does not answer"))
        return CheckResult(Status.UP, None, {"flashed": len(self.flashed), "fault": self.fault})


def _sha256_of(image: FirmwareImage, corrupt: bool) -> str:
    digest = hashlib.sha256()
    with image.path.open("rb") as fh:
        first = True
        while chunk := fh.read(1024 * 1024):
            if corrupt and first:
                chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
            first = False
            digest.update(chunk)
    if corrupt and image.size == 0:
        digest.update(b"\x00")
    return digest.hexdigest()
