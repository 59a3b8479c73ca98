"""Completion files from test equipment: the JSON Schema vendors target, and attachments streamed to disk.

The schema (``completion.schema.json`` beside this module) is the one definition of the file format:
the kernel serves it at ``GET /api/v1/completions/schema`` and the station agent validates every
file against it (``mes_station.completion``). The vendor guide is ``docs/completion-files.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import MesError, Unprocessable

#: ``stored_files.kind`` of a completion attachment (content-addressed; ``record_attachments`` links it)
ATTACHMENT_KIND = "completion_attachment"
#: attachment names: one file name, no folder, no control characters
_NAME = re.compile(r"^[^/\\:*?\"<>|\x00-\x1f]{1,200}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@cache
def completion_schema() -> dict[str, Any]:
    """The completion-file JSON Schema (draft 2020-12) as a dict; read once from the package."""
    text = resources.files("mes_kernel").joinpath("completion.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


class PayloadTooLarge(MesError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"


def check_attachment_name(name: str) -> str:
    """``name`` if it is a plain file name (no folder, no ``..``); 422 ``VALIDATION_ERROR`` otherwise."""
    if not _NAME.match(name or "") or name in (".", ".."):
        raise Unprocessable(f"attachment name {name!r} must be a plain file name", field="name")
    return name


def check_sha256(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.lower()
    if not _SHA256.match(value):
        raise Unprocessable("sha256 must be 64 hexadecimal digits", field="sha256")
    return value


async def store_stream(
    chunks: AsyncIterator[bytes], *, files_dir: Path, limit: int, expected_sha256: str | None
) -> tuple[Path, str, int]:
    """Write a request body to ``files_dir/attachments`` chunk by chunk, hashing as it goes.

    Returns ``(path, sha256 hex, size in bytes)``; the file is content-addressed
    (``attachments/ab/abcdef….bin``), so the same bytes are kept once. Raises
    :class:`PayloadTooLarge` (413) as soon as more than ``limit`` bytes arrived and 422
    ``CHECKSUM_MISMATCH`` when ``expected_sha256`` is given and differs; nothing is left on disk then.
    Memory use is one chunk, whatever the size.
    """
    folder = files_dir / "attachments"
    partial = folder / "partial"
    partial.mkdir(parents=True, exist_ok=True)
    temp = partial / f"{uuid.uuid4().hex}.part"
    digest = hashlib.sha256()
    size = 0
    try:
        with temp.open("wb") as out:
            async for chunk in chunks:
                if not chunk:
                    continue
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"attachment exceeds {limit} bytes", limit=limit)
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        sha = digest.hexdigest()
        if expected_sha256 is not None and sha != expected_sha256:
            raise Unprocessable(
                f"the body's SHA-256 is {sha}, not the announced {expected_sha256}", code="CHECKSUM_MISMATCH"
            )
        target = folder / sha[:2] / f"{sha}.bin"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, target)
        return target, sha, size
    finally:
        temp.unlink(missing_ok=True)


def attachment_view(link: Any, stored: Any) -> dict[str, Any]:
    """A record's attachment as the API shows it (no filesystem path)."""
    created = link.created_at
    return {
        "id": link.id,
        "record_key": link.record_key,
        "name": link.name,
        "media_type": link.media_type,
        "sha256": stored.sha256,
        "size": stored.size,
        "created_by": stored.created_by,
        "created_at": created.astimezone(UTC).isoformat() if isinstance(created, datetime) else None,
    }
