"""The firmware image registry: images are kernel ``StoredFile`` rows (kind "firmware") kept for good.

Files live under ``kernel.files_dir / "firmware"``, named by content hash, and the row stores the
path relative to ``files_dir`` (so a restored backup can move the whole folder). An image is
identified by ``product`` + ``version``; a second upload of the same pair is refused while the
first is not deleted.

Deleting is a soft delete (``deleted_at``) and the file stays on disk: units flashed with the image
keep pointing at it in their history, and an auditor can still hash the exact bytes that went into
them. A deleted image is no longer listed by default and can no longer be flashed; its
product + version may be uploaded again (the history tells the two apart by image id and hash).
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Annotated, Any

import structlog
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mes_kernel.audit import write_audit
from mes_kernel.contracts import Comment, Identifier, checked
from mes_kernel.db.base import utcnow
from mes_kernel.db.models import StoredFile
from mes_kernel.errors import Conflict, MesError, NotFound, Unprocessable

from .drivers.base import FirmwareImage
from .multipart import ReceivedUpload

log = structlog.get_logger(__name__)

KIND = "firmware"
FOLDER = "firmware"

# One upload of a product+version at a time in this process; see README for several workers.
registration_lock = asyncio.Lock()


class ImageCorrupted(MesError):
    """The file on disk no longer hashes to what was recorded at upload: never flash it."""

    status = 409
    code = "IMAGE_CORRUPTED"


def firmware_dir(files_dir: Path) -> Path:
    path = files_dir / FOLDER
    path.mkdir(parents=True, exist_ok=True)
    return path


def incoming_dir(files_dir: Path) -> Path:
    return firmware_dir(files_dir) / ".incoming"


def image_view(row: StoredFile) -> dict[str, Any]:
    """An image as the API shows it (no filesystem path)."""
    return {
        "id": row.id,
        "product": row.meta.get("product"),
        "version": row.meta.get("version"),
        "name": row.name,
        "sha256": row.sha256,
        "size": row.size,
        "notes": row.meta.get("notes", ""),
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "deleted_at": row.deleted_at.isoformat() if row.deleted_at else None,
    }


def _label(value: str | None, what: str) -> str:
    """A product or version as the uploader typed it: an identifier, matched exactly against LOTs and
    flash requests, so surrounding whitespace is refused rather than trimmed."""
    if not value:
        raise Unprocessable(f"{what} is required (1-64 printable characters)", code="VALIDATION_ERROR", field=what)
    return checked(Annotated[Identifier, Field(max_length=64)], value, field=what)


async def find_image(session: AsyncSession, *, product: str, version: str) -> StoredFile | None:
    """The live (not deleted) image of ``product`` + ``version``, if any."""
    rows = (
        await session.execute(
            select(StoredFile).where(
                StoredFile.kind == KIND,
                StoredFile.deleted_at.is_(None),
                StoredFile.meta["product"].as_string() == product,
                StoredFile.meta["version"].as_string() == version,
            )
        )
    ).scalars()
    return rows.first()


async def register_image(*, session: AsyncSession, files_dir: Path, upload: ReceivedUpload, actor: str) -> StoredFile:
    """Move a received upload into place and record it (with its audit entry) in the caller's transaction.

    The caller commits. On refusal the received file is removed.
    """
    try:
        product = _label(upload.fields.get("product"), "product")
        version = _label(upload.fields.get("version"), "version")
        notes = checked(Comment, upload.fields.get("notes", ""), field="notes")[:1000]
        if upload.size == 0:
            raise Unprocessable("the firmware image is empty", code="VALIDATION_ERROR", field="file")
        existing = await find_image(session, product=product, version=version)
        if existing is not None:
            raise Conflict(
                f"firmware {product} {version} already exists (image {existing.id})",
                code="IMAGE_EXISTS",
                image_id=existing.id,
            )
    except MesError:
        upload.discard()
        raise
    relative = Path(FOLDER) / f"{upload.sha256}-{upload.path.stem[:8]}.bin"
    upload.path.replace(files_dir / relative)
    row = StoredFile(
        kind=KIND,
        name=(upload.filename or f"{product}-{version}.bin")[:255],
        path=relative.as_posix(),
        sha256=upload.sha256,
        size=upload.size,
        meta={"product": product, "version": version, "notes": notes},
        created_by=actor,
        expires_at=None,
    )
    session.add(row)
    await session.flush()
    await write_audit(
        session,
        actor=actor,
        action="create",
        entity="firmware_image",
        entity_id=row.id,
        after=image_view(row),
    )
    return row


async def list_images(
    session: AsyncSession, *, product: str | None = None, include_deleted: bool = False
) -> list[StoredFile]:
    query = select(StoredFile).where(StoredFile.kind == KIND)
    if product:
        query = query.where(StoredFile.meta["product"].as_string() == product)
    if not include_deleted:
        query = query.where(StoredFile.deleted_at.is_(None))
    return list((await session.execute(query.order_by(StoredFile.id))).scalars())


async def get_image(session: AsyncSession, image_id: int, *, include_deleted: bool = True) -> StoredFile:
    row = await session.get(StoredFile, image_id)
    if row is None or row.kind != KIND or (row.deleted_at is not None and not include_deleted):
        raise NotFound(f"firmware image {image_id} not found", code="IMAGE_NOT_FOUND", image_id=image_id)
    return row


async def resolve_image(
    session: AsyncSession, *, image_id: int | None, product: str | None, version: str | None
) -> StoredFile:
    """The live image named by id, or by product + version."""
    if image_id is not None:
        return await get_image(session, image_id, include_deleted=False)
    if product and version:
        row = await find_image(session, product=product, version=version)
        if row is None:
            raise NotFound(
                f"firmware {product} {version} not found",
                code="IMAGE_NOT_FOUND",
                product=product,
                version=version,
            )
        return row
    raise Unprocessable("give image_id, or product and version", code="VALIDATION_ERROR", field="image_id")


async def delete_image(*, session: AsyncSession, image_id: int, actor: str) -> StoredFile:
    """Soft-delete: mark ``deleted_at``, keep the file (see the module docstring). The caller commits."""
    row = await get_image(session, image_id, include_deleted=False)
    before = image_view(row)
    row.deleted_at = utcnow()
    await session.flush()
    await write_audit(
        session,
        actor=actor,
        action="delete",
        entity="firmware_image",
        entity_id=row.id,
        before=before,
        after=image_view(row),
    )
    return row


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


async def verified_image(files_dir: Path, row: StoredFile) -> FirmwareImage:
    """The image ready for a driver, after hashing the file on disk again; refuses a changed file."""
    path = files_dir / row.path
    try:
        actual = await asyncio.to_thread(sha256_of_file, path)
    except OSError as exc:
        raise ImageCorrupted(f"firmware image {row.id} cannot be read: {exc.strerror or exc}", image_id=row.id) from exc
    if actual != row.sha256:
        log.error("firmware_image_corrupted", image_id=row.id, path=str(path), expected=row.sha256, actual=actual)
        raise ImageCorrupted(
            f"firmware image {row.id} on disk no longer matches its SHA-256; refusing to flash it",
            image_id=row.id,
            expected=row.sha256,
            actual=actual,
        )
    return FirmwareImage(
        path=path,
        sha256=row.sha256,
        size=row.size,
        product=row.meta.get("product", ""),
        version=row.meta.get("version", ""),
        name=row.name,
    )
