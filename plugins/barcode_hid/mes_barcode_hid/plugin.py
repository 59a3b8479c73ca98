"""The barcode plugin's hook implementations: what it adds to the kernel."""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

from mes_kernel import hookimpl
from mes_kernel.contracts import BreakerConfig, DeviceKind, Permission

from . import NAMESPACE
from .drivers.base import ScannerDriver
from .health import scanner_checks
from .routes import BREAKER, plugin_state, router
from .settings import BarcodeSettings

MES_KERNEL_API = ">=1.0,<2"
DEVICE_KIND = "barcode_scanner"


@hookimpl
def mes_register_routers(kernel):
    return [router]


@hookimpl
def mes_register_permissions():
    return [
        Permission(
            "scans:lookup",
            "Look up a scanned code: its unit or LOT and next process",
            # "station": an unattended station may look codes up with its machine token
            ("admin", "production_manager", "worker", "viewer", "station"),
        )
    ]


@hookimpl
def mes_register_device_kinds():
    return [
        DeviceKind(
            DEVICE_KIND,
            NAMESPACE,
            ScannerDriver,
            description="Barcode scanners (USB HID via evdev, USB-CDC serial, keyboard wedge, simulator)",
        )
    ]


@hookimpl
def mes_register_breakers():
    # Only database trouble counts: an unknown code or a missing unit is an answer, not a failure.
    settings = BarcodeSettings()
    return [
        BreakerConfig(
            BREAKER,
            failure_threshold=settings.breaker_failures,
            recovery_timeout=settings.breaker_recovery_seconds,
            expected_exceptions=(SQLAlchemyError, OSError),
            description="scan lookups against the database",
        )
    ]


@hookimpl
def mes_register_health_checks(kernel):
    return scanner_checks(kernel)


@hookimpl
def mes_startup(kernel):
    # read the settings (and compile the patterns) once, so a bad pattern fails the plugin at start
    plugin_state(kernel)
    kernel.state["scan_resolver"] = lambda code, symbology: scan_targets(kernel, code, symbology)


def scan_targets(kernel, code: str, symbology: str | None) -> dict[str, str | None]:
    """The serial and LOT number a station's scan names (a GS1 (21)/(10), a plant pattern), so the
    kernel can put the scan into that unit's or LOT's history."""
    from .parsing import parse_code
    from .routes import parser_config

    parsed = parse_code(code, config=parser_config(kernel), symbology=symbology)
    return {"serial_number": parsed.serial_number, "lot_number": parsed.lot_number}


@hookimpl
def mes_register_commands():
    from .cli import app

    return [("barcode", app)]
