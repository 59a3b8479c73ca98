"""Flashing a unit: the checks, the persisted ``DeviceJob``, the breaker-guarded driver call, traceability."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mes_kernel.breakers import OPEN, BreakerOpenError
from mes_kernel.db.base import utcnow
from mes_kernel.db.models import DeviceJob, Lot, StoredFile
from mes_kernel.drivers import driver_version
from mes_kernel.errors import Conflict, MesError, NotFound
from mes_kernel.kernel import Kernel
from mes_kernel.services.device_actions import record_device_action
from mes_kernel.services.lots import FINAL, get_unit

from . import BREAKER_NAME, PLUGIN_NAME
from .drivers.base import FirmwareImage, FirmwareUploaderDriver, FlashFailed, FlashOutcome
from .images import resolve_image, verified_image
from .uploaders import UploaderDevice, driver_pool, get_uploader, uploader_of_station

log = structlog.get_logger(__name__)

JOB_KIND = "flash"
KEY_PREFIX = "firmware:"  # DeviceJob keys are shared with other plugins' jobs
# A job still "sent" after this long was orphaned (the process died mid-flash): a retry may take it over.
STALE_AFTER = timedelta(minutes=15)
TASKS = f"{PLUGIN_NAME}.tasks"


class FlashFailedError(MesError):
    """The flash was attempted and did not succeed; the job says why."""

    status = 502
    code = "FLASH_FAILED"


@dataclass(frozen=True)
class FlashOrder:
    """What the caller asked for (the body of ``POST /firmware/upload``)."""

    serial_number: str
    device: str | None = None
    image_id: int | None = None
    product: str | None = None
    version: str | None = None
    idempotency_key: str | None = None
    operator: str | None = None
    station_code: str | None = None
    wait: bool = True


@dataclass(frozen=True)
class Caller:
    """Who asked: the principal's actor string and, for a station, its code."""

    actor: str
    name: str
    station_code: str | None = None
    #: the principal's kind, station and line: what the kernel's device authority checks
    kind: str = "user"
    station_id: int | None = None
    line_id: int | None = None


@dataclass(frozen=True)
class PreparedFlash:
    """A committed job and everything needed to run it, detached from the request's session."""

    job_id: int
    serial_number: str
    device: UploaderDevice
    image: FirmwareImage
    station_code: str | None
    caller: Caller


def job_view(job: DeviceJob) -> dict[str, Any]:
    result = job.result or {}
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "progress": result.get("progress", 0),
        "stage": result.get("stage"),
        "attempts": job.attempts,
        "device": job.device,
        "serial_number": job.serial_number,
        "lot_number": job.lot_number,
        "image": {k: job.payload.get(k) for k in ("image_id", "product", "version", "sha256", "size")},
        "station": job.payload.get("station"),
        "operator": job.payload.get("operator"),
        "idempotency_key": job.payload.get("idempotency_key"),
        "result": result,
        "error": job.error,
        "created_by": job.created_by,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "updated_at": job.updated_at.isoformat() if job.updated_at else None,
    }


async def get_job(session: AsyncSession, job_id: int) -> DeviceJob:
    job = await session.get(DeviceJob, job_id)
    if job is None or job.plugin != PLUGIN_NAME:
        raise NotFound(f"flash job {job_id} not found", code="JOB_NOT_FOUND", job_id=job_id)
    return job


# ---------------------------------------------------------------- before the device is touched


async def _replay(session: AsyncSession, order: FlashOrder) -> DeviceJob | None:
    """An earlier job with the same idempotency key: returned when done, retried when failed."""
    if not order.idempotency_key:
        return None
    job = (
        await session.execute(select(DeviceJob).where(DeviceJob.idempotency_key == KEY_PREFIX + order.idempotency_key))
    ).scalar_one_or_none()
    if job is None:
        return None
    same_device = order.device is None or job.device == order.device
    earlier = job.payload or {}
    same_image = (order.image_id is None or order.image_id == earlier.get("image_id")) and all(
        asked is None or asked == earlier.get(key) for key, asked in (("product", order.product),
                                                                       ("version", order.version))
    )
    if job.plugin != PLUGIN_NAME or job.serial_number != order.serial_number or not same_device or not same_image:
        raise Conflict(
            "idempotency key already used for a different request", code="IDEMPOTENCY_KEY_REUSED", job_id=job.id
        )
    if job.status in ("queued", "sent") and utcnow() - job.updated_at < STALE_AFTER:
        raise Conflict("this flash is still running", code="FLASH_IN_PROGRESS", job_id=job.id)
    return job


