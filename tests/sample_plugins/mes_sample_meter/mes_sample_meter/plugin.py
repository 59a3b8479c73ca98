"""Hook implementations of the sample meter plugin."""

import os

import typer
from fastapi import APIRouter

from mes_kernel import hookimpl
from mes_kernel.api.deps import KernelDep, Principal, SessionDep, require_permission
from mes_kernel.contracts import (
    BreakerConfig,
    CheckResult,
    DeviceKind,
    HealthCheck,
    Panel,
    Permission,
    Status,
    audited_write,
    ensure_lot_open,
    resolve_device,
)

from .drivers import MeterDriver

MES_KERNEL_API = ">=1.0,<2"

router = APIRouter(prefix="/sample", tags=["sample"])


@router.get("/reading", summary="Read the meter through its breaker")
async def reading(kernel: KernelDep, fail: bool = False, _: Principal = require_permission("sample:read")):
    meter = kernel.load_driver("mes.drivers.sample_meter", "fake_meter", failing=fail)
    value = await kernel.breakers.call("sample_meter", "M-1", meter.read)
    return {"value": value, "started": kernel.state.get("sample_started", False), "pid": os.getpid()}


@router.post("/meters/{code}/read", summary="Read one configured meter (the kernel's device authority decides)")
async def read_meter(
    code: str,
    session: SessionDep,
    kernel: KernelDep,
    lot_number: str | None = None,
    principal: Principal = require_permission("sample:read"),
):
    device = await resolve_device(session=session, principal=principal, code=code, kind="sample_meter")
    await ensure_lot_open(session=session, lot_number=lot_number)  # 409 LOT_CLOSED, as prints and flashes
    meter = kernel.load_driver("mes.drivers.sample_meter", device.driver, **device.config)
    value = await kernel.breakers.call("sample_meter", device.code, meter.read, line=device.line_code)
    return {"device": device.code, "line": device.line_code, "station": device.station_code, "value": value}


@router.post(
    "/meters/{code}/setpoint",
    summary="Set a meter's setpoint (audited, behind the meter's breaker)",
    responses={502: {"description": "METER_WRITE_FAILED: the meter did not answer"}},
)
async def write_setpoint(
    code: str,
    value: float,
    session: SessionDep,
    kernel: KernelDep,
    principal: Principal = require_permission("sample:write"),
):
    device = await resolve_device(session=session, principal=principal, code=code, kind="sample_meter")
    meter = kernel.load_driver("mes.drivers.sample_meter", device.driver, **device.config)
    await audited_write(
        session=session,
        kernel=kernel,
        actor=principal.actor,
        device=device,
        name="setpoint",
        write=lambda: meter.write_setpoint(value),
        breaker="sample_meter",  # what it counts as failures (ConnectionError) answers 502
        entity="meter_setpoint",
        after={"value": value},
        failed_code="METER_WRITE_FAILED",
        what=f"setting the setpoint of {code}",
        invalid=(ValueError,),  # refused before sending: 422, the breaker not charged
        invalid_code="METER_VALUE_INVALID",
    )
    return {"device": device.code, "setpoint": value}


@hookimpl
def mes_register_routers(kernel):
    return [router]


@hookimpl
def mes_register_permissions():
    return [
        Permission("sample:read", "Read the sample meter", ("production_manager", "worker", "viewer", "station")),
        Permission("sample:write", "Set the sample meter's setpoint; audited", ("production_manager",)),
    ]


@hookimpl
def mes_register_device_kinds():
    return [DeviceKind("sample_meter", "mes.drivers.sample_meter", MeterDriver, "A sample meter")]


@hookimpl
def mes_register_breakers():
    recovery = float(os.environ.get("SAMPLE_METER_RECOVERY_SECONDS", "5"))
    return [
        BreakerConfig(
            "sample_meter", failure_threshold=2, recovery_timeout=recovery, expected_exceptions=(ConnectionError,)
        )
    ]


@hookimpl
def mes_register_health_checks(kernel):
    async def meter_ok():
        return CheckResult(Status.UP, details={"reading": 42.0})

    return [HealthCheck("meter", meter_ok, timeout=1.0)]


@hookimpl
def mes_register_panels():
    return [Panel("sample-reading", "Meter reading", "stat", "/sample/reading", refresh_seconds=10)]


cli = typer.Typer(help="Sample meter commands.")


@cli.command("read")
def read_command():
    """Print a reading."""
    print("42.0")


@hookimpl
def mes_register_commands():
    return [("sample", cli)]


@hookimpl
async def mes_startup(kernel):
    kernel.state["sample_started"] = True
