"""The plugin's packaging contract: entry points, kernel API range, a documented driver base class."""

from __future__ import annotations

import inspect
from importlib import metadata

from mes_barcode_hid import NAMESPACE, plugin
from mes_barcode_hid.drivers.base import Scan, ScannerDriver
from packaging.specifiers import SpecifierSet

from mes_kernel.contracts import KERNEL_API_VERSION


def test_plugin_entry_point_points_at_the_hook_module():
    (ep,) = [ep for ep in metadata.entry_points(group="mes_kernel.plugins") if ep.name == "barcode_hid"]
    assert ep.value == "mes_barcode_hid.plugin" and ep.load() is plugin


def test_declared_kernel_api_range_accepts_this_kernel():
    assert KERNEL_API_VERSION in SpecifierSet(plugin.MES_KERNEL_API)


def test_driver_entry_points_are_scanner_drivers():
    eps = {ep.name: ep for ep in metadata.entry_points(group=NAMESPACE) if ep.dist.name == "mes-barcode-hid"}
    assert set(eps) == {"evdev", "serial", "wedge", "simulator"}
    for name, ep in eps.items():
        cls = ep.load()
        assert issubclass(cls, ScannerDriver) and cls.name == name
        assert not inspect.isabstract(cls)


def test_every_public_member_of_the_driver_base_is_documented():
    for name, member in inspect.getmembers(ScannerDriver):
        if name.startswith("_") and name not in ("__aenter__",):
            continue
        if callable(member) or isinstance(member, property):
            assert inspect.getdoc(member), f"ScannerDriver.{name} has no docstring"
    assert {"open", "close", "connected"} <= ScannerDriver.__abstractmethods__
    assert [f for f in Scan.__dataclass_fields__] == ["code", "symbology", "received_at", "source"]


async def test_a_line_may_configure_scanners_by_driver_name(client, admin_headers):
    line = {
        "code": "LINE-B",
        "devices": [{"code": "SCN-01", "kind": "barcode_scanner", "driver": "serial", "config": {"port": "COM3"}}],
    }
    r = await client.post("/api/v1/lines/validate", json=line, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert (r.json()["valid"], r.json()["errors"]) == (True, [])
    assert r.json()["plan"]["devices"] == {"create": ["SCN-01"], "update": {}, "delete": []}
    line["breakers"] = {"scan_lookup": {"failure_threshold": 10}}  # the plugin's breaker, overridable per line
    line["devices"][0]["driver"] = "nosuch"
    r = await client.post("/api/v1/lines/validate", json=line, headers=admin_headers)
    assert r.json()["valid"] is False and len(r.json()["errors"]) == 1
    assert "nosuch" in r.text and "simulator" in r.text  # names the installed drivers
