"""Backup and restore drill at scale: N process records (1 million by default) with one audit entry
each (as the kernel writes them), sealed, plus firmware-like stored files; then the shipped
deploy/backup/pg_backup.sh, a dropped database, deploy/backup/pg_restore.sh (which checks every
stored file's SHA-256) and ``mes audit verify``. Prints each step's time, sizes, the restored row
counts, and a linear extrapolation to the spec's 500 GB.

    .venv/bin/python bench/bench_restore.py                       # 1 M records (several minutes)
    .venv/bin/python bench/bench_restore.py --records 20000       # a quick run

``--database-url`` names a PostgreSQL server's maintenance database; the bench creates its own
database beside it and drops it at the end. Needs the PostgreSQL client tools (pg_dump, pg_restore,
psql, createdb) and flock.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
BACKUP = ROOT / "deploy" / "backup"
SPEC_BYTES = 500 * 10**9


def _pg_env(url: str) -> dict[str, str]:
    parsed = urlparse(url.replace("+asyncpg", ""))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
    env.update(
        {
            "PGHOST": parsed.hostname or "127.0.0.1",
            "PGPORT": str(parsed.port or 5432),
            "PGUSER": parsed.username or "postgres",
        }
    )
    if parsed.password:
        env["PGPASSWORD"] = parsed.password
    return env


def _sql(env: dict, database: str, statement: str) -> str:
    out = subprocess.run(
        ["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "--dbname", database, "-c", statement],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if out.returncode:
        raise RuntimeError(out.stderr)
    return out.stdout.strip()


def _step(name: str, fn, timings: dict):
    started = time.perf_counter()
    result = fn()
    timings[name] = time.perf_counter() - started
    print(f"  {name:<34} {timings[name]:8.1f} s", flush=True)
    return result


async def _seed_audit(database_url: str, entries: int, batch: int = 5000) -> None:
    """``entries`` audit entries through the kernel's own row builder, then sealed into blocks."""
    from mes_kernel.audit import audit_row, seal_pending, write_audit_rows
    from mes_kernel.db.base import make_engine, make_sessionmaker
    from mes_kernel.settings import Settings

    engine = make_engine(Settings(database_url=database_url, _env_file=None))
    try:
        maker = make_sessionmaker(engine)
        for start in range(0, entries, batch):
            rows = [
                audit_row(
                    actor="bench",
                    action="create",
                    entity="process_record",
                    entity_id=i + 1,
                    after={"idempotency_key": f"bench-{i + 1}", "result": "pass"},
                    request_id=None,
                    client_ip=None,
                )
                for i in range(start, min(start + batch, entries))
            ]
            async with maker() as session:
                await write_audit_rows(session, rows)
                await session.commit()
        async with maker() as session:
            while await seal_pending(session, grace_seconds=0):
                await session.commit()
    finally:
        await engine.dispose()


def _seed_records(env: dict, database: str, records: int) -> None:
    _sql(
        env,
        database,
        "INSERT INTO processes (id, name, sequence, created_at, updated_at) "
        "VALUES ('ASSY-10', 'Assembly', 10, now(), now())",
    )
    _sql(
        env,
        database,
        "INSERT INTO lots (lot_number, product, quantity, status, note, created_at, updated_at) "
        "SELECT 'LOT-B' || lpad(g::text, 5, '0'), 'P-' || (g % 7), 1000, 'in_progress', '', now(), now() "
        "FROM generate_series(1, 1000) g",
    )
    chunk = 250_000  # one transaction per chunk keeps the WAL and the lock time bounded
    for first in range(1, records + 1, chunk):
        last = min(first + chunk - 1, records)
        _sql(
            env,
            database,
            # As the kernel writes a record: event_at (the station's time, else the server's) and
            # the key row that keeps idempotency across the monthly partitions.
            "WITH made AS (INSERT INTO process_records (idempotency_key, request_hash, lot_id, lot_number,"
            " process_id, worker_id, result, defect_code, data, recorded_at, event_at, created_by, created_at) "
            "SELECT 'bench-' || g, md5(g::text) || md5((g + 1)::text), l.id, l.lot_number, 'ASSY-10',"
            " 'W-' || (g % 50), CASE WHEN g % 20 = 0 THEN 'fail' ELSE 'pass' END,"
            " CASE WHEN g % 20 = 0 THEN 'D-' || (g % 5) END,"
            " jsonb_build_object('torque_nm', 1.5 + (g % 100) / 100.0, 'cycle_s', 30 + g % 9),"
            " now() - make_interval(secs => g), now() - make_interval(secs => g), 'bench',"
            " now() - make_interval(secs => g) "
            f"FROM generate_series({first}, {last}) g JOIN lots l ON l.id = 1 + g % 1000 "
            "RETURNING idempotency_key, created_at) "
            "INSERT INTO process_record_keys (idempotency_key, created_at) "
            "SELECT idempotency_key, created_at FROM made",
        )


def _seed_files(env: dict, database: str, files_dir: Path, count: int, size: int) -> None:
    folder = files_dir / "firmware"
    folder.mkdir(parents=True, exist_ok=True)
    values = []
    for i in range(count):
        content = os.urandom(size)
        digest = hashlib.sha256(content).hexdigest()
        relative = f"firmware/{digest}-{i:04d}.bin"
        (files_dir / relative).write_bytes(content)
        values.append(f"('firmware', 'image-{i}.bin', '{relative}', '{digest}', {size}, '{{}}', 'bench', now())")
    _sql(
        env,
        database,
        "INSERT INTO stored_files (kind, name, path, sha256, size, meta, created_by, created_at) "
        "VALUES " + ", ".join(values),
    )


