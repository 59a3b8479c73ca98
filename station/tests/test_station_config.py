"""``station.toml``: the documented example loads, defaults are sane, mistakes are named."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest
from mes_station.config import ConfigError, config_from_dict, default_work_dir

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_example() -> dict:
    text = README.read_text(encoding="utf-8")
    return tomllib.loads(text.split("```toml", 1)[1].split("```", 1)[0])


def test_the_readme_example_is_a_valid_configuration(monkeypatch):
    monkeypatch.delenv("API_BASE_URL", raising=False)
    config = config_from_dict(_readme_example(), source=Path("/etc/mes/station.toml"))
    assert config.api_url == "https://mes.example.com/api/v1"
    assert config.station_code == "ST-01"
    assert config.devices["scanner"].namespace == "mes.drivers.barcode_scanner"
    assert config.devices["scanner"].settings == {"port": "/dev/ttyACM0"}
    assert config.devices["printer"].namespace == "mes.drivers.label_printer"
    assert config.devices["flasher"].namespace == "mes.drivers.firmware_uploader"
    assert config.device_overrides == {"SCN-01": {"port": "/dev/ttyACM1"}}  # laid over the server's SCN-01
    assert config.completion_retention_days == 90
    assert config.backoff_initial == 2.0


def test_work_dir_defaults_per_platform():
    expected = Path("C:\\neurohub_work\\") if sys.platform == "win32" else Path.home() / "neurohub_work"
    assert default_work_dir() == expected


def test_unknown_role_without_namespace_is_refused(monkeypatch):
    monkeypatch.delenv("API_BASE_URL", raising=False)
    raw = {"server": {"url": "http://x"}, "station": {"code": "ST-01"}, "devices": {"scale": {"driver": "x"}}}
    with pytest.raises(ConfigError, match="scale"):
        config_from_dict(raw)


def test_token_is_redacted_for_display(monkeypatch):
    monkeypatch.delenv("API_BASE_URL", raising=False)
    raw = {
        "server": {"url": "http://x", "token": "mst_abcdefghijklmnop"},
        "station": {"code": "ST-01"},
        "devices": {"printer": {"driver": "http_service", "api_key": "s3cret"}},
    }
    shown = str(config_from_dict(raw).redacted())
    assert "abcdefghijklmnop" not in shown and "s3cret" not in shown
