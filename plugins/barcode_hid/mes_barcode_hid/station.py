"""The barcode scanner's station side (entry point ``mes_station.plugins``): its device kind and panel."""

from __future__ import annotations

from mes_kernel.contracts import ActionPanel, PanelButton, PanelField, StationDeviceKind, StationExtension

from . import NAMESPACE, PLUGIN_NAME

DEVICE_KIND = "barcode_scanner"

STATION_EXTENSION = StationExtension(
    name=PLUGIN_NAME,
    device_kinds=(StationDeviceKind(DEVICE_KIND, NAMESPACE, role="scanner", description="Barcode scanner"),),
    events=("scan",),
    panels=(
        ActionPanel(
            id="barcode_hid.lookup",
            title="Look up a code",
            kind=DEVICE_KIND,
            fields=(PanelField("code", "Scanned code"),),
            buttons=(
                PanelButton(
                    id="lookup",
                    label="Look up",
                    path="/scans/lookup",
                    body={"code": "{code}", "device": "{device}"},
                    idempotent=False,
                ),
            ),
        ),
    ),
    translations={
        "ko": {
            "Look up a code": "코드 조회",
            "Scanned code": "스캔한 코드",
            "Look up": "조회",
        }
    },
)
