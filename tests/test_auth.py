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
from test_gunicorn_workers import SECRET as GUNICORN_SECRET
from test_gunicorn_workers import gunicorn_server  # noqa: F401  (a fixture: 2 workers, PostgreSQL + Redis)

from mes_kernel.app import create_app
from mes_kernel.db.models import RefreshToken, User
from mes_kernel.security import create_access_token, token_digest
from mes_kernel.testing.fixtures import PG_URL, REDIS_URL

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


async def _age_rotation(kernel, refresh_token: str) -> None:
    """Move a token's rotation back to just outside the grace window."""
    async with kernel.sessionmaker() as session:
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == token_digest(refresh_token))
            .values(rotated_at=datetime.now(UTC) - timedelta(seconds=kernel.settings.refresh_grace_seconds + 1))
        )
        await session.commit()


async def test_refresh_rotates_and_reuse_after_the_grace_window_revokes_the_family(client, kernel, viewer_headers):
    first = await _login(client)
    other_login = await _login(client)
    r = await client.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await client.get(ME, headers=_bearer(second["access_token"]))).status_code == 200

    await _age_rotation(kernel, first["refresh_token"])
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


async def test_racing_refreshes_of_one_token_all_get_the_same_successor(client, kernel, viewer_headers):
    """Two tabs (or five) refreshing at once: one rotation, one successor, nobody logged out."""
    tokens = await _login(client)
    answers = await asyncio.gather(
        *(client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]}) for _ in range(5))
    )
    assert [r.status_code for r in answers] == [200] * 5, [r.text for r in answers]
    successors = {r.json()["refresh_token"] for r in answers}
    assert len(successors) == 1 and tokens["refresh_token"] not in successors
    for r in answers:  # every tab's access token works
        assert (await client.get(ME, headers=_bearer(r.json()["access_token"]))).status_code == 200
    async with kernel.sessionmaker() as session:
        family = (
            (
                await session.execute(
                    select(RefreshToken).where(RefreshToken.token_hash == token_digest(tokens["refresh_token"]))
                )
            )
            .scalar_one()
            .family_id
        )
        rows = (await session.execute(select(RefreshToken).where(RefreshToken.family_id == family))).scalars().all()
    assert len(rows) == 2  # the rotated token and its one successor
    # The successor rotates on as usual.
    nxt = await client.post(REFRESH, json={"refresh_token": successors.pop()})
    assert nxt.status_code == 200, nxt.text


async def test_reuse_after_the_grace_window_revokes_the_family_and_its_access_tokens(client, kernel, viewer_headers):
    tokens = await _login(client)
    first = await client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    again = await client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})  # within 10 s: same answer
    assert (first.status_code, again.status_code) == (200, 200), again.text
    assert first.json()["refresh_token"] == again.json()["refresh_token"]
    await _age_rotation(kernel, tokens["refresh_token"])
    late = await client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    assert late.status_code == 401, late.text
    assert _code(late) == "REFRESH_TOKEN_REUSED"
    for pair in (tokens, first.json(), again.json()):
        r = await client.get(ME, headers=_bearer(pair["access_token"]))
        assert r.status_code == 401, r.text
        assert _code(r) == "TOKEN_REVOKED"
    dead = await client.post(REFRESH, json={"refresh_token": first.json()["refresh_token"]})
    assert (dead.status_code, _code(dead)) == (401, "INVALID_TOKEN")


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

    assert (await client.get(ME, headers=_bearer(tokens["access_token"]))).status_code == 200  # now cached
    r = await client.post(
        LOGOUT, json={"refresh_token": tokens["refresh_token"]}, headers=_bearer(tokens["access_token"])
    )
    assert r.status_code == 204, r.text
    after = await client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    assert after.status_code == 401, after.text
    assert _code(after) == "INVALID_TOKEN"
    ended = await client.get(ME, headers=_bearer(tokens["access_token"]))
    assert (ended.status_code, _code(ended)) == (401, "TOKEN_REVOKED")
    # The other login is untouched.
    assert (await client.get(ME, headers=_bearer(other["access_token"]))).status_code == 200
    assert (await client.post(REFRESH, json={"refresh_token": other["refresh_token"]})).status_code == 200


