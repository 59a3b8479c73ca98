"""HTTP routes under ``/api/v1/labels``: templates (upload, versions, retire), preview, print, jobs,
reprint, printers, stats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from mes_kernel.api.deps import KernelDep, Principal, SessionDep, require_permission
from mes_kernel.contracts import Comment, Identifier, Name, checked
from mes_kernel.db.models import DeviceJob
from mes_kernel.errors import NotFound, Unprocessable
from mes_kernel.ratelimit import COUNTS_AS_READ

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
from .preview import render_preview
from .store import create_template, ensure_seeded, get_stored, list_stored, retire_template, versions_of
from .validation import validate_zpl

router = APIRouter(prefix="/labels", tags=["labels"])

Key = Annotated[str, Field(min_length=1, max_length=128, description="same key → same job, never a second label")]


class PreviewIn(BaseModel):
    template: str = Field(max_length=64)
    template_version: int | None = Field(None, ge=1, description="a stored version; the latest if left out")
    fields: dict[str, Any] = Field(default_factory=dict)
    lot_number: Identifier | None = Field(None, max_length=64)
    serial_number: Identifier | None = Field(None, max_length=64)
    sample: bool = Field(False, description="fill every field left out with a sample value of its type")
    format: Literal["png", "zpl"] = Field(
        "png",
        description="png: the server's drawing; zpl: the filled ZPL exactly as a print would send it "
        "(UTF-8 text), for a renderer of the caller's own such as the dashboard's in-browser preview",
    )


class PrintIn(BaseModel):
    template: str = Field(max_length=64)
    fields: dict[str, Any] = Field(default_factory=dict)
    lot_number: Identifier | None = Field(None, max_length=64)
    serial_number: Identifier | None = Field(None, max_length=64)
    printer: Identifier = Field(min_length=1, max_length=64, description="device code of a label printer, e.g. PRN-01")
    idempotency_key: Key


class ReprintIn(BaseModel):
    """A reprint the caller asked for once: a retry with the same key answers the first reprint job."""

    idempotency_key: Key
    reason: Comment | None = Field(None, max_length=500)


class TemplateIn(BaseModel):
    """A label designer's ZPL file and the variable fields it takes."""

    name: str = Field(min_length=1, max_length=64, description="lower-case letters, digits, '_' or '-'")
    zpl: str = Field(min_length=1, description="the ZPL file as exported (UTF-8, one ^XA … ^XZ format)")
    fields: list[dict[str, Any]] = Field(
        default_factory=list,
        description='declarations {"name", "type", "required", "max_length", "description", "fn"}: '
        "a {{name}} placeholder in field data, or the ^FN number that marks the field",
    )
    title: Name = Field("", max_length=200)
    description: Comment = Field("", max_length=2000)
    dpi: int = 203


class InspectIn(BaseModel):
    """A ZPL file the upload dialog is about to save."""

    zpl: str = Field(min_length=1, description="the ZPL file as exported (UTF-8, one ^XA … ^XZ format)")


class RetireIn(BaseModel):
    reason: Comment | None = Field(None, max_length=500)


@router.get("/templates", summary="List label templates (latest version of each) and their typed fields")
async def list_templates(
    session: SessionDep,
    kernel: KernelDep,
    _: Principal = require_permission("labels:view"),
    include_retired: bool = False,
) -> list[dict[str, Any]]:
    await ensure_seeded(session, kernel.state)
    return [t.describe() for t in await list_stored(session, include_retired=include_retired)]


@router.post(
    "/templates",
    summary=(
        "Register a plant's ZPL label (JSON {name, zpl, fields} or a multipart file); answers the new "
        "version and `warnings` naming what of a designer's export was left out"
    ),
    status_code=201,
    responses={422: {"description": "ZPL_INVALID (the file) or TEMPLATE_INVALID (name or fields)"}},
)
async def upload_template(
    request: Request,
    session: SessionDep,
    kernel: KernelDep,
    principal: Principal = require_permission("labels:templates"),
) -> dict[str, Any]:
    await ensure_seeded(session, kernel.state)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        try:
            form = await request.form()
        except Exception as exc:  # a body that is not a readable form
            raise Unprocessable(f"the form cannot be read: {exc}", code="TEMPLATE_INVALID") from None
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise Unprocessable(
                "multipart upload needs a 'file' part with the ZPL", code="TEMPLATE_INVALID", field="file"
            )
        raw = await upload.read()
        name = form.get("name") or (upload.filename or "").rsplit(".", 1)[0].lower()
        fields: Any = form.get("fields") or "[]"
        title = checked(Annotated[Name, Field(max_length=200)], str(form.get("title") or ""), field="title")
        description = checked(
            Annotated[Comment, Field(max_length=2000)], str(form.get("description") or ""), field="description"
        )
        try:
            dpi = int(str(form.get("dpi") or 203))
        except ValueError:
            raise Unprocessable("dpi must be a whole number", code="TEMPLATE_INVALID", field="dpi") from None
    else:
        try:
            body = TemplateIn.model_validate_json(await request.body())
        except ValueError as exc:
            errors = getattr(exc, "errors", lambda: [])()
            raise Unprocessable(
                "the body must be JSON {name, zpl, fields, title, description}",
                code="VALIDATION_ERROR",
                errors=[{"loc": e.get("loc"), "msg": e.get("msg"), "type": e.get("type")} for e in errors],
            ) from None
        raw, name, fields, title, description, dpi = (
            body.zpl,
            body.name,
            body.fields,
            body.title,
            body.description,
            body.dpi,
        )
    template, warnings = await create_template(
        session=session,
        name=str(name),
        zpl=raw,
        fields=fields,
        title=title,
        description=description,
        dpi=dpi,
        actor=principal.actor,
    )
    # ``warnings``: what of a designer's export was left out and why (empty for a bare label file)
    return {**template.describe(with_zpl=True), "warnings": warnings}


