"""deploy/backup: a real dump and restore against the local PostgreSQL, retention, and refusals.

Uses the server on 127.0.0.1:5432 (override with MES_BACKUP_TEST_PGHOST / _PGPORT / _PGUSER) and a
scratch database of its own, dropped at the end. Skips when the client tools or the server are absent.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

BACKUP = Path(__file__).resolve().parents[1] / "deploy" / "backup"
PG_ENV = {
    "PGHOST": os.environ.get("MES_BACKUP_TEST_PGHOST", "127.0.0.1"),
    "PGPORT": os.environ.get("MES_BACKUP_TEST_PGPORT", "5432"),
    "PGUSER": os.environ.get("MES_BACKUP_TEST_PGUSER", "postgres"),
}

pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("pg_dump", "pg_restore", "psql", "createdb", "flock")),
    reason="PostgreSQL client tools not installed (Debian package postgresql-client)",
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
    return {**env, **PG_ENV, **extra}


def _run(*cmd: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=_env(**env))


def _sql(database: str, statement: str) -> str:
    result = _run("psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "--dbname", database, "-c", statement)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture
def scratch_db():
    name = f"mes_backup_test_{uuid.uuid4().hex[:8]}"
    probe = _run("psql", "-XAtq", "--dbname", "postgres", "-c", "SELECT 1")
    if probe.returncode != 0:
        pytest.skip(f"no PostgreSQL at {PG_ENV['PGHOST']}:{PG_ENV['PGPORT']}: {probe.stderr.strip()}")
    _sql("postgres", f'CREATE DATABASE "{name}"')
    _sql(name, "CREATE TABLE lots (id serial PRIMARY KEY, lot_number text UNIQUE NOT NULL, status text NOT NULL)")
    _sql(name, "INSERT INTO lots (lot_number, status) VALUES ('LOT-0001', 'in_progress'), ('LOT-0002', 'closed')")
    yield name
    _sql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _backup(backup_dir: Path, database: str, **env: str) -> Path:
    result = _run(str(BACKUP / "pg_backup.sh"), BACKUP_DIR=str(backup_dir), PGDATABASE=database, **env)
    assert result.returncode == 0, result.stderr + result.stdout
    dumps = sorted(backup_dir.glob(f"mes-{database}-*.dump"), key=lambda p: p.stat().st_mtime)
    assert dumps, result.stdout
    return dumps[-1]


def test_dump_drop_and_restore_gives_the_rows_back(scratch_db, tmp_path):
    dump = _backup(tmp_path, scratch_db)
    assert (tmp_path / f"{dump.name}.sha256").exists()
    assert not list(tmp_path.glob("*.partial"))
    _sql("postgres", f'DROP DATABASE "{scratch_db}" WITH (FORCE)')

    result = _run(str(BACKUP / "pg_restore.sh"), "--yes", "--create-db", str(dump), scratch_db)
    assert result.returncode == 0, result.stderr
    assert _sql(scratch_db, "SELECT lot_number, status FROM lots ORDER BY id") == (
        "LOT-0001|in_progress\nLOT-0002|closed"
    )
    # The sequence came back too: the next LOT does not collide with restored ids.
    assert _sql(scratch_db, "INSERT INTO lots (lot_number, status) VALUES ('LOT-0003', 'created') RETURNING id") == "3"


def test_restore_replaces_changes_made_after_the_backup(scratch_db, tmp_path):
    dump = _backup(tmp_path, scratch_db)
    _sql(scratch_db, "UPDATE lots SET status = 'scrapped'; CREATE TABLE scratch (x int)")
    result = _run(str(BACKUP / "pg_restore.sh"), "--yes", str(dump), scratch_db)
    assert result.returncode == 0, result.stderr
    assert _sql(scratch_db, "SELECT string_agg(status, ',' ORDER BY id) FROM lots") == "in_progress,closed"


def test_restore_refuses_a_dump_whose_checksum_does_not_match(scratch_db, tmp_path):
    dump = _backup(tmp_path, scratch_db)
    with dump.open("ab") as fh:
        fh.write(b"\0")
    result = _run(str(BACKUP / "pg_restore.sh"), "--yes", str(dump), scratch_db)
    assert result.returncode == 1 and "checksum" in result.stderr


def test_restore_without_yes_and_without_a_terminal_says_why_it_did_nothing(scratch_db, tmp_path):
    """Run from a script or a job (no one to answer the question), the restore must say it did not
    restore and how to go on, not exit 1 in silence."""
    dump = _backup(tmp_path, scratch_db)
    _sql(scratch_db, "UPDATE lots SET status = 'scrapped'")
    cmd = [str(BACKUP / "pg_restore.sh"), str(dump), scratch_db]
    silent = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=_env(), stdin=subprocess.DEVNULL)
    assert silent.returncode == 1
    assert "not restored" in silent.stderr and "--yes" in silent.stderr, (silent.stdout, silent.stderr)
    assert _sql(scratch_db, "SELECT string_agg(status, ',' ORDER BY id) FROM lots") == "scrapped,scrapped"
    answered = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=_env(), input="y\n")
    assert answered.returncode == 0, answered.stderr
    assert _sql(scratch_db, "SELECT string_agg(status, ',' ORDER BY id) FROM lots") == "in_progress,closed"


def test_restore_into_a_missing_database_needs_create_db(scratch_db, tmp_path):
    dump = _backup(tmp_path, scratch_db)
    missing = f"{scratch_db}_absent"
    result = _run(str(BACKUP / "pg_restore.sh"), "--yes", str(dump), missing)
    assert result.returncode == 1 and "--create-db" in result.stderr


def test_retention_deletes_dumps_older_than_30_days_but_keeps_the_newest(scratch_db, tmp_path):
    day = 86400
    now = time.time()
    ages = {"mes-x-old1.dump": 45, "mes-x-old2.dump": 31, "mes-x-recent.dump": 29, "notes.txt": 90}
    for name, days in ages.items():
        path = tmp_path / name
        path.write_bytes(b"x")
        os.utime(path, (now - days * day, now - days * day))
    _backup(tmp_path, scratch_db, MIN_KEEP="1")
    left = {p.name for p in tmp_path.iterdir() if not p.name.startswith(".")}
    assert {"mes-x-recent.dump", "notes.txt"} <= left
    assert not {"mes-x-old1.dump", "mes-x-old2.dump"} & left

    # However old, the newest MIN_KEEP dumps stay: a broken backup job never empties the folder.
    only_old = tmp_path / "only-old"
    only_old.mkdir()
    for index, days in enumerate((60, 50, 40)):
        path = only_old / f"mes-x-{index}.dump"
        path.write_bytes(b"x")
        os.utime(path, (now - days * day, now - days * day))
    _backup(only_old, scratch_db, MIN_KEEP="3")
    assert {"mes-x-1.dump", "mes-x-2.dump"} <= {p.name for p in only_old.iterdir()}
    assert "mes-x-0.dump" not in {p.name for p in only_old.iterdir()}


def test_database_url_of_the_kernel_is_accepted(scratch_db, tmp_path):
    url = f"postgresql+asyncpg://{PG_ENV['PGUSER']}@{PG_ENV['PGHOST']}:{PG_ENV['PGPORT']}/{scratch_db}"
    result = _run(str(BACKUP / "pg_backup.sh"), BACKUP_DIR=str(tmp_path), DATABASE_URL=url)
    assert result.returncode == 0, result.stderr
    assert len(list(tmp_path.glob(f"mes-{scratch_db}-*.dump"))) == 1


# ---------------------------------------------------------------- the files folder with the dump


@pytest.fixture
def kernel_db():
    """A scratch database with the kernel's real schema (migrations at head)."""
    from mes_kernel.migrate import upgrade
    from mes_kernel.settings import Settings

    name = f"mes_backup_kernel_{uuid.uuid4().hex[:8]}"
    probe = _run("psql", "-XAtq", "--dbname", "postgres", "-c", "SELECT 1")
    if probe.returncode != 0:
        pytest.skip(f"no PostgreSQL at {PG_ENV['PGHOST']}:{PG_ENV['PGPORT']}: {probe.stderr.strip()}")
    _sql("postgres", f'CREATE DATABASE "{name}"')
    url = f"postgresql+asyncpg://{PG_ENV['PGUSER']}@{PG_ENV['PGHOST']}:{PG_ENV['PGPORT']}/{name}"
    upgrade(Settings(database_url=url, _env_file=None))
    yield name
    _sql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _store(database: str, files_dir: Path, relative: str, content: bytes, *, recorded: bytes | None = None) -> None:
    """A file on disk and its stored_files row (with the SHA-256 of ``recorded``, default the content)."""
    import hashlib

    path = files_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    digest = hashlib.sha256(recorded if recorded is not None else content).hexdigest()
    _sql(
        database,
        "INSERT INTO stored_files (kind, name, path, sha256, size, meta, created_by, created_at) VALUES "
        f"('firmware', '{path.name}', '{relative}', '{digest}', {len(content)}, '{{}}', 'test', now())",
    )


