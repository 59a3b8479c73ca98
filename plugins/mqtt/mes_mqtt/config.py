"""An MQTT device's settings from its line configuration: the broker, the session (a stable client id,
QoS), and for every signal the topic filter, the JSON pointer of its value in the payload and,
optionally, of the source timestamp::

    [devices.config]
    host = "broker.plant.local"
    client_id = "mes-MC-07"                  # default: "mes-<device code>"; must be stable (session)
    time = "/ts"                             # default timestamp pointer of every topic (optional)
    topics = {state = {topic = "plant/mc7/status", path = "/state"},
              good = {topic = "plant/mc7/counters", path = "/good"},
              bad = {topic = "plant/mc7/counters", path = "/bad"},
              spindle_temp = "plant/mc7/+/temp"}           # a bare filter: the whole payload is the value
    states = {running = [1], idle = [2], down = [3, 4]}

Commands to the machine (``POST /api/v1/mqtt/devices/{code}/write``) are published, QoS 1, to the
topics of the ``writable`` table::

    writable = {recipe = {topic = "plant/mc7/cmd/recipe", type = "integer"},
                command = {topic = "plant/mc7/cmd", path = "/command", type = "integer"},
                note = "plant/mc7/cmd/note"}                # a bare topic: the payload is the JSON value

Paths are JSON pointers (RFC 6901: ``/a/0/b``; ``""`` is the whole payload). A payload that is not JSON
is taken as text when the path is the whole payload. Timestamps are ISO 8601 text (a time without zone
is UTC) or numbers of seconds since 1970 (milliseconds when above 10^11).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
from jsonpointer import JsonPointer, JsonPointerException

from mes_kernel.contracts import MachineMapping, MappingError

QOS = (0, 1)
#: the JSON types a ``writable`` entry may declare for its value
VALUE_TYPES = ("integer", "number", "boolean", "string")
MAX_TEXT = 256
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Route:
    """Where a signal comes from: a topic ``filter`` (``+``/``#`` allowed), the ``path`` of its value
    (a JSON pointer) and the ``time`` pointer of its source timestamp (None: the arrival time)."""

    filter: str
    path: JsonPointer
    time: JsonPointer | None = None

    def describe(self) -> str:
        return f"{self.filter} {self.path.path or '(whole payload)'}"


@dataclass(frozen=True)
class Command:
    """A value the MES may publish to the machine: the ``topic`` (no wildcards), the ``path`` (a JSON
    pointer) where the value goes in the payload (``""``: the payload is the JSON value itself), the
    JSON ``type`` the value must have (None: any number, boolean or text) and whether the broker
    keeps it as the topic's retained message (``retain``)."""

    topic: str
    path: JsonPointer = field(default_factory=lambda: JsonPointer(""))
    type: str | None = None
    retain: bool = False

    def check(self, value: Any) -> None:
        """Raise ``ValueError`` for a value the declared type cannot hold (before anything is sent)."""
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{value} is not a number JSON can carry")
        if isinstance(value, str) and len(value) > MAX_TEXT:
            raise ValueError(f"text longer than {MAX_TEXT} characters")
        if self.type is None:
            return
        fits = {
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, int | float) and not isinstance(value, bool),
            "boolean": isinstance(value, bool),
            "string": isinstance(value, str),
        }[self.type]
        if not fits:
            raise ValueError(f"{value!r} is not of type {self.type}")

    def payload(self, value: Any) -> bytes:
        """The message body: ``value`` as JSON, placed at ``path`` (nested objects built as needed)."""
        document: Any = value
        for part in reversed(self.path.parts):
            document = {part: document}
        return json.dumps(document).encode()


@dataclass(frozen=True)
class MqttSettings:
    """Everything the connector needs of one device. Times in seconds."""

    host: str
    routes: dict[str, Route]
    mapping: MachineMapping
    client_id: str
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: bool = False
    qos: int = 1
    keepalive: int = 30
    timeout: float = 10.0
    reconnect_min: float = 1.0
    reconnect_max: float = 30.0
    writable: dict[str, Command] = field(default_factory=dict)

    @property
    def filters(self) -> list[str]:
        """The topic filters to subscribe, each once, in configuration order."""
        return list(dict.fromkeys(route.filter for route in self.routes.values()))

    def driver_settings(self) -> dict[str, Any]:
        """The keyword arguments of a driver's constructor (see :class:`mes_mqtt.drivers.MqttDriver`)."""
        return {
            "host": self.host,
            "port": self.port,
            "client_id": self.client_id,
            "username": self.username,
            "password": self.password,
            "tls": self.tls,
            "keepalive": self.keepalive,
            "timeout": self.timeout,
        }


def _pointer(value: Any, field: str) -> JsonPointer:
    if not isinstance(value, str):
        raise MappingError(f"{field} must be a JSON pointer such as '/machine/state'", field=field)
    try:
        return JsonPointer(value)
    except JsonPointerException as exc:
        raise MappingError(f"{field}: {value!r} is not a JSON pointer ({exc})", field=field) from None


