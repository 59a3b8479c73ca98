"""An MQTT device's configuration and payload timestamps: every mistake named by the key at fault."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from mes_mqtt.config import parse_settings
from mes_mqtt.connector import source_time
from mes_mqtt.simulator import device_config

from mes_kernel.contracts import MappingError


def test_the_simulator_configuration_parses_with_a_stable_client_id():
    settings = parse_settings(device_config("broker", "plant/mc7"), device_code="MC-7")
    assert settings.client_id == "mes-MC-7" and settings.qos == 1 and settings.port == 1883
    assert settings.filters == ["plant/mc7/status", "plant/mc7/counters", "plant/mc7/unit", "plant/mc7/+/temp"]
    assert settings.routes["good"].path.path == "/good" and settings.routes["good"].time.path == "/ts"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"host": ""}, "host"),
        ({"qos": 2}, "qos"),
        ({"topics": {"state": {"topic": "a/#/b", "path": "/s"}}}, "topics.state.topic"),
        ({"topics": {"state": {"topic": "a/b", "path": "state"}}}, "topics.state.path"),
        ({"topics": {"state": 7}}, "topics.state"),
        ({"time": "ts"}, "time"),
        ({"client_id": ""}, "client_id"),
        ({"reconnect_min": 10, "reconnect_max": 1}, "reconnect_max"),
        ({"tls": "yes"}, "tls"),
    ],
)
def test_bad_settings_name_the_key_at_fault(change, field):
    config = {**device_config("broker", "plant/mc7"), **change}
    if "topics" in change:
        config["values"] = {}
    with pytest.raises(MappingError) as err:
        parse_settings(config, device_code="MC-7")
    assert err.value.field == field


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-30T08:00:00Z", datetime(2026, 11, 30, 8, tzinfo=UTC)),
        ("2026-11-30T09:00:00+01:00", datetime(2026, 11, 30, 8, tzinfo=UTC)),
        ("2026-11-30T08:00:00", datetime(2026, 11, 30, 8, tzinfo=UTC)),
        (1764489600, datetime(2025, 11, 30, 8, tzinfo=UTC)),
        (1764489600.5, datetime(2025, 11, 30, 8, 0, 0, 500000, tzinfo=UTC)),
        (1764489600000, datetime(2025, 11, 30, 8, tzinfo=UTC)),
    ],
)
def test_timestamps_are_iso_8601_or_epoch_seconds_or_milliseconds(raw, expected):
    assert source_time(raw) == expected


@pytest.mark.parametrize("raw", ["yesterday", True, None, [1], 1e30])
def test_anything_else_is_not_a_timestamp(raw):
    with pytest.raises(ValueError):
        source_time(raw)
