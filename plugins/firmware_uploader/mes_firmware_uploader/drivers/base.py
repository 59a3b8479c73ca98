"""The one abstract base class every firmware-uploader driver implements, and its data types."""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mes_kernel.contracts import CheckResult

#: ``await on_progress(percent, stage)`` — called by a driver as the device reports progress.
ProgressCallback = Callable[[int, str], Awaitable[None]]


@dataclass(frozen=True)
class FirmwareImage:
    """A firmware image as a driver sees it: the file on disk and what it must hash to."""

    path: Path
    sha256: str
    size: int
    product: str
    version: str
    name: str = ""


@dataclass
class FlashOutcome:
    """What the device reported after a successful flash."""

    flash_id: str
    sha256: str
    """The hash the device computed over the bytes it received (equal to the image's)."""
    duration_seconds: float
    detail: dict[str, Any] = field(default_factory=dict)


class FlashFailed(Exception):
    """The uploader answered properly but the flash itself failed (a device-side failure).

    Not an HTTP error, so it never counts toward the uploader's circuit breaker: the service is
    reachable and working, the unit or the transfer is what failed.
    """

    def __init__(self, message: str, *, reason: str = "DEVICE_ERROR", detail: dict[str, Any] | None = None):
        super().__init__(message)
        self.reason = reason
        self.detail = detail or {}


async def no_progress(_percent: int, _stage: str) -> None:
    return None


class FirmwareUploaderDriver(abc.ABC):
    """A way to flash firmware into a unit. One instance per configured device.

    Drivers are registered in the ``mes.drivers.firmware_uploader`` entry-point namespace and built
    with the device's ``config`` as keyword arguments. Network failures must surface as
    ``httpx.HTTPError`` (they count toward the circuit breaker); failures the device reports
    properly surface as :class:`FlashFailed` (they do not).
    """

    #: short user-facing driver name, as in the device configuration (``http_uploader``)
    name: ClassVar[str] = ""
    #: driver version, recorded with every flash for traceability
    version: ClassVar[str] = ""

    @abc.abstractmethod
    async def flash(
        self,
        *,
        serial_number: str,
        image: FirmwareImage,
        on_progress: ProgressCallback = no_progress,
    ) -> FlashOutcome:
        """Write ``image`` into the unit ``serial_number`` and wait until the device is done.

        :param serial_number: the unit being flashed.
        :param image: the image file and the SHA-256 the device must verify the received bytes against.
        :param on_progress: awaited with ``(percent 0-100, stage)`` whenever the device reports progress.
        :return: the device's report (flash id, hash it computed, duration).
        :raises httpx.HTTPError: the uploader could not be reached, timed out or answered an HTTP error.
        :raises FlashFailed: the uploader reported a failed flash (hash mismatch, device error).
        """

    @abc.abstractmethod
    async def health(self) -> CheckResult:
        """Ask the uploader whether it can flash now.

        :return: UP when reachable and ready, DOWN with a reason otherwise. Must not raise for an
            unreachable device (the reason says why), and must finish within the driver's timeout.
        """

    async def aclose(self) -> None:
        """Release the driver's connections; called when the device is reconfigured or the kernel stops."""
        return None

    def describe(self) -> dict[str, Any]:
        """Non-secret facts about this driver instance for health details and diagnostics."""
        return {"driver": self.name, "version": self.version}
