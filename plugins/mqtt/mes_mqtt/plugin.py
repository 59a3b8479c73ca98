"""The MQTT plugin's hook implementations: what it adds to the kernel."""

from __future__ import annotations

from mes_kernel import hookimpl
from mes_kernel.contracts import BreakerConfig, DeviceKind, Permission

from . import DEVICE_KIND, DRIVER_NAMESPACE
from .config import parse_settings
from .connector import ConnectorManager
from .drivers import MqttDriver, MqttLinkError
from .health import machine_checks
from .routes import BREAKER, router

MES_KERNEL_API = ">=1.0,<2"


@hookimpl
def mes_register_routers(kernel):
    return [router]


@hookimpl
def mes_register_permissions():
    return [
        Permission(
            "mqtt:read",
            "See MQTT machines' session, state and the unit on them",
            ("admin", "production_manager", "worker", "viewer", "quality_manager", "station"),
        ),
        Permission(
            "mqtt:write",
            "Publish commands to MQTT machines (recipe, command); audited",
            ("admin", "production_manager"),
        ),
    ]


@hookimpl
def mes_register_device_kinds():
    return [
        DeviceKind(
            DEVICE_KIND,
            DRIVER_NAMESPACE,
            MqttDriver,
            description="Machines publishing JSON over MQTT",
            validate_config=_validate_config,
        )
    ]


def _validate_config(config, *, code: str, driver: str) -> None:
    """The line apply's check: the mapping the connector will parse (MappingError names the key)."""
    parse_settings(config, device_code=code)


@hookimpl
def mes_register_breakers():
    # A broker that cannot be reached or does not acknowledge counts; 3 in a row stop writes for 30 s.
    return [
        BreakerConfig(
            BREAKER,
            failure_threshold=3,
            recovery_timeout=30,
            expected_exceptions=(MqttLinkError,),
            description="per MQTT machine, on writes (published commands)",
        )
    ]


@hookimpl
def mes_register_health_checks(kernel):
    return machine_checks(kernel)


@hookimpl
async def mes_startup(kernel):
    await ConnectorManager.launch(kernel)


@hookimpl
async def mes_shutdown(kernel):
    await ConnectorManager.shutdown(kernel)
