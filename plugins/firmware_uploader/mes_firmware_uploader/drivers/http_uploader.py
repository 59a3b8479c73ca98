"""``http_uploader``: the spec's uploader service over HTTP (``POST {base}/upload``), then polling."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from mes_kernel.contracts import CheckResult, Reason, Status

from .. import __version__
from .base import (
    FirmwareImage,
    FirmwareUploaderDriver,
    FlashFailed,
    FlashOutcome,
    ProgressCallback,
    no_progress,
)


class HttpUploaderDriver(FirmwareUploaderDriver):
    """Uploads the image bytes with their SHA-256; the service verifies them and flashes; we poll.

    Protocol (implemented by :mod:`mes_firmware_uploader.simulator.app`):
    ``POST {base}/upload`` (multipart ``serial``, ``sha256``, ``file``) → 202 ``{"flash_id", ...}``
    or 422 ``{"error": "HASH_MISMATCH"}``; then ``GET {base}/flashes/{flash_id}`` until ``status`` is
    ``done`` or ``failed``. ``GET {base}/health`` answers 200 when the service is ready.

    :param base_url: the service's root, e.g. ``http://10.0.3.7:8081``.
    :param timeout: seconds for each HTTP request (connect, read, write) — the spec's 30 s.
    :param poll_interval: seconds between progress polls.
    :param flash_timeout: longest a flash may take once accepted before it is reported failed.
    :param api_key: sent as ``Authorization: Bearer ...`` when set; never shown in diagnostics.
    """

    name = "http_uploader"
    version = __version__

    def __init__(
        self,
        base_url: str,
        timeout: float = 30.0,
        poll_interval: float = 0.25,
        flash_timeout: float = 600.0,
        api_key: str | None = None,
    ):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self.poll_interval = float(poll_interval)
        self.flash_timeout = float(flash_timeout)
        headers = {"User-Agent": f"mes-firmware-uploader/{__version__}"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout, headers=headers)

    async def flash(
        self,
        *,
        serial_number: str,
        image: FirmwareImage,
        on_progress: ProgressCallback = no_progress,
    ) -> FlashOutcome:
        started = time.monotonic()
        await on_progress(0, "uploading")
        with image.path.open("rb") as fh:
            response = await self._client.post(
                "/upload",
                data={"serial": serial_number, "sha256": image.sha256},
                files={"file": (image.name or image.path.name, fh, "application/octet-stream")},
            )
        if response.status_code == 422 and _error_of(response) == "HASH_MISMATCH":
            body = response.json()
            raise FlashFailed(
                "the uploader received bytes that do not match the image's SHA-256 (corrupted transfer)",
                reason="TRANSFER_CORRUPTED",
                detail={"expected": body.get("expected"), "received": body.get("received")},
            )
        response.raise_for_status()
        status = response.json()
        flash_id = str(status["flash_id"])
        last_progress = -1
        deadline = started + self.flash_timeout
        while True:
            progress = int(status.get("progress") or 0)
            if progress != last_progress:
                last_progress = progress
                await on_progress(progress, "flashing" if progress < 100 else "verifying")
            if status.get("status") == "done":
                break
            if status.get("status") == "failed":
                raise FlashFailed(
                    f"the uploader reported the flash failed: {status.get('error') or 'no reason given'}",
                    reason="DEVICE_ERROR",
                    detail={"flash_id": flash_id, "error": status.get("error")},
                )
            if time.monotonic() > deadline:
                raise FlashFailed(
                    f"flash {flash_id} still at {progress}% after {self.flash_timeout:g} s",
                    reason="FLASH_TIMEOUT",
                    detail={"flash_id": flash_id, "progress": progress},
                )
            await asyncio.sleep(self.poll_interval)
            response = await self._client.get(f"/flashes/{flash_id}")
            response.raise_for_status()
            status = response.json()
        reported = str(status.get("sha256") or "")
        if reported and reported != image.sha256:
            raise FlashFailed(
                "the device reports a different SHA-256 than the image's",
                reason="TRANSFER_CORRUPTED",
                detail={"flash_id": flash_id, "expected": image.sha256, "received": reported},
            )
        return FlashOutcome(
            flash_id=flash_id,
            sha256=reported or image.sha256,
            duration_seconds=round(time.monotonic() - started, 3),
            detail={"size": status.get("size")},
        )

    async def health(self) -> CheckResult:
        try:
            response = await self._client.get("/health", timeout=min(self.timeout, 5.0))
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
            why = Reason(
                "UPLOADER_UNREACHABLE", f"{self.base_url} unreachable: {error}", {"url": self.base_url, "error": error}
            )
            return CheckResult(Status.DOWN, why)
        if response.status_code != 200:
            why = Reason(
                "UPLOADER_HTTP_ERROR",
                f"{self.base_url}/health answered HTTP {response.status_code}",
                {"url": self.base_url, "status": response.status_code},
            )
            return CheckResult(Status.DOWN, why)
        body: dict[str, Any] = response.json()
        return CheckResult(
            Status.UP,
            None,
            {k: body.get(k) for k in ("status", "version", "flashes_in_progress") if k in body},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "base_url": self.base_url, "timeout": self.timeout}


def _error_of(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None
