"""Per-line configuration: validated against what is installed, applied all or nothing."""

from __future__ import annotations

import subprocess
import sys

LINE = {
    "name": "Assembly A",
    "plugins": ["sample_meter", "label_printer"],
    "breakers": {"sample_meter": {"failure_threshold": 7, "recovery_timeout": 11}},
    "devices": [
        {"code": "MTR-1", "kind": "sample_meter", "driver": "fake_meter", "station": "ST-01", "config": {"value": 3}},
    ],
}


async def test_line_config_applies_and_reads_back(third_party, client, admin_headers, station_headers, kernel):
    r = await client.put("/api/v1/lines/LINE-A", json=LINE, headers=admin_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["plugins"] == ["sample_meter", "label_printer"]
    assert body["devices"][0] | {"config": None} == {"code": "MTR-1", "kind": "sample_meter", "driver": "fake_meter",
                                                     "station": "ST-01", "enabled": True, "config": None}
    cfg = kernel.breakers.config_for("sample_meter", line="LINE-A")
    assert (cfg.failure_threshold, cfg.recovery_timeout) == (7, 11.0)
    assert kernel.breakers.config_for("sample_meter").failure_threshold == 2  # other lines keep the default
    devices = (await client.get("/api/v1/devices?line=LINE-A", headers=station_headers)).json()
    assert [d["code"] for d in devices] == ["MTR-1"]
    audit = (await client.get("/api/v1/audit?entity=device", headers=admin_headers)).json()
    assert audit["items"][0]["entity_id"] == "MTR-1" and audit["items"][0]["action"] == "create"

    # dropping the device from the file removes it (audited), nothing else changes
    r = await client.put("/api/v1/lines/LINE-A", json={**LINE, "devices": []}, headers=admin_headers)
    assert r.status_code == 200 and r.json()["devices"] == []


async def test_invalid_line_config_is_refused_with_every_problem_named(third_party, client, admin_headers,
                                                                      station_headers):
    bad = {
        "plugins": ["sample_meter", "no_such_plugin"],
        "breakers": {"nope": {"failure_threshold": 1}},
        "devices": [
            {"code": "D-1", "kind": "sample_meter", "driver": "no_such_driver"},
            {"code": "D-2", "kind": "unknown_kind", "driver": "x"},
            {"code": "D-3", "kind": "label_printer", "driver": "zpl_tcp", "station": "ST-404"},
        ],
    }
    r = await client.put("/api/v1/lines/LINE-A", json=bad, headers=admin_headers)
    assert r.status_code == 422 and r.json()["detail"]["code"] == "INVALID_LINE_CONFIG"
    locs = {tuple(e["loc"]) for e in r.json()["detail"]["errors"]}
    assert {("plugins", 1), ("breakers", "nope"), ("devices", 0, "driver"), ("devices", 1, "kind"),
            ("devices", 2, "station")} <= locs
    assert (await client.get("/api/v1/devices?line=LINE-A", headers=admin_headers)).json() == []  # nothing written

    assert (await client.post("/api/v1/lines/validate", json={}, headers=admin_headers)).json()["valid"] is False
    not_enabled = {"code": "LINE-C", "plugins": ["label_printer"],
                   "devices": [{"code": "M", "kind": "sample_meter", "driver": "fake_meter"}]}
    r = await client.post("/api/v1/lines/validate", json=not_enabled, headers=admin_headers)
    assert r.json()["valid"] is False and "not enabled on this line" in r.json()["errors"][0]["msg"]


async def test_workers_cannot_change_lines(client, worker_headers):
    r = await client.put("/api/v1/lines/LINE-B", json={"devices": []}, headers=worker_headers)
    assert r.status_code == 403


def test_mes_line_apply_validates_a_file(third_party, tmp_path):
    import os

    env = {**os.environ, "PYTHONPATH": str(third_party), "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/l.db",
           "FILES_DIR": str(tmp_path / "files")}
    subprocess.run([sys.executable, "-m", "mes_kernel.cli", "db", "upgrade"], env=env, check=True,
                   capture_output=True, timeout=120)
    good = tmp_path / "line-a.toml"
    good.write_text('[line]\ncode = "LINE-A"\nname = "A"\n\n[plugins]\nenabled = ["sample_meter"]\n\n'
                    '[[devices]]\ncode = "MTR-1"\nkind = "sample_meter"\ndriver = "fake_meter"\n'
                    '[devices.config]\nvalue = 5\n')
    out = subprocess.run([sys.executable, "-m", "mes_kernel.cli", "line", "apply", str(good)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "line LINE-A applied: 1 device(s)" in out.stdout
    bad = tmp_path / "line-b.toml"
    bad.write_text('[line]\ncode = "LINE-B"\n\n[[devices]]\ncode = "X"\nkind = "sample_meter"\ndriver = "zzz"\n')
    out = subprocess.run([sys.executable, "-m", "mes_kernel.cli", "line", "apply", str(bad)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "devices.0.driver" in out.stderr and "zzz" in out.stderr


def test_dry_run_runs_the_checks_of_the_real_apply_and_one_file_sets_up_a_line(third_party, tmp_path):
    import os

    env = {**os.environ, "PYTHONPATH": str(third_party), "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/l.db",
           "FILES_DIR": str(tmp_path / "files")}

    def mes(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "mes_kernel.cli", *args], env=env, capture_output=True,
                              text=True, timeout=120)

    assert mes("db", "upgrade").returncode == 0
    devices = ('[[devices]]\ncode = "MTR-9"\nkind = "sample_meter"\ndriver = "fake_meter"\nstation = "ST-NEW"\n')
    no_station = tmp_path / "line-n.toml"
    no_station.write_text('[line]\ncode = "LINE-N"\n\n' + devices)
    for args in (("--dry-run",), ()):  # the dry run refuses exactly what the apply refuses
        out = mes("line", "apply", *args, str(no_station))
        assert out.returncode == 1 and "devices.0.station" in out.stderr and "ST-NEW" in out.stderr, out

    whole = tmp_path / "line-w.toml"
    whole.write_text('[line]\ncode = "LINE-N"\nname = "New line"\n\n'
                     '[[stations]]\ncode = "ST-NEW"\nname = "New station"\n\n' + devices)
    out = mes("line", "apply", "--dry-run", str(whole))
    assert out.returncode == 0 and "is valid" in out.stdout, out.stderr
    shown = mes("line", "show", "LINE-N")
    assert shown.returncode == 1 and "not found" in shown.stderr  # the dry run wrote nothing
    out = mes("line", "apply", str(whole))
    assert out.returncode == 0, out.stderr
    shown = mes("line", "show", "LINE-N")
    assert '"ST-NEW"' in shown.stdout and '"MTR-9"' in shown.stdout

    other = tmp_path / "line-o.toml"  # a station of LINE-N claimed by another line
    other.write_text('[line]\ncode = "LINE-O"\n\n[[stations]]\ncode = "ST-NEW"\n')
    out = mes("line", "apply", "--dry-run", str(other))
    assert out.returncode == 1 and "belongs to line 'LINE-N'" in out.stderr


async def test_the_configuration_version_grows_only_when_the_line_changes(third_party, client, admin_headers,
                                                                         station_headers):
    first = (await client.put("/api/v1/lines/LINE-A", json=LINE, headers=admin_headers)).json()["config_version"]
    same = (await client.put("/api/v1/lines/LINE-A", json=LINE, headers=admin_headers)).json()["config_version"]
    assert same == first
    changed = {**LINE, "devices": [{**LINE["devices"][0], "config": {"value": 4}}]}
    r = await client.put("/api/v1/lines/LINE-A", json=changed, headers=admin_headers)
    assert r.json()["config_version"] == first + 1
    beat = await client.post("/api/v1/stations/heartbeat", json={"agent_version": "t"}, headers=station_headers)
    assert beat.json()["config_version"] == first + 1


async def test_a_body_naming_another_line_or_a_misspelt_key_is_refused_and_nothing_written(
    third_party, client, admin_headers, station_headers
):
    assert (await client.put("/api/v1/lines/LINE-A", json=LINE, headers=admin_headers)).status_code == 200
    before = (await client.get("/api/v1/lines/LINE-A", headers=admin_headers)).json()
    for body in (
        {**LINE, "code": "LINE-Z", "devices": []},
        {"line": {"code": "LINE-Q"}, "devices": []},
        {**LINE, "devices": [{**LINE["devices"][0], "statoin": "ST-02"}]},
        {**LINE, "plugins": {"enabled": ["sample_meter"], "bogus": 1}},
        {**LINE, "plugins": ["label_printer"], "devices": [], "device_defaults": {"sample_meter": {"value": 1}}},
        {**LINE, "plugins": ["sample_meter", "label_printer", "sample_meter"]},  # a plugin listed twice
    ):
        r = await client.put("/api/v1/lines/LINE-A", json=body, headers=admin_headers)
        assert r.status_code == 422 and r.json()["detail"]["code"] == "INVALID_LINE_CONFIG", (body, r.text)
    assert (await client.get("/api/v1/lines/LINE-A", headers=admin_headers)).json() == before
    # what GET answers can be sent back as it is
    r = await client.put("/api/v1/lines/LINE-A", json=before, headers=admin_headers)
    assert r.status_code == 200, r.text


def test_a_dry_run_prints_exactly_the_plan_the_apply_carries_out(third_party, tmp_path):
    import os

    env = {**os.environ, "PYTHONPATH": str(third_party), "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/l.db",
           "FILES_DIR": str(tmp_path / "files")}

    def mes(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "mes_kernel.cli", *args], env=env, capture_output=True,
                              text=True, timeout=120)

    def plan(output: str) -> list[str]:
        lines = output.splitlines()
        start = next(i for i, text in enumerate(lines) if text.startswith(("would change:", "changed:")))
        return lines[start:]

    def device(code: str, station: str | None = None, value: int = 1) -> str:
        at = f'station = "{station}"\n' if station else ""
        return (f'[[devices]]\ncode = "{code}"\nkind = "sample_meter"\ndriver = "fake_meter"\n{at}'
                f'[devices.config]\nvalue = {value}\n\n')

    assert mes("db", "upgrade").returncode == 0
    first = tmp_path / "first.toml"
    first.write_text('[line]\ncode = "LINE-P"\nname = "P"\n\n[[stations]]\ncode = "ST-P1"\n\n'
                     + device("MTR-1", "ST-P1") + device("MTR-2") + device("MTR-3"))
    dry = mes("line", "apply", "--dry-run", str(first))
    assert dry.returncode == 0, dry.stderr
    assert plan(dry.stdout) == ["would change: 5", "  create line LINE-P", "  create station ST-P1",
                                "  create device MTR-1", "  create device MTR-2", "  create device MTR-3"]
    real = mes("line", "apply", str(first))
    assert real.returncode == 0, real.stderr
    assert plan(real.stdout)[1:] == plan(dry.stdout)[1:] and plan(real.stdout)[0] == "changed: 5"

    # a second file: a new station, MTR-1 moved and re-set, MTR-2 unchanged, MTR-3 gone, MTR-4 new
    second = tmp_path / "second.toml"
    second.write_text('[line]\ncode = "LINE-P"\nname = "P renamed"\n\n[[stations]]\ncode = "ST-P1"\n\n'
                      '[[stations]]\ncode = "ST-P2"\nname = "two"\n\n'
                      + device("MTR-1", "ST-P2", value=9) + device("MTR-2") + device("MTR-4"))
    dry = mes("line", "apply", "--dry-run", str(second))
    assert plan(dry.stdout) == ["would change: 5", "  change line LINE-P: name", "  create station ST-P2",
                                "  create device MTR-4", "  change device MTR-1: config, station",
                                "  delete device MTR-3"]
    assert '"MTR-3"' in mes("line", "show", "LINE-P").stdout  # the dry run wrote nothing
    real = mes("line", "apply", str(second))
    assert real.returncode == 0 and plan(real.stdout)[1:] == plan(dry.stdout)[1:], real.stdout + real.stderr
    shown = mes("line", "show", "LINE-P").stdout
    assert '"MTR-3"' not in shown and '"MTR-4"' in shown and '"ST-P2"' in shown

    # applied again: both say nothing changes
    assert plan(mes("line", "apply", "--dry-run", str(second)).stdout) == ["would change: nothing"]
    assert plan(mes("line", "apply", str(second)).stdout) == ["changed: nothing"]


async def test_an_empty_body_is_refused_and_changes_nothing(client, admin_headers):
    r = await client.put("/api/v1/lines/LINE-E", json={"name": "E", "plugins": []}, headers=admin_headers)
    assert r.status_code == 200, r.text
    for body in ({}, {"line": {}}, {"code": "LINE-E"}, {"config_version": 3}):
        r = await client.put("/api/v1/lines/LINE-E", json=body, headers=admin_headers)
        assert r.status_code == 422 and r.json()["detail"]["code"] == "INVALID_LINE_CONFIG", (body, r.text)
    r = await client.get("/api/v1/lines/LINE-E", headers=admin_headers)
    assert r.json()["name"] == "E" and r.json()["plugins"] == []
