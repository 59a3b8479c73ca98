"""Print jobs: persisted as kernel ``DeviceJob`` rows, sent through the breaker, traced to the LOT.

A job goes queued → sent → done | failed. "sent" is written before the driver is called, so a
job left in "sent" after a crash reads as "may have printed". A failed attempt is retried (up to
``max_attempts``) only when the label surely did not reach the printer; one that may have
printed is never repeated behind the operator's back — that is what an explicit reprint is for.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mes_kernel.audit import write_audit
from mes_kernel.breakers import BreakerOpenError
from mes_kernel.contracts import ResolvedDevice, devices_for, ensure_lot_open, resolve_device
from mes_kernel.db.models import DeviceJob
from mes_kernel.drivers import DriverLoadError, driver_version
from mes_kernel.errors import Conflict, MesError, NotFound, Unprocessable
from mes_kernel.services.device_actions import record_device_action

from . import DEVICE_KIND, DRIVER_NAMESPACE, PLUGIN_NAME
from .drivers.base import LabelPrinterDriver, PrinterError
from .store import ensure_seeded, get_stored
from .templates import LabelTemplate

BREAKER = "label_printer"
JOB_KIND = "print"
DEFAULT_MAX_ATTEMPTS = 3
# Device-config keys that belong to the plugin, not to the driver's constructor.
PLUGIN_SETTINGS = frozenset({"max_attempts", "retry_delay"})


class PrintFailed(MesError):
    """The printer did not take the label; the job is kept as failed with the reason."""

    status = 502
    code = "PRINT_FAILED"


class PrinterPool:
    """One driver instance per configured printer, rebuilt when its configuration changes."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self._drivers: dict[str, tuple[str, LabelPrinterDriver]] = {}

    def driver_for(self, device: ResolvedDevice) -> LabelPrinterDriver:
        settings = {k: v for k, v in (device.config or {}).items() if k not in PLUGIN_SETTINGS}
        fingerprint = json.dumps([device.driver, settings], sort_keys=True, default=str)
        cached = self._drivers.get(device.code)
        if cached and cached[0] == fingerprint:
            return cached[1]
        driver = self.kernel.load_driver(DRIVER_NAMESPACE, device.driver, **settings)
        self._drivers[device.code] = (fingerprint, driver)
        return driver

    async def close(self) -> None:
        for _, driver in self._drivers.values():
            try:
                await driver.close()
            except Exception:  # closing one printer must not stop closing the others
                pass
        self._drivers.clear()


def printer_pool(kernel: Any) -> PrinterPool:
    """The kernel's printer pool (made on first use)."""
    pool = kernel.state.get("label_printer.pool")
    if pool is None:
        pool = kernel.state["label_printer.pool"] = PrinterPool(kernel)
    return pool


@dataclass
class PrintRequest:
    """What a caller asks to print."""

    printer: str
    template: str
    fields: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str = ""
    lot_number: str | None = None
    serial_number: str | None = None
    template_version: int | None = None

    def merged_fields(self, template: LabelTemplate) -> dict[str, Any]:
        """Template fields, with the top-level LOT and serial filled in where the template has them."""
        names = {f.name for f in template.fields}
        values = dict(self.fields)
        for name in ("lot_number", "serial_number"):
            given = getattr(self, name)
            if given is None or name not in names:
                continue
            if values.get(name) not in (None, "", given):
                raise Unprocessable(f"field {name!r} differs from the request's {name}", field=name)
            values[name] = given
        return values

    def fingerprint(self) -> str:
        body = [self.printer, self.template, self.fields, self.lot_number, self.serial_number]
        if self.template_version is not None:
            body.append(self.template_version)
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class _Everyone:
    """The kernel's own callers (health checks, listings): not bound to a station."""

    kind: str = "user"
    station_id: int | None = None
    line_id: int | None = None


KERNEL = _Everyone()


async def get_printer(session: AsyncSession, code: str, principal: Any = KERNEL) -> ResolvedDevice:
    """The label printer ``code`` as ``principal`` may use it (the kernel's device authority decides:
    404 ``DEVICE_NOT_FOUND``, 403 ``DEVICE_NOT_ON_STATION``, 422 ``DEVICE_KIND_MISMATCH``, 409 ``DEVICE_DISABLED``)."""
    return await resolve_device(session=session, principal=principal, code=code, kind=DEVICE_KIND)


