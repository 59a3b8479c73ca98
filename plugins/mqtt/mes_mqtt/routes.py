"""HTTP routes of the MQTT plugin: a machine's live view (session, subscriptions, state, unit on it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from mes_kernel.api.deps import KernelDep, Principal, SessionDep, require_permission
from mes_kernel.contracts import resolve_device

from . import DEVICE_KIND
from .health import device_nodes

STATE_KEY = "mqtt_connectors"

router = APIRouter(prefix="/mqtt", tags=["mqtt"])


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
    manager = kernel.state.get(STATE_KEY)
    connector = manager.connector(device.code) if manager is not None else None
    messages = {"received": connector.received, "acknowledged": connector.acked} if connector else None
    return {
        "device": device.code,
        "status": node.status.value,
        "reason": node.reason,
        "details": node.details,
        "messages": messages,
    }
