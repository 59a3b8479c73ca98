"""The firmware uploader's station side (entry point ``mes_station.plugins``): its device kind and panel."""

from __future__ import annotations

from mes_kernel.contracts import ActionPanel, PanelButton, PanelField, StationDeviceKind, StationExtension

from . import DEVICE_KIND, DRIVER_NAMESPACE, PLUGIN_NAME

STATION_EXTENSION = StationExtension(
    name=PLUGIN_NAME,
    device_kinds=(StationDeviceKind(DEVICE_KIND, DRIVER_NAMESPACE, role="flasher", description="Firmware uploader"),),
    events=("device_result",),
    panels=(
        ActionPanel(
            id="firmware_uploader.flash",
            title="Flash firmware",
            kind=DEVICE_KIND,
            fields=(
                PanelField("serial_number", "Serial number"),
                PanelField("product", "Product"),
                PanelField("version", "Firmware version"),
            ),
            buttons=(
                PanelButton(
                    id="flash",
                    label="Flash",
                    path="/firmware/upload",
                    body={
                        "device": "{device}",
                        "serial_number": "{serial_number}",
                        "product": "{product}",
                        "version": "{version}",
                        "wait": False,
                    },
                ),
            ),
        ),
    ),
    translations={
        "ko": {
            "Flash firmware": "펌웨어 플래시",
            "Serial number": "시리얼 번호",
            "Product": "제품",
            "Firmware version": "펌웨어 버전",
            "Flash": "플래시",
        }
    },
)
