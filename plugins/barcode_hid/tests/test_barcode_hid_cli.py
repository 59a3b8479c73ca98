"""``mes barcode parse`` and ``mes barcode listen`` run as real commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mes_barcode_hid.drivers.evdev_driver import InputEvent

MES = str(Path(sys.executable).with_name("mes"))


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MES, "barcode", *args], capture_output=True, text=True, timeout=30, env={**os.environ, **(env or {})}
    )


def test_parse_prints_the_verdict_and_fails_on_unknown():
    done = run("parse", "--json", "]C10109501101530003<GS>10AB1<GS>21SN77")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["serial_number"] == "SN77"
    done = run("parse", "--json", "SN-0001", env={"MES_BARCODE_SERIAL_PATTERNS": '["X\\\\d+"]'})
    assert done.returncode == 1 and json.loads(done.stdout)["kind"] == "unknown"


def test_listen_replays_an_evdev_recording(tmp_path):
    records = []
    for code in (30, 31):  # a, s, then Enter
        records += [InputEvent(1, 0, 1, code, 1).pack(), InputEvent(1, 0, 1, code, 0).pack()]
    records += [InputEvent(1, 5, 1, 28, 1).pack()]
    capture = tmp_path / "capture.bin"
    capture.write_bytes(b"".join(records))
    done = run("listen", "evdev", f"device={capture}", "replay=true", "--count", "1")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[0])["code"] == "as"
