"""OPC UA drivers: the base class of the ``mes.drivers.opcua`` namespace and the asyncua client.

A third party may register another driver (a vendor's SDK, a gateway) under the same namespace; the
connector calls only the methods of :class:`OpcUaDriver`.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asyncua import Client, ua
from asyncua.common.subscription import DataChangeEvent, OverflowPolicy, StatusChangeEvent
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

from mes_kernel.contracts import from_float32

from .config import Security


class OpcUaError(Exception):
    """A device action (connect, read, write) failed: the server refused or did not answer."""


class OpcUaValueError(ValueError):
    """The value does not fit the node's data type: nothing was written. The caller's mistake, not
    the machine's, so it does not count against the device's write breaker."""


@dataclass(frozen=True)
class Change:
    """One data change: the signal's ``name``, its ``value``, the server's ``source_time`` (UTC,
    None when the server sent none), and ``good`` with ``status`` (the OPC UA status code's name)."""

    name: str
    value: Any
    source_time: datetime | None
    good: bool
    status: str


class OpcUaDriver(abc.ABC):
    """One OPC UA server endpoint. ``version`` goes into the traceability of every write."""

    version = "0"

    @abc.abstractmethod
    async def connect(self, on_lost: Callable[[Exception], None]) -> None:
        """Open a session (security and credentials as configured). ``on_lost`` is called once
        when the session is lost later. Raises ``OpcUaError`` or ``OSError``/``TimeoutError``."""

    @abc.abstractmethod
    async def missing_nodes(self, nodes: dict[str, str]) -> dict[str, str]:
        """Which of ``nodes`` (name -> node id) the server does not have or cannot read: name ->
        the reason (the status code's name)."""

    @abc.abstractmethod
    def changes(self, nodes: dict[str, str], *, publishing_interval_ms: int, queue_size: int) -> AsyncIterator[Change]:
        """Subscribe to data changes of ``nodes`` and yield them as they arrive (the current
        values first). Ends when the subscription ends; raises ``OpcUaError`` if it cannot start."""

    @abc.abstractmethod
    async def write(self, node_id: str, value: Any) -> str:
        """Write ``value`` to ``node_id`` in the node's own data type; returns that type's name.
        Raises ``OpcUaError`` with the server's status (``BadTypeMismatch``, ``BadNotWritable`` …), or
        ``OpcUaValueError`` before sending anything when ``value`` does not fit the node's type."""

    @abc.abstractmethod
    async def disconnect(self) -> None:
        """Close the session; never raises."""


class AsyncuaDriver(OpcUaDriver):
    """The ``opcua`` driver, on asyncua (pure Python, the FreeOpcUa project)."""

    version = "asyncua-2"

    def __init__(
        self,
        endpoint: str,
        security: Security | None = None,
        user: str | None = None,
        password: str | None = None,
        timeout: float = 4.0,
        watchdog_seconds: float = 5.0,
        **_ignored: Any,
    ) -> None:
        self.endpoint = endpoint
        self.security = security or Security()
        self.user = user
        self.password = password
        self.timeout = timeout
        self.watchdog_seconds = watchdog_seconds
        self.client: Client | None = None

    async def connect(self, on_lost: Callable[[Exception], None]) -> None:
        client = Client(self.endpoint, timeout=self.timeout, watchdog_intervall=self.watchdog_seconds)
        client.application_uri = "urn:neurohub:mes:opcua-client"
        if self.user:
            client.set_user(self.user)
        if self.password:
            client.set_password(self.password)
        if self.security.policy == "Basic256Sha256":
            mode = getattr(ua.MessageSecurityMode, self.security.mode)
            await client.set_security(
                SecurityPolicyBasic256Sha256,
                certificate=self.security.certificate,
                private_key=self.security.private_key,
                server_certificate=self.security.server_certificate,
                mode=mode,
            )

        async def lost(exc: Exception) -> None:
            on_lost(exc)

        client.connection_lost_callback = lost
        self.client = client
        try:
            await asyncio.wait_for(client.connect(), timeout=self.timeout * 3)
        except ua.UaError as exc:
            raise OpcUaError(f"{type(exc).__name__}: {exc}") from exc

    async def missing_nodes(self, nodes: dict[str, str]) -> dict[str, str]:
        assert self.client is not None
        names = list(nodes)
        params = ua.ReadParameters()
        for name in names:
            rv = ua.ReadValueId()
            rv.NodeId = ua.NodeId.from_string(nodes[name])
            rv.AttributeId = ua.AttributeIds.Value
            params.NodesToRead.append(rv)
        results = await self.client.uaclient.read(params)
        return {
            name: result.StatusCode.name
            for name, result in zip(names, results, strict=True)
            if not result.StatusCode.is_good()
        }

    async def changes(
        self, nodes: dict[str, str], *, publishing_interval_ms: int, queue_size: int
    ) -> AsyncIterator[Change]:
        assert self.client is not None
        client = self.client
        by_id = {ua.NodeId.from_string(node_id): name for name, node_id in nodes.items()}
        sub = await client.create_subscription(
            publishing_interval_ms, queue_maxsize=200_000, overflow=OverflowPolicy.DROP_OLDEST
        )
        try:
            results = await sub.subscribe_data_change(
                [client.get_node(n) for n in by_id],
                queuesize=queue_size,
                sampling_interval=0.0,
            )
            failed = [r for r in results if isinstance(r, ua.StatusCode)]
            if len(failed) == len(results):
                raise OpcUaError(f"no monitored item could be created: {failed[0].name}")
            # One publish response arrives as a run of queued events ordered by monitored item, not
            # by time: a serial number and the value measured just before it changed may come in
            # either order. Take the whole run (asyncua queues it without yielding in between) and
            # hand it on in source-time order.
            queue: asyncio.Queue | None = getattr(sub, "_event_queue", None)
            async for event in sub:
                batch = [event]
                while queue is not None and not queue.empty():
                    batch.append(queue.get_nowait())
                changes = []
                for item in batch:
                    if item is None:
                        return
                    if isinstance(item, StatusChangeEvent):
                        status = item.notification.Status
                        if not status.is_good():
                            raise OpcUaError(f"subscription ended by the server: {status.name}")
                        continue
                    if not isinstance(item, DataChangeEvent):
                        continue
                    name = by_id.get(item.node.nodeid)
                    if name is None:
                        continue
                    data_value = item.data.monitored_item.Value
                    status = data_value.StatusCode if data_value.StatusCode is not None else ua.StatusCode()
                    value = item.value
                    variant = getattr(data_value.Value, "VariantType", None)
                    if isinstance(value, float) and variant == ua.VariantType.Float:
                        value = from_float32(value)  # 6.2, not the Float's 6.199999809265137
                    changes.append(Change(name, value, data_value.SourceTimestamp, status.is_good(), status.name))
                changes.sort(key=_source_order)
                for change in changes:
                    yield change
        finally:
            try:
                await asyncio.wait_for(sub.delete(), timeout=self.timeout)
            except Exception:  # the session is gone already
                pass

    async def write(self, node_id: str, value: Any) -> str:
        assert self.client is not None
        node = self.client.get_node(node_id)
        try:
            variant_type = await node.read_data_type_as_variant_type()
        except ua.UaStatusCodeError as exc:
            raise OpcUaError(f"{type(exc).__name__}: {exc}") from exc
        try:
            coerced = _coerce(value, variant_type)
        except (TypeError, ValueError, OverflowError) as exc:
            raise OpcUaValueError(f"BadTypeMismatch: {exc}") from exc
        try:
            await node.write_value(ua.DataValue(ua.Variant(coerced, variant_type)))
        except ua.UaStatusCodeError as exc:
            raise OpcUaError(f"{type(exc).__name__}: {exc}") from exc
        except (TypeError, ValueError, OverflowError) as exc:
            raise OpcUaError(f"BadTypeMismatch: {exc}") from exc
        return variant_type.name

    async def disconnect(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        try:
            await asyncio.wait_for(client.disconnect(), timeout=self.timeout)
        except Exception:  # already gone, or refusing: nothing more to release
            pass


_EPOCH = datetime(1601, 1, 1)


def _source_order(change: Change) -> datetime:
    moment = change.source_time
    if moment is None:
        return _EPOCH
    return moment.replace(tzinfo=None) if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)


_INTEGERS = {
    ua.VariantType.SByte: (-(2**7), 2**7 - 1),
    ua.VariantType.Byte: (0, 2**8 - 1),
    ua.VariantType.Int16: (-(2**15), 2**15 - 1),
    ua.VariantType.UInt16: (0, 2**16 - 1),
    ua.VariantType.Int32: (-(2**31), 2**31 - 1),
    ua.VariantType.UInt32: (0, 2**32 - 1),
    ua.VariantType.Int64: (-(2**63), 2**63 - 1),
    ua.VariantType.UInt64: (0, 2**64 - 1),
}


def _coerce(value: Any, variant_type: ua.VariantType) -> Any:
    """``value`` (from JSON) in the node's type; ``ValueError`` when it does not fit."""
    if variant_type in _INTEGERS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{variant_type.name} needs an integer, not {value!r}")
        low, high = _INTEGERS[variant_type]
        if not low <= value <= high:
            raise ValueError(f"{value} is out of the range of {variant_type.name}")
        return value
    if variant_type in (ua.VariantType.Float, ua.VariantType.Double):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{variant_type.name} needs a number, not {value!r}")
        return float(value)
    if variant_type == ua.VariantType.Boolean:
        if not isinstance(value, bool):
            raise ValueError(f"Boolean needs true or false, not {value!r}")
        return value
    if variant_type == ua.VariantType.String:
        if not isinstance(value, str):
            raise ValueError(f"String needs text, not {value!r}")
        return value
    raise ValueError(f"writing a {variant_type.name} node is not supported")
