"""The OPC UA plugin's hook implementations: what it adds to the kernel."""

from __future__ import annotations

import logging

from asyncua import ua

from mes_kernel import hookimpl
from mes_kernel.contracts import BreakerConfig, DeviceKind, Permission

from . import DEVICE_KIND, DRIVER_NAMESPACE
from .config import parse_settings
from .connector import ConnectorManager
from .drivers import OpcUaDriver, OpcUaError
from .health import machine_checks
from .routes import BREAKER, router

MES_KERNEL_API = ">=1.0,<2"


def quiet_asyncua() -> None:
    """asyncua logs every publish at INFO: thousands of lines a second at a machine's rates. Keep
    its loggers at WARNING unless the operator chose a level for them."""
    logger = logging.getLogger("asyncua")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)


@hookimpl
def mes_register_routers(kernel):
    return [router]


@hookimpl
def mes_register_permissions():
    return [
        Permission(
            "opcua:read",
            "See OPC UA machines' connection, state and the unit on them",
            ("admin", "production_manager", "worker", "viewer", "quality_manager", "station"),
        ),
        Permission(
            "opcua:write", "Write OPC UA machine nodes (recipe, command); audited", ("admin", "production_manager")
        ),
    ]


@hookimpl
def mes_register_device_kinds():
    return [
        DeviceKind(
            DEVICE_KIND,
            DRIVER_NAMESPACE,
            OpcUaDriver,
            description="OPC UA machines (data-change subscriptions)",
            validate_config=_validate_config,
        )
    ]


def _validate_config(config, *, code: str, driver: str) -> None:
    """The line apply's check: the mapping the connector will parse (MappingError names the key)."""
    parse_settings(config)


@hookimpl
def mes_register_breakers():
    # A write that the server refuses or that finds no server counts; 3 in a row stop writes for 30 s.
    return [
        BreakerConfig(
            BREAKER,
            failure_threshold=3,
            recovery_timeout=30,
            expected_exceptions=(OpcUaError, OSError, TimeoutError, ua.UaError),
            description="per OPC UA machine, on writes",
        )
    ]


@hookimpl
def mes_register_health_checks(kernel):
    return machine_checks(kernel)


@hookimpl
async def mes_startup(kernel):
    quiet_asyncua()
    await ConnectorManager.launch(kernel)


@hookimpl
async def mes_shutdown(kernel):
    await ConnectorManager.shutdown(kernel)


@hookimpl
def mes_demo_devices(settings, units):
    from .demo import demo_devices

    return demo_devices(units)
