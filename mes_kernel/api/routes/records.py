"""Process results: one at a time or in batches, idempotent by key."""

from __future__ import annotations

import json

import orjson
from fastapi import APIRouter, Response

from ...cache import commit
from ...schemas import BatchIn, BatchOut, RecordIn, RecordOut
from ...services import records as record_service
from ..deps import KernelDep, LazySessionDep, Principal, SessionDep, require_permission

router = APIRouter(prefix="/process-records", tags=["process records"])


@router.post(
    "",
    response_model=RecordOut,
    status_code=201,
    summary="Record a process result",
    description="Idempotent by `idempotency_key`: a retry answers 200 with the original record; the same key "
    "with a different body answers 409 `IDEMPOTENCY_CONFLICT`. A closed or scrapped LOT answers 409 `LOT_CLOSED`. "
    "A `recorded_at` outside the station-time window (receipt − `STATION_TIME_MAX_AGE_DAYS` … receipt + "
    "`STATION_TIME_MAX_LEAD_SECONDS`) or in an archived month answers 422 `IMPLAUSIBLE_TIME`. A retry of a record "
    "whose month is archived since answers 200 `{idempotency_key, created_at, duplicate: true, archived: true, "
    "archived_month}` (its body is in the archive), whatever its time.",
    responses={200: {"model": RecordOut, "description": "a retry: the original record"}},
)
async def create_record(
    body: RecordIn,
    session: LazySessionDep,
    kernel: KernelDep,
    principal: Principal = require_permission("records:write"),
):
    record, created = await record_service.create_record(
        session=session,
        cache=kernel.cache,
        record_in=body,
        principal=principal,
        writer=kernel.state.get("record_writer"),
        times=kernel.station_time_window(),
    )
    await commit(session, kernel.cache)
    return _json(record_service.record_out(record), 201 if created else 200)


@router.post(
    "/batch",
    response_model=BatchOut,
    summary="Record up to 1000 results in one transaction",
    description="Each item gets its own outcome (`created`, `duplicate` or `error` with a code); "
    "one bad item never fails the batch (an implausible `recorded_at`: that item's `error` is `IMPLAUSIBLE_TIME`). "
    "A retry of an archived record is `duplicate` with `record` `{idempotency_key, created_at, duplicate: true, "
    "archived: true, archived_month}`.",
)
async def create_batch(
    body: BatchIn, session: SessionDep, kernel: KernelDep, principal: Principal = require_permission("records:write")
):
    await record_service.limit_lock_wait(session, kernel.settings.record_lock_timeout_seconds)
    results = await record_service.create_records_batch(
        session=session, cache=kernel.cache, items=body.records, principal=principal,
        times=kernel.station_time_window(),
    )
    await commit(session, kernel.cache)
    counts = {s: sum(1 for r in results if r["status"] == s) for s in ("created", "duplicate", "error")}
    items = [
        {
            "idempotency_key": item.get("idempotency_key"),
            "status": item["status"],
            "record": record_service.record_out(item["record"]) if item.get("record") is not None else None,
            "error": item.get("error"),
        }
        for item in results
    ]
    return _json(
        {"created": counts["created"], "duplicates": counts["duplicate"], "errors": counts["error"], "results": items}
    )


def _json(content, status: int = 200) -> Response:
    """The hot path answers with orjson directly; the response models above still document it."""
    try:
        body = orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # an integer beyond 64 bits in free-form data: the standard library takes it
        body = json.dumps(content, default=str, ensure_ascii=False).encode()
    return Response(body, status_code=status, media_type="application/json")
