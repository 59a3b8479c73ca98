"""Password hashing (bcrypt) and JWT access tokens; opaque tokens stored only as hashes."""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import bcrypt
import jwt

ALGORITHM = "HS256"
STATION_TOKEN_PREFIX = "mst_"


def _prehash(password: str) -> bytes:
    """bcrypt reads at most 72 bytes: hash first, so every character of a long passphrase counts."""
    return base64.b64encode(hashlib.sha256(password.encode()).digest())


def hash_password(password: str, rounds: int = 12) -> str:
    return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds=rounds)).decode()


def verify_password(password: str, password_hash: str) -> bool:
    try:
        return bcrypt.checkpw(_prehash(password), password_hash.encode())
    except ValueError:
        return False


# A real 12-round hash (of a random value), so a login with an unknown user costs as much as one
# with a wrong password; a constant, so importing this module costs nothing.
DUMMY_HASH = "$2b$12$C6UzMDM.H6dfI/f/IKxGhu9b0bOe0oX1h1RQ5R4v3d0FxBUFF0S3u"


def create_access_token(*, subject: str, role: str, secret: str, minutes: int, **claims: Any) -> str:
    now = datetime.now(UTC)
    payload = {
        "sub": subject,
        "role": role,
        "type": "access",
        "iat": now,
        "exp": now + timedelta(minutes=minutes),
        "jti": uuid.uuid4().hex,
        **claims,
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def decode_access_token(token: str, secret: str) -> dict[str, Any]:
    """Decode and verify; only HS256 is accepted (no ``alg: none``, no algorithm confusion)."""
    payload = jwt.decode(
        token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "iat", "sub", "type"]}
    )
    if payload.get("type") != "access":
        raise jwt.InvalidTokenError("not an access token")
    return payload


def new_opaque_token(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
