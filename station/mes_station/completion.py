"""Completion files from test equipment: validated against the kernel's JSON Schema, turned into a record.

The schema is ``mes_kernel/completion.schema.json`` (served at ``GET /api/v1/completions/schema``);
the vendor guide is ``docs/completion-files.md``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from mes_kernel.completions import completion_schema
from mes_kernel.contracts import check_identifier

#: namespace of completion-file idempotency keys: the same bytes always give the same key
COMPLETION_KEY_NAMESPACE = uuid.UUID("5d0c6a52-8f8e-4b1c-9a35-3f1f4c1e7a10")

REQUIRED = tuple(completion_schema()["required"])
#: what the file names exactly (a scanner, a label or a LOT carries them byte for byte)
IDENTIFIERS = ("lot_number", "process_id", "serial_number", "defect_code", "worker_id", "equipment_id")
#: a measurement larger than this (as JSON) stays in the report attachment when the file is large
BULKY_MEASUREMENT_BYTES = 1024


class CompletionInvalid(ValueError):
    """The file is complete but does not follow the completion schema; the message says why."""


class AttachmentMissing(CompletionInvalid):
    """A file the completion names in ``attachments`` is not (yet) in the folder."""


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(completion_schema())


@dataclass(frozen=True)
class AttachmentFile:
    """A file that travels with a completion record: where it is now, what it is."""

    name: str
    path: Path
    sha256: str
    size: int
    media_type: str = "application/octet-stream"
    description: str = ""

    def as_record_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": self.name,
            "sha256": self.sha256,
            "size": self.size,
            "media_type": self.media_type,
        }
        if self.description:
            entry["description"] = self.description
        return entry


@dataclass(frozen=True)
class Completion:
    """A validated completion file."""

    lot_number: str
    process_id: str
    result: str
    measurements: dict[str, Any]
    equipment_id: str
    finished_at: str
    serial_number: str | None
    defect_code: str | None
    worker_id: str | None
    sha256: str
    size: int = 0
    started_at: str | None = None
    #: ``attachments`` as the file declares them: ``[{"file", "media_type", "description", "sha256"}]``
    declared_attachments: tuple[dict[str, Any], ...] = ()
    extensions: dict[str, Any] = field(default_factory=dict)
    #: the attachment files found beside the JSON (see :func:`resolve_attachments`), plus the report
    #: itself when it is too large to travel inline
    files: tuple[AttachmentFile, ...] = ()
    #: the name under which the whole report travels as an attachment, when it does
    report_attachment: str | None = None

    @property
    def idempotency_key(self) -> str:
        """Derived from the file's content, so the same file dropped twice is recorded once."""
        return str(uuid.uuid5(COMPLETION_KEY_NAMESPACE, self.sha256))

    def process_record(self, *, default_worker: str) -> dict[str, Any]:
        """The ``POST /process-records`` body; a pure function of the file's content and the worker.

        When the report travels as an attachment, each measurement larger than
        ``BULKY_MEASUREMENT_BYTES`` keeps its unit, limits and verdict and its value is replaced by
        ``{"attachment": <report name>, "pointer": "/measurements/<name>"}`` (RFC 6901).
        """
        measurements = self.measurements
        if self.report_attachment:
            measurements = {k: self._slim(k, v) for k, v in self.measurements.items()}
        data: dict[str, Any] = {
            "measurements": measurements,
            "equipment_id": self.equipment_id,
            "finished_at": self.finished_at,
            "source": "completion_file",
            "sha256": self.sha256,
        }
        if self.started_at:
            data["started_at"] = self.started_at
        if self.files:
            data["attachments"] = [f.as_record_entry() for f in self.files]
        if self.report_attachment:
            data["report_attachment"] = self.report_attachment
        if self.extensions:
            data["extensions"] = self.extensions
        body: dict[str, Any] = {
            "lot_number": self.lot_number,
            "process_id": self.process_id,
            "worker_id": self.worker_id or default_worker,
            "result": self.result,
            "data": data,
            "recorded_at": self.finished_at,
        }
        if self.serial_number:
            body["serial_number"] = self.serial_number
        if self.defect_code:
            body["defect_code"] = self.defect_code
        return body

    def _slim(self, name: str, value: Any) -> Any:
        raw = json.dumps(value, separators=(",", ":"))
        if len(raw) <= BULKY_MEASUREMENT_BYTES:
            return value
        pointer = "/measurements/" + name.replace("~", "~0").replace("/", "~1")
        reference = {"attachment": self.report_attachment, "pointer": pointer, "bytes": len(raw)}
        if isinstance(value, dict) and "value" in value:
            return {**value, "value": reference}
        return reference


def _where(error: Any) -> str:
    path = "/".join(str(p) for p in error.absolute_path)
    return path or "(top level)"


