"""Hook implementations of the firmware-uploader plugin: what it adds to the kernel."""

from __future__ import annotations

import httpx

from mes_kernel import hookimpl
from mes_kernel.contracts import BreakerConfig, DeviceKind, Panel, Permission
from mes_kernel.kernel import Kernel

from . import BREAKER_NAME, DEVICE_KIND, DRIVER_NAMESPACE
from .drivers.base import FirmwareUploaderDriver
from .flashing import wait_for_background
from .health import health_checks
from .routes import PERM_DELETE, PERM_FLASH, PERM_IMAGES, PERM_READ, build_router
from .uploaders import driver_pool

MES_KERNEL_API = ">=1.0,<2"
API = "/api/v1"


@hookimpl
def mes_register_routers(kernel: Kernel):
    return [build_router()]


@hookimpl
def mes_register_permissions():
    return [
        Permission(
            PERM_READ,
            "See firmware images, flash jobs and flash statistics",
            ("production_manager", "worker", "viewer", "station"),
        ),
        Permission(PERM_IMAGES, "Upload firmware images", ("production_manager",)),
        Permission(PERM_DELETE, "Delete firmware images", ("admin",)),
        Permission(PERM_FLASH, "Flash firmware into units", ("production_manager", "worker", "station")),
    ]


@hookimpl
def mes_register_device_kinds():
    return [
        DeviceKind(
            name=DEVICE_KIND,
            namespace=DRIVER_NAMESPACE,
            base_class=FirmwareUploaderDriver,
            description="Writes firmware images into units (uploader service or simulator)",
        )
    ]


@hookimpl
def mes_register_breakers():
    # The spec: 5 failures within the window open it for 60 s, and only HTTP errors count —
    # a device that answers "flash failed" is working, so it must not trip the breaker.
    return [
        BreakerConfig(
            name=BREAKER_NAME,
            failure_threshold=5,
            recovery_timeout=60,
            expected_exceptions=(httpx.HTTPError,),
            description="Per uploader device; opens after 5 HTTP errors, retries after 60 s",
        )
    ]


@hookimpl
def mes_register_health_checks(kernel: Kernel):
    return health_checks(kernel)


@hookimpl
def mes_register_panels():
    return [
        Panel(
            id="firmware_uploader.flashes_today",
            title="Firmware flashes today by outcome",
            kind="bar",
            endpoint=f"{API}/firmware/stats/today",
            refresh_seconds=30,
            permission=PERM_READ,
            options={"items": "items", "label": "outcome", "value": "count"},
            translations={"ko": {"Firmware flashes today by outcome": "오늘 결과별 펌웨어 업로드"}},
        )
    ]


@hookimpl
def mes_register_commands():
    from .cli import app

    return [("firmware", app)]


@hookimpl
async def mes_shutdown(kernel: Kernel):
    await wait_for_background(kernel)
    await driver_pool(kernel).close()


@hookimpl
def mes_demo_devices(settings):
    from .demo import demo_devices

    return demo_devices()