async def list_printers(session: AsyncSession, principal: Any = KERNEL) -> list[ResolvedDevice]:
    """Every enabled label printer ``principal`` may use."""
    return await devices_for(session=session, principal=principal, kind=DEVICE_KIND)


def job_out(job: DeviceJob) -> dict[str, Any]:
    """A job as the API shows it (the ZPL itself stays out of listings)."""
    payload = job.payload or {}
    return {
        "id": job.id,
        "printer": job.device,
        "status": job.status,
        "attempts": job.attempts,
        "template": payload.get("template"),
        "template_version": payload.get("template_version"),
        "fields": payload.get("fields", {}),
        "lot_number": job.lot_number,
        "serial_number": job.serial_number,
        "idempotency_key": job.idempotency_key,
        "reprint_of": payload.get("reprint_of"),
        "error": job.error,
        "result": job.result or {},
        "created_by": job.created_by,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "updated_at": job.updated_at.isoformat() if job.updated_at else None,
    }


async def _trace_targets(session: AsyncSession, request: PrintRequest, values: dict[str, Any]):
    lot_number = request.lot_number or values.get("lot_number") or None
    serial_number = request.serial_number or values.get("serial_number") or None
    lot = await ensure_lot_open(session=session, lot_number=lot_number, serial_number=serial_number)
    return (lot.lot_number if lot else None), serial_number


async def submit_print(
    *,
    session: AsyncSession,
    kernel: Any,
    request: PrintRequest,
    actor: str,
    station_code: str | None = None,
    reprint_of: int | None = None,
    principal: Any = KERNEL,
) -> tuple[DeviceJob, bool]:
    """Validate, persist and print; return ``(job, created)``.

    The same idempotency key returns the first job and prints nothing more — unless that job
    failed before any label reached the printer, in which case the same job is tried again.
    """
    await ensure_seeded(session, kernel.state)
    # a reprint reproduces the version its original used, even if the template is retired since
    template = await get_stored(
        session, request.template, version=request.template_version, allow_retired=reprint_of is not None
    )
    values = request.merged_fields(template)
    zpl = template.render_zpl(values)
    device = await get_printer(session, request.printer, principal)

    job = await _job_by_key(session, request.idempotency_key)
    if job is not None:
        if job.payload.get("request_hash") != request.fingerprint() or job.payload.get("reprint_of") != reprint_of:
            raise Conflict(
                "idempotency key was used for a different print request",
                code="IDEMPOTENCY_KEY_REUSED",
                job_id=job.id,
            )
        if not (job.status == "failed" and not (job.result or {}).get("label_sent", True)):
            # a retry of a print made before its LOT closed is answered, not refused: nothing prints
            return job, False
    # about to print (a new job, or one that failed before any label left): the LOT must be open
    lot_number, serial_number = await _trace_targets(session, request, values)
    if job is None:
        job = DeviceJob(
            kind=JOB_KIND,
            plugin=PLUGIN_NAME,
            device=device.code,
            idempotency_key=request.idempotency_key,
            status="queued",
            attempts=0,
            lot_number=lot_number,
            serial_number=serial_number,
            payload={
                "template": template.name,
                "template_version": template.version,
                "fields": values,
                "zpl": zpl.decode("utf-8"),
                "request_hash": request.fingerprint(),
                "reprint_of": reprint_of,
            },
            result={},
            created_by=actor,
        )
        session.add(job)
        try:
            await session.flush()
        except IntegrityError:
            # A concurrent request with the same key won the insert: answer with its job.
            await session.rollback()
            existing = await _job_by_key(session, request.idempotency_key)
            if existing is None:
                raise
            return existing, False
        await write_audit(
            session,
            actor=actor,
            action="create",
            entity="label_job",
            entity_id=job.id,
            after={k: v for k, v in job_out(job).items() if k not in ("result", "created_at", "updated_at")},
        )
        await session.commit()
    await run_job(session=session, kernel=kernel, job=job, device=device, actor=actor, station_code=station_code)
    return job, True


async def _job_by_key(session: AsyncSession, key: str) -> DeviceJob | None:
    return (await session.execute(select(DeviceJob).where(DeviceJob.idempotency_key == key))).scalar_one_or_none()


