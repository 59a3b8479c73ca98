"""The Modbus plugin's hook implementations: what it adds to the kernel."""

from __future__ import annotations

from mes_kernel import hookimpl
from mes_kernel.contracts import BreakerConfig, DeviceKind, Permission

from . import DEVICE_KIND, DRIVER_NAMESPACE
from .config import parse_settings
from .connector import ConnectorManager
from .drivers import ModbusDriver, ModbusExceptionResponse, ModbusLinkError
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
            "modbus:read",
            "See Modbus machines' connection, state and the unit on them",
            ("admin", "production_manager", "worker", "viewer", "quality_manager", "station"),
        ),
        Permission(
            "modbus:write",
            "Write Modbus machine registers and coils (recipe, command); audited",
            ("admin", "production_manager"),
        ),
    ]


@hookimpl
def mes_register_device_kinds():
    return [
        DeviceKind(
            DEVICE_KIND,
            DRIVER_NAMESPACE,
            ModbusDriver,
            description="Modbus TCP / RTU machines (polled registers)",
            validate_config=_validate_config,
        )
    ]


def _validate_config(config, *, code: str, driver: str) -> None:
    """The line apply's check: the mapping the connector will parse (MappingError names the key)."""
    parse_settings(config, driver=driver)


@hookimpl
def mes_register_breakers():
    # An exception response or a device that does not answer counts; 3 in a row stop writes for 30 s.
    return [
        BreakerConfig(
            BREAKER,
            failure_threshold=3,
            recovery_timeout=30,
            expected_exceptions=(ModbusLinkError, ModbusExceptionResponse),
            description="per Modbus machine, on writes",
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


@hookimpl
def mes_demo_devices(settings, units):
    from .demo import demo_devices

    return demo_devices(units)
