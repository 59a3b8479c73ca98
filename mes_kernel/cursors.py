"""Opaque tokens a client hands back (history cursors, sync cursors, snapshot pages), signed so none can be forged.

A token is ``<payload>.<tag>``, both base64url without padding: the payload is the position it
stands for (readable, not secret), the tag an HMAC-SHA256 (truncated to 128 bits) over the token's
*purpose* and the payload, keyed by a key derived from ``SECRET_KEY``. The purpose names what the
token is for and whose it is (``history:lot:42``, ``sync:station:7``): a token opens only for the
purpose it was signed for, so a LOT's cursor is refused on another LOT's history and a station's
sync cursor on another station's. A new ``SECRET_KEY`` refuses every token given before it (a
client then starts from the first page, a station syncs in full once).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from functools import lru_cache

TAG_BYTES = 16
MAX_LENGTH = 2048  # longer than any token this server gives: not one (the callers answer INVALID_CURSOR)
_TOKEN = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}")


@lru_cache(maxsize=8)
def _key(secret: str) -> bytes:
    # derived, never the secret itself: the JWT key and this one cannot stand in for each other
    return hmac.new(secret.encode(), b"mes-kernel opaque client tokens v1", hashlib.sha256).digest()


def _tag(payload: bytes, *, secret: str, purpose: str) -> bytes:
    return hmac.new(_key(secret), purpose.encode() + b"\x00" + payload, hashlib.sha256).digest()[:TAG_BYTES]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def sign(payload: str, *, secret: str, purpose: str) -> str:
    """``payload`` as an opaque token that :func:`unsign` opens only with the same ``secret`` and
    ``purpose`` (text without NUL, e.g. ``"history:unit:5"``)."""
    raw = payload.encode()
    return f"{_b64(raw)}.{_b64(_tag(raw, secret=secret, purpose=purpose))}"


def unsign(token: str, *, secret: str, purpose: str) -> str | None:
    """The payload of a token :func:`sign` gave for ``purpose`` under ``secret``; None for anything
    else — a changed or missing character, another key or purpose, not a token at all. Never raises."""
    if not isinstance(token, str) or len(token) > MAX_LENGTH or _TOKEN.fullmatch(token) is None:
        return None
    body, _, tag = token.partition(".")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        given = base64.urlsafe_b64decode(tag + "=" * (-len(tag) % 4))
    except ValueError:  # binascii.Error: a length no base64 has
        return None
    if _b64(raw) != body or _b64(given) != tag:  # a last character differing only in unused bits
        return None
    if not hmac.compare_digest(given, _tag(raw, secret=secret, purpose=purpose)):
        return None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return None
