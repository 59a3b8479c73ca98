"""HTTP routes under ``/api/v1/labels``: templates, preview, print, jobs, reprint, printers, stats."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from mes_kernel.api.deps import KernelDep, Principal, SessionDep, require_permission
from mes_kernel.db.models import DeviceJob
from mes_kernel.errors import NotFound

from . import PLUGIN_NAME
from .health import probe_printer
from .jobs import (
    JOB_KIND,
    PrintRequest,
    get_printer,
    job_out,
    list_printers,
    printer_pool,
    reprint,
    submit_print,
)
from .preview import render_png
from .templates import TEMPLATES, get_template

router = APIRouter(prefix="/labels", tags=["labels"])

Key = Annotated[str, Field(min_length=1, max_length=128, description="same key → same job, never a second label")]


class PreviewIn(BaseModel):
    template: str
    fields: dict[str, Any] = Field(default_factory=dict)
    lot_number: str | None = None
    serial_number: str | None = None


class PrintIn(PreviewIn):
    printer: str = Field(description="device code of a label printer, e.g. PRN-01")
    idempotency_key: Key


class ReprintIn(BaseModel):
    idempotency_key: Key | None = None
    reason: str | None = Field(None, max_length=500)


@router.get("/templates", summary="List label templates and their typed fields")
async def list_templates(_: Principal = require_permission("labels:view")) -> list[dict[str, Any]]:
    return [t.describe() for t in TEMPLATES.values()]


@router.get("/templates/{name}", summary="One label template")
async def get_template_route(name: str, _: Principal = require_permission("labels:view")) -> dict[str, Any]:
    return get_template(name).describe()


@router.post(
    "/preview",
    summary="Render a filled label as PNG (validated like a print; nothing is printed)",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
async def preview(body: PreviewIn, _: Principal = require_permission("labels:view")) -> Response:
    request = PrintRequest(
        printer="",
        template=body.template,
        fields=body.fields,
        lot_number=body.lot_number,
        serial_number=body.serial_number,
    )
    png = render_png(get_template(body.template), request.merged_fields())
    return Response(content=png, media_type="image/png")


@router.post("/print", summary="Print a label (idempotent by key); answers the persisted job")
async def print_label(
    body: PrintIn,
    session: SessionDep,
    kernel: KernelDep,
    principal: Principal = require_permission("labels:print"),
) -> JSONResponse:
    request = PrintRequest(
        printer=body.printer,
        template=body.template,
        fields=body.fields,
        idempotency_key=body.idempotency_key,
        lot_number=body.lot_number,
        serial_number=body.serial_number,
    )
    job, created = await submit_print(
        session=session,
        kernel=kernel,
        request=request,
        actor=principal.actor,
        station_code=principal.station_code,
        principal=principal,
    )
    return JSONResponse(job_out(job), status_code=201 if created else 200)


@router.get("/jobs", summary="List print jobs, newest first")
async def list_jobs(
    session: SessionDep,
    _: Principal = require_permission("labels:view"),
    status: Annotated[str | None, Query(pattern="^(queued|sent|done|failed)$")] = None,
    printer: str | None = None,
    lot_number: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    where = [DeviceJob.plugin == PLUGIN_NAME, DeviceJob.kind == JOB_KIND]
    if status:
        where.append(DeviceJob.status == status)
    if printer:
        where.append(DeviceJob.device == printer)
    if lot_number:
        where.append(DeviceJob.lot_number == lot_number)
    total = (await session.execute(select(func.count()).select_from(DeviceJob).where(*where))).scalar_one()
    rows = await session.execute(
        select(DeviceJob).where(*where).order_by(DeviceJob.id.desc()).limit(limit).offset(offset)
    )
    return {"items": [job_out(j) for j in rows.scalars()], "total": total, "limit": limit, "offset": offset}


@router.get("/jobs/{job_id}", summary="One print job")
async def get_job(job_id: int, session: SessionDep, _: Principal = require_permission("labels:view")):
    job = await session.get(DeviceJob, job_id)
    if job is None or job.plugin != PLUGIN_NAME or job.kind != JOB_KIND:
        raise NotFound(f"no print job {job_id}", code="JOB_NOT_FOUND", job_id=job_id)
    return job_out(job)


@router.post("/jobs/{job_id}/reprint", summary="Print a job's label again (explicit, audited)")
async def reprint_job(
    job_id: int,
    session: SessionDep,
    kernel: KernelDep,
    body: ReprintIn | None = None,
    principal: Principal = require_permission("labels:reprint"),
) -> JSONResponse:
    body = body or ReprintIn()
    job, created = await reprint(
        session=session,
        kernel=kernel,
        job_id=job_id,
        actor=principal.actor,
        idempotency_key=body.idempotency_key or f"reprint:{job_id}:{uuid.uuid4()}",
        reason=body.reason,
        station_code=principal.station_code,
        principal=principal,
    )
    return JSONResponse(job_out(job), status_code=201 if created else 200)


@router.get("/printers", summary="Configured label printers (settings redacted)")
async def printers(session: SessionDep, kernel: KernelDep, principal: Principal = require_permission("labels:view")):
    out = []
    for device in await list_printers(session, principal):
        try:
            settings = printer_pool(kernel).driver_for(device).describe()
        except Exception as exc:  # a printer whose driver will not load is still listed, with why
            settings = {"driver": device.driver, "error": str(exc)}
        out.append({"code": device.code, "driver": device.driver, "settings": settings})
    return out


@router.get("/printers/{code}/status", summary="Ask a printer for its state now (~HS)")
async def printer_status(
    code: str, session: SessionDep, kernel: KernelDep, principal: Principal = require_permission("labels:view")
):
    device = await get_printer(session, code, principal)
    return {"printer": code, **(await probe_printer(kernel, device))}


@router.get("/stats/today", summary="Labels printed today (UTC)")
async def printed_today(session: SessionDep, _: Principal = require_permission("labels:view")):
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    count = (
        await session.execute(
            select(func.count())
            .select_from(DeviceJob)
            .where(
                DeviceJob.plugin == PLUGIN_NAME,
                DeviceJob.kind == JOB_KIND,
                DeviceJob.status == "done",
                DeviceJob.updated_at >= start,
            )
        )
    ).scalar_one()
    return {"value": count, "since": start.isoformat()}


@router.get("/stats/jobs-by-status", summary="Print jobs of the last 24 h by status")
async def jobs_by_status(session: SessionDep, _: Principal = require_permission("labels:view")):
    since = datetime.now(UTC) - timedelta(hours=24)
    rows = await session.execute(
        select(DeviceJob.status, func.count())
        .where(DeviceJob.plugin == PLUGIN_NAME, DeviceJob.kind == JOB_KIND, DeviceJob.created_at >= since)
        .group_by(DeviceJob.status)
    )
    counts = dict(rows.all())
    items = [{"status": s, "count": counts.get(s, 0)} for s in ("queued", "sent", "done", "failed")]
    return {"items": items, "since": since.isoformat()}