def _filter(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 512:
        raise MappingError(f"{field} must be an MQTT topic filter", field=field)
    try:
        aiomqtt.Wildcard(value)
    except ValueError as exc:
        raise MappingError(f"{field}: {value!r} is not a topic filter ({exc})", field=field) from None
    return value


def parse_route(value: Any, *, field: str, default_time: JsonPointer | None) -> Route:
    """A signal's route from its configured form (a topic filter, or ``{topic, path, time}``)."""
    if isinstance(value, str):
        return Route(_filter(value, field), JsonPointer(""), default_time)
    if not isinstance(value, Mapping):
        raise MappingError(f"{field} must be a topic filter or a table {{topic, path, time}}", field=field)
    time = value.get("time")
    return Route(
        _filter(value.get("topic"), f"{field}.topic"),
        _pointer(value.get("path", ""), f"{field}.path"),
        default_time if time is None else _pointer(time, f"{field}.time"),
    )


def parse_command(value: Any, *, field: str) -> Command:
    """A writable entry from its configured form (a topic, or ``{topic, path, type, retain}``)."""
    if isinstance(value, str):
        value = {"topic": value}
    if not isinstance(value, Mapping):
        raise MappingError(f"{field} must be a topic or a table {{topic, path, type, retain}}", field=field)
    unknown = set(value) - {"topic", "path", "type", "retain"}
    if unknown:
        raise MappingError(f"{field}: unknown key {sorted(unknown)[0]}", field=f"{field}.{sorted(unknown)[0]}")
    topic = value.get("topic")
    if not isinstance(topic, str) or not topic or len(topic) > 512:
        raise MappingError(f"{field}.topic must be an MQTT topic", field=f"{field}.topic")
    try:
        aiomqtt.Topic(topic)
    except ValueError as exc:
        where = f"{field}.topic"
        raise MappingError(f"{where}: {topic!r} is not a topic to publish to ({exc})", field=where) from None
    kind = value.get("type")
    if kind is not None and kind not in VALUE_TYPES:
        raise MappingError(f"{field}.type must be one of {', '.join(VALUE_TYPES)}", field=f"{field}.type")
    retain = value.get("retain", False)
    if not isinstance(retain, bool):
        raise MappingError(f"{field}.retain must be true or false", field=f"{field}.retain")
    return Command(topic, _pointer(value.get("path", ""), f"{field}.path"), kind, retain)


def _number(config: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise MappingError(f"{key} must be a number from {low} to {high}", field=key)
    return value


def parse_settings(config: Mapping[str, Any], *, device_code: str) -> MqttSettings:
    """Read an MQTT device's effective configuration. Raises :class:`MappingError` naming the key at
    fault (``host``, ``topics.state.topic``, ``topics.good.path``, ``qos`` …)."""
    mapping = MachineMapping.from_config(config, addresses="topics")
    host = config.get("host")
    if not isinstance(host, str) or not host or len(host) > 253:
        raise MappingError("host must be the broker's host name or address", field="host")
    default_time = None if config.get("time") is None else _pointer(config["time"], "time")
    routes = {
        name: parse_route(s.address, field=f"topics.{name}", default_time=default_time)
        for name, s in mapping.signals.items()
    }
    client_id = config.get("client_id", f"mes-{device_code}")
    if not isinstance(client_id, str) or not 1 <= len(client_id) <= 128:
        raise MappingError("client_id must be 1-128 characters", field="client_id")
    qos = config.get("qos", 1)
    if qos not in QOS or isinstance(qos, bool):
        raise MappingError("qos must be 0 or 1 (1: nothing lost while the session lasts)", field="qos")
    for key in ("username", "password"):
        if config.get(key) is not None and not isinstance(config[key], str):
            raise MappingError(f"{key} must be text", field=key)
    tls = config.get("tls", False)
    if not isinstance(tls, bool):
        raise MappingError("tls must be true or false", field="tls")
    reconnect_min = float(_number(config, "reconnect_min", 1.0, 0.05, 60))
    reconnect_max = float(_number(config, "reconnect_max", 30.0, 0.1, 3600))
    if reconnect_max < reconnect_min:
        raise MappingError("reconnect_max must not be below reconnect_min", field="reconnect_max")
    writable_cfg = config.get("writable") or {}
    if not isinstance(writable_cfg, Mapping):
        raise MappingError("writable must be a table of name -> topic", field="writable")
    writable = {}
    for name, value in writable_cfg.items():
        if not _NAME.match(str(name)):
            raise MappingError(f"writable.{name}: a name is a letter then up to 63 letters, digits, _ . -",
                               field=f"writable.{name}")
        writable[str(name)] = parse_command(value, field=f"writable.{name}")
    return MqttSettings(
        host=host,
        routes=routes,
        mapping=mapping,
        client_id=client_id,
        port=int(_number(config, "port", 8883 if tls else 1883, 1, 65535)),
        username=config.get("username"),
        password=config.get("password"),
        tls=tls,
        qos=qos,
        keepalive=int(_number(config, "keepalive", 30, 5, 3600)),
        timeout=float(_number(config, "timeout", 10.0, 0.5, 120)),
        reconnect_min=reconnect_min,
        reconnect_max=reconnect_max,
        writable=writable,
    )
