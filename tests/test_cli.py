"""The ``mes`` console script, run as a real subprocess against a SQLite file."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mes_kernel.app import create_app
from mes_kernel.audit import seal_pending
from mes_kernel.migrate import upgrade
from mes_kernel.settings import Settings

MES = Path(sys.executable).with_name("mes")
TIMEOUT = 60


@pytest.fixture
def cli_env(tmp_path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MES_", "DATABASE_", "REDIS_", "SECRET_", "ENVIRONMENT", "WORKERS"))
    }
    env.update(
        {
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/mes.db",
            "FILES_DIR": str(tmp_path / "files"),
            "BCRYPT_ROUNDS": "4",
            "LOG_LEVEL": "WARNING",
            "COLUMNS": "200",  # keep rich from wrapping the lines asserted on
            "NO_COLOR": "1",
        }
    )
    return env


def mes(env: dict[str, str], *args: str, stdin: str | None = None, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(MES), *args], input=stdin, env=env, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT
    )


def start(env: dict[str, str], *args: str, cwd: Path, stdin: str = "") -> tuple[subprocess.Popen, str]:
    """Start a command without waiting (several run side by side); ``finish`` collects it."""
    proc = subprocess.Popen(
        [str(MES), *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, stdin


def finish(started: tuple[subprocess.Popen, str]) -> tuple[int, str]:
    proc, stdin = started
    stdout, stderr = proc.communicate(stdin, timeout=TIMEOUT)
    return proc.returncode, stdout + stderr


async def test_upgrade_create_user_log_in_and_verify_then_detect_tampering(cli_env, tmp_path):
    upgraded = mes(cli_env, "db", "upgrade", cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "schema at head" in upgraded.stdout + upgraded.stderr
    assert (tmp_path / "mes.db").exists()

    created = mes(
        cli_env, "user", "create", "bob", "--role", "worker", "--password-stdin", stdin="bob-secret-pw\n", cwd=tmp_path
    )
    assert created.returncode == 0, created.stderr
    assert "bob" in created.stdout + created.stderr

    # The user the CLI made logs in through the API of an app on the same database.
    settings = Settings(
        database_url=cli_env["DATABASE_URL"],
        files_dir=cli_env["FILES_DIR"],
        log_json=False,
        log_level="WARNING",
        _env_file=None,
    )
    app = create_app(settings, load_entry_points=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://mes.test") as client:
            r = await client.post("/api/v1/auth/login", json={"username": "bob", "password": "bob-secret-pw"})
            assert r.status_code == 200, r.text
            assert r.json()["role"] == "worker"
            wrong = await client.post("/api/v1/auth/login", json={"username": "bob", "password": "nope-nope"})
            assert wrong.status_code == 401
        async with app.state.kernel.sessionmaker() as session:
            assert await seal_pending(session, grace_seconds=0) is not None
            await session.commit()

    again = start(
        cli_env, "user", "create", "bob", "--role", "viewer", "--password-stdin", stdin="bob-secret-pw\n", cwd=tmp_path
    )
    verified = mes(cli_env, "audit", "verify", cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("OK")
    assert "1 entries, 1 sealed blocks" in verified.stdout
    assert "verifying audit trail" in verified.stderr  # progress goes to stderr, the verdict to stdout
    code, output = finish(again)
    assert code != 0, output
    assert "USER_EXISTS" in output

    db = sqlite3.connect(tmp_path / "mes.db")
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("UPDATE audit_log SET actor = 'mallory'")
        entry_id = db.execute("SELECT id FROM audit_log WHERE entity = 'user' AND entity_id = 'bob'").fetchone()[0]
        db.execute("DROP TRIGGER audit_log_no_update")
        db.execute("UPDATE audit_log SET actor = 'mallory' WHERE id = ?", (entry_id,))
        db.commit()
    finally:
        db.close()
    broken = mes(cli_env, "audit", "verify", cwd=tmp_path)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert f"BROKEN at entry {entry_id}" in broken.stdout


def test_bad_input_exits_non_zero_with_the_problem_listed(cli_env, tmp_path):
    upgrade(Settings(database_url=cli_env["DATABASE_URL"], _env_file=None))
    bad_toml = tmp_path / "broken.toml"
    bad_toml.write_text('[line]\ncode = "LINE-A"\nname = "unterminated\n')
    bad_config = tmp_path / "line-a.toml"
    bad_config.write_text(
        '[line]\ncode = "LINE A"\nname = "Line A"\n\n'
        '[plugins]\nenabled = ["no_such_plugin"]\n\n'
        '[[devices]]\ncode = "PRN-01"\nkind = "teleporter"\ndriver = "warp"\n'
    )
    invalid_line = tmp_path / "line-b.toml"
    invalid_line.write_text(
        '[line]\ncode = "LINE-B"\nname = "Line B"\n\n'
        '[plugins]\nenabled = ["no_such_plugin"]\n\n'
        "[breakers.warp_drive]\nfailure_threshold = 3\n\n"
        '[[devices]]\ncode = "DEV-01"\nkind = "teleporter"\ndriver = "warp"\n'
    )
    production = {**cli_env, "ENVIRONMENT": "production", "SECRET_KEY": "too-short"}

    runs = {
        "bad role": start(
            cli_env,
            "user",
            "create",
            "eve",
            "--role",
            "superuser",
            "--password-stdin",
            cwd=tmp_path,
            stdin="eve-secret-pw\n",
        ),
        "bad toml": start(cli_env, "line", "apply", str(bad_toml), cwd=tmp_path),
        "bad config": start(cli_env, "line", "apply", str(bad_config), cwd=tmp_path),
        "invalid line": start(cli_env, "line", "apply", str(invalid_line), cwd=tmp_path),
        "production secret": start(production, "audit", "verify", cwd=tmp_path),
    }
    results = {name: finish(proc) for name, proc in runs.items()}

    code, output = results["bad role"]
    assert code != 0, output
    assert "role" in output
    code, output = results["bad toml"]
    assert code != 0, output
    assert "not valid TOML" in output
    code, output = results["bad config"]
    assert code != 0, output
    assert "problem" in output
    assert "code" in output  # "LINE A" has a space
    code, output = results["invalid line"]  # well-formed, but names what is not installed: every problem listed
    assert code == 1, output
    assert "3 problem(s)" in output
    for where in ("plugins.0", "breakers.warp_drive", "devices.0.kind", "no_such_plugin"):
        assert where in output, (where, output)
    code, output = results["production secret"]
    assert code != 0, output
    assert "SECRET_KEY" in output

    # Nothing of it reached the database.
    db = sqlite3.connect(tmp_path / "mes.db")
    try:
        assert db.execute("SELECT count(*) FROM users").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM lines").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM audit_log").fetchone()[0] == 0
    finally:
        db.close()


def test_serve_on_first_run_prints_the_url_and_a_login_that_works(cli_env, tmp_path):
    """The embedded default: `mes serve` migrates a fresh SQLite file, creates the first admin, says how to log in."""
    with socket.socket() as probe:  # an ephemeral port for the server
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(MES), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=cli_env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        said, password = [], None
        deadline = time.monotonic() + TIMEOUT
        while password is None and time.monotonic() < deadline:
            line = server.stderr.readline()
            if not line:
                break
            said.append(line)
            found = re.search(r"log in as admin with password (\S+)", line)
            password = found.group(1) if found else None
        output = "".join(said)
        assert password, output
        assert f"http://127.0.0.1:{port}" in output
        assert (tmp_path / "initial-admin.txt").read_text().splitlines()[1] == f"password: {password}"

        base = f"http://127.0.0.1:{port}/api/v1"
        with httpx.Client(timeout=5) as http:
            for _ in range(100):  # until uvicorn listens (at most ~10 s)
                try:
                    if http.get(f"{base}/health/liveness").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            r = http.post(f"{base}/auth/login", json={"username": "admin", "password": password})
            assert r.status_code == 200, r.text
            me = http.get(f"{base}/auth/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
            assert me.json()["role"] == "admin"
            assert http.get(f"{base}/health/readiness").status_code == 200
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)
        server.stderr.close()


@pytest.mark.parametrize("dry_run", [True, False])
def test_line_apply_of_a_file_that_is_not_utf8_says_so_without_a_traceback(cli_env, tmp_path, dry_run):
    """TOML is UTF-8: a Latin-1 export or a binary file is refused like a file that is not TOML (exit 2,
    the file named), not with a UnicodeDecodeError traceback."""
    bad = tmp_path / "line-latin1.toml"
    bad.write_bytes('[line]\ncode = "LINE-A"\nname = "Ligne d\'assemblage \u00e9t\u00e9"\n'.encode("latin-1"))
    args = ["line", "apply", *(["--dry-run"] if dry_run else []), str(bad)]
    result = mes(cli_env, *args, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output and "UnicodeDecodeError" not in output
    assert "not valid TOML" in output and "UTF-8" in output


def test_a_plugin_denied_by_plugins_deny_adds_no_command(cli_env, tmp_path):
    """PLUGINS_DENY keeps a plugin's code out of the kernel: its command group (``mes barcode``) is not
    collected either, whereas with the plugin allowed it is."""
    allowed = mes(cli_env, "barcode", "--help", cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    denied = mes({**cli_env, "PLUGINS_DENY": '["barcode_hid"]'}, "barcode", "--help", cwd=tmp_path)
    assert denied.returncode != 0 and "No such command" in denied.stdout + denied.stderr
    outside = mes({**cli_env, "PLUGINS_ALLOW": '["label_printer"]'}, "barcode", "--help", cwd=tmp_path)
    assert outside.returncode != 0 and "No such command" in outside.stdout + outside.stderr


def test_a_kernel_command_imports_no_plugin_and_the_plugins_groups_are_still_listed(cli_env, tmp_path):
    """``mes db …``, ``mes kpi …`` and the other kernel commands run without importing a plugin
    (each plugin's import cost every such command 1.5–2 s); ``mes --help`` still lists the plugins'
    groups beside the kernel's."""
    probe = (
        "import sys\n"
        "from mes_kernel.cli import main\n"
        "sys.argv = ['mes', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('PLUGINS', sorted({m.split('.')[0] for m in sys.modules if m.startswith(('mes_opcua', 'mes_mqtt',"
        " 'mes_modbus', 'mes_barcode', 'mes_label', 'mes_firmware', 'mes_dashboard'))}))\n"
    )
    for command in (["db", "--help"], ["kpi", "rebuild", "--help"], ["config"]):
        r = subprocess.run([sys.executable, "-c", probe, *command], env=cli_env, cwd=tmp_path, capture_output=True,
                           text=True, timeout=TIMEOUT)  # fmt: skip
        assert "PLUGINS []" in r.stdout, (command, r.stdout[-400:], r.stderr[-400:])
    listing = mes(cli_env, "--help", cwd=tmp_path)
    assert listing.returncode == 0 and "barcode" in listing.stdout and "firmware" in listing.stdout, listing.stdout


def test_names_typed_at_the_command_line_follow_the_api_rules(cli_env, tmp_path):
    """``mes user create --full-name``, ``mes station create --name``, ``mes plugins disable --reason`` and
    ``mes line apply`` refuse a blank name or an invisible character as the API does (non-zero), write
    nothing, and store a name stripped."""
    upgrade(Settings(database_url=cli_env["DATABASE_URL"], _env_file=None))
    line = tmp_path / "line-n.toml"
    line.write_text('[line]\ncode = "LINE-N"\nname = "   "\n')
    runs = {
        "user": start(cli_env, "user", "create", "eve", "--role", "worker", "--full-name", "\u200b",
                      "--password-stdin", cwd=tmp_path, stdin="eve-secret-pw\n"),
        "station name": start(cli_env, "station", "create", "ST-N1", "--name", "   ", cwd=tmp_path),
        "station code": start(cli_env, "station", "create", " ST-N1", cwd=tmp_path),
        "reason": start(cli_env, "plugins", "disable", "label_printer", "--reason", "\t", cwd=tmp_path),
        "line": start(cli_env, "line", "apply", str(line), cwd=tmp_path),
    }
    for what, started in runs.items():
        code, output = finish(started)
        assert code in (1, 2), (what, output)  # 2: bad usage; 1: `line apply` lists its problems
        assert "blank" in output or "invisible" in output or "code" in output, (what, output)
    db = sqlite3.connect(tmp_path / "mes.db")
    try:
        for table in ("users", "stations", "lines", "plugin_states", "audit_log"):
            if db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone():
                assert db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
    finally:
        db.close()
    code, output = finish(start(cli_env, "station", "create", "ST-N1", "--name", "  Packing  ", cwd=tmp_path))
    assert code == 0, output
    db = sqlite3.connect(tmp_path / "mes.db")
    try:
        assert db.execute("SELECT name FROM stations WHERE code = 'ST-N1'").fetchone() == ("Packing",)
    finally:
        db.close()


def test_user_create_lists_and_takes_every_role_the_kernel_knows(cli_env, tmp_path):
    from mes_kernel.permissions import ROLES

    helped = mes(cli_env, "user", "create", "--help", cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    listed = re.search(r"one of: ([a-z_, ]+)", " ".join(helped.stdout.split()))
    assert listed and tuple(listed.group(1).rstrip(" ,").split(", ")) == ROLES, helped.stdout
    assert {"quality_manager", "executive"} <= set(ROLES)  # the read-only managers' roles are among them
    upgrade(Settings(database_url=cli_env["DATABASE_URL"], _env_file=None))
    for role in ROLES:
        made = mes(cli_env, "user", "create", f"u-{role}", "--role", role, "--password-stdin", cwd=tmp_path,
                   stdin="a-long-secret-pw\n")
        assert made.returncode == 0, (role, made.stdout, made.stderr)
    db = sqlite3.connect(tmp_path / "mes.db")
    try:
        assert sorted(r for (r,) in db.execute("SELECT role FROM users")) == sorted(ROLES)
    finally:
        db.close()


def test_a_second_serve_on_the_same_data_directory_is_refused_and_the_first_serves_on(cli_env, tmp_path):
    """A second `make run` in the same checkout would rewrite the demo line's devices and the demo
    station's configuration under the first server: refused (exit 1) naming the first one's pid
    and URL; the first answers as before, and once it stops the directory is free again."""
    ports = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    first = subprocess.Popen(
        [str(MES), "serve", "--host", "127.0.0.1", "--port", str(ports[0])],
        env=cli_env, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{ports[0]}/api/v1"
    try:
        with httpx.Client(timeout=5) as http:
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline:
                try:
                    if http.get(f"{base}/health/liveness").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            second = mes(cli_env, "serve", "--host", "127.0.0.1", "--port", str(ports[1]), cwd=tmp_path)
            output = second.stdout + second.stderr
            assert second.returncode == 1, output
            assert "another mes serve is running" in output and f"pid {first.pid}" in output, output
            assert f"http://127.0.0.1:{ports[0]}" in output, output
            assert "Traceback" not in output
            # another data directory, the same SQLite database: refused too, naming the database
            other = {**cli_env, "FILES_DIR": str(tmp_path / "other" / "files")}
            third = mes(other, "serve", "--host", "127.0.0.1", "--port", str(ports[1]), cwd=tmp_path)
            output = third.stdout + third.stderr
            assert third.returncode == 1, output
            assert "mes.db" in output and f"pid {first.pid}" in output, output
            assert stat.S_IMODE((tmp_path / "other").stat().st_mode) == 0o700  # made private, like var/
            assert http.get(f"{base}/health/readiness").status_code == 200
    finally:
        first.terminate()
        first.wait(timeout=15)
    from mes_kernel.locks import is_locked

    assert not is_locked(tmp_path / "serve.lock")
