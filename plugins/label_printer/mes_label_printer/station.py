"""The label printer's station side (entry point ``mes_station.plugins``): its device kind and panel."""

from __future__ import annotations

from mes_kernel.contracts import ActionPanel, PanelButton, PanelField, StationDeviceKind, StationExtension

from . import DEVICE_KIND, DRIVER_NAMESPACE, PLUGIN_NAME

#: device-config keys the server's print jobs use (retries), not the driver's constructor
PLUGIN_SETTINGS = ("max_attempts", "retry_delay")

STATION_EXTENSION = StationExtension(
    name=PLUGIN_NAME,
    device_kinds=(
        StationDeviceKind(
            DEVICE_KIND, DRIVER_NAMESPACE, role="printer", description="Label printer", server_settings=PLUGIN_SETTINGS
        ),
    ),
    events=("device_result",),
    panels=(
        ActionPanel(
            id="label_printer.print",
            title="Print a label",
            kind=DEVICE_KIND,
            fields=(
                PanelField(
                    "template", "Template", type="choice", choices=("unit_label", "lot_label"), default="unit_label"
                ),
                PanelField("serial_number", "Serial number", required=False),
                PanelField("lot_number", "LOT number", required=False),
                PanelField("product", "Product"),
                PanelField("gtin", "GTIN (unit label)", required=False),
                PanelField("quantity", "Quantity (LOT label)", type="number", required=False),
            ),
            buttons=(
                PanelButton(
                    id="print",
                    label="Print",
                    path="/labels/print",
                    body={
                        "printer": "{device}",
                        "template": "{template}",
                        "serial_number": "{serial_number}",
                        "lot_number": "{lot_number}",
                        "fields": {"product": "{product}", "gtin": "{gtin}", "quantity": "{quantity}"},
                    },
                ),
            ),
        ),
    ),
    translations={
        "ko": {
            "Print a label": "라벨 인쇄",
            "Template": "템플릿",
            "Serial number": "시리얼 번호",
            "LOT number": "LOT 번호",
            "Product": "제품",
            "GTIN (unit label)": "GTIN (유닛 라벨)",
            "Quantity (LOT label)": "수량 (LOT 라벨)",
            "Print": "인쇄",
        }
    },
)