async def run_job(
    *,
    session: AsyncSession,
    kernel: Any,
    job: DeviceJob,
    device: ResolvedDevice,
    actor: str,
    station_code: str | None,
) -> DeviceJob:
    """Send the job's label through the breaker, with bounded retries; record the outcome."""
    config = device.config or {}
    max_attempts = max(1, int(config.get("max_attempts", DEFAULT_MAX_ATTEMPTS)))
    retry_delay = float(config.get("retry_delay", 0.2))
    station_code = station_code or device.station_code
    line_code = device.line_code
    zpl = job.payload["zpl"].encode("utf-8")
    action = "reprint" if job.payload.get("reprint_of") else "print"

    async def finish(status: str, outcome: str, error: str | None, result: dict[str, Any], version: str) -> None:
        job.status = status
        job.error = error
        job.result = result
        await record_device_action(
            session=session,
            action=action,
            plugin=PLUGIN_NAME,
            device=device.code,
            driver=device.driver,
            driver_version=version,
            actor=actor,
            outcome=outcome,
            lot_number=job.lot_number,
            serial_number=job.serial_number,
            station_code=station_code,
            detail={
                "job_id": job.id,
                "template": job.payload.get("template"),
                "template_version": job.payload.get("template_version"),
                "attempts": job.attempts,
                "error": error,
            },
        )
        await session.commit()

    try:
        driver = printer_pool(kernel).driver_for(device)
    except DriverLoadError as exc:
        await finish("failed", "failed", str(exc), {"label_sent": False}, "unknown")
        raise PrintFailed(str(exc), code="DRIVER_LOAD_FAILED", job_id=job.id) from exc
    version = driver_version(driver)

    error: Exception | None = None
    for attempt in range(max_attempts):
        job.attempts += 1
        job.status = "sent"
        await session.commit()
        try:
            await kernel.breakers.call(BREAKER, device.code, lambda: driver.send(zpl), line=line_code)
        except BreakerOpenError as exc:
            await finish("failed", "refused", exc.message, {"label_sent": False, "breaker": "open"}, version)
            raise
        except (PrinterError, ValueError, OSError) as exc:
            error = exc
            if getattr(exc, "label_sent", True) or attempt + 1 >= max_attempts:
                break
            await asyncio.sleep(retry_delay * (attempt + 1))
            continue
        printed_at = datetime.now(UTC).isoformat()
        await finish(
            "done",
            "ok",
            None,
            {
                "label_sent": True,
                "printed_at": printed_at,
                "driver": device.driver,
                "driver_version": version,
            },
            version,
        )
        return job
    label_sent = bool(getattr(error, "label_sent", True))
    reason = f"{type(error).__name__}: {error}"
    await finish(
        "failed",
        "failed",
        reason,
        {"label_sent": label_sent, "driver": device.driver, "driver_version": version},
        version,
    )
    raise PrintFailed(f"printer {device.code} failed: {error}", job_id=job.id, label_sent=label_sent)


async def reprint(
    *,
    session: AsyncSession,
    kernel: Any,
    job_id: int,
    actor: str,
    idempotency_key: str,
    reason: str | None,
    station_code: str | None,
    principal: Any = KERNEL,
) -> tuple[DeviceJob, bool]:
    """Print job ``job_id``'s label again as a new, audited job that points at the original."""
    original = await session.get(DeviceJob, job_id)
    if original is None or original.plugin != PLUGIN_NAME or original.kind != JOB_KIND:
        raise NotFound(f"no print job {job_id}", code="JOB_NOT_FOUND", job_id=job_id)
    payload = original.payload or {}
    request = PrintRequest(
        printer=original.device,
        template=payload["template"],
        template_version=payload.get("template_version"),
        fields=payload.get("fields", {}),
        idempotency_key=idempotency_key,
        lot_number=original.lot_number,
        serial_number=original.serial_number,
    )
    await write_audit(
        session,
        actor=actor,
        action="create",
        entity="label_reprint",
        entity_id=original.id,
        after={"reprint_of": original.id, "reason": reason, "idempotency_key": idempotency_key},
    )
    return await submit_print(
        session=session,
        kernel=kernel,
        request=request,
        actor=actor,
        station_code=station_code,
        reprint_of=original.id,
        principal=principal,
    )
