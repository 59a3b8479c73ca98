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
        ({"writable": {"recipe": "plant/+/recipe"}}, "writable.recipe.topic"),
        ({"writable": {"recipe": {"topic": "a/b", "type": "int"}}}, "writable.recipe.type"),
        ({"writable": {"recipe": {"topic": "a/b", "path": "value"}}}, "writable.recipe.path"),
        ({"writable": {"recipe": {"topic": "a/b", "retain": "no"}}}, "writable.recipe.retain"),
        ({"writable": {"recipe": {"topic": "a/b", "qos": 2}}}, "writable.recipe.qos"),
        ({"writable": {"recipe": 5}}, "writable.recipe"),
        ({"writable": {"9 lives": "a/b"}}, "writable.9 lives"),
        ({"writable": ["a/b"]}, "writable"),
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


def test_a_command_is_checked_against_its_type_and_placed_at_its_path():
    settings = parse_settings(device_config("broker", "plant/mc7"), device_code="MC-7")
    recipe, command = settings.writable["recipe"], settings.writable["command"]
    assert recipe.payload(42) == b"42" and command.payload(3) == b'{"command": 3}'
    for bad in (True, 2.5, "42"):
        with pytest.raises(ValueError):
            recipe.check(bad)
    with pytest.raises(ValueError):
        parse_settings({**device_config("b", "p"), "writable": {"x": "p/x"}}, device_code="D").writable["x"].check(
            "x" * 257
        )
    nested = parse_settings({**device_config("b", "p"), "writable": {"x": {"topic": "p/x", "path": "/a/b"}}},
                            device_code="D").writable["x"]
    assert nested.payload("on") == b'{"a": {"b": "on"}}'
