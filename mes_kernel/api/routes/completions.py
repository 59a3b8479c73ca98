"""Completion files: the schema test-equipment vendors target, and attachments streamed to the files folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ...audit import write_audit
from ...completions import (
    ATTACHMENT_KIND,
    attachment_view,
    check_attachment_name,
    check_sha256,
    completion_schema,
    store_stream,
)
from ...db.models import RecordAttachment, StoredFile
from ...errors import Conflict, NotFound
from ..deps import KernelDep, Principal, SessionDep, require_permission

router = APIRouter(prefix="/completions", tags=["completions"])

#: the attachment upload reads its body itself, chunk by chunk (the body-limit middleware skips it)
ATTACHMENT_UPLOAD_PATH = "/api/v1/completions/attachments"

RecordKey = Annotated[str, Query(min_length=1, max_length=128, description="the process record's idempotency key")]


@router.get(
    "/schema",
    summary="The JSON Schema of completion files (draft 2020-12), with examples",
    response_class=JSONResponse,
    responses={200: {"content": {"application/schema+json": {"schema": {"type": "object"}}}}},
)
async def schema() -> JSONResponse:
    """No authentication: equipment vendors read it to write conforming files."""
    return JSONResponse(completion_schema(), media_type="application/schema+json")


@router.put(
    "/attachments",
    status_code=201,
    summary="Upload one attachment of a completion record (streamed, raw bytes)",
    description="Send the file as the raw body (`Content-Type: application/octet-stream`), naming the record "
    "by its idempotency key. The body is written to the files folder as it arrives (never held in memory) "
    "and hashed; larger than `MAX_ATTACHMENT_BYTES` (default 100 MB) answers 413 `PAYLOAD_TOO_LARGE`, a "
    "`sha256` that does not match answers 422 `CHECKSUM_MISMATCH`. Idempotent: the same record key, name "
    "and content answer 200 with the stored attachment.",
    responses={200: {"description": "already stored"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def upload_attachment(
    request: Request,
    session: SessionDep,
    kernel: KernelDep,
    record_key: RecordKey,
    name: Annotated[str, Query(min_length=1, max_length=200)],
    sha256: Annotated[str | None, Query(max_length=64)] = None,
    media_type: Annotated[str, Query(min_length=1, max_length=100)] = "application/octet-stream",
    principal: Principal = require_permission("records:write"),
):
    check_attachment_name(name)
    expected = check_sha256(sha256)
    existing = await _link(session, record_key=record_key, name=name)
    if existing is not None and expected is not None:
        return _answer_existing(existing, expected)
    path, digest, size = await store_stream(
        request.stream(),
        files_dir=Path(kernel.settings.files_dir),
        limit=kernel.settings.max_attachment_bytes,
        expected_sha256=expected,
    )
    stored = await _stored_file(session, digest)
    if existing is not None:
        if existing[1].sha256 != digest and stored is None:
            path.unlink(missing_ok=True)  # refused bytes that no stored attachment shares
        return _answer_existing(existing, digest)
    if stored is None:
        stored = StoredFile(
            kind=ATTACHMENT_KIND,
            name=name,
            path=str(path),
            sha256=digest,
            size=size,
            meta={"station": principal.station_code},
            created_by=principal.actor,
        )
        session.add(stored)
        await session.flush()
    link = RecordAttachment(record_key=record_key, name=name, file_id=stored.id, media_type=media_type)
    session.add(link)
    try:
        await session.flush()
    except IntegrityError:  # the same upload, concurrently: the first one won
        await session.rollback()
        existing = await _link(session, record_key=record_key, name=name)
        if existing is None:
            raise
        return _answer_existing(existing, digest)
    await write_audit(
        session,
        actor=principal.actor,
        action="create",
        entity="record_attachment",
        entity_id=link.id,
        after={"record_key": record_key, "name": name, "sha256": digest, "size": size},
    )
    await session.commit()
    return JSONResponse(attachment_view(link, stored), status_code=201)


@router.get("/attachments", summary="Attachments of one process record (by its idempotency key)")
async def list_attachments(
    session: SessionDep, record_key: RecordKey, _: Principal = require_permission("lots:read")
) -> dict:
    rows = (
        await session.execute(
            select(RecordAttachment, StoredFile)
            .join(StoredFile, StoredFile.id == RecordAttachment.file_id)
            .where(RecordAttachment.record_key == record_key)
            .order_by(RecordAttachment.id)
        )
    ).all()
    return {"record_key": record_key, "items": [attachment_view(link, stored) for link, stored in rows]}


@router.get(
    "/attachments/{attachment_id}/content",
    summary="Download an attachment's bytes",
    description="Answers with the media type the attachment was uploaded with.",
    response_class=FileResponse,
    responses={200: {"content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}},
)
async def attachment_content(
    attachment_id: int, session: SessionDep, _: Principal = require_permission("lots:read")
) -> FileResponse:
    link = await session.get(RecordAttachment, attachment_id)
    stored = await session.get(StoredFile, link.file_id) if link is not None else None
    if stored is None or stored.deleted_at is not None or not Path(stored.path).is_file():
        raise NotFound(f"attachment {attachment_id} not found", code="ATTACHMENT_NOT_FOUND")
    return FileResponse(stored.path, media_type=link.media_type, filename=link.name)


async def _stored_file(session, sha256: str) -> StoredFile | None:
    found = await session.execute(
        select(StoredFile).where(
            StoredFile.kind == ATTACHMENT_KIND, StoredFile.sha256 == sha256, StoredFile.deleted_at.is_(None)
        )
    )
    return found.scalars().first()


async def _link(session, *, record_key: str, name: str) -> tuple[RecordAttachment, StoredFile] | None:
    row = (
        await session.execute(
            select(RecordAttachment, StoredFile)
            .join(StoredFile, StoredFile.id == RecordAttachment.file_id)
            .where(RecordAttachment.record_key == record_key, RecordAttachment.name == name)
        )
    ).first()
    return (row[0], row[1]) if row else None


def _answer_existing(existing: tuple[RecordAttachment, StoredFile], sha256: str) -> JSONResponse:
    """A retry answers 200 with what is stored; other bytes under the same record and name answer 409."""
    link, stored = existing
    if stored.sha256 != sha256:
        raise Conflict(
            f"record {link.record_key} already has an attachment {link.name!r} with other content",
            code="ATTACHMENT_CONFLICT",
        )
    return JSONResponse(attachment_view(link, stored), status_code=200)
