"""The sample meter's station side: a device kind the station has never heard of, and its panel."""

from mes_kernel.contracts import ActionPanel, PanelButton, PanelField, StationDeviceKind, StationExtension

STATION_EXTENSION = StationExtension(
    name="sample_meter",
    device_kinds=(StationDeviceKind("sample_meter", "mes.drivers.sample_meter", role="meter", description="A meter"),),
    events=("meter_reading",),
    panels=(
        ActionPanel(
            id="sample_meter.read",
            title="Read the meter",
            kind="sample_meter",
            fields=(PanelField("note", "Note", required=False),),
            buttons=(
                PanelButton(id="read", label="Read", path="/sample/meters/{device}/read", body={"note": "{note}"}),
            ),
        ),
    ),
    # the panel's words in Korean; a language with no catalogue shows the English ones
    translations={"ko": {"Read the meter": "계측기 읽기", "Note": "메모", "Read": "읽기"}},
)
