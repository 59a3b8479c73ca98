"""Errors the station agent raises to its callers (the desktop window, the CLI)."""

from __future__ import annotations

from typing import Any


class StationError(Exception):
    """Base class of every station-agent error."""


class OfflineError(StationError):
    """The server could not be reached (connection refused, timeout, DNS)."""


class OutboxFullError(StationError):
    """The local outbox could not commit an event because the disk (or database) is full.

    Nothing was saved: the worker must be told, and the event must be entered again once
    space is freed.
    """


class DeviceUnavailableError(StationError):
    """The device role is not configured, or its driver failed to load."""


class TemplateNotCachedError(StationError):
    """A label template is neither in the local cache nor obtainable from the server."""


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
