"""HTTP routes of the Modbus plugin: write a configured register or coil (a recipe number, a start
command), and a machine's live view (connection, poll, state, unit on the machine)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from mes_kernel.api.deps import KernelDep, Principal, SessionDep, require_permission
from mes_kernel.contracts import Identifier, MappingError, audited_write, resolve_device
from mes_kernel.errors import Unprocessable

from . import DEVICE_KIND, DRIVER_NAMESPACE
from .codec import encode
from .config import parse_settings
from .connector import ConnectorManager
from .health import device_nodes

BREAKER = "modbus_write"

router = APIRouter(prefix="/modbus", tags=["modbus"])


class WriteIn(BaseModel):
    """A value for one of the device's ``writable`` registers or coils, by its configured name."""

    name: Identifier = Field(min_length=1, max_length=64, description="a key of the device's `writable` table")
    value: int | float | bool | str = Field(
        description="a number for a register (in its data type's range), true/false for a coil, text for a string"
    )


class WriteOut(BaseModel):
    device: str
    name: str
    table: str
    address: int
    data_type: str
    value: Any
    registers: list[int] | list[bool]


@router.post(
    "/devices/{code}/write",
    summary="Write a configured register or coil of a Modbus machine (audited, behind the device's breaker)",
    response_model=WriteOut,
    responses={502: {"description": "MODBUS_WRITE_FAILED: the device refused (exception response) or did not answer"}},
)
async def write_register(
    code: str,
    body: WriteIn,
    session: SessionDep,
    kernel: KernelDep,
    principal: Principal = require_permission("modbus:write"),
):
    """Write ``value`` to the register or coil the device's ``writable`` table names ``name``; only
    those can be written. 422 ``MODBUS_NOT_WRITABLE`` for another name, 422 ``MODBUS_VALUE_INVALID``
    for a value its data type cannot hold, 422 ``MODBUS_CONFIG_INVALID`` for a configuration that does
    not parse, 502 ``MODBUS_WRITE_FAILED`` when the device answers with an exception or does not
    answer, 503 ``SERVICE_UNAVAILABLE`` while the device's write breaker is open. Every attempt that
    reaches the device is audited (entity ``modbus_register``, ``after.outcome`` written / failed).

    The poll loop's link is used when this process polls the device (one master on a serial line);
    else a link is opened for the write."""
    device = await resolve_device(session=session, principal=principal, code=code, kind=DEVICE_KIND)
    try:
        settings = parse_settings(device.config, driver=device.driver)
    except MappingError as exc:
        raise Unprocessable(f"{exc.field}: {exc}", code="MODBUS_CONFIG_INVALID", field=exc.field) from None
    register = settings.writable.get(body.name)
    if register is None:
        raise Unprocessable(
            f"{body.name} is not writable on {code} (writable: {', '.join(sorted(settings.writable)) or 'none'})",
            code="MODBUS_NOT_WRITABLE",
            field="name",
        )
    try:
        items = encode(register, body.value)
    except ValueError as exc:
        raise Unprocessable(f"{body.name}: {exc}", code="MODBUS_VALUE_INVALID", field="value") from None
    connector = ConnectorManager.running_connector(kernel, device.code)

    async def write() -> None:
        if connector is not None and connector.online:
            async with connector.lock:
                if connector.driver is not None:
                    await connector.driver.write(register.table, register.address, items)
                    return
        driver = kernel.load_driver(DRIVER_NAMESPACE, device.driver, **settings.driver_settings())
        try:
            await driver.connect()
            await driver.write(register.table, register.address, items)
        finally:
            await driver.close()

    await audited_write(
        session=session,
        kernel=kernel,
        actor=principal.actor,
        device=device,
        name=body.name,
        write=write,
        breaker=BREAKER,
        entity="modbus_register",
        after={
            "table": register.table,
            "address": register.address,
            "data_type": register.data_type,
            "value": body.value,
        },
        failed_code="MODBUS_WRITE_FAILED",
        what=f"writing {body.name} on {code}",
    )
    return WriteOut(
        device=device.code,
        name=body.name,
        table=register.table,
        address=register.address,
        data_type=register.data_type,
        value=body.value,
        registers=items,
    )


@router.get("/devices/{code}", summary="A Modbus machine's live view: connection, poll, state, unit on it")
async def device_status(
    code: str, session: SessionDep, kernel: KernelDep, principal: Principal = require_permission("modbus:read")
) -> dict[str, Any]:
    """The device's health node: ``status`` (UP / DEGRADED / DOWN), ``reason`` and ``details``
    (connected, subscription_alive = the poll loop reads, last_value_age_seconds, state, serial
    number on the machine, problems such as a register out of range)."""
    device = await resolve_device(session=session, principal=principal, code=code, kind=DEVICE_KIND)
    node = (await device_nodes(kernel, [device.code])).components[device.code]
    return {"device": device.code, "status": node.status.value, "reason": node.reason, "details": node.details}
