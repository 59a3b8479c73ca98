"""A station installs without the server's stack: a clean venv gets ``mes-station`` and the bundled
device plugins (their base distributions), brings no FastAPI, Starlette, SQLAlchemy, asyncpg, Alembic or
gunicorn, and still loads and runs the drivers through the station's own extension mechanism.

Cheap but whole: pip resolves the closure once, a venv without pip gets exactly that closure with
``--no-deps``, and the drivers run there (about 30 s instead of 150 s for a venv with pip resolving and
installing everything itself)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER_STACK = {"fastapi", "starlette", "sqlalchemy", "asyncpg", "alembic", "gunicorn", "uvicorn", "aiosqlite"}

PROBE = r"""
import asyncio, importlib.util, json, sys
from mes_station.extensions import installed
from mes_station.devices import DeviceSet
from mes_station.config import DeviceConfig

ext = installed()
configs = {}
for code, (kind, driver, settings) in {
    "PRN-1": ("label_printer", "simulator", {"printer_id": "p"}),
    "SCN-1": ("barcode_scanner", "simulator", {"codes": ["SN-1"]}),
    "UPL-1": ("firmware_uploader", "simulator", {}),
}.items():
    k = ext.kinds()[kind]
    configs[code] = DeviceConfig(k.role, driver, k.namespace, settings, code=code, kind=kind)

async def main():
    devices = DeviceSet({})
    await devices.apply(configs)
    await devices.get("printer").send(b"^XA^FDhello^FS^XZ")
    report = devices.drivers_report()
    await devices.close()
    return report

report = asyncio.run(main())
from mes_station.completion import REQUIRED  # the completion schema ships in the kernel's base wheel
print(json.dumps({
    "completion_required": list(REQUIRED),
    "extensions": sorted(ext.loaded), "failed": ext.failed,
    "loaded": {c: d for c, d in report.items()},
    "server_modules": [m for m in ("fastapi", "starlette", "sqlalchemy", "asyncpg", "alembic", "gunicorn")
                       if importlib.util.find_spec(m) is not None or m in sys.modules],
}))
"""


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=170, **kw)


def _pip(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """This environment's pip (the target venv gets none: creating one with pip costs seconds)."""
    return _run([sys.executable, "-m", "pip", *args], env=env)


def _index_cannot_serve(result: subprocess.CompletedProcess) -> bool:
    return result.returncode != 0 and any(
        text in result.stderr for text in ("No matching distribution found", "Could not find a version")
    )


@pytest.mark.slow
def test_a_clean_venv_gets_the_station_and_its_drivers_without_the_server_stack(tmp_path: Path):
    """One resolution, one real install of exactly what it chose, one run of the drivers.

    1. pip resolves the station's install (``--dry-run --ignore-installed --report``: the whole
       dependency closure, as on an empty PC) — no server distribution may be in it;
    2. a venv made without pip (instant) gets exactly those distributions with ``--no-deps`` (the
       resolution is not done twice; sdists come from pip's wheel cache after the first run);
    3. the drivers load and run in that venv, where the server stack is not installed at all.
    """
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    # Copies of the projects, so that building them leaves no build/ folders in the source tree.
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "tests", "static")
    sources = tmp_path / "src"
    (sources / "kernel").mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", sources / "kernel")
    shutil.copytree(ROOT / "mes_kernel", sources / "kernel" / "mes_kernel", ignore=ignore)
    projects = [sources / "kernel"]
    for name in ("station", "plugins/label_printer", "plugins/barcode_hid", "plugins/firmware_uploader"):
        projects.append(shutil.copytree(ROOT / name, sources / name, ignore=ignore))
    # The local projects become wheels with this environment's build tools, as a release would ship them.
    wheels = tmp_path / "wheels"
    build = _pip("wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), *map(str, projects), env=env)
    assert build.returncode == 0, build.stderr[-2000:]

    report_path = tmp_path / "resolution.json"
    resolve = _pip("install", "-q", "--dry-run", "--ignore-installed", "--report", str(report_path),
                   *map(str, sorted(wheels.glob("*.whl"))), env=env)
    if _index_cannot_serve(resolve):
        pytest.skip(f"the package index cannot serve a third-party dependency: {resolve.stderr[-300:]}")
    assert resolve.returncode == 0, resolve.stderr[-2000:]
    chosen = json.loads(report_path.read_text())["install"]
    names = {item["metadata"]["name"].lower().replace("_", "-") for item in chosen}
    assert {"mes-kernel", "mes-station", "mes-label-printer", "mes-barcode-hid", "mes-firmware-uploader"} <= names
    assert not names & SERVER_STACK, f"server stack in a station install: {sorted(names & SERVER_STACK)}"

    target = tmp_path / "station-venv"
    venv.EnvBuilder(with_pip=False).create(target)
    python = target / "bin" / "python"
    requirements = tmp_path / "chosen.txt"
    requirements.write_text("\n".join(item["download_info"]["url"] for item in chosen) + "\n")
    install = _pip("--python", str(python), "install", "-q", "--no-deps", "--no-compile", "-r", str(requirements),
                   env=env)
    if _index_cannot_serve(install):
        pytest.skip(f"the package index cannot serve a third-party dependency: {install.stderr[-300:]}")
    assert install.returncode == 0, install.stderr[-2000:]

    listed = json.loads(_pip("--python", str(python), "list", "--format", "json", env=env).stdout)
    installed = {p["name"].lower().replace("_", "-") for p in listed}
    assert installed == names, f"installed but not resolved: {installed - names}; missing: {names - installed}"

    probe = _run([str(python), "-c", PROBE], env=env, cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr[-2000:]
    result = json.loads(probe.stdout)
    assert result["extensions"] == ["barcode_hid", "firmware_uploader", "label_printer"] and result["failed"] == {}
    assert result["server_modules"] == []
    assert "lot_number" in result["completion_required"]
    # every driver loaded (and the printer's ran: the probe sent it a label)
    assert {code: d["loaded"] for code, d in result["loaded"].items()} == {"PRN-1": True, "SCN-1": True, "UPL-1": True}
