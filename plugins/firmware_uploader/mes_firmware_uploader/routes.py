"""HTTP routes under ``/api/v1/firmware``: image registry, flashing (the spec's ``/upload``), jobs, stats."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from mes_kernel.api.deps import KernelDep, Principal, SessionDep, require_permission
from mes_kernel.contracts import Identifier
from mes_kernel.db.models import DeviceAction, DeviceJob

from . import PLUGIN_NAME
from .flashing import Caller, FlashOrder, flash_unit, get_job, job_view, prepare_flash, start_in_background
from .health import devices_health
from .images import (
    delete_image,
    get_image,
    image_view,
    incoming_dir,
    list_images,
    register_image,
    registration_lock,
)
from .multipart import receive_upload

PERM_READ = "firmware:read"
PERM_IMAGES = "firmware:images"
PERM_DELETE = "firmware:delete"
PERM_FLASH = "firmware:flash"

_MULTIPART_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "product", "version"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "product": {"type": "string", "maxLength": 64},
                        "version": {"type": "string", "maxLength": 64},
                        "notes": {"type": "string"},
                    },
                }
            }
        },
    }
}


class FlashIn(BaseModel):
    """A flash request: which unit, which image (by id or product + version), which uploader."""

    serial_number: Identifier = Field(min_length=1, max_length=64)
    device: Identifier | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="code of a firmware_uploader device; default: the only uploader of the calling station",
    )
    image_id: int | None = None
    product: Identifier | None = Field(None, max_length=64)
    version: Identifier | None = Field(None, max_length=64)
    idempotency_key: str = Field(
        min_length=1,
        max_length=100,
        description="required: one key per flash the operator asked for; a retry with the same key never "
        "flashes twice (200 with the job), the same key for another unit, device or image is 409 "
        "IDEMPOTENCY_KEY_REUSED",
    )
    operator: Identifier | None = Field(None, max_length=100, description="worker at the station, if not the caller")
    station_code: Identifier | None = Field(
        None, max_length=64, description="where a person flashes from (a station's own token always wins)"
    )
    wait: bool = Field(
        True, description="true: answer when the flash has ended; false: answer 202 at once, follow the job"
    )


def _caller(principal: Principal) -> Caller:
    return Caller(
        actor=principal.actor,
        name=principal.name,
        station_code=principal.station_code,
        kind=principal.kind,
        station_id=principal.station_id,
        line_id=principal.line_id,
    )


def build_router() -> APIRouter:
    router = APIRouter(prefix="/firmware", tags=["firmware"])

    @router.post(
        "/images",
        status_code=201,
        summary="Upload a firmware image (multipart: file, product, version); SHA-256 computed while storing",
        openapi_extra=_MULTIPART_DOC,
    )
    async def upload_image(
        request: Request,
        session: SessionDep,
        kernel: KernelDep,
        principal: Principal = require_permission(PERM_IMAGES),
    ) -> dict[str, Any]:
        files_dir = kernel.files_dir
        upload = await receive_upload(
            content_type=request.headers.get("content-type"),
            chunks=request.stream(),
            incoming_dir=incoming_dir(files_dir),
            max_file_bytes=kernel.settings.max_upload_bytes,
        )
        async with registration_lock:
            row = await register_image(session=session, files_dir=files_dir, upload=upload, actor=principal.actor)
            await session.commit()
        return image_view(row)

    @router.get("/images", summary="Firmware images, optionally of one product")
    async def images(
        session: SessionDep,
        product: str | None = None,
        include_deleted: bool = False,
        _principal: Principal = require_permission(PERM_READ),
    ) -> dict[str, Any]:
        rows = await list_images(session, product=product, include_deleted=include_deleted)
        return {"items": [image_view(r) for r in rows]}

    @router.get("/images/{image_id}", summary="One firmware image")
    async def image(
        image_id: int, session: SessionDep, _principal: Principal = require_permission(PERM_READ)
    ) -> dict[str, Any]:
        return image_view(await get_image(session, image_id))

    @router.delete("/images/{image_id}", summary="Delete an image (admin; soft delete, the file is kept)")
    async def remove_image(
        image_id: int, session: SessionDep, principal: Principal = require_permission(PERM_DELETE)
    ) -> dict[str, Any]:
        row = await delete_image(session=session, image_id=image_id, actor=principal.actor)
        await session.commit()
        return image_view(row)

    @router.post(
        "/upload",
        status_code=201,
        summary="Flash a unit with a firmware image through an uploader (the spec's route)",
        responses={
            200: {"description": "replay of a finished flash with the same idempotency key"},
            202: {"description": "wait=false: the job is running; follow GET /firmware/jobs/{id}"},
            409: {"description": "LOT_CLOSED, PRODUCT_MISMATCH, IMAGE_CORRUPTED, FLASH_IN_PROGRESS"},
            502: {"description": "FLASH_FAILED: the job failed; see job_id"},
            503: {"description": "SERVICE_UNAVAILABLE: the uploader's breaker is open (retry_after)"},
        },
    )
    async def flash(
        body: FlashIn,
        session: SessionDep,
        kernel: KernelDep,
        principal: Principal = require_permission(PERM_FLASH),
    ):
        order = FlashOrder(**body.model_dump())
        caller = _caller(principal)
        if order.wait:
            job, replayed = await flash_unit(session=session, kernel=kernel, order=order, caller=caller)
            view = {**job_view(job), "replayed": replayed}
            return JSONResponse(view, status_code=200) if replayed else view
        job, prepared = await prepare_flash(session=session, kernel=kernel, order=order, caller=caller)
        if prepared is None:
            return JSONResponse({**job_view(job), "replayed": True}, status_code=200)
        start_in_background(kernel, prepared)
        return JSONResponse({**job_view(job), "replayed": False}, status_code=202)

    @router.get("/jobs", summary="Flash jobs, newest first")
    async def jobs(
        session: SessionDep,
        serial_number: str | None = None,
        status: str | None = None,
        limit: int = Query(100, ge=1, le=1000),
        _principal: Principal = require_permission(PERM_READ),
    ) -> dict[str, Any]:
        query = select(DeviceJob).where(DeviceJob.plugin == PLUGIN_NAME)
        if serial_number:
            query = query.where(DeviceJob.serial_number == serial_number)
        if status:
            query = query.where(DeviceJob.status == status)
        rows = (await session.execute(query.order_by(DeviceJob.id.desc()).limit(limit))).scalars()
        return {"items": [job_view(j) for j in rows]}

    @router.get("/jobs/{job_id}", summary="A flash job: progress and outcome")
    async def job(
        job_id: int, session: SessionDep, _principal: Principal = require_permission(PERM_READ)
    ) -> dict[str, Any]:
        return job_view(await get_job(session, job_id))

    @router.get("/devices", summary="Uploader devices with their health and breaker state")
    async def devices(kernel: KernelDep, _principal: Principal = require_permission(PERM_READ)) -> dict[str, Any]:
        return {"items": await devices_health(kernel)}

    @router.get("/stats/today", summary="Flashes today (UTC) by outcome (bar panel)")
    async def stats_today(session: SessionDep, _principal: Principal = require_permission(PERM_READ)) -> dict[str, Any]:
        start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        rows = (
            await session.execute(
                select(DeviceAction.outcome, func.count())
                .where(
                    DeviceAction.plugin == PLUGIN_NAME,
                    DeviceAction.action == "flash",
                    DeviceAction.created_at >= start,
                )
                .group_by(DeviceAction.outcome)
            )
        ).all()
        counts = {"ok": 0, "failed": 0, "refused": 0} | {outcome: n for outcome, n in rows}
        return {
            "since": start.isoformat(),
            "total": sum(counts.values()),
            "items": [{"outcome": k, "count": v} for k, v in counts.items()],
        }

    return router
