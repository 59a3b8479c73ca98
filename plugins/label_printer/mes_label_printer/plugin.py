"""The label-printer plugin's hook implementations: what it adds to the kernel."""

from __future__ import annotations

from mes_kernel import hookimpl
from mes_kernel.contracts import BreakerConfig, DeviceKind, Panel, Permission

from . import DEVICE_KIND, DRIVER_NAMESPACE
from .drivers.base import LabelPrinterDriver, PrinterError
from .health import printer_checks
from .jobs import BREAKER, printer_pool
from .routes import router
from .store import templates_version

MES_KERNEL_API = ">=1.0,<2"
API = "/api/v1"


@hookimpl
def mes_register_routers(kernel):
    return [router]


@hookimpl
def mes_register_permissions():
    return [
        Permission(
            "labels:view",
            "See label templates, previews, print jobs and printers",
            ("admin", "production_manager", "worker", "viewer", "station"),
        ),
        # a station's agent prints for the worker at it, under the station's machine identity
        Permission("labels:print", "Print labels", ("admin", "production_manager", "worker", "station")),
        Permission("labels:reprint", "Reprint an already printed label (audited)", ("admin", "production_manager")),
        Permission(
            "labels:templates",
            "Upload, replace and retire label templates (the plant's ZPL)",
            ("admin", "production_manager"),
        ),
    ]


@hookimpl
def mes_register_device_kinds():
    return [
        DeviceKind(
            DEVICE_KIND,
            DRIVER_NAMESPACE,
            LabelPrinterDriver,
            description="Label printers (ZPL over TCP 9100, serial, HTTP print service)",
        )
    ]


@hookimpl
def mes_register_breakers():
    # The spec: 3 failures open the printer's breaker for 30 s. A garbled status reply or a
    # socket error counts like a printer error; a template error never reaches the breaker.
    return [
        BreakerConfig(
            BREAKER,
            failure_threshold=3,
            recovery_timeout=30,
            expected_exceptions=(PrinterError, ValueError, OSError),
            description="per label printer",
        )
    ]


@hookimpl
def mes_register_health_checks(kernel):
    return printer_checks(kernel)


#: the panels' texts in the managers' other language (``Panel.translations``)
PANEL_TRANSLATIONS = {
    "ko": {
        "Labels printed today": "오늘 인쇄한 라벨",
        "Print jobs by status (24 h)": "상태별 인쇄 작업 (24시간)",
    }
}


@hookimpl
def mes_register_panels():
    return [
        Panel(
            id="label_printer.printed_today",
            title="Labels printed today",
            kind="stat",
            endpoint=f"{API}/labels/stats/today",
            refresh_seconds=30,
            permission="labels:view",
            options={"value": "value"},
            translations=PANEL_TRANSLATIONS,
        ),
        Panel(
            id="label_printer.jobs_by_status",
            title="Print jobs by status (24 h)",
            kind="bar",
            endpoint=f"{API}/labels/stats/jobs-by-status",
            refresh_seconds=30,
            permission="labels:view",
            options={"items": "items", "label": "status", "value": "count"},
            translations=PANEL_TRANSLATIONS,
        ),
    ]


@hookimpl
async def mes_startup(kernel):
    # The stations' configuration (GET /stations/me/config) and the heartbeat answer name the
    # stored template set, read when asked, so a station re-syncs its cache right after an upload.
    async def label_templates(session):
        return await templates_version(session, kernel.state)

    kernel.state.setdefault("station_config", {})["label_templates"] = label_templates


@hookimpl
async def mes_shutdown(kernel):
    # switched off at run time or stopping: stations stop hearing of label templates, printers close
    kernel.state.get("station_config", {}).pop("label_templates", None)
    await printer_pool(kernel).close()


@hookimpl
def mes_demo_devices(settings):
    from .demo import demo_devices

    return demo_devices()
