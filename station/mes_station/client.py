"""The station's HTTP client for the kernel API: one place that classifies every failure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from mes_station import __version__
from mes_station.errors import OfflineError, ServerError


class ServerClient:
    """Talks to ``{server}/api/v1`` with the station token; raises OfflineError or ServerError."""

    def __init__(self, api_url: str, token: str, *, timeout: float = 10.0):
        self.api_url = api_url.rstrip("/")
        self._token = token
        self._user_token: str | None = None
        self._http = httpx.AsyncClient(
            base_url=self.api_url,
            timeout=timeout,
            headers={"User-Agent": f"mes-station/{__version__}"},
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def has_user_token(self) -> bool:
        return self._user_token is not None

    def set_user_token(self, token: str | None) -> None:
        """Bearer token of the logged-in worker, used for worker-facing reads and device actions."""
        self._user_token = token

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        as_user: bool = False,
        auth: bool = True,
    ) -> httpx.Response:
        """Send one request; answers 2xx responses, raises for everything else."""
        headers = {}
        token = (self._user_token or self._token) if as_user else self._token
        if auth and token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            response = await self._http.request(method, path, json=json, params=params, headers=headers)
        except (httpx.TransportError, OSError) as exc:
            raise OfflineError(
                f"the server is unreachable at {self.api_url} ({type(exc).__name__}: {exc})"
            ) from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        return response

    async def upload(self, path: str, file: Path, *, params: dict[str, Any], chunk_size: int = 1 << 20) -> Any:
        """PUT ``file`` as a raw ``application/octet-stream`` body, read and sent in ``chunk_size``
        pieces (never whole in memory); answers the JSON reply, raises OfflineError/ServerError."""

        async def pieces():
            with file.open("rb") as f:
                while chunk := f.read(chunk_size):
                    yield chunk

        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(file.stat().st_size),
        }
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            response = await self._http.request("PUT", path, params=params, content=pieces(), headers=headers)
        except (httpx.TransportError, OSError) as exc:
            raise OfflineError(
                f"the server is unreachable at {self.api_url} ({type(exc).__name__}: {exc})"
            ) from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        return response.json() if response.content else None

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.request(method, path, **kwargs)
        if not response.content:
            return None
        return response.json()


def error_from_response(response: httpx.Response) -> ServerError:
    """Read ``{"detail": {"code", "message"}}``, tolerating bodies that are not in that shape."""
    code, message = f"HTTP_{response.status_code}", response.reason_phrase or ""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, dict):
        code = str(detail.get("code", code))
        message = str(detail.get("message", message))
    elif isinstance(detail, str):
        message = detail
    elif isinstance(detail, list):  # FastAPI's own validation list
        code, message = "VALIDATION_ERROR", "; ".join(str(d.get("msg", d)) for d in detail)
    retry_after = response.headers.get("Retry-After")
    try:
        retry = float(retry_after) if retry_after else None
    except ValueError:
        retry = None
    return ServerError(
        response.status_code, code, message, retry_after=retry, detail=detail if isinstance(detail, dict) else None
    )
