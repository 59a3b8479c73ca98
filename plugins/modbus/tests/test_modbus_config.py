"""A Modbus device's configuration: register forms, data types and word order, the poll plan, and
every mistake named by the key at fault."""

from __future__ import annotations

import pytest
from mes_modbus.codec import decode, encode
from mes_modbus.config import Register, parse_register, parse_settings, plan_reads
from mes_modbus.simulator import device_config

from mes_kernel.contracts import MappingError


def test_register_string_and_table_forms_are_the_same_register():
    assert parse_register("holding:1:uint32", field="r") == parse_register(
        {"type": "holding", "address": 1, "data_type": "uint32"}, field="r"
    )
    assert parse_register("coil:5", field="r") == Register("coil", 5, "bool", 1)
    assert parse_register("input:0", field="r") == Register("input", 0, "uint16", 1)


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("holding", "r"),
        ("holding:x", "r"),
        ("register:1", "r.type"),
        ({"type": "holding", "address": 70000}, "r.address"),
        ({"type": "holding", "address": -1}, "r.address"),
        ({"type": "holding", "address": 65535, "data_type": "uint32"}, "r.address"),
        ({"type": "holding", "address": 1, "data_type": "int64"}, "r.data_type"),
        ({"type": "coil", "address": 1, "data_type": "uint16"}, "r.data_type"),
        ({"type": "holding", "address": 1, "data_type": "string"}, "r.count"),
        ({"type": "holding", "address": 1, "data_type": "int32", "word_order": "middle"}, "r.word_order"),
        (12, "r"),
    ],
)
def test_a_bad_register_is_refused_naming_its_key(value, field):
    with pytest.raises(MappingError) as err:
        parse_register(value, field="r")
    assert err.value.field == field


def test_settings_of_the_simulator_config_parse():
    settings = parse_settings(device_config(host="10.0.0.8", port=5020), driver="tcp")
    assert settings.host == "10.0.0.8" and settings.port == 5020 and settings.unit == 1
    assert settings.registers["serial"] == Register("holding", 10, "string", 16)
    assert settings.writable["start"].table == "coil"


@pytest.mark.parametrize(
    ("change", "driver", "field"),
    [
        ({"host": None}, "tcp", "host"),
        ({}, "rtu", "serial_port"),
        ({"unit": 300}, "tcp", "unit"),
        ({"poll_seconds": 0}, "tcp", "poll_seconds"),
        ({"parity": "X"}, "tcp", "parity"),
        ({"writable": {"temp": "input:0"}}, "tcp", "writable.temp"),
        ({"registers": {"state": "holding:0", "good": "bits:1"}, "values": {}}, "tcp", "registers.good.type"),
        ({"states": {"running": [1], "broken": [2]}}, "tcp", "states.broken"),
        ({"reconnect_min": 5, "reconnect_max": 1}, "tcp", "reconnect_max"),
    ],
)
def test_bad_settings_name_the_key_at_fault(change, driver, field):
    config = {**device_config(host="127.0.0.1", port=502), **change}
    if config.get("host") is None:
        config.pop("host")
    with pytest.raises(MappingError) as err:
        parse_settings(config, driver=driver)
    assert err.value.field == field


def test_neighbouring_registers_share_a_request_and_far_ones_do_not():
    registers = {
        "state": Register("holding", 0, "uint16", 1),
        "good": Register("holding", 1, "uint32", 2),
        "serial": Register("holding", 10, "string", 16),
        "far": Register("holding", 400, "uint16", 1),
        "temp": Register("input", 0, "int16", 1),
        "door": Register("discrete", 3, "bool", 1),
    }
    plan = plan_reads(registers)
    assert [(b.table, b.start, b.count, [n for n, _ in b.signals]) for b in plan] == [
        ("discrete", 3, 1, ["door"]),
        ("holding", 0, 26, ["state", "good", "serial"]),
        ("holding", 400, 1, ["far"]),
        ("input", 0, 1, ["temp"]),
    ]


def test_a_request_never_exceeds_125_registers():
    registers = {f"v{i}": Register("holding", i * 10, "uint16", 1) for i in range(40)}
    plan = plan_reads(registers)
    assert all(b.count <= 125 for b in plan)
    assert sum(len(b.signals) for b in plan) == 40


@pytest.mark.parametrize(
    ("data_type", "order", "value", "registers"),
    [
        ("int16", "big", -2, [0xFFFE]),
        ("uint16", "big", 65535, [0xFFFF]),
        ("int32", "big", -70000, [0xFFFE, 0xEE90]),
        ("uint32", "big", 70000, [0x0001, 0x1170]),
        ("uint32", "little", 70000, [0x1170, 0x0001]),
        ("float32", "big", 1.5, [0x3FC0, 0x0000]),
        ("float32", "little", 1.5, [0x0000, 0x3FC0]),
        ("float32", "big", 6.2, [0x40C6, 0x6666]),  # read back as 6.2, not the float32's 6.199999809265137
        ("float32", "big", 0.1, [0x3DCC, 0xCCCD]),
    ],
)
def test_values_round_trip_through_registers(data_type, order, value, registers):
    register = Register("holding", 0, data_type, 1 if data_type.endswith("16") else 2, order)
    assert encode(register, value) == registers
    assert decode(register, registers) == value


def test_strings_are_trimmed_of_nuls_and_spaces():
    register = Register("holding", 10, "string", 4)
    assert encode(register, "SN-1") == [0x534E, 0x2D31, 0, 0]
    assert decode(register, [0x534E, 0x2D31, 0, 0]) == "SN-1"
    assert decode(register, [0x2020, 0, 0, 0]) == ""


@pytest.mark.parametrize(
    ("data_type", "value"),
    [("uint16", 70000), ("uint16", -1), ("int16", 1.5), ("int32", "7"), ("uint16", True), ("float32", float("nan"))],
)
def test_a_value_its_type_cannot_hold_is_refused(data_type, value):
    with pytest.raises(ValueError):
        encode(Register("holding", 0, data_type, 2), value)


def test_a_nan_float_read_is_refused():
    with pytest.raises(ValueError):
        decode(Register("input", 0, "float32", 2), [0x7FC0, 0x0000])