@router.post(
    "/templates/inspect",
    summary=(
        "What the server reads in a ZPL file before it is saved: its ^FN fields (number, prompt, default "
        "data, uses, what they draw), {{name}} placeholders, size and warnings; nothing is stored"
    ),
    openapi_extra=COUNTS_AS_READ,
    responses={422: {"description": "ZPL_INVALID naming the command and its byte offset"}},
)
async def inspect_template(body: InspectIn, _: Principal = require_permission("labels:templates")) -> dict[str, Any]:
    # the same reading an upload makes (validate_zpl), so the dialog shows what the server will see
    _, info = validate_zpl(body.zpl)
    return info.describe()


@router.get("/templates/{name}", summary="One label template with its ZPL (latest version, or ?version=N)")
async def get_template_route(
    name: str,
    session: SessionDep,
    kernel: KernelDep,
    _: Principal = require_permission("labels:view"),
    version: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    await ensure_seeded(session, kernel.state)
    return (await get_stored(session, name, version=version, allow_retired=True)).describe(with_zpl=True)


@router.get("/templates/{name}/versions", summary="Every version of a label template, newest first")
async def template_versions(
    name: str, session: SessionDep, kernel: KernelDep, _: Principal = require_permission("labels:view")
) -> list[dict[str, Any]]:
    await ensure_seeded(session, kernel.state)
    return [t.describe() for t in await versions_of(session, name)]


@router.post("/templates/{name}/retire", summary="Retire a label template: no new prints until a new version")
async def retire(
    name: str,
    session: SessionDep,
    kernel: KernelDep,
    body: RetireIn | None = None,
    principal: Principal = require_permission("labels:templates"),
) -> dict[str, Any]:
    await ensure_seeded(session, kernel.state)
    template = await retire_template(
        session=session, name=name, actor=principal.actor, reason=(body or RetireIn()).reason
    )
    return template.describe()


@router.post(
    "/preview",
    summary="Render a filled label as PNG (validated like a print; nothing is printed)",
    openapi_extra=COUNTS_AS_READ,
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "text/plain": {}}}},
)
async def preview(
    body: PreviewIn, session: SessionDep, kernel: KernelDep, _: Principal = require_permission("labels:view")
) -> Response:
    await ensure_seeded(session, kernel.state)
    template = await get_stored(session, body.template, version=body.template_version, allow_retired=True)
    request = PrintRequest(
        printer="",
        template=body.template,
        fields=body.fields,
        lot_number=body.lot_number,
        serial_number=body.serial_number,
    )
    values = request.merged_fields(template)
    if body.sample:
        values = {**template.sample_values(), **{k: v for k, v in values.items() if v not in (None, "")}}
    if body.format == "zpl":
        return Response(
            content=template.render_zpl(values),
            media_type="text/plain; charset=utf-8",
            headers={"X-Template-Version": str(template.version)},
        )
    png, drawn = render_preview(template, values)
    left_out = [f"{d.kind}@{d.x},{d.y}" for d in drawn if not d.drawn]
    return Response(
        content=png,
        media_type="image/png",
        headers={"X-Template-Version": str(template.version), "X-Preview-Not-Drawn": " ".join(left_out)[:1000]},
    )


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
    body: ReprintIn,
    principal: Principal = require_permission("labels:reprint"),
) -> JSONResponse:
    job, created = await reprint(
        session=session,
        kernel=kernel,
        job_id=job_id,
        actor=principal.actor,
        idempotency_key=body.idempotency_key,
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