async def test_logout_with_someone_elses_refresh_token_ends_only_the_callers_login(
    client, viewer_headers, worker_headers
):
    viewer = await _login(client)
    worker = await _login(client, "worker")
    r = await client.post(
        LOGOUT, json={"refresh_token": viewer["refresh_token"]}, headers=_bearer(worker["access_token"])
    )
    assert r.status_code == 204, r.text
    assert (await client.get(ME, headers=_bearer(viewer["access_token"]))).status_code == 200
    assert (await client.post(REFRESH, json={"refresh_token": viewer["refresh_token"]})).status_code == 200
    assert (await client.get(ME, headers=_bearer(worker["access_token"]))).status_code == 401


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


async def test_a_password_change_ends_every_session_and_its_access_tokens(client, admin_headers, viewer_headers):
    before = await _login(client)
    assert (await client.get(ME, headers=_bearer(before["access_token"]))).status_code == 200  # cached now
    r = await client.patch("/api/v1/users/viewer", json={"password": "a-brand-new-password"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    refused = await client.get(ME, headers=_bearer(before["access_token"]))
    assert (refused.status_code, _code(refused)) == (401, "TOKEN_REVOKED")
    ended = await client.post(REFRESH, json={"refresh_token": before["refresh_token"]})
    assert (ended.status_code, _code(ended)) == (401, "INVALID_TOKEN")
    old = await client.post(LOGIN, json={"username": "viewer", "password": "password-viewer"})
    assert old.status_code == 401
    fresh = await _login(client, password="a-brand-new-password")
    assert (await client.get(ME, headers=_bearer(fresh["access_token"]))).status_code == 200


async def test_a_demoted_admins_access_token_is_refused_and_a_refresh_carries_the_new_role(client, admin_headers):
    r = await client.post(
        "/api/v1/users", json={"username": "boss", "password": "password-boss", "role": "admin"}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    boss = await _login(client, "boss")
    assert (await client.get("/api/v1/users", headers=_bearer(boss["access_token"]))).status_code == 200
    r = await client.patch("/api/v1/users/boss", json={"role": "viewer"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    demoted = await client.get("/api/v1/users", headers=_bearer(boss["access_token"]))
    assert (demoted.status_code, _code(demoted)) == (401, "TOKEN_REVOKED")
    rotated = await client.post(REFRESH, json={"refresh_token": boss["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["role"] == "viewer"
    as_viewer = await client.get("/api/v1/users", headers=_bearer(rotated.json()["access_token"]))
    assert (as_viewer.status_code, _code(as_viewer)) == (403, "FORBIDDEN")
    # Changing only the full name revokes nothing.
    r = await client.patch("/api/v1/users/boss", json={"full_name": "The Boss"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert (await client.get(ME, headers=_bearer(rotated.json()["access_token"]))).status_code == 200


async def test_a_deactivated_user_is_refused_with_account_disabled(client, admin_headers, viewer_headers):
    tokens = await _login(client)
    assert (await client.get(ME, headers=_bearer(tokens["access_token"]))).status_code == 200
    r = await client.patch("/api/v1/users/viewer", json={"is_active": False}, headers=admin_headers)
    assert r.status_code == 200, r.text
    access = await client.get(ME, headers=_bearer(tokens["access_token"]))
    assert (access.status_code, _code(access)) == (401, "ACCOUNT_DISABLED")
    refresh = await client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    assert (refresh.status_code, _code(refresh)) == (401, "ACCOUNT_DISABLED")
    disabled = await client.post(LOGIN, json={"username": "viewer", "password": "password-viewer"})
    assert (disabled.status_code, _code(disabled)) == (401, "INVALID_CREDENTIALS")
    # Reactivated: a new login works, the old tokens stay dead.
    r = await client.patch("/api/v1/users/viewer", json={"is_active": True}, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert (await client.get(ME, headers=_bearer(tokens["access_token"]))).status_code == 401
    assert (await client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})).status_code == 401
    assert (await client.get(ME, headers=_bearer((await _login(client))["access_token"]))).status_code == 200


async def test_clock_skew_of_up_to_30_s_is_tolerated_on_iat_nbf_and_exp(client, kernel, viewer_headers):
    tokens = await _login(client)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    secret = kernel.settings.secret_key

    def shifted(iat: int, exp: int, **extra) -> dict[str, str]:
        return _bearer(jwt.encode(claims | {"iat": iat, "exp": exp, **extra}, secret, algorithm="HS256"))

    now = int(time.time())
    ahead = await client.get(ME, headers=shifted(now + 20, now + 900, nbf=now + 20))  # a node running 20 s ahead
    assert ahead.status_code == 200, ahead.text
    just_expired = await client.get(ME, headers=shifted(now - 900, now - 20))
    assert just_expired.status_code == 200, just_expired.text
    too_far_ahead = await client.get(ME, headers=shifted(now + 90, now + 900))
    assert (too_far_ahead.status_code, _code(too_far_ahead)) == (401, "INVALID_TOKEN")
    expired = await client.get(ME, headers=shifted(now - 900, now - 45))
    assert (expired.status_code, _code(expired)) == (401, "TOKEN_EXPIRED")



async def test_a_signed_token_with_claims_of_odd_shapes_is_401_invalid_token_never_422_or_500(
    client, kernel, viewer_headers
):
    """Only the key's holder mints these, but a claim goes to the cache and the database: a session id
    that is a number (500: ``str`` of it then an integer compared to a text column on PostgreSQL), a
    user id beyond 64 bits or a NUL in the session id (422 from the database) must be refused first."""
    claims = jwt.decode((await _login(client))["access_token"], options={"verify_signature": False})
    secret = kernel.settings.secret_key
    odd = {
        "sid a number": {"sid": 5},
        "sid with a NUL": {"sid": "a\x00b"},
        "sid a list": {"sid": ["x"]},
        "sid far too long": {"sid": "a" * 5000},
        "uid beyond 64 bits": {"uid": 2**70},
        "uid a bool": {"uid": True},
        "ver a string": {"ver": "0"},
        "ver beyond 64 bits": {"ver": 2**64},
        "sub with a NUL": {"sub": "viewer\x00"},
        "sub empty": {"sub": ""},
        "role a number": {"role": 1},
    }
    for what, change in odd.items():
        r = await client.get(ME, headers=_bearer(jwt.encode(claims | change, secret, algorithm="HS256")))
        assert (r.status_code, _code(r)) == (401, "INVALID_TOKEN"), (what, r.text)
    assert (await client.get(ME, headers=_bearer(jwt.encode(claims, secret, algorithm="HS256")))).status_code == 200

async def test_another_process_refuses_a_revoked_access_token_within_a_second(
    client, settings, admin_headers, viewer_headers
):
    """Two app instances (two workers) on one database; with Redis the revocation travels by pub/sub
    (on SQLite there is no Redis and each process keeps L1 alone, so this runs on PostgreSQL + Redis)."""
    if not settings.redis_url:
        pytest.skip("cross-process invalidation needs Redis (embedded mode is one process)")
    tokens = await _login(client)
    other = create_app(settings, load_entry_points=False)
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other, client=("127.0.0.2", 50001))
        async with httpx.AsyncClient(transport=transport, base_url="http://mes.test") as second:
            for c in (client, second):  # the user and session state now sit in both L1 caches
                assert (await c.get(ME, headers=_bearer(tokens["access_token"]))).status_code == 200
            r = await client.patch("/api/v1/users/viewer", json={"role": "worker"}, headers=admin_headers)
            assert r.status_code == 200, r.text
            changed = time.monotonic()
            while (await second.get(ME, headers=_bearer(tokens["access_token"]))).status_code == 200:
                assert time.monotonic() - changed < 1.0, "the other process still accepts the demoted token"
                await asyncio.sleep(0.01)


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


# ------------------------------------------------------------------ login abuse


async def _wrong(client, username: str = "viewer", n: int = 1) -> list[httpx.Response]:
    return [await client.post(LOGIN, json={"username": username, "password": "not-the-password"}) for _ in range(n)]


async def test_ten_wrong_passwords_lock_the_account_with_429_retry_after_until_an_admin_unlocks(
    client, kernel, admin_headers, viewer_headers
):
    misses = await _wrong(client, n=kernel.settings.login_max_failures - 1)
    assert {(r.status_code, _code(r)) for r in misses} == {(401, "INVALID_CREDENTIALS")}
    # A good login in between resets the count.
    await _login(client)
    misses = await _wrong(client, n=kernel.settings.login_max_failures)
    assert {(r.status_code, _code(r)) for r in misses} == {(401, "INVALID_CREDENTIALS")}
    for password in ("password-viewer", "not-the-password"):  # even the right password
        r = await client.post(LOGIN, json={"username": "viewer", "password": password})
        assert r.status_code == 429, r.text
        assert _code(r) == "LOGIN_THROTTLED"
        lock = kernel.settings.login_lock_minutes * 60
        assert lock - 5 <= int(r.headers["retry-after"]) <= lock
        assert r.json()["detail"]["retry_after"] == int(r.headers["retry-after"])
    # Another account is not affected.
    assert (await client.post(LOGIN, json={"username": "admin", "password": "password-admin"})).status_code == 200

    audit = (
        await client.get("/api/v1/audit", params={"entity": "user", "entity_id": "viewer"}, headers=admin_headers)
    ).json()
    entries = audit["items"] if isinstance(audit, dict) else audit
    locks = [e for e in entries if e["actor"] == "system:login_throttle"]
    assert len(locks) == 1, entries
    assert locks[0]["after"]["locked_until"]

    listed = {u["username"]: u for u in (await client.get("/api/v1/users", headers=admin_headers)).json()}
    assert listed["viewer"]["locked_until"] and listed["admin"]["locked_until"] is None
    viewer_token = await client.post("/api/v1/users/viewer/unlock", headers=viewer_headers)
    assert viewer_token.status_code == 403
    r = await client.post("/api/v1/users/viewer/unlock", headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.json()["locked_until"] is None
    await _login(client)
    audit = (
        await client.get("/api/v1/audit", params={"entity": "user", "entity_id": "viewer"}, headers=admin_headers)
    ).json()
    entries = audit["items"] if isinstance(audit, dict) else audit
    unlocks = [
        e for e in entries if e["actor"] == "user:admin" and e["after"] == {"failed_logins": 0, "locked_until": None}
    ]
    assert len(unlocks) == 1, entries
    missing = await client.post("/api/v1/users/nobody/unlock", headers=admin_headers)
    assert (missing.status_code, _code(missing)) == (404, "USER_NOT_FOUND")


async def test_a_lock_ends_by_itself_and_is_shared_by_every_worker(client, kernel, settings, viewer_headers):
    other = create_app(settings, load_entry_points=False)
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other, client=("127.0.0.2", 50001))
        async with httpx.AsyncClient(transport=transport, base_url="http://mes.test") as second:
            half = kernel.settings.login_max_failures // 2
            await _wrong(client, n=half)
            await _wrong(second, n=kernel.settings.login_max_failures - half)  # the two count together
            r = await client.post(LOGIN, json={"username": "viewer", "password": "password-viewer"})
            assert (r.status_code, _code(r)) == (429, "LOGIN_THROTTLED")
            async with kernel.sessionmaker() as session:
                await session.execute(
                    update(User)
                    .where(User.username == "viewer")
                    .values(locked_until=datetime.now(UTC) - timedelta(seconds=1))
                )
                await session.commit()
            await _login(second)


async def test_mes_user_unlock_lifts_the_lock(client, kernel, settings, viewer_headers, monkeypatch):
    from typer.testing import CliRunner

    from mes_kernel.cli import app as cli

    await _wrong(client, n=kernel.settings.login_max_failures)
    assert (await client.post(LOGIN, json={"username": "viewer", "password": "password-viewer"})).status_code == 429
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SECRET_KEY", settings.secret_key)
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["user", "unlock", "VIEWER"])
    assert result.exit_code == 0, result.output
    assert "viewer unlocked" in result.output
    await _login(client)
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["user", "unlock", "nobody"])
    assert result.exit_code == 1 and "USER_NOT_FOUND" in result.output


async def test_usernames_are_one_account_whatever_their_case_or_width(client, admin_headers):
    r = await client.post(
        "/api/v1/users", json={"username": "ADM", "password": "password-ADM", "role": "viewer"}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    for twin in ("adm", "Adm"):
        dup = await client.post(
            "/api/v1/users", json={"username": twin, "password": "password-x1", "role": "admin"}, headers=admin_headers
        )
        assert (dup.status_code, _code(dup)) == (409, "USER_EXISTS")
    for spelling in ("ADM", "adm", "ａｄｍ", "ＡＤＭ"):  # full-width forms fold to the same name (NFKC)
        r = await client.post(LOGIN, json={"username": spelling, "password": "password-ADM"})
        assert r.status_code == 200, (spelling, r.text)
        assert jwt.decode(r.json()["access_token"], options={"verify_signature": False})["sub"] == "ADM"
    r = await client.patch("/api/v1/users/adm", json={"full_name": "Adam"}, headers=admin_headers)
    assert (r.status_code, r.json()["username"]) == (200, "ADM")
    users = (await client.get("/api/v1/users", headers=admin_headers)).json()
    assert [u["username"] for u in users if u["username"].lower() == "adm"] == ["ADM"]


async def test_the_migration_refuses_usernames_that_collide_and_names_them(settings):
    from sqlalchemy import text

    from mes_kernel.db.base import make_engine
    from mes_kernel.migrate import downgrade, upgrade

    await asyncio.to_thread(downgrade, settings, "0002")
    engine = make_engine(settings)
    try:
        async with engine.begin() as conn:
            for name in ("ADM", "adm", "solo"):
                await conn.execute(
                    text(
                        "INSERT INTO users (username, full_name, password_hash, role, is_active, created_at,"
                        " updated_at) VALUES (:n, '', 'x', 'viewer', true, :t, :t)"
                    ),
                    {"n": name, "t": datetime(2026, 1, 1, tzinfo=UTC)},
                )
        with pytest.raises(RuntimeError, match="'ADM' = 'adm'"):
            await asyncio.to_thread(upgrade, settings)
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE users SET username = 'adm2' WHERE username = 'adm'"))
        await asyncio.to_thread(upgrade, settings)
        async with engine.connect() as conn:
            keys = dict((await conn.execute(text("SELECT username, username_key FROM users"))).all())
        assert keys == {"ADM": "adm", "adm2": "adm2", "solo": "solo"}
    finally:
        await engine.dispose()


# ------------------------------------------------------------------ the signing key


async def test_without_a_secret_key_a_random_one_is_generated_kept_in_var_and_the_placeholder_signs_nothing(
    settings, tmp_path
):
    from mes_kernel.settings import DEFAULT_SECRET

    settings.secret_key = ""
    settings.files_dir = str(tmp_path / "var" / "files")
    app = create_app(settings, load_entry_points=False)
    key_file = tmp_path / "var" / "secret-key"
    generated = key_file.read_text().strip()
    assert len(generated) >= 43 and generated != DEFAULT_SECRET
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert app.state.kernel.settings.secret_key == generated
    again = settings.model_copy(update={"secret_key": ""})
    create_app(again, load_entry_points=False)
    assert again.secret_key == generated  # the next start (or another worker) uses the same key

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://mes.test") as c:
            for secret in (DEFAULT_SECRET, "test-secret-key-that-is-long-enough-0123456789"):
                forged = create_access_token(subject="admin", role="admin", uid=1, secret=secret, minutes=15)
                r = await c.get("/api/v1/users", headers=_bearer(forged))
                assert (r.status_code, _code(r)) == (401, "INVALID_TOKEN")
            genuine = create_access_token(subject="kit", role="admin", uid=0, secret=generated, minutes=15)
            assert (await c.get("/api/v1/users", headers=_bearer(genuine))).status_code == 200


# ------------------------------------------------------------------ under gunicorn


@pytest.mark.skipif(not (PG_URL and REDIS_URL), reason="needs MES_TEST_DATABASE_URL and MES_TEST_REDIS_URL")
def test_under_gunicorn_a_token_demoted_on_one_worker_is_refused_by_the_other_within_a_second(gunicorn_server):  # noqa: F811
    base = gunicorn_server
    kit = _bearer(create_access_token(subject="ops", role="admin", uid=0, secret=GUNICORN_SECRET, minutes=5))

    def call(method: str, path: str, headers: dict, **kw) -> httpx.Response:
        with httpx.Client(base_url=base, timeout=10) as c:  # a fresh connection: either worker may answer
            return c.request(method, path, headers=headers, **kw)

    r = call("POST", "/api/v1/users", kit, json={"username": "boss", "password": "password-boss", "role": "admin"})
    assert r.status_code == 201, r.text
    r = call("POST", LOGIN, {}, json={"username": "boss", "password": "password-boss"})
    assert r.status_code == 200, r.text
    boss = _bearer(r.json()["access_token"])
    # Both workers answer the boss (its session and user state are now cached in both).
    pids = {call("GET", "/api/v1/sample/reading", boss).json()["pid"] for _ in range(40)}
    assert len(pids) == 2, f"expected both workers to serve, saw {pids}"

    r = call("PATCH", "/api/v1/users/boss", kit, json={"role": "viewer"})
    assert r.status_code == 200, r.text
    demoted = time.monotonic()
    # Poll with fresh connections until refused; a second after the change, every worker refuses.
    while call("GET", "/api/v1/users", boss).status_code == 200:
        assert time.monotonic() - demoted < 1.0, "a worker still accepts the demoted admin's token"
    time.sleep(max(0.0, 1.0 - (time.monotonic() - demoted)))  # let the full second pass
    answers = [call("GET", "/api/v1/users", boss) for _ in range(30)]
    assert {(r.status_code, r.json()["detail"]["code"]) for r in answers} == {(401, "TOKEN_REVOKED")}
    # The same spread of fresh connections reaches both workers.
    assert len({call("GET", "/api/v1/sample/reading", kit).json()["pid"] for _ in range(40)}) == 2

    # A station token revoked through one worker dies on both within the same second.
    assert call("POST", "/api/v1/stations", kit, json={"code": "ST-GU", "name": "gunicorn"}).status_code == 201
    issued = call("POST", "/api/v1/stations/ST-GU/tokens", kit, json={"name": "spare"}).json()
    station = _bearer(issued["token"])
    assert {call("GET", ME, station).status_code for _ in range(20)} == {200}  # cached by both workers
    assert call("DELETE", f"/api/v1/stations/ST-GU/tokens/{issued['id']}", kit).status_code == 204
    revoked = time.monotonic()
    while call("GET", ME, station).status_code == 200:
        assert time.monotonic() - revoked < 1.0, "a worker still accepts the revoked station token"
    time.sleep(max(0.0, 1.0 - (time.monotonic() - revoked)))
    assert {call("GET", ME, station).status_code for _ in range(30)} == {401}


def test_workers_generating_the_key_at_the_same_moment_agree_on_one(tmp_path):
    import threading

    from mes_kernel.security import ensure_secret_key
    from mes_kernel.settings import Settings

    workers = [Settings(files_dir=str(tmp_path / "var" / "files"), _env_file=None) for _ in range(8)]
    start = threading.Barrier(len(workers))
    keys: list[str] = []

    def boot(settings: Settings) -> None:
        start.wait()
        keys.append(ensure_secret_key(settings))

    threads = [threading.Thread(target=boot, args=(s,)) for s in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(keys) == len(workers) and len(set(keys)) == 1
    assert [p.name for p in (tmp_path / "var").iterdir()] == ["secret-key"]  # no half-written leftovers
