"""Gzip for the API's JSON answers (the build's static assets come precompressed: ``app._mount_web``).

Only JSON is compressed, and only a whole answer of at least ``minimum_size`` bytes: file downloads
(``Content-Disposition``, whatever their type), answers already encoded (the ``.br``/``.gz`` assets),
partial answers (206), event streams and every other type — the Prometheus metrics, HTML, label
previews — pass through byte for byte. Built on Starlette's ``GZipResponder``; the decision is
only narrowed here.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.gzip import GZipResponder

MINIMUM_SIZE = 1024  # below about a packet, gzip saves nothing worth the CPU


def accepted_encodings(scope) -> set[str]:
    """Content codings the client accepts (RFC 9110 §12.5.3), without those it refuses with `q=0`."""
    raw = next((v for k, v in scope.get("headers", []) if k == b"accept-encoding"), b"").decode("latin-1")
    accepted = set()
    for item in raw.split(","):
        coding, *params = (part.strip() for part in item.split(";"))
        quality = next((p[2:] for p in params if p.lower().startswith("q=")), "1")
        try:
            if float(quality) > 0:
                accepted.add(coding.lower())
        except ValueError:
            continue
    return accepted


def is_json(media_type: str) -> bool:
    """``application/json`` and the ``+json`` types (``application/problem+json``)."""
    media_type = media_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


class _JsonOnlyResponder(GZipResponder):
    async def send_with_compression(self, message) -> None:
        if message["type"] != "http.response.start":
            return await super().send_with_compression(message)
        await super().send_with_compression(message)  # holds the start unless it already passes through
        if self.content_encoding_set or self.partial_response or self.content_type_is_excluded:
            return
        headers = Headers(raw=message["headers"])
        if not is_json(headers.get("content-type", "")) or "content-disposition" in headers:
            self.content_type_is_excluded = True  # from here on: pass through untouched
            await self.send(self.initial_message)


class JsonGzipMiddleware:
    """Gzip JSON answers of ``minimum_size`` bytes or more when the request accepts gzip."""

    def __init__(self, app, minimum_size: int = MINIMUM_SIZE, compresslevel: int = 6) -> None:
        self.app, self.minimum_size, self.compresslevel = app, minimum_size, compresslevel

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or "gzip" not in accepted_encodings(scope):
            return await self.app(scope, receive, send)
        responder = _JsonOnlyResponder(self.app, self.minimum_size, compresslevel=self.compresslevel)
        await responder(scope, receive, send)
