"""An OPC UA device's settings, read from its line configuration (beside the machine-data mapping)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from asyncua import ua

from mes_kernel.contracts import MachineMapping, MappingError

POLICIES = ("None", "Basic256Sha256")
MODES = ("Sign", "SignAndEncrypt")


@dataclass(frozen=True)
class Security:
    """``security = {policy = "Basic256Sha256", mode = "SignAndEncrypt", certificate = "client.der",
    private_key = "client.pem", server_certificate = "server.der"}``; policy ``None`` needs nothing."""

    policy: str = "None"
    mode: str = "SignAndEncrypt"
    certificate: str | None = None
    private_key: str | None = None
    server_certificate: str | None = None


@dataclass(frozen=True)
class OpcUaSettings:
    """Everything the connector needs of one device: ``endpoint``, the node id of each signal,
    the mapping, security, credentials, subscription tuning (milliseconds), writable nodes."""

    endpoint: str
    nodes: dict[str, str]
    mapping: MachineMapping
    security: Security = Security()
    user: str | None = None
    password: str | None = None
    publishing_interval_ms: int = 100
    queue_size: int = 100
    timeout: float = 4.0
    watchdog_seconds: float = 5.0
    reconnect_min: float = 1.0
    reconnect_max: float = 30.0
    writable: dict[str, str] = field(default_factory=dict)

    def driver_settings(self) -> dict[str, Any]:
        """The keyword arguments of the driver's constructor."""
        return {
            "endpoint": self.endpoint,
            "security": self.security,
            "user": self.user,
            "password": self.password,
            "timeout": self.timeout,
            "watchdog_seconds": self.watchdog_seconds,
        }


def _node_id(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise MappingError(f"{field} must be a node id such as 'ns=2;s=Machine.State'", field=field)
    try:
        ua.NodeId.from_string(value)
    except Exception:
        raise MappingError(f"{field}: {value!r} is not an OPC UA node id", field=field) from None
    return value


def _number(config: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise MappingError(f"{key} must be a number from {low} to {high}", field=key)
    return value


def parse_settings(config: Mapping[str, Any]) -> OpcUaSettings:
    """Read an OPC UA device's effective configuration; raises ``MappingError`` naming the key at
    fault (``endpoint``, ``nodes.state``, ``security.policy``, ``writable.recipe`` …)."""
    endpoint = config.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint.startswith("opc.tcp://") or len(endpoint) > 500:
        raise MappingError("endpoint must be an opc.tcp:// URL", field="endpoint")
    mapping = MachineMapping.from_config(config, addresses="nodes")
    nodes = {name: _node_id(s.address, f"nodes.{name}") for name, s in mapping.signals.items()}
    raw_security = config.get("security") or {}
    if not isinstance(raw_security, Mapping):
        raise MappingError("security must be a table", field="security")
    security = Security(
        policy=str(raw_security.get("policy", "None")),
        mode=str(raw_security.get("mode", "SignAndEncrypt")),
        certificate=raw_security.get("certificate"),
        private_key=raw_security.get("private_key"),
        server_certificate=raw_security.get("server_certificate"),
    )
    if security.policy not in POLICIES:
        raise MappingError(f"security.policy must be one of {POLICIES}", field="security.policy")
    if security.mode not in MODES:
        raise MappingError(f"security.mode must be one of {MODES}", field="security.mode")
    if security.policy != "None" and not (security.certificate and security.private_key):
        raise MappingError(
            f"security.policy {security.policy} needs a client certificate and private_key",
            field="security.certificate",
        )
    writable = config.get("writable") or {}
    if not isinstance(writable, Mapping):
        raise MappingError("writable must be a table of name -> node id", field="writable")
    return OpcUaSettings(
        endpoint=endpoint,
        nodes=nodes,
        mapping=mapping,
        security=security,
        user=config.get("user"),
        password=config.get("password"),
        publishing_interval_ms=int(_number(config, "publishing_interval_ms", 100, 10, 60_000)),
        queue_size=int(_number(config, "queue_size", 100, 1, 10_000)),
        timeout=float(_number(config, "timeout", 4.0, 0.1, 120)),
        watchdog_seconds=float(_number(config, "watchdog_seconds", 5.0, 0.2, 600)),
        reconnect_min=float(_number(config, "reconnect_min", 1.0, 0.05, 60)),
        reconnect_max=float(_number(config, "reconnect_max", 30.0, 0.1, 3600)),
        writable={name: _node_id(v, f"writable.{name}") for name, v in writable.items()},
    )
