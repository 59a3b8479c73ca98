"""Completion files from test equipment: the schema they must follow and the record they become."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: namespace of completion-file idempotency keys: the same bytes always give the same key
COMPLETION_KEY_NAMESPACE = uuid.UUID("5d0c6a52-8f8e-4b1c-9a35-3f1f4c1e7a10")

REQUIRED = ("lot_number", "process_id", "result", "measurements", "equipment_id", "finished_at")


class CompletionInvalid(ValueError):
    """The file is complete but does not follow the completion schema; the message says why."""


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

    @property
    def idempotency_key(self) -> str:
        """Derived from the file's content, so the same file dropped twice is recorded once."""
        return str(uuid.uuid5(COMPLETION_KEY_NAMESPACE, self.sha256))

    def process_record(self, *, default_worker: str) -> dict[str, Any]:
        """The ``POST /process-records`` body; a pure function of the file's content and the worker."""
        body: dict[str, Any] = {
            "lot_number": self.lot_number,
            "process_id": self.process_id,
            "worker_id": self.worker_id or default_worker,
            "result": self.result,
            "data": {
                "measurements": self.measurements,
                "equipment_id": self.equipment_id,
                "finished_at": self.finished_at,
                "source": "completion_file",
                "sha256": self.sha256,
            },
            "recorded_at": self.finished_at,
        }
        if self.serial_number:
            body["serial_number"] = self.serial_number
        if self.defect_code:
            body["defect_code"] = self.defect_code
        return body


def parse_completion(content: bytes) -> Completion:
    """Parse and validate a completion file's bytes; raises :class:`CompletionInvalid` with the reason."""
    try:
        doc = json.loads(content.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise CompletionInvalid(f"not UTF-8 text: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise CompletionInvalid(f"not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise CompletionInvalid(f"top level must be a JSON object, got {type(doc).__name__}")
    problems: list[str] = []
    missing = [f for f in REQUIRED if f not in doc or doc[f] in (None, "")]
    if missing:
        problems.append("missing required field(s): " + ", ".join(missing))
    for name in ("lot_number", "equipment_id"):
        if name in doc and doc[name] not in (None, "") and not isinstance(doc[name], str):
            problems.append(f"{name} must be a string")
    if "process_id" in doc and not isinstance(doc["process_id"], str | int) or isinstance(doc.get("process_id"), bool):
        problems.append("process_id must be a string or an integer")
    if "result" in doc and doc["result"] not in ("pass", "fail"):
        problems.append(f"result must be 'pass' or 'fail', got {doc['result']!r}")
    if "measurements" in doc and not isinstance(doc["measurements"], dict):
        problems.append("measurements must be an object")
    for name in ("serial_number", "defect_code", "worker_id"):
        if doc.get(name) is not None and not isinstance(doc[name], str):
            problems.append(f"{name} must be a string when present")
    finished = doc.get("finished_at")
    if isinstance(finished, str) and finished:
        try:
            parsed = datetime.fromisoformat(finished.replace("Z", "+00:00"))
        except ValueError:
            problems.append(f"finished_at is not an ISO 8601 time: {finished!r}")
        else:
            if parsed.tzinfo is None:
                problems.append("finished_at must carry a timezone (e.g. 2026-11-26T05:00:00Z)")
    elif finished not in (None, ""):
        problems.append("finished_at must be a string")
    if problems:
        raise CompletionInvalid("; ".join(problems))
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
    )