def _plain(error: Any) -> str:
    """One schema violation in plain words, starting with where it is."""
    where, instance = _where(error), error.instance
    shown = repr(instance) if len(repr(instance)) <= 60 else repr(instance)[:60] + "…"
    if error.validator == "enum":
        return f"{where} must be one of {', '.join(repr(v) for v in error.validator_value)} (got {shown})"
    if error.validator == "type":
        kinds = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        return f"{where} must be {' or '.join(kinds)} (got {shown})"
    if (
        error.validator == "pattern"
        and error.absolute_path
        and error.absolute_path[-1] in ("finished_at", "started_at")
    ):
        return f"{where} must be an RFC 3339 time with a zone, e.g. 2026-11-26T05:00:00Z (got {shown})"
    if error.validator == "additionalProperties":
        return f"{where}: {error.message} (vendor fields start with 'x-')"
    if error.validator == "anyOf" and error.absolute_path and error.absolute_path[0] == "measurements":
        return (
            f"{where} must be a measurement {{value, unit, verdict[, low, high]}} or a bare value (got {shown}): "
            + "; ".join(dict.fromkeys(_plain(e) for e in error.context if e.validator != "type"))
        ).rstrip(": ")
    message = error.message if len(error.message) <= 200 else error.message[:200] + "…"
    return f"{where}: {message}"


def _not_json(token: str) -> None:
    # Python's parser takes NaN and ±Infinity; JSON (RFC 8259) and the server do not
    raise json.JSONDecodeError(f"{token} is not a JSON number (RFC 8259)", token, 0)


def parse_completion(content: bytes) -> Completion:
    """Parse and validate a completion file's bytes; raises :class:`CompletionInvalid` with the reason.

    The reason names each problem with its place in the file (``measurements/v/unit: …``).
    """
    try:
        doc = json.loads(content.decode("utf-8-sig"), parse_constant=_not_json)
    except UnicodeDecodeError as exc:
        raise CompletionInvalid(f"not UTF-8 text: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise CompletionInvalid(f"not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise CompletionInvalid("not valid JSON: nested too deeply") from exc
    if not isinstance(doc, dict):
        raise CompletionInvalid(f"top level must be a JSON object, got {type(doc).__name__}")
    problems: list[str] = []
    missing = [f for f in REQUIRED if f not in doc or doc[f] in (None, "")]
    if missing:
        problems.append("missing required field(s): " + ", ".join(missing))
    errors = sorted(_validator().iter_errors(doc), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    for error in errors:
        if error.validator == "required" and not error.absolute_path:
            continue  # said above, in one line
        problems.append(_plain(error))
    finished = doc.get("finished_at")
    if isinstance(finished, str) and finished and not any(p.startswith("finished_at") for p in problems):
        try:
            datetime.fromisoformat(finished.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            problems.append(f"finished_at is not an ISO 8601 time: {finished!r}")
    for key in IDENTIFIERS:  # the server takes them exactly or refuses them: say so here, with the file
        value = doc.get(key)
        if isinstance(value, str) and value:
            try:
                check_identifier(value)
            except ValueError as exc:
                problems.append(f"{key}: {exc}")
    names = [a.get("file") for a in doc.get("attachments") or [] if isinstance(a, dict)]
    if len(names) != len(set(names)):
        problems.append("attachments: each file may be named once")
    if problems:
        raise CompletionInvalid("; ".join(dict.fromkeys(problems)))
    return Completion(
        lot_number=doc["lot_number"],
        process_id=str(doc["process_id"]),
        result=doc["result"],
        measurements=doc["measurements"],
        equipment_id=doc["equipment_id"],
        finished_at=doc["finished_at"],
        serial_number=doc.get("serial_number") or None,
        defect_code=doc.get("defect_code") or None,
        worker_id=doc.get("worker_id") or None,
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(content),
        started_at=doc.get("started_at") or None,
        declared_attachments=tuple(doc.get("attachments") or ()),
        extensions={k: v for k, v in doc.items() if k.startswith("x-")},
    )


def file_sha256(path: Path) -> tuple[str, int]:
    """SHA-256 (hex) and size of a file, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def resolve_attachments(completion: Completion, folder: Path) -> tuple[AttachmentFile, ...]:
    """The declared attachment files in ``folder``, hashed. Raises :class:`AttachmentMissing` for a
    file that is not there and :class:`CompletionInvalid` for one whose SHA-256 differs from the declared."""
    found = []
    for entry in completion.declared_attachments:
        path = folder / entry["file"]
        if not path.is_file():
            raise AttachmentMissing(f"attachment {entry['file']!r} is not in {folder}")
        sha, size = file_sha256(path)
        if entry.get("sha256") and entry["sha256"].lower() != sha:
            raise CompletionInvalid(
                f"attachment {entry['file']!r} has SHA-256 {sha}, the file declares {entry['sha256']}"
            )
        found.append(
            AttachmentFile(
                name=entry["file"],
                path=path,
                sha256=sha,
                size=size,
                media_type=entry.get("media_type") or "application/octet-stream",
                description=entry.get("description") or "",
            )
        )
    return tuple(found)
