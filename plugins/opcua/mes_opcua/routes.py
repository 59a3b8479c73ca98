"""HTTP routes of the OPC UA plugin: write a configured node (a recipe number, a command), and the
machines' live view (state, unit on the machine, connection)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from mes_kernel.api.deps import KernelDep, Principal, SessionDep, require_permission
from mes_kernel.contracts import Identifier, MappingError, audited_write, resolve_device
from mes_kernel.errors import Unprocessable

from . import DEVICE_KIND, DRIVER_NAMESPACE
from .config import parse_settings
from .drivers import OpcUaValueError

BREAKER = "opcua_write"

router = APIRouter(prefix="/opcua", tags=["opcua"])


class WriteIn(BaseModel):
    """A value for one of the device's ``writable`` nodes, by its configured name."""

    name: Identifier = Field(min_length=1, max_length=64, description="a key of the device's `writable` table")
    value: int | float | bool | str = Field(description="written in the node's own OPC UA data type")


class WriteOut(BaseModel):
    device: str
    name: str
    node_id: str
    value: Any
    data_type: str


@router.post(
    "/devices/{code}/write",
    summary="Write a configured node of an OPC UA machine (audited, behind the device's breaker)",
    response_model=WriteOut,
    responses={
        502: {"description": "OPCUA_WRITE_FAILED: the server refused the value or could not be reached"},
    },
)
async def write_node(
    code: str,
    body: WriteIn,
    session: SessionDep,
    kernel: KernelDep,
    principal: Principal = require_permission("opcua:write"),
):
    """Write ``value`` to the node the device's ``writable`` table names ``name``. Only those nodes
    can be written. 422 ``OPCUA_NODE_NOT_WRITABLE`` for another name, 422 ``OPCUA_CONFIG_INVALID``
    for a device whose configuration does not parse, 422 ``OPCUA_VALUE_INVALID`` when the value does
    not fit the node's data type (nothing sent; the breaker is not charged), 502 ``OPCUA_WRITE_FAILED``
    when the server refuses (out of range, not writable) or does not answer, 503 while the breaker is open."""
    device = await resolve_device(session=session, principal=principal, code=code, kind=DEVICE_KIND)
    try:
        settings = parse_settings(device.config)
    except MappingError as exc:
        raise Unprocessable(f"{exc.field}: {exc}", code="OPCUA_CONFIG_INVALID", field=exc.field) from None
    node_id = settings.writable.get(body.name)
    if node_id is None:
        raise Unprocessable(
            f"{body.name} is not a writable node of {code} "
            f"(writable: {', '.join(sorted(settings.writable)) or 'none'})",
            code="OPCUA_NODE_NOT_WRITABLE",
            field="name",
        )
    driver = kernel.load_driver(DRIVER_NAMESPACE, device.driver, **settings.driver_settings())

    async def write() -> str:
        try:
            await driver.connect(lambda exc: None)
            return await driver.write(node_id, body.value)
        finally:
            await driver.disconnect()

    # OpcUaValueError (the value does not fit the node's type, nothing sent) is not one of the
    # breaker's exceptions: a caller's typo must not stop writes to the machine for everybody.
    data_type = await audited_write(
        session=session,
        kernel=kernel,
        actor=principal.actor,
        device=device,
        name=body.name,
        write=write,
        breaker=BREAKER,
        entity="opcua_node",
        after={"node_id": node_id, "value": body.value},
        failed_code="OPCUA_WRITE_FAILED",
        what=f"writing {body.name} on {code}",
        done="ok",
        invalid=(OpcUaValueError,),
        invalid_code="OPCUA_VALUE_INVALID",
    )
    return WriteOut(device=device.code, name=body.name, node_id=node_id, value=body.value, data_type=data_type)


@router.get("/devices/{code}", summary="An OPC UA machine's live view: connection, state, unit on it")
async def device_status(
    code: str, session: SessionDep, kernel: KernelDep, principal: Principal = require_permission("opcua:read")
) -> dict[str, Any]:
    """The device's health node (``status``, ``reason``, ``details``: connected, subscription
    alive, age of the last value, state, serial number on the machine …)."""
    device = await resolve_device(session=session, principal=principal, code=code, kind=DEVICE_KIND)
    node = (await kernel.machine_data.health([device.code])).components[device.code]
    return {"device": device.code, "status": node.status.value, "reason": node.reason, "details": node.details}
