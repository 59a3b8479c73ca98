"""Password hashing (bcrypt), JWT access tokens, the signing key, and opaque tokens stored only as hashes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import unicodedata
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bcrypt
import jwt
import structlog

if TYPE_CHECKING:
    from .settings import Settings

log = structlog.get_logger(__name__)

ALGORITHM = "HS256"
STATION_TOKEN_PREFIX = "mst_"
REFRESH_TOKEN_PREFIX = "mrt_"
# Clocks of several nodes drift: a token minted by a node running ahead is not "from the future".
LEEWAY_SECONDS = 30
SECRET_KEY_FILE = "secret-key"


def username_key(username: str) -> str:
    """The form two usernames are compared in: NFKC, case-folded, NFKC again (Unicode's
    NFKC_Casefold recipe, UAX #31 / UTS #39), so ``ADM``, ``adm`` and full-width ``ＡＤＭ`` are one."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", username).casefold())


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
    """A signed access token. The kernel's logins add ``uid``, ``sid`` (the session: the refresh
    token family) and ``ver`` (the user's token version), which every request checks."""
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
    """Decode and verify; only HS256 is accepted (no ``alg: none``, no algorithm confusion).
    ``iat``, ``nbf`` and ``exp`` are checked with a leeway of :data:`LEEWAY_SECONDS`."""
    payload = jwt.decode(
        token,
        secret,
        algorithms=[ALGORITHM],
        leeway=LEEWAY_SECONDS,
        options={"require": ["exp", "iat", "sub", "type"]},
    )
    if payload.get("type") != "access":
        raise jwt.InvalidTokenError("not an access token")
    return payload


def new_opaque_token(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


def successor_refresh_token(refresh_token: str, secret: str) -> str:
    """The refresh token that replaces ``refresh_token`` at rotation: derived (HMAC-SHA256 under the
    signing key), not random, so requests racing to rotate one token all hand out the same successor
    while only hashes are stored. Unguessable without both the old token and the key."""
    mac = hmac.new(secret.encode(), b"refresh-successor:" + refresh_token.encode(), hashlib.sha256).digest()
    return REFRESH_TOKEN_PREFIX + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def secret_key_path(settings: Settings) -> Path:
    """``var/secret-key``: beside the files folder, like ``initial-admin.txt``."""
    return Path(settings.files_dir).parent / SECRET_KEY_FILE


def ensure_secret_key(settings: Settings) -> str:
    """Give ``settings`` a signing key: the configured ``SECRET_KEY``, else the one kept in
    ``var/secret-key``, else a new random one (256 bits) written there (mode 0600) on first run.

    Several workers starting at once agree: the file appears whole or not at all (written aside,
    then hard-linked into place; the loser of the race reads the winner's). Several *nodes* must be
    given one ``SECRET_KEY``, or a token signed by one is refused by the others.
    """
    if settings.secret_key:
        return settings.secret_key
    path = secret_key_path(settings)
    if not path.exists():
        from .private_files import private_dir

        private_dir(path.parent)
        aside = path.with_name(f".{SECRET_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
        try:
            os.link(aside, path)
            log.warning("secret_key_generated", path=str(path), hint="set SECRET_KEY to share one key between nodes")
        except FileExistsError:
            pass
        finally:
            aside.unlink()
    key = path.read_text().strip()
    if len(key) < 32:
        raise RuntimeError(f"{path} holds no usable secret key (under 32 characters): delete it or set SECRET_KEY")
    settings.secret_key = key
    return key