async def _check_order(
    session: AsyncSession, order: FlashOrder, station_code: str | None, caller: Caller
) -> tuple[Lot, StoredFile, UploaderDevice]:
    unit = await get_unit(session, order.serial_number)
    lot = await session.get(Lot, unit.lot_id)
    if lot.status in FINAL:
        raise Conflict(
            f"LOT {lot.lot_number} is {lot.status}; its units can no longer be flashed",
            code="LOT_CLOSED",
            lot_number=lot.lot_number,
            lot_status=lot.status,
        )
    if order.device:
        device = await get_uploader(session, order.device, caller)
    else:
        device = await uploader_of_station(session, station_code, caller)
    image = await resolve_image(session, image_id=order.image_id, product=order.product, version=order.version)
    image_product = image.meta.get("product")
    if image_product != lot.product:
        raise Conflict(
            f"firmware {image_product} {image.meta.get('version')} is not for product {lot.product}",
            code="PRODUCT_MISMATCH",
            image_product=image_product,
            lot_product=lot.product,
            lot_number=lot.lot_number,
        )
    return lot, image, device


async def _refuse_if_breaker_open(kernel: Kernel, device: UploaderDevice) -> None:
    """Answer 503 before writing anything while the device's breaker is open (a retry storm costs nothing)."""
    state = await kernel.breakers.state(BREAKER_NAME, device.code)
    if state.state != OPEN:
        return
    remaining = state.opened_at + kernel.breakers.config_for(BREAKER_NAME, device.line_code).recovery_timeout
    remaining -= kernel.breakers.clock()
    if remaining > 0:
        raise BreakerOpenError(kernel.breakers.key(BREAKER_NAME, device.code), retry_after=math.ceil(remaining))


async def prepare_flash(
    *, session: AsyncSession, kernel: Kernel, order: FlashOrder, caller: Caller
) -> tuple[DeviceJob, PreparedFlash | None]:
    """Check the order and commit its job (status ``sent``). ``(job, None)`` replays a finished job.

    Refusals (unknown unit, closed LOT, wrong product, corrupted image, open breaker) raise
    without creating a job or touching the device.
    """
    earlier = await _replay(session, order)
    if earlier is not None and earlier.status == "done":
        return earlier, None
    station_code = caller.station_code or order.station_code
    lot, image_row, device = await _check_order(session, order, station_code, caller)
    image = await verified_image(kernel.files_dir, image_row)
    await _refuse_if_breaker_open(kernel, device)
    station_code = station_code or device.station_code
    job = earlier or DeviceJob(
        kind=JOB_KIND,
        plugin=PLUGIN_NAME,
        device=device.code,
        idempotency_key=KEY_PREFIX + order.idempotency_key if order.idempotency_key else None,
        lot_number=lot.lot_number,
        serial_number=order.serial_number,
        created_by=caller.actor,
        attempts=0,
    )
    job.status, job.attempts = "sent", job.attempts + 1
    job.payload = {
        "image_id": image_row.id,
        "product": image.product,
        "version": image.version,
        "sha256": image.sha256,
        "size": image.size,
        "driver": device.driver,
        "station": station_code,
        "operator": order.operator or caller.name,
        "idempotency_key": order.idempotency_key,
    }
    job.result, job.error = {"progress": 0, "stage": "queued"}, None
    session.add(job)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise Conflict("a flash with this idempotency key is already running", code="FLASH_IN_PROGRESS") from None
    return job, PreparedFlash(job.id, order.serial_number, device, image, station_code, caller)


# ---------------------------------------------------------------- the flash itself


def _progress_writer(kernel: Kernel, job_id: int):
    """A progress callback that stores progress in the job, at most every 10 % (and at 100 %)."""
    last: dict[str, Any] = {"progress": -100, "stage": None}

    async def on_progress(percent: int, stage: str) -> None:
        if percent - last["progress"] < 10 and percent < 100 and stage == last["stage"]:
            return
        last.update(progress=percent, stage=stage)
        async with kernel.sessionmaker() as session, session.begin():
            await session.execute(
                update(DeviceJob)
                .where(DeviceJob.id == job_id, DeviceJob.status == "sent")
                .values(result={"progress": percent, "stage": stage})
            )

    return on_progress


