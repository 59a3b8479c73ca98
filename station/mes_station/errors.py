"""Errors the station agent raises to its callers (the desktop window, the CLI)."""

from __future__ import annotations

from typing import Any


class StationError(Exception):
    """Base class of every station-agent error: a plain-words message and a stable ``code``."""

    code = "STATION_ERROR"


class OfflineError(StationError):
    """The server could not be reached (connection refused, timeout, DNS)."""

    code = "OFFLINE"


class UnknownCodeError(StationError):
    """A scanned code the station reads as a misread (a GS1 label its parser refuses), offline:
    what the server would answer 404 ``UNKNOWN_CODE`` online. Nothing may be recorded against it."""

    code = "UNKNOWN_CODE"


class LoginError(StationError):
    """A worker could not be logged in. ``code``: ``INVALID_CREDENTIALS`` (wrong name or password,
    online or against the station's cached credential), ``OFFLINE_LOGIN_UNAVAILABLE`` (the server is
    unreachable and this worker has no unexpired credential cached at this station), ``OFFLINE``."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class OutboxFullError(StationError):
    """The local outbox could not commit an event because the disk (or database) is full.

    Nothing was saved: the worker must be told, and the event must be entered again once
    space is freed.
    """

    code = "OUTBOX_FULL"


class DeviceUnavailableError(StationError):
    """The device role is not configured, or its driver failed to load."""

    code = "DEVICE_UNAVAILABLE"


class TemplateNotCachedError(StationError):
    """A label template is neither in the local cache nor obtainable from the server."""

    code = "TEMPLATE_NOT_CACHED"


class ServerError(StationError):
    """The server answered with an error body ``{"detail": {"code", "message"}}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retry_after: float | None = None,
        detail: dict[str, Any] | None = None,
    ):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        #: the whole ``detail`` object of the answer (e.g. ``job_id`` of a conflicting device job)
        self.detail = detail or {}

    @property
    def retryable(self) -> bool:
        """Whether sending the same request later may succeed.

        5xx, 429 and 503 are transient. 401/403 say the station's token is wrong or revoked: that
        is the station's problem, not the event's, so events wait for the token to be fixed
        instead of being rejected one by one.
        """
        return self.status >= 500 or self.status in (401, 403, 408, 425, 429)

    @property
    def server_reachable(self) -> bool:
        """The server answered and is able to work (a 4xx is the request's problem, not an outage)."""
        return self.status < 500 and self.status != 429

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "code": self.code, "message": self.message}


class DeviceError(StationError):
    """A loaded device driver failed the action (printer offline, paper out, flasher refused)."""

    code = "DEVICE_ERROR"
