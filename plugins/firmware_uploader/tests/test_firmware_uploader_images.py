"""The firmware image registry through the kernel's API: streamed upload, hash, limits, soft delete, audit."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from mes_kernel.db.models import AuditEntry, StoredFile


async def test_uploaded_image_is_stored_with_its_sha256_and_kept_for_good(upload_image, kernel):
    data = bytes(range(256)) * 4000
    r = await upload_image("WIDGET", "1.0.0", data)
    assert r.status_code == 201, r.text
    image = r.json()
    assert image["sha256"] == hashlib.sha256(data).hexdigest()
    assert (image["product"], image["version"], image["size"], image["name"]) == (
        "WIDGET",
        "1.0.0",
        len(data),
        "fw.bin",
    )
    async with kernel.sessionmaker() as session:
        row = await session.get(StoredFile, image["id"])
    assert row.kind == "firmware" and row.expires_at is None and row.meta["product"] == "WIDGET"
    path = kernel.files_dir / row.path
    assert path.parent == kernel.files_dir / "firmware"
    assert path.read_bytes() == data
    assert list((kernel.files_dir / "firmware" / ".incoming").iterdir()) == []


async def test_same_product_and_version_twice_is_a_conflict(upload_image):
    assert (await upload_image("WIDGET", "1.0.0")).status_code == 201
    r = await upload_image("WIDGET", "1.0.0", b"other bytes")
    assert r.status_code == 409 and r.json()["detail"]["code"] == "IMAGE_EXISTS"
    assert (await upload_image("WIDGET", "1.0.1")).status_code == 201
    assert (await upload_image("GADGET", "1.0.0")).status_code == 201


async def test_upload_over_the_size_limit_is_refused_while_streaming(upload_image, kernel):
    kernel.settings.max_upload_bytes = 10_000
    r = await upload_image("WIDGET", "9.9", b"x" * 50_000)
    assert r.status_code == 413 and r.json()["detail"]["code"] == "PAYLOAD_TOO_LARGE"
    assert list((kernel.files_dir / "firmware" / ".incoming").iterdir()) == []
    assert (await upload_image("WIDGET", "9.9", b"x" * 9_000)).status_code == 201


async def test_missing_fields_and_empty_file_are_refused(client, manager_headers, upload_image):
    r = await client.post(
        "/api/v1/firmware/images",
        data={"product": "WIDGET"},
        files={"file": ("fw.bin", b"abc")},
        headers=manager_headers,
    )
    assert r.status_code == 422 and r.json()["detail"]["field"] == "version"
    r = await client.post(
        "/api/v1/firmware/images", data={"product": "WIDGET", "version": "1"}, headers=manager_headers
    )
    assert r.status_code == 422
    r = await client.post(
        "/api/v1/firmware/images",
        data={"product": "WIDGET", "version": "1"},
        files={"file": ("fw.bin", b"")},
        headers=manager_headers,
    )
    assert r.status_code == 422 and "empty" in r.json()["detail"]["message"]


async def test_list_and_get_images(client, upload_image, viewer_headers):
    a = (await upload_image("WIDGET", "1.0")).json()
    b = (await upload_image("GADGET", "2.0")).json()
    r = await client.get("/api/v1/firmware/images", headers=viewer_headers)
    assert [i["id"] for i in r.json()["items"]] == [a["id"], b["id"]]
    r = await client.get("/api/v1/firmware/images", params={"product": "GADGET"}, headers=viewer_headers)
    assert [i["version"] for i in r.json()["items"]] == ["2.0"]
    assert (await client.get(f"/api/v1/firmware/images/{a['id']}", headers=viewer_headers)).json() == a
    r = await client.get("/api/v1/firmware/images/9999", headers=viewer_headers)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "IMAGE_NOT_FOUND"


async def test_only_allowed_roles_upload_and_only_admin_deletes(
    client, upload_image, worker_headers, manager_headers, admin_headers
):
    assert (await upload_image("WIDGET", "1.0", headers=worker_headers)).status_code == 403
    image = (await upload_image("WIDGET", "1.0")).json()
    r = await client.delete(f"/api/v1/firmware/images/{image['id']}", headers=manager_headers)
    assert r.status_code == 403
    r = await client.delete(f"/api/v1/firmware/images/{image['id']}", headers=admin_headers)
    assert r.status_code == 200 and r.json()["deleted_at"]


async def test_delete_is_soft_keeps_the_file_and_frees_the_version(client, upload_image, admin_headers, kernel):
    image = (await upload_image("WIDGET", "1.0", b"first build")).json()
    assert (await client.delete(f"/api/v1/firmware/images/{image['id']}", headers=admin_headers)).status_code == 200
    async with kernel.sessionmaker() as session:
        row = await session.get(StoredFile, image["id"])
    assert row.deleted_at is not None and (kernel.files_dir / row.path).read_bytes() == b"first build"
    listed = (await client.get("/api/v1/firmware/images", headers=admin_headers)).json()["items"]
    assert listed == []
    r = await client.get("/api/v1/firmware/images", params={"include_deleted": True}, headers=admin_headers)
    assert [i["id"] for i in r.json()["items"]] == [image["id"]]
    r = await client.delete(f"/api/v1/firmware/images/{image['id']}", headers=admin_headers)
    assert r.status_code == 404
    assert (await upload_image("WIDGET", "1.0", b"second build")).status_code == 201


async def test_upload_and_delete_are_audited(client, upload_image, admin_headers, kernel):
    image = (await upload_image("WIDGET", "1.0")).json()
    await client.delete(f"/api/v1/firmware/images/{image['id']}", headers=admin_headers)
    async with kernel.sessionmaker() as session:
        entries = (
            (
                await session.execute(
                    select(AuditEntry).where(AuditEntry.entity == "firmware_image").order_by(AuditEntry.id)
                )
            )
            .scalars()
            .all()
        )
    assert [(e.action, e.actor, e.entity_id) for e in entries] == [
        ("create", "user:manager", str(image["id"])),
        ("delete", "user:admin", str(image["id"])),
    ]
    assert entries[0].after["sha256"] == image["sha256"]


async def test_routes_appear_in_the_openapi_document(client):
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/api/v1/firmware/upload", "/api/v1/firmware/images", "/api/v1/firmware/jobs/{job_id}"} <= set(paths)
    body = paths["/api/v1/firmware/images"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert body["schema"]["required"] == ["file", "product", "version"]