def _run_script(args: list[str], env: dict) -> str:
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=6 * 3600)
    if out.returncode:
        raise RuntimeError(f"{args[0]} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out.stdout


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000:
            return f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


def run(*, server_url: str, records: int, files: int, file_size: int, audit_entries: int, work: Path) -> dict:
    from mes_kernel.migrate import upgrade
    from mes_kernel.settings import Settings

    env = _pg_env(server_url)
    name = f"mes_bench_restore_{uuid.uuid4().hex[:8]}"
    parsed = urlparse(server_url)
    database_url = f"{parsed.scheme}://{parsed.netloc}/{name}"
    files_dir, backups, restored_files = work / "files", work / "backups", work / "restored-files"
    timings: dict[str, float] = {}
    _sql(env, "postgres", f'CREATE DATABASE "{name}"')
    try:
        print(
            f"seeding {records:,} process records, {audit_entries:,} audit entries (sealed), "
            f"{files} stored files of {_human(file_size)} into {name}",
            flush=True,
        )
        _step("schema (mes db upgrade)", lambda: upgrade(Settings(database_url=database_url, _env_file=None)), timings)
        _step("seed process records", lambda: _seed_records(env, name, records), timings)
        _step(
            "seed audit entries and seal them", lambda: asyncio.run(_seed_audit(database_url, audit_entries)), timings
        )
        _step("seed stored files", lambda: _seed_files(env, name, files_dir, files, file_size), timings)
        _sql(env, name, "VACUUM ANALYZE")
        db_bytes = int(_sql(env, "postgres", f"SELECT pg_database_size('{name}')"))
        files_bytes = sum(p.stat().st_size for p in files_dir.rglob("*") if p.is_file())
        before = _counts(env, name)

        print("backup / restore:", flush=True)
        _step(
            "backup (pg_backup.sh: dump + files)",
            lambda: _run_script(
                [str(BACKUP / "pg_backup.sh")],
                {**env, "DATABASE_URL": database_url, "BACKUP_DIR": str(backups), "FILES_DIR": str(files_dir)},
            ),
            timings,
        )
        dump = next(backups.glob("*.dump"))
        archive = next(backups.glob("*.files.tar"))
        _step("drop the database", lambda: _sql(env, "postgres", f'DROP DATABASE "{name}" WITH (FORCE)'), timings)
        restore_out = _step(
            "restore (pg_restore.sh + SHA-256)",
            lambda: _run_script(
                [
                    str(BACKUP / "pg_restore.sh"),
                    "--yes",
                    "--create-db",
                    "--files-dir",
                    str(restored_files),
                    str(dump),
                    name,
                ],
                env,
            ),
            timings,
        )
        after = _counts(env, name)
        verify_out = _step(
            "mes audit verify",
            lambda: _run_script(
                [str(Path(sys.executable).parent / "mes"), "audit", "verify"],
                {**os.environ, "DATABASE_URL": database_url, "COLUMNS": "200", "NO_COLOR": "1", "LOG_LEVEL": "WARNING"},
            ),
            timings,
        )
    finally:
        _sql(env, "postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    checked = [line for line in restore_out.splitlines() if "stored files checked" in line]
    print(f"\nrow counts{'before':>23} {'after':>10}")
    for table in before:
        print(f"  {table:<20} {before[table]:>9,} {after[table]:>10,}")
    print(
        f"\nsizes: database {_human(db_bytes)}, dump {_human(dump.stat().st_size)}, "
        f"files {_human(files_bytes)} (archive {_human(archive.stat().st_size)})"
    )
    print(f"restore file check: {checked[0].split('pg_restore: ', 1)[-1] if checked else 'none'}")
    print(f"audit verify: {verify_out.strip().splitlines()[-1] if verify_out.strip() else '(no output)'}")
    total = db_bytes + files_bytes
    scale = SPEC_BYTES / total
    backup_s = timings["backup (pg_backup.sh: dump + files)"]
    restore_s = timings["restore (pg_restore.sh + SHA-256)"]
    verify_s = timings["mes audit verify"]
    print(f"\nextrapolated linearly to 500 GB (x{scale:,.0f} of this run's {_human(total)}):")
    print(f"  backup  {backup_s * scale / 3600:7.1f} h   ({_human(total / backup_s)}/s here)")
    print(f"  restore {restore_s * scale / 3600:7.1f} h   ({_human(total / restore_s)}/s here)")
    print(f"  audit verify at the same entries per second: {verify_s * scale / 3600:7.1f} h")
    return {
        "timings": timings,
        "before": before,
        "after": after,
        "db_bytes": db_bytes,
        "files_bytes": files_bytes,
        "verify": verify_out,
        "restore": restore_out,
    }


def _counts(env: dict, database: str) -> dict[str, int]:
    tables = ("process_records", "process_record_keys", "audit_log", "audit_seals", "stored_files", "lots")
    return {t: int(_sql(env, database, f"SELECT count(*) FROM {t}")) for t in tables}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("MES_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--audit-entries", type=int, default=None, help="default: one per record, as the kernel writes")
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--file-size", type=int, default=1_000_000, help="bytes per stored file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mes-bench-restore-") as work:
        run(
            server_url=args.database_url,
            records=args.records,
            files=args.files,
            file_size=args.file_size,
            audit_entries=args.records if args.audit_entries is None else args.audit_entries,
            work=Path(work),
        )


if __name__ == "__main__":
    main()