def _short(exc: BaseException) -> str:
    """The exception's type and first line (httpx appends a documentation link on a second line)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


async def run_flash(kernel: Kernel, prepared: PreparedFlash) -> DeviceJob:
    """Flash through the device's breaker and driver; store the outcome in the job and the unit's history.

    Returns the finished job, or raises — after the outcome is committed — ``BreakerOpenError``
    (503) or :class:`FlashFailedError` (502, or 500 for a driver bug) carrying ``job_id``.
    """
    device = prepared.device
    driver = await driver_pool(kernel).get(device)
    error: MesError | None = None
    outcome: FlashOutcome | None = None
    try:
        outcome = await kernel.breakers.call(
            BREAKER_NAME,
            device.code,
            lambda: driver.flash(
                serial_number=prepared.serial_number,
                image=prepared.image,
                on_progress=_progress_writer(kernel, prepared.job_id),
            ),
            line=device.line_code,
        )
        ending = ("ok", None, {})
    except BreakerOpenError as exc:
        error = exc
        ending = ("refused", exc.message, {"reason": "CIRCUIT_OPEN", "retry_after": exc.extra.get("retry_after")})
    except httpx.HTTPError as exc:
        message = f"uploader {device.code} failed: {_short(exc)}"
        error = FlashFailedError(message, job_id=prepared.job_id, reason="UPLOADER_HTTP_ERROR")
        ending = ("failed", message, {"reason": "UPLOADER_HTTP_ERROR"})
    except FlashFailed as exc:
        error = FlashFailedError(str(exc), job_id=prepared.job_id, reason=exc.reason)
        ending = ("failed", str(exc), {"reason": exc.reason, **exc.detail})
    except Exception as exc:
        log.exception("flash_crashed", device=device.code, serial_number=prepared.serial_number, job_id=prepared.job_id)
        message = f"flash crashed: {_short(exc)}"
        error = FlashFailedError(message, status=500, job_id=prepared.job_id, reason="DRIVER_ERROR")
        ending = ("failed", message, {"reason": "DRIVER_ERROR"})
    outcome_name, message, detail = ending
    async with kernel.sessionmaker() as session:
        job = await _finish(session, prepared, driver, outcome_name, outcome=outcome, error=message, detail=detail)
    if error is not None:
        raise error
    return job


async def _finish(
    session: AsyncSession,
    prepared: PreparedFlash,
    driver: FirmwareUploaderDriver,
    outcome_name: str,
    *,
    outcome: FlashOutcome | None,
    error: str | None,
    detail: dict[str, Any],
) -> DeviceJob:
    """Store the job's end state and the unit's history entry in one transaction."""
    job = await session.get(DeviceJob, prepared.job_id)
    result: dict[str, Any] = {"progress": 100 if outcome else (job.result or {}).get("progress", 0)}
    if outcome is not None:
        result.update(
            stage="done",
            flash_id=outcome.flash_id,
            device_sha256=outcome.sha256,
            duration_seconds=outcome.duration_seconds,
            **outcome.detail,
        )
    else:
        result.update(stage=outcome_name, **detail)
    job.status = "done" if outcome is not None else "failed"
    job.result, job.error = result, error
    image = prepared.image
    await record_device_action(
        session=session,
        action="flash",
        plugin=PLUGIN_NAME,
        device=job.device,
        driver=driver.name or type(driver).__name__,
        driver_version=driver_version(driver),
        actor=prepared.caller.actor,
        outcome=outcome_name,
        serial_number=job.serial_number,
        station_code=prepared.station_code,
        detail={
            "job_id": job.id,
            "image_id": job.payload.get("image_id"),
            "product": image.product,
            "version": image.version,
            "sha256": image.sha256,
            "size": image.size,
            "operator": job.payload.get("operator"),
            "attempt": job.attempts,
            **({"flash_id": outcome.flash_id, "duration_seconds": outcome.duration_seconds} if outcome else {}),
            **({"error": error} if error else {}),
            **detail,
        },
    )
    await session.commit()
    return job


# ---------------------------------------------------------------- the two ways to run it


async def flash_unit(
    *, session: AsyncSession, kernel: Kernel, order: FlashOrder, caller: Caller
) -> tuple[DeviceJob, bool]:
    """Flash and wait for the end. Returns ``(job, replayed)``; raises with a stable code otherwise."""
    job, prepared = await prepare_flash(session=session, kernel=kernel, order=order, caller=caller)
    if prepared is None:
        return job, True
    return await run_flash(kernel, prepared), False


def start_in_background(kernel: Kernel, prepared: PreparedFlash) -> None:
    """Run the flash after the response (``wait: false``); its outcome lands in the job as usual."""

    async def run() -> None:
        try:
            await run_flash(kernel, prepared)
        except MesError:
            pass  # already stored in the job and the unit's history

    tasks: set[asyncio.Task] = kernel.state.setdefault(TASKS, set())
    task = asyncio.create_task(run(), name=f"flash-job-{prepared.job_id}")
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def wait_for_background(kernel: Kernel, timeout: float = 10.0) -> None:
    """At shutdown: let running flashes finish for a while, then cancel the rest (a retry takes them over)."""
    tasks: set[asyncio.Task] = kernel.state.get(TASKS, set())
    if not tasks:
        return
    _done, pending = await asyncio.wait(set(tasks), timeout=timeout)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=1.0)
