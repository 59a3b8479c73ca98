"""The plugin's hook implementations return what the kernel mounts."""

from __future__ import annotations

import httpx
from mes_firmware_uploader import plugin
from mes_firmware_uploader.drivers import FirmwareUploaderDriver
from typer.testing import CliRunner

from mes_kernel.contracts import KERNEL_API_VERSION


def test_plugin_declares_a_compatible_kernel_api():
    from packaging.specifiers import SpecifierSet

    assert KERNEL_API_VERSION in SpecifierSet(plugin.MES_KERNEL_API)


def test_delete_is_admin_only_and_stations_may_flash():
    perms = {p.name: p.roles for p in plugin.mes_register_permissions()}
    assert perms["firmware:delete"] == ("admin",)
    assert "station" in perms["firmware:flash"] and "viewer" not in perms["firmware:flash"]
    assert "worker" not in perms["firmware:images"]


def test_breaker_counts_only_http_errors():
    [cfg] = plugin.mes_register_breakers()
    assert (cfg.name, cfg.failure_threshold, cfg.recovery_timeout) == ("firmware_uploader", 5, 60)
    assert cfg.expected_exceptions == (httpx.HTTPError,)


def test_device_kind_names_the_namespace_and_base_class():
    [kind] = plugin.mes_register_device_kinds()
    assert (kind.name, kind.namespace, kind.base_class) == (
        "firmware_uploader",
        "mes.drivers.firmware_uploader",
        FirmwareUploaderDriver,
    )


def test_mes_firmware_simulator_command_is_contributed():
    [(name, app)] = plugin.mes_register_commands()
    result = CliRunner().invoke(app, ["simulator", "--help"])
    assert name == "firmware" and result.exit_code == 0 and "--flash-seconds" in result.output