def test_files_folder_is_backed_up_with_the_dump_and_every_file_checked_on_restore(kernel_db, tmp_path):
    files = tmp_path / "files"
    for i in range(5):
        _store(kernel_db, files, f"firmware/{i:02d}-image.bin", os.urandom(2048 + i))
    (files / "firmware" / "99-orphan.bin").write_bytes(b"no row names me")  # archived too, harmless
    backups = tmp_path / "backups"
    dump = _backup(backups, kernel_db, FILES_DIR=str(files))
    archive = backups / dump.name.replace(".dump", ".files.tar")
    assert archive.exists() and (backups / f"{archive.name}.sha256").exists()

    _sql("postgres", f'DROP DATABASE "{kernel_db}" WITH (FORCE)')
    restored = tmp_path / "restored-files"
    result = _run(
        str(BACKUP / "pg_restore.sh"), "--yes", "--create-db", "--files-dir", str(restored), str(dump), kernel_db
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "5 stored files checked against their SHA-256" in result.stdout
    for original in files.rglob("*.bin"):
        assert (restored / original.relative_to(files)).read_bytes() == original.read_bytes()


def test_restore_fails_when_a_stored_file_is_missing_or_differs(kernel_db, tmp_path):
    files = tmp_path / "files"
    _store(kernel_db, files, "firmware/good.bin", b"good image")
    _store(kernel_db, files, "firmware/changed.bin", b"changed on disk", recorded=b"as uploaded")
    backups = tmp_path / "backups"
    dump = _backup(backups, kernel_db, FILES_DIR=str(files))
    result = _run(str(BACKUP / "pg_restore.sh"), "--yes", "--files-dir", str(tmp_path / "r1"), str(dump), kernel_db)
    assert result.returncode == 4, result.stderr + result.stdout
    assert "1 of 2 stored files are missing or differ" in result.stderr and "changed.bin: FAILED" in result.stderr

    # A dump restored without its files archive: every named file is reported missing.
    for leftover in backups.glob("*.files.tar*"):
        leftover.unlink()
    result = _run(str(BACKUP / "pg_restore.sh"), "--yes", "--files-dir", str(tmp_path / "r2"), str(dump), kernel_db)
    assert result.returncode == 4 and "2 of 2 stored files" in result.stderr, result.stderr


def test_backup_fails_when_a_file_the_database_names_is_not_on_disk(kernel_db, tmp_path):
    files = tmp_path / "files"
    _store(kernel_db, files, "firmware/present.bin", b"present")
    _store(kernel_db, files, "firmware/lost.bin", b"lost")
    (files / "firmware" / "lost.bin").unlink()
    backups = tmp_path / "backups"
    result = _run(str(BACKUP / "pg_backup.sh"), BACKUP_DIR=str(backups), PGDATABASE=kernel_db, FILES_DIR=str(files))
    assert result.returncode == 3, result.stderr + result.stdout
    assert "firmware/lost.bin" in result.stdout and "1 stored file(s)" in result.stdout
    assert len(list(backups.glob("*.dump"))) == 1 and len(list(backups.glob("*.files.tar"))) == 1  # both kept


def test_retention_deletes_an_old_dump_together_with_its_files_archive(scratch_db, tmp_path):
    now = time.time()
    old = now - 31 * 86400
    names = [
        "mes-x-20200101T020000Z.dump",
        "mes-x-20200101T020000Z.dump.sha256",
        "mes-x-20200101T020000Z.files.tar",
        "mes-x-20200101T020000Z.files.tar.sha256",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (old, old))
    (tmp_path / "files").mkdir()
    _backup(tmp_path, scratch_db, MIN_KEEP="1", FILES_DIR=str(tmp_path / "files"))
    left = {p.name for p in tmp_path.iterdir()}
    assert not set(names) & left
    assert len([n for n in left if n.endswith(".files.tar")]) == 1  # tonight's


def test_the_restore_bench_runs_against_the_current_schema(tmp_path):
    """bench/bench_restore.py seeds rows with SQL of its own: a schema change (a new NOT NULL
    column, the idempotency key table) must not leave the documented drill broken."""
    probe = _run("psql", "-XAtq", "--dbname", "postgres", "-c", "SELECT 1")
    if probe.returncode != 0:
        pytest.skip(f"no PostgreSQL at {PG_ENV['PGHOST']}:{PG_ENV['PGPORT']}: {probe.stderr.strip()}")
    url = f"postgresql+asyncpg://{PG_ENV['PGUSER']}@{PG_ENV['PGHOST']}:{PG_ENV['PGPORT']}/postgres"
    bench = Path(__file__).resolve().parents[1] / "bench" / "bench_restore.py"
    args = [sys.executable, str(bench), "--records", "600", "--files", "2", "--file-size", "1000"]
    result = subprocess.run([*args, "--database-url", url], capture_output=True, text=True, timeout=300, env=_env())
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    rows = {m[0]: (m[1], m[2]) for m in re.findall(r"^  (\w+)\s+([\d,]+)\s+([\d,]+)$", result.stdout, re.M)}
    assert rows["process_records"] == ("600", "600") and rows["process_record_keys"] == ("600", "600"), rows
    assert "audit verify: OK" in result.stdout
