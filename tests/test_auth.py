"""Authentication: logins, rotating refresh tokens, logout, refused JWTs and station machine tokens."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from sqlalchemy import select, update

from mes_kernel.app import create_app
from mes_kernel.db.models import RefreshToken
from mes_kernel.security import create_access_token, token_digest

LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/auth/me"


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).rstrip(b"=").decode()


def _unb64(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _code(response: httpx.Response) -> str:
    return response.json()["detail"]["code"]


async def _login(client, username: str = "viewer", password: str | None = None) -> dict:
    r = await client.post(LOGIN, json={"username": username, "password": password or f"password-{username}"})
    assert r.status_code == 200, r.text
    return r.json()


# ------------------------------------------------------------------ login


async def test_login_with_json_or_oauth2_form_and_wrong_credentials_are_401(client, viewer_headers):
    tokens = await _login(client)
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 15 * 60
    assert tokens["role"] == "viewer"
    me = await client.get(ME, headers=_bearer(tokens["access_token"]))
    assert me.status_code == 200, me.text
    assert (me.json()["kind"], me.json()["name"]) == ("user", "viewer")
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 15 * 60

    form = await client.post(
        LOGIN, data={"username": "viewer", "password": "password-viewer", "grant_type": "password"}
    )
    assert form.status_code == 200, form.text
    me = await client.get(ME, headers=_bearer(form.json()["access_token"]))
    assert me.status_code == 200
    assert me.json()["role"] == "viewer"

    # A wrong password and an unknown user get the same answer.
    for username, password in (("viewer", "wrong-password"), ("nobody", "password-nobody")):
        for r in (
            await client.post(LOGIN, json={"username": username, "password": password}),
            await client.post(LOGIN, data={"username": username, "password": password}),
        ):
            assert r.status_code == 401, r.text
            assert _code(r) == "INVALID_CREDENTIALS"
            assert "access_token" not in r.text


# ------------------------------------------------------------------ refresh rotation and logout


async def test_refresh_rotates_reuse_revokes_the_family_and_races_have_one_winner(client, viewer_headers):
    first = await _login(client)
    other_login = await _login(client)
    r = await client.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await client.get(ME, headers=_bearer(second["access_token"]))).status_code == 200

    reused = await client.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401, reused.text
    assert _code(reused) == "REFRESH_TOKEN_REUSED"
    # The token the thief (or the owner) got from the same family is dead too.
    descendant = await client.post(REFRESH, json={"refresh_token": second["refresh_token"]})
    assert descendant.status_code == 401, descendant.text
    # Another login (another family) is untouched.
    unrelated = await client.post(REFRESH, json={"refresh_token": other_login["refresh_token"]})
    assert unrelated.status_code == 200, unrelated.text

    unknown = await client.post(REFRESH, json={"refresh_token": "mrt_" + "x" * 40})
    assert unknown.status_code == 401
    assert _code(unknown) == "INVALID_TOKEN"

    # Racing refreshes of one token: never two winners.
    tokens = await _login(client)
    answers = await asyncio.gather(
        *(client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]}) for _ in range(5))
    )
    statuses = sorted(r.status_code for r in answers)
    assert statuses.count(200) <= 1, [r.text for r in answers]
    assert set(statuses) <= {200, 401}, [r.text for r in answers]
    assert all(r.json()["detail"]["code"] == "REFRESH_TOKEN_REUSED" for r in answers if r.status_code == 401)


async def test_refresh_tokens_live_seven_days_and_then_expire(client, kernel, viewer_headers):
    tokens = await _login(client)
    digest = token_digest(tokens["refresh_token"])
    async with kernel.sessionmaker() as session:
        row = (await session.execute(select(RefreshToken).where(RefreshToken.token_hash == digest))).scalar_one()
        lifetime = row.expires_at - row.issued_at
        assert timedelta(days=7) - timedelta(seconds=5) <= lifetime <= timedelta(days=7)
        assert tokens["refresh_token"] not in str(row.__dict__)  # stored only as a hash
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == row.id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()
    r = await client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 401, r.text
    assert _code(r) == "TOKEN_EXPIRED"


async def test_logout_revokes_the_refresh_token_and_needs_an_access_token(client, viewer_headers):
    tokens = await _login(client)
    other = await _login(client)
    anonymous = await client.post(LOGOUT, json={"refresh_token": tokens["refresh_token"]})
    assert anonymous.status_code == 401

    r = await client.post(
        LOGOUT, json={"refresh_token": tokens["refresh_token"]}, headers=_bearer(tokens["access_token"])
    )
    assert r.status_code == 204, r.text
    after = await client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    assert after.status_code == 401, after.text
    assert (await client.post(REFRESH, json={"refresh_token": other["refresh_token"]})).status_code == 200


# ------------------------------------------------------------------ refused access tokens


async def test_expired_access_token_is_401_token_expired_and_forged_ones_401(client, kernel, viewer_headers):
    secret = kernel.settings.secret_key
    expired = create_access_token(subject="viewer", role="viewer", uid=1, secret=secret, minutes=-1)
    r = await client.get(ME, headers=_bearer(expired))
    assert r.status_code == 401, r.text
    assert _code(r) == "TOKEN_EXPIRED"
    assert r.headers["www-authenticate"] == "Bearer"

    tokens = await _login(client)
    now = int(time.time())
    admin_claims = {
        "sub": "admin",
        "role": "admin",
        "uid": 1,
        "type": "access",
        "iat": now,
        "exp": now + 600,
        "jti": "x" * 32,
    }
    forged: dict[str, str] = {}

    header, payload, signature = tokens["access_token"].split(".")
    escalated = _unb64(payload) | {"role": "admin"}
    forged["tampered payload"] = ".".join([header, _b64(escalated), signature])
    for alg in ("none", "None", "NONE"):
        forged[f"alg {alg}"] = f"{_b64({'alg': alg, 'typ': 'JWT'})}.{_b64(admin_claims)}."
        forged[f"alg {alg} with signature"] = f"{_b64({'alg': alg})}.{_b64(admin_claims)}.c2lnbmF0dXJl"
    forged["another key"] = create_access_token(
        subject="admin", role="admin", uid=1, minutes=15, secret="another-secret-key-that-is-long-enough-0123456789"
    )
    forged["key with a suffix"] = create_access_token(
        subject="admin", role="admin", uid=1, minutes=15, secret=secret + "x"
    )
    forged["HS512"] = jwt.encode(admin_claims, secret * 2, algorithm="HS512")
    forged["refresh token as access"] = tokens["refresh_token"]
    forged["JWT of type refresh"] = jwt.encode(
        admin_claims | {"type": "refresh", "exp": now + 7 * 86400}, secret, algorithm="HS256"
    )
    forged["JWT without type"] = jwt.encode(
        {k: v for k, v in admin_claims.items() if k != "type"}, secret, algorithm="HS256"
    )
    forged["not a JWT"] = "not.a.jwt"
    forged["two parts"] = "a.b"

    for what, token in forged.items():
        r = await client.get("/api/v1/users", headers=_bearer(token))
        assert r.status_code == 401, (what, r.text)
        assert _code(r) == "INVALID_TOKEN", (what, r.text)
    for authorization in ("Bearer", "Bearer ", "Basic YWRtaW46YWRtaW4=", "Token abc"):
        r = await client.get(ME, headers={"Authorization": authorization})
        assert r.status_code == 401, (authorization, r.text)
        assert "code" in r.json()["detail"]
    # The genuine token still works, and is still a viewer's.
    assert (await client.get("/api/v1/users", headers=_bearer(tokens["access_token"]))).status_code == 403


# ------------------------------------------------------------------ station machine tokens


async def _issue_station_token(client, admin_headers, code: str = "ST-01") -> dict:
    r = await client.post(f"/api/v1/stations/{code}/tokens", json={"name": "spare"}, headers=admin_headers)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["token"].startswith("mst_")
    return body


async def test_station_token_authenticates_and_a_revoked_one_is_refused_even_when_cached(
    client, admin_headers, station_headers
):
    r = await client.get(ME, headers=station_headers)
    assert r.status_code == 200, r.text
    assert (r.json()["kind"], r.json()["name"], r.json()["station"]) == ("station", "ST-01", "ST-01")
    unknown = await client.get(ME, headers=_bearer("mst_" + "A" * 43))
    assert unknown.status_code == 401
    assert _code(unknown) == "INVALID_TOKEN"

    issued = await _issue_station_token(client, admin_headers)
    token_headers = _bearer(issued["token"])
    # Used once: now it sits in the cache (L1, and L2 where Redis is configured).
    for _ in range(2):
        assert (await client.get(ME, headers=token_headers)).status_code == 200

    listed = await client.get("/api/v1/stations/ST-01/tokens", headers=admin_headers)
    assert issued["token"] not in listed.text
    assert issued["id"] in [t["id"] for t in listed.json()]

    r = await client.delete(f"/api/v1/stations/ST-01/tokens/{issued['id']}", headers=admin_headers)
    assert r.status_code == 204, r.text
    refused = await client.get(ME, headers=token_headers)
    assert refused.status_code == 401, refused.text
    assert _code(refused) == "INVALID_TOKEN"
    # The station's other token keeps working.
    assert (await client.get(ME, headers=station_headers)).status_code == 200
    revoked = [
        t
        for t in (await client.get("/api/v1/stations/ST-01/tokens", headers=admin_headers)).json()
        if t["id"] == issued["id"]
    ]
    assert revoked[0]["revoked_at"] is not None


@pytest.mark.postgres_only
async def test_revoked_station_token_is_refused_by_another_worker(client, settings, admin_headers, station_headers):
    """Two app instances on one database and Redis: the revocation reaches the other's L1 cache."""
    issued = await _issue_station_token(client, admin_headers)
    other = create_app(settings, load_entry_points=False)
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other, client=("127.0.0.2", 50001))
        async with httpx.AsyncClient(transport=transport, base_url="http://mes.test") as second:
            assert (await second.get(ME, headers=_bearer(issued["token"]))).status_code == 200
            key = next(k for k in other.state.kernel.cache.l1._data if k.startswith("station_token:"))
            r = await client.delete(f"/api/v1/stations/ST-01/tokens/{issued['id']}", headers=admin_headers)
            assert r.status_code == 204
            for _ in range(40):  # the invalidation travels by pub/sub: allow it up to 2 s
                if key not in other.state.kernel.cache.l1._data:
                    break
                await asyncio.sleep(0.05)
            refused = await second.get(ME, headers=_bearer(issued["token"]))
            assert refused.status_code == 401, refused.text


