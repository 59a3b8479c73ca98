"""The running side: one session per MQTT device (claim, connect with its stable client id, subscribe,
map every payload into the kernel's sink, acknowledge once stored, reconnect with backoff) and the
manager that follows the lines' devices."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import UTC, datetime
from typing import Any

import aiomqtt
import structlog
from jsonpointer import JsonPointerException
from prometheus_client import Counter, Histogram

from mes_kernel.contracts import ConnectorFleet, LeaseLost, MachineConnector, Reason

from . import DEVICE_KIND, DRIVER_NAMESPACE, PLUGIN
from .config import MqttSettings, Route, parse_settings
from .drivers import MqttDriver, Received

log = structlog.get_logger(__name__)

MESSAGES = Counter(
    "mes_mqtt_messages_total",
    "MQTT messages by outcome (received; mismatched = a payload that does not fit its mapping; acknowledged)",
    ["device", "outcome"],
)
ACK_DELAY = Histogram(
    "mes_mqtt_ack_delay_seconds",
    "Delay from a message's arrival to its acknowledgement (the kernel has stored it by then)",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

#: epoch numbers above this are milliseconds (10^11 s is the year 5138; 10^11 ms is 1973)
EPOCH_MS_ABOVE = 1e11
_MISSING = object()


def source_time(raw: Any) -> datetime:
    """A payload's timestamp as aware UTC: ISO 8601 text (no zone = UTC) or seconds since 1970
    (milliseconds above 10^11). Raises ``ValueError`` for anything else."""
    if isinstance(raw, bool):
        raise ValueError(f"timestamp {raw!r} is neither ISO 8601 text nor a number")
    if isinstance(raw, int | float):
        seconds = raw / 1000 if raw > EPOCH_MS_ABOVE else raw
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"timestamp {raw!r} is out of range") from None
    if isinstance(raw, str):
        try:
            moment = datetime.fromisoformat(raw.strip())
        except ValueError:
            raise ValueError(f"timestamp {raw[:40]!r} is not ISO 8601") from None
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    raise ValueError(f"timestamp {raw!r} is neither ISO 8601 text nor a number")


def _resolve(pointer, document: Any) -> Any:
    try:
        return pointer.resolve(document)
    except (JsonPointerException, TypeError, KeyError, IndexError):
        return _MISSING


class DeviceConnector(MachineConnector):
    """Reads one device until stopped. Nothing it meets (a refused connection, a refused subscription,
    a payload that does not match its mapping) escapes: each ends in the device's health node.

    QoS 1 messages are acknowledged only after the kernel has committed what they carried (the
    hub's flush), so a kernel that dies in between gets them again from the broker's session.
    """

    source = PLUGIN
    namespace = DRIVER_NAMESPACE

    def __init__(self, kernel: Any, code: str, driver_name: str, settings: MqttSettings) -> None:
        super().__init__(kernel, code, settings, driver_name=driver_name)
        self.received = 0
        self.acked = 0
        self._unacked: list[tuple[Received, float]] = []
        self._wake = asyncio.Event()

    async def session(self) -> None:
        sink = self.sink
        driver: MqttDriver = self.load_driver()
        self._unacked = []  # unacknowledged messages of a lost connection come again from the session
        acker: asyncio.Task | None = None
        try:
            await driver.connect()
            self.driver = driver
            self.connected()
            acker = asyncio.create_task(self._acknowledge(driver), name=f"mqtt-ack:{self.code}")
            granted = await driver.subscribe(self.settings.filters, self.settings.qos)
            for topic, ok in granted.items():
                if ok:
                    sink.resolve(f"topic:{topic}")
                else:
                    sink.problem(
                        f"topic:{topic}",
                        Reason(
                            "MQTT_SUBSCRIPTION_REFUSED",
                            f"the broker refused the subscription to {topic}",
                            {"topic": topic},
                        ),
                    )
            if any(granted.values()):
                self.subscribed()
                sink.subscription(True)
            else:
                sink.subscription(
                    False, Reason("MQTT_ALL_SUBSCRIPTIONS_REFUSED", "the broker refused every subscription")
                )
            consume = asyncio.create_task(self._consume(driver))
            watch = asyncio.create_task(self._watch_lease())
            try:
                done, _ = await asyncio.wait({consume, watch}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (consume, watch):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            if consume in done:
                consume.result()  # the link error that ended it
                raise ConnectionError("the message stream ended")
            raise LeaseLost(self.code)
        finally:
            if acker is not None:
                acker.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await acker
            self.driver = None
            sink.subscription(False)
            await driver.close()

    async def _consume(self, driver: MqttDriver) -> None:
        async for message in driver.messages():
            self.received += 1
            MESSAGES.labels(self.code, "received").inc()
            arrived = time.monotonic()
            if not await self._take(message):
                MESSAGES.labels(self.code, "mismatched").inc()
            self._unacked.append((message, arrived))
            self._wake.set()

    async def _watch_lease(self) -> None:
        """Return once this process no longer holds the machine's lease (Redis lost it)."""
        hub = self.kernel.machine_data
        while hub.holds(self.code):
            await asyncio.sleep(hub.lease_seconds / 3)

    async def _take(self, message: Received) -> bool:
        """Hand every signal a message carries to the sink; a payload that does not fit its mapping
        is a problem of the device (DEGRADED with the reason) until that signal's next good one.
        Returns whether everything in it fitted."""
        sink = self.sink
        routes = [(name, route) for name, route in self.settings.routes.items() if _matches(message.topic, route)]
        fitted = True
        if not routes:
            return fitted
        try:
            document: Any = json.loads(message.payload)
            parsed = True
        except (ValueError, UnicodeDecodeError):
            document, parsed = message.payload.decode("utf-8", errors="replace"), False
        for name, route in routes:
            key = f"payload:{name}"
            if not parsed and route.path.path:
                sink.problem(
                    key,
                    Reason(
                        "MQTT_PAYLOAD_NOT_JSON",
                        f"{message.topic}: payload is not JSON (for {name} at {route.path.path})",
                        {"topic": message.topic, "signal": name, "path": route.path.path},
                    ),
                )
                fitted = False
                continue
            value = _resolve(route.path, document)
            if value is _MISSING:
                sink.problem(
                    key,
                    Reason(
                        "MQTT_PATH_MISSING",
                        f"{message.topic}: no {route.path.path} in the payload (for {name})",
                        {"topic": message.topic, "signal": name, "path": route.path.path},
                    ),
                )
                fitted = False
                continue
            at = None
            if route.time is not None:
                raw_time = _resolve(route.time, document) if parsed else _MISSING
                try:
                    if raw_time is _MISSING:
                        raise ValueError(f"no timestamp at {route.time.path}")
                    at = source_time(raw_time)
                except ValueError as exc:
                    sink.problem(
                        key,
                        Reason(
                            "MQTT_TIME_UNREADABLE",
                            f"{message.topic}: {exc} (for {name})",
                            {"topic": message.topic, "signal": name, "path": route.time.path, "error": str(exc)},
                        ),
                    )
                    fitted = False
                    continue
            if isinstance(value, dict | list):
                where = route.path.path or "the payload"
                kind = type(value).__name__
                sink.problem(
                    key,
                    Reason(
                        "MQTT_VALUE_NOT_SCALAR",
                        f"{message.topic}: {where} is a JSON {kind} (for {name})",
                        {"topic": message.topic, "signal": name, "path": route.path.path or "/", "type": kind},
                    ),
                )
                fitted = False
                continue
            if name == "serial" and value == "":
                value = None  # no unit on the machine
            sink.resolve(key)
            fitted = await sink.put(name, value, at) and fitted
        return fitted

    async def _acknowledge(self, driver: MqttDriver) -> None:
        """Acknowledge what arrived once the hub has committed it (a flush after the messages were
        taken); while the database refuses, nothing is acknowledged and the broker holds back."""
        hub = self.kernel.machine_data
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._unacked = self._unacked, []
            while True:
                try:
                    await hub.flush()
                    if self.sink.store_error is None:
                        break
                except Exception as exc:  # keep the messages unacknowledged and try again
                    log.warning("mqtt_ack_flush_failed", device=self.code, error=str(exc))
                await asyncio.sleep(max(hub.flush_interval, 0.25))
            for message, arrived in batch:
                driver.ack(message)
                self.acked += 1
                MESSAGES.labels(self.code, "acknowledged").inc()
                ACK_DELAY.observe(time.monotonic() - arrived)


def _matches(topic: str, route: Route) -> bool:
    return aiomqtt.Topic(topic).matches(route.filter)


class ConnectorManager(ConnectorFleet):
    """Keeps one :class:`DeviceConnector` per enabled MQTT device of the lines that enable the
    plugin (the kernel's :class:`~mes_kernel.contracts.ConnectorFleet` does the bookkeeping)."""

    plugin = PLUGIN
    kind = DEVICE_KIND

    def build(self, code: str, driver: str, config: dict[str, Any]) -> DeviceConnector:
        return DeviceConnector(self.kernel, code, driver, parse_settings(config, device_code=code))
