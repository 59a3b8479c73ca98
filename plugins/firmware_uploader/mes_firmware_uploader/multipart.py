"""Streaming multipart/form-data reader: the file part goes to disk chunk by chunk, hashed on the way.

Why not FastAPI's ``UploadFile``: Starlette spools the whole body to a temporary file before the
route runs, so a size limit or a hash could only be applied after everything was received. Here
each chunk of the request is parsed as it arrives, written to the destination, added to the
SHA-256, and the upload is refused the moment it passes the limit.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header

from mes_kernel.errors import MesError, Unprocessable

MAX_FIELD_BYTES = 4096


class PayloadTooLarge(MesError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"


@dataclass
class ReceivedUpload:
    """Text fields, and the one file part written to ``path`` with its hash and size."""

    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    path: Path | None = None
    sha256: str = ""
    size: int = 0

    def discard(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


class _Reader:
    """Feeds request chunks to python-multipart's parser and routes each part's bytes."""

    def __init__(self, boundary: bytes, incoming_dir: Path, file_field: str, max_file_bytes: int):
        self.incoming_dir = incoming_dir
        self.file_field = file_field
        self.max_file_bytes = max_file_bytes
        self.result = ReceivedUpload()
        self._digest = hashlib.sha256()
        self._fh = None
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._part_name: str | None = None
        self._part_value = bytearray()
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
        )

    def _part_begin(self) -> None:
        self._headers = {}
        self._part_name = None
        self._part_value = bytearray()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def _headers_finished(self) -> None:
        _kind, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._part_name = options.get(b"name", b"").decode("utf-8", "replace")
        if self._part_name == self.file_field and b"filename" in options:
            if self._fh is not None:
                raise Unprocessable(f"only one {self.file_field!r} part is accepted", code="VALIDATION_ERROR")
            self.result.filename = os.path.basename(options[b"filename"].decode("utf-8", "replace"))
            self.result.path = self.incoming_dir / f"{uuid.uuid4().hex}.part"
            self._fh = self.result.path.open("wb")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._fh is not None and self._part_name == self.file_field:
            self.result.size += len(chunk)
            if self.result.size > self.max_file_bytes:
                raise PayloadTooLarge(f"firmware image exceeds {self.max_file_bytes} bytes")
            self._digest.update(chunk)
            self._fh.write(chunk)
            return
        self._part_value += chunk
        if len(self._part_value) > MAX_FIELD_BYTES:
            raise PayloadTooLarge(f"form field {self._part_name!r} exceeds {MAX_FIELD_BYTES} bytes")

    def _part_end(self) -> None:
        if self._fh is not None and self._part_name == self.file_field:
            self._fh.close()
            return
        if self._part_name:
            self.result.fields[self._part_name] = self._part_value.decode("utf-8", "replace")

    def close(self) -> None:
        if self._fh is not None and not self._fh.closed:
            self._fh.close()
        self.result.sha256 = self._digest.hexdigest()


async def receive_upload(
    *,
    content_type: str | None,
    chunks: AsyncIterator[bytes],
    incoming_dir: Path,
    max_file_bytes: int,
    file_field: str = "file",
) -> ReceivedUpload:
    """Read a multipart body from ``chunks``; the ``file_field`` part lands in ``incoming_dir``.

    The caller moves the file into place or calls :meth:`ReceivedUpload.discard`. On any error the
    partial file is removed before the error propagates.
    """
    kind, options = parse_options_header(content_type or "")
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise Unprocessable("expected a multipart/form-data body with a boundary", code="VALIDATION_ERROR")
    incoming_dir.mkdir(parents=True, exist_ok=True)
    reader = _Reader(boundary, incoming_dir, file_field, max_file_bytes)
    try:
        async for chunk in chunks:
            if chunk:
                reader.parser.write(chunk)
        reader.parser.finalize()
    except BaseException as exc:
        reader.close()
        reader.result.discard()
        if isinstance(exc, MultipartParseError):
            raise Unprocessable(f"malformed multipart body: {exc}", code="VALIDATION_ERROR") from exc
        raise
    reader.close()
    if reader.result.path is None:
        raise Unprocessable(f"a file part named {file_field!r} is required", code="VALIDATION_ERROR")
    return reader.result