async def test_disabling_a_user_or_changing_a_password_ends_their_sessions(client, admin_headers, viewer_headers):
    before_password = await _login(client)
    r = await client.patch("/api/v1/users/viewer", json={"password": "a-brand-new-password"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert (await client.post(REFRESH, json={"refresh_token": before_password["refresh_token"]})).status_code == 401
    old = await client.post(LOGIN, json={"username": "viewer", "password": "password-viewer"})
    assert old.status_code == 401
    fresh = await _login(client, password="a-brand-new-password")

    # A role change reaches the next access token a refresh hands out.
    r = await client.patch("/api/v1/users/viewer", json={"role": "production_manager"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    rotated = await client.post(REFRESH, json={"refresh_token": fresh["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["role"] == "production_manager"
    me = await client.get(ME, headers=_bearer(rotated.json()["access_token"]))
    assert me.json()["role"] == "production_manager"

    r = await client.patch("/api/v1/users/viewer", json={"is_active": False}, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert (await client.post(REFRESH, json={"refresh_token": rotated.json()["refresh_token"]})).status_code == 401
    disabled = await client.post(LOGIN, json={"username": "viewer", "password": "a-brand-new-password"})
    assert disabled.status_code == 401
    assert _code(disabled) == "INVALID_CREDENTIALS"


async def test_a_station_token_revoked_while_a_request_fills_the_cache_is_refused(
    client, kernel, admin_headers, station_headers
):
    """The revocation commits between another request's token lookup and its cache write (made certain by
    revoking at that very point)."""
    issued = await _issue_station_token(client, admin_headers)
    cache = kernel.cache
    original_set = cache.set

    async def set_after_a_concurrent_revocation(key, value, **kw):
        if key.startswith("station_token:") and value and value.get("code") == "ST-01":
            cache.set = original_set
            r = await client.delete(f"/api/v1/stations/ST-01/tokens/{issued['id']}", headers=admin_headers)
            assert r.status_code == 204, r.text
        await original_set(key, value, **kw)

    cache.set = set_after_a_concurrent_revocation
    try:
        assert (await client.get(ME, headers=_bearer(issued["token"]))).status_code == 200  # looked up before
    finally:
        cache.set = original_set
    refused = await client.get(ME, headers=_bearer(issued["token"]))
    assert refused.status_code == 401, refused.text
