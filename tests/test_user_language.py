"""A user's dashboard language is stored with the user: ``GET /auth/me`` answers it, ``PATCH /auth/me``
changes one's own, administrators change anyone's through ``/users``; only ``en`` and ``ko`` are taken."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mes_kernel.db.models import AuditEntry, User

ME = "/api/v1/auth/me"


def _field(response) -> list:
    return [e["loc"][-1] for e in response.json()["detail"]["errors"]]


async def test_me_answers_no_language_until_the_user_chooses_then_the_choice(client, viewer_headers, kernel):
    me = await client.get(ME, headers=viewer_headers)
    assert me.status_code == 200, me.text
    assert me.json()["language"] is None
    changed = await client.patch(ME, json={"language": "ko"}, headers=viewer_headers)
    assert changed.status_code == 200, changed.text
    assert changed.json() == {"name": "viewer", "language": "ko"}
    assert (await client.get(ME, headers=viewer_headers)).json()["language"] == "ko"
    async with kernel.sessionmaker() as session:
        assert (await session.execute(select(User.language).where(User.username == "viewer"))).scalar() == "ko"
        audit = (
            (
                await session.execute(
                    select(AuditEntry).where(AuditEntry.entity == "user", AuditEntry.entity_id == "viewer")
                )
            )
            .scalars()
            .all()
        )
    assert [(a.actor, a.before["language"], a.after["language"]) for a in audit] == [("user:viewer", None, "ko")]
    back = await client.patch(ME, json={"language": "en"}, headers=viewer_headers)
    assert back.json()["language"] == "en"


@pytest.mark.parametrize(
    "body",
    [
        {"language": "de"},
        {"language": "KO"},
        {"language": ""},
        {"language": None},
        {"language": 1},
        {},
        {"language": "ko", "role": "admin"},
    ],
)
async def test_a_language_other_than_en_or_ko_is_422_and_changes_nothing(client, worker_headers, kernel, body):
    await client.patch(ME, json={"language": "ko"}, headers=worker_headers)
    r = await client.patch(ME, json=body, headers=worker_headers)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]["code"] == "VALIDATION_ERROR"
    assert _field(r) == (["role"] if "role" in body else ["language"])
    assert (await client.get(ME, headers=worker_headers)).json()["language"] == "ko"
    async with kernel.sessionmaker() as session:
        user = (await session.execute(select(User).where(User.username == "worker"))).scalar_one()
    assert user.role == "worker"


async def test_a_station_has_no_language_and_may_not_set_one(client, station_headers):
    me = await client.get(ME, headers=station_headers)
    assert me.status_code == 200 and me.json()["language"] is None
    r = await client.patch(ME, json={"language": "ko"}, headers=station_headers)
    assert r.status_code == 403 and r.json()["detail"]["code"] == "FORBIDDEN"


async def test_without_a_token_patch_me_is_401(client):
    r = await client.patch(ME, json={"language": "ko"})
    assert r.status_code == 401


async def test_admins_set_and_read_a_users_language_through_the_users_api(client, admin_headers, viewer_headers):
    created = await client.post(
        "/api/v1/users",
        headers=admin_headers,
        json={"username": "kim", "password": "password-kim", "role": "viewer", "language": "ko"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["language"] == "ko"
    assert (
        await client.post(
            "/api/v1/users",
            headers=admin_headers,
            json={"username": "lee", "password": "password-lee", "role": "viewer", "language": "fr"},
        )
    ).status_code == 422
    r = await client.patch("/api/v1/users/viewer", json={"language": "ko"}, headers=admin_headers)
    assert r.status_code == 200 and r.json()["language"] == "ko"
    assert (await client.get(ME, headers=viewer_headers)).json()["language"] == "ko"
    bad = await client.patch("/api/v1/users/viewer", json={"language": "jp"}, headers=admin_headers)
    assert bad.status_code == 422 and _field(bad) == ["language"]
    listed = {u["username"]: u["language"] for u in (await client.get("/api/v1/users", headers=admin_headers)).json()}
    assert listed["viewer"] == "ko" and listed["kim"] == "ko" and listed["admin"] is None
    # a language change ends no session: the viewer's access token still works
    assert (await client.get(ME, headers=viewer_headers)).status_code == 200
