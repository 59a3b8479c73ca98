"""HTTP routes of the MQTT plugin: publish a command to a machine (a recipe number, a start command)
and a machine's live view (session, subscriptions, state, unit on it)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from mes_kernel.api.deps import KernelDep, Principal, SessionDep, require_permission
from mes_kernel.contracts import Identifier, MappingError, audited_write, resolve_device
from mes_kernel.errors import Unprocessable

from . import DEVICE_KIND, DRIVER_NAMESPACE
from .config import parse_settings
from .connector import ConnectorManager
from .health import device_nodes

BREAKER = "mqtt_write"
#: the write route publishes at least once: QoS 1, acknowledged by the broker
WRITE_QOS = 1

router = APIRouter(prefix="/mqtt", tags=["mqtt"])


class WriteIn(BaseModel):
    """A value for one of the device's ``writable`` commands, by its configured name."""

    name: Identifier = Field(min_length=1, max_length=64, description="a key of the device's `writable` table")
    value: int | float | bool | str = Field(description="a JSON number, true/false or text, of the command's type")


class WriteOut(BaseModel):
    device: str
    name: str
    topic: str
    qos: int
    retain: bool
    value: Any
    payload: str = Field(description="the message body published (JSON)")


@router.post(
    "/devices/{code}/write",
    summary="Publish a configured command to an MQTT machine (QoS 1, audited, behind the device's breaker)",
    response_model=WriteOut,
    responses={502: {"description": "MQTT_WRITE_FAILED: the broker is unreachable or did not acknowledge"}},
)
async def write_command(
    code: str,
    body: WriteIn,
    session: SessionDep,
    kernel: KernelDep,
    principal: Principal = require_permission("mqtt:write"),
):
    """Publish ``value`` to the topic the device's ``writable`` table names ``name`` (QoS 1: answered
    once the broker acknowledged it); only those can be written. 422 ``MQTT_NOT_WRITABLE`` for another
    name, 422 ``MQTT_VALUE_INVALID`` for a value of another type than the one declared (or text over
    256 characters), 422 ``MQTT_CONFIG_INVALID`` for a configuration that does not parse, 502
    ``MQTT_WRITE_FAILED`` when the broker cannot be reached or does not acknowledge within the
    device's ``timeout``, 503 ``SERVICE_UNAVAILABLE`` while the device's write breaker is open. Every
    attempt that reaches for the broker is audited (entity ``mqtt_command``, ``after.outcome``
    published / failed).

    The connector's session is used when this process reads the device; else a short, non-persistent
    link with its own client id (``<client_id>-w-<random>``: the reading session is never taken over)."""
    device = await resolve_device(session=session, principal=principal, code=code, kind=DEVICE_KIND)
    try:
        settings = parse_settings(device.config, device_code=device.code)
    except MappingError as exc:
        raise Unprocessable(f"{exc.field}: {exc}", code="MQTT_CONFIG_INVALID", field=exc.field) from None
    command = settings.writable.get(body.name)
    if command is None:
        raise Unprocessable(
            f"{body.name} is not writable on {code} (writable: {', '.join(sorted(settings.writable)) or 'none'})",
            code="MQTT_NOT_WRITABLE",
            field="name",
        )
    try:
        command.check(body.value)
    except ValueError as exc:
        raise Unprocessable(f"{body.name}: {exc}", code="MQTT_VALUE_INVALID", field="value") from None
    payload = command.payload(body.value)
    connector = ConnectorManager.running_connector(kernel, device.code)

    async def publish() -> None:
        if connector is not None and connector.online and connector.driver is not None:
            await connector.driver.publish(command.topic, payload, qos=WRITE_QOS, retain=command.retain)
            return
        options = {
            **settings.driver_settings(),
            "client_id": f"{settings.client_id[:100]}-w-{uuid.uuid4().hex[:8]}",
            "persistent": False,
        }
        driver = kernel.load_driver(DRIVER_NAMESPACE, device.driver, **options)
        try:
            await driver.connect()
            await driver.publish(command.topic, payload, qos=WRITE_QOS, retain=command.retain)
        finally:
            await driver.close()

    await audited_write(
        session=session,
        kernel=kernel,
        actor=principal.actor,
        device=device,
        name=body.name,
        write=publish,
        breaker=BREAKER,
        entity="mqtt_command",
        after={"topic": command.topic, "qos": WRITE_QOS, "retain": command.retain, "value": body.value},
        failed_code="MQTT_WRITE_FAILED",
        what=f"publishing {body.name} to {code}",
        done="published",
    )
    return WriteOut(
        device=device.code,
        name=body.name,
        topic=command.topic,
        qos=WRITE_QOS,
        retain=command.retain,
        value=body.value,
        payload=payload.decode(),
    )


@router.get("/devices/{code}", summary="An MQTT machine's live view: session, subscriptions, state, unit on it")
async def device_status(
    code: str, session: SessionDep, kernel: KernelDep, principal: Principal = require_permission("mqtt:read")
) -> dict[str, Any]:
    """The device's health node: ``status`` (UP / DEGRADED / DOWN), ``reason`` and ``details``
    (connected, subscription_alive, last_value_age_seconds, state, serial number on the machine,
    problems such as a payload that does not match its mapping), plus ``messages`` received and
    acknowledged by this process."""
    device = await resolve_device(session=session, principal=principal, code=code, kind=DEVICE_KIND)
    node = (await device_nodes(kernel, [device.code])).components[device.code]
    connector = ConnectorManager.running_connector(kernel, device.code)
    messages = {"received": connector.received, "acknowledged": connector.acked} if connector else None
    return {
        "device": device.code,
        "status": node.status.value,
        "reason": node.reason,
        "details": node.details,
        "messages": messages,
    }
