"""The ``mes`` command line: serve, migrate, manage users, stations and lines, verify the audit trail."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import secrets
import sys
import tomllib
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .permissions import ROLES
from .settings import Settings

app = typer.Typer(help="NeuroHub MES kernel.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
user_app = typer.Typer(help="Users and roles.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
line_app = typer.Typer(help="Per-line configuration: plugins, breakers, devices.", no_args_is_help=True)
station_app = typer.Typer(help="Stations (worker PCs) and their machine tokens.", no_args_is_help=True)
plugins_app = typer.Typer(help="Installed plugins.", no_args_is_help=True)
partitions_app = typer.Typer(
    help="Monthly partitions of process records and trace events (PostgreSQL).", no_args_is_help=True
)
kpi_app = typer.Typer(help="KPI rollups.", no_args_is_help=True)
db_app.add_typer(partitions_app, name="partitions")
app.add_typer(kpi_app, name="kpi")
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(audit_app, name="audit")
app.add_typer(line_app, name="line")
app.add_typer(station_app, name="station")
app.add_typer(plugins_app, name="plugins")

console = Console(stderr=True)
out = Console()


def _settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None


async def _with_kernel(fn):
    """Run ``fn(kernel)`` against a kernel built from the environment (no HTTP server)."""
    from .app import create_app

    application = create_app(_settings(), server=False)
    async with application.router.lifespan_context(application):
        return await fn(application)


# ---------------------------------------------------------------- serve
@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    migrate: Annotated[bool, typer.Option(help="upgrade the schema before starting")] = True,
    demo: Annotated[bool, typer.Option(help="start the plugins' device simulators and a demo line")] = False,
    demo_agent: Annotated[
        bool, typer.Option(help="with --demo, also run station ST-DEMO's agent (off to run it yourself with --ui)")
    ] = True,
    reload: Annotated[bool, typer.Option(help="reload on code changes (development)")] = False,
):
    """Run the server (one process: the embedded default). Production runs gunicorn: see deploy/.

    Started before its database (a host booting, services started in parallel), it serves at once:
    liveness 200, readiness 503 with the reason, the schema upgrade and first admin as soon as the
    database answers (not with --reload, which needs the database up).
    """
    import functools

    import uvicorn

    settings = _settings()
    _hold_data_directory(settings, f"http://{host}:{port}")
    deferred = []
    password = None
    reason = None if settings.is_sqlite or reload else asyncio.run(_database_unreachable(settings))
    if reason:
        console.print(
            f"[yellow]database not reachable yet[/yellow] ({reason}): serving liveness now; "
            "schema upgrade and first admin run once it answers (readiness says 503 until then)"
        )
        if migrate:
            deferred.append(lambda: asyncio.to_thread(_upgrade_quietly, settings))
        deferred.append(lambda: _first_admin_when_ready(settings))
    else:
        if migrate:
            _upgrade(settings)
        password = asyncio.run(_ensure_first_admin(settings))
    url = f"http://{host}:{port}"
    console.print(f"[bold green]NeuroHub MES[/bold green] on {url}  (API docs {url}/docs)")
    console.print(
        f"database: {settings.database_url.split('@')[-1]}   redis: {settings.redis_url or 'none (embedded)'}"
    )
    if password:
        console.print(
            f"[bold]first run:[/bold] log in as [cyan]admin[/cyan] with password [cyan]{password}[/cyan] "
            f"(also saved in {Path(settings.files_dir).parent / 'initial-admin.txt'}); change it soon."
        )
    if demo:
        from .demo import start_demo

        start_demo(settings, base_url=url, agent=demo_agent)
    from .app import create_app

    uvicorn.run(
        functools.partial(create_app, on_database_ready=deferred) if deferred else "mes_kernel.app:create_app",
        factory=True,
        host=host,
        port=port,
        reload=reload,
        log_level=settings.log_level.lower(),
        # uvicorn's own lines (start, stop, invalid requests) go through the kernel's JSON logging,
        # as gunicorn's do under deploy/gunicorn.conf.py: no plain-text handler of uvicorn's.
        log_config=None,
        access_log=False,  # the kernel writes one JSON line per request
        server_header=False,
    )


_serve_locks: list = []  # held while this process serves (released when it exits)


def _hold_data_directory(settings: Settings, url: str) -> None:
    """One ``mes serve`` per data directory (where ``FILES_DIR`` lies: ``var/`` by default, with the
    demo station's configuration and the first admin's password) and per SQLite database file: a
    second one started there — a second ``make run`` — would rewrite the demo line's devices and
    the demo station's configuration under the first, or run a second watchdog and signing key on
    the same embedded database. Refused with the first one's pid and URL, exit 1. (Servers on one
    PostgreSQL database are a cluster's nodes: each has its own data directory.)"""
    from .locks import DirectoryLock
    from .private_files import private_dir, sqlite_file

    data_dir = private_dir(Path(settings.files_dir).parent)  # 0700 from the start: it holds secrets
    held = [(data_dir / "serve.lock", data_dir)]  # (lock file, what it keeps to one server)
    database = sqlite_file(settings.database_url)
    if database is not None:
        held.append((private_dir(database.parent) / f"{database.name}.serve.lock", database))
    for path, what in held:
        lock = DirectoryLock(path)
        holder = lock.acquire(f"pid {os.getpid()}, {url}")
        if holder is not None:
            console.print(
                f"[red]another mes serve is running on {what.resolve()}[/red] ({holder}): stop it first, or give this "
                "one a data directory of its own (FILES_DIR, and DATABASE_URL for its database)"
            )
            raise typer.Exit(1)
        _serve_locks.append(lock)


async def _database_unreachable(settings: Settings) -> str | None:
    """Why the database does not answer ``SELECT 1`` now, or ``None`` when it does."""
    from types import SimpleNamespace

    from .db.base import make_engine
    from .startup import database_answers

    engine = make_engine(settings)
    try:
        return await database_answers(SimpleNamespace(engine=engine))
    finally:
        await engine.dispose()


def _upgrade_quietly(settings: Settings) -> None:
    from .migrate import upgrade

    upgrade(settings)


async def _first_admin_when_ready(settings: Settings) -> None:
    password = await _ensure_first_admin(settings)
    if password:
        console.print(
            f"[bold]first run:[/bold] log in as [cyan]admin[/cyan] with password [cyan]{password}[/cyan] "
            f"(also saved in {Path(settings.files_dir).parent / 'initial-admin.txt'}); change it soon."
        )


async def _ensure_first_admin(settings: Settings) -> str | None:
    from sqlalchemy import func, select

    from .db.base import make_engine, make_sessionmaker
    from .db.models import User
    from .security import hash_password

    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as session:
            if (await session.execute(select(func.count()).select_from(User))).scalar_one():
                return None
            password = secrets.token_urlsafe(12)
            session.add(
                User(
                    username="admin",
                    role="admin",
                    full_name="Administrator",
                    password_hash=hash_password(password, settings.bcrypt_rounds),
                )
            )
            await session.commit()
    finally:
        await engine.dispose()
    from .private_files import write_private

    write_private(Path(settings.files_dir).parent / "initial-admin.txt", f"username: admin\npassword: {password}\n")
    return password


@app.command("config")
def show_config():
    """Show the effective configuration (secrets hidden) and the derived pool sizes."""
    s = _settings()
    table = Table("setting", "value")
    for key, value in s.model_dump().items():
        if key in ("secret_key",):
            value = "***" if value else "(empty)"
        elif key == "database_url" and "@" in str(value):
            value = str(value).split("://")[0] + "://***@" + str(value).split("@", 1)[1]
        table.add_row(key, str(value))
    table.add_row("→ workers", str(s.worker_count))
    table.add_row("→ pool_size / max_overflow per worker", f"{s.pool_size} / {s.max_overflow}")
    table.add_row("→ total connections at most", str(s.worker_count * (s.pool_size + s.max_overflow)))
    out.print(table)


# ---------------------------------------------------------------- db
def _upgrade(settings: Settings, revision: str = "head") -> None:
    from .migrate import upgrade

    with console.status(f"upgrading database schema to {revision} …"):
        upgrade(settings, revision)
    console.print(f"schema at {revision}")


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head"):
    """Apply migrations up to REVISION (default: head)."""
    _upgrade(_settings(), revision)


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument(help="target revision, e.g. base")]):
    """Revert migrations down to REVISION."""
    from .migrate import downgrade

    downgrade(_settings(), revision)
    console.print(f"schema at {revision}")


def _date(value: str, option: str):
    """A ``YYYY-MM-DD`` date (ISO 8601's calendar form only: not ``20261130`` or ``2026-W48-1``,
    which Python would read too); anything else exits 2 naming the option."""
    import re
    from datetime import date

    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        console.print(f"[red]{option} must be a date like 2026-01-31 (got {escape(repr(value))})[/red]")
        raise typer.Exit(2) from None


def _today():
    from datetime import UTC, datetime

    return datetime.now(UTC).date()  # partitions and rollups are UTC months, days and hours


async def _with_engine(fn):
    from .db.base import make_engine

    engine = make_engine(_settings())
    try:
        return await fn(engine)
    finally:
        await engine.dispose()


@partitions_app.command("ensure")
def partitions_ensure(ahead: Annotated[int, typer.Option(min=0, max=24, help="months after this one")] = 3):
    """Create this month's partition and AHEAD more (the kernel also does this every few hours)."""
    from .db.partitions import ensure_partitions

    created = asyncio.run(_with_engine(lambda engine: ensure_partitions(engine, ahead=ahead)))
    console.print(f"created {', '.join(created)}" if created else "every partition is there already")


@partitions_app.command("archive")
def partitions_archive(
    before: Annotated[
        str,
        typer.Option(help="archive months that end on or before this date (YYYY-MM-DD, at most this month's 1st)"),
    ],
    backup_dir: Annotated[
        Path, typer.Option(envvar="BACKUP_DIR", help="where the dumps go (the backups' folder)")
    ] = Path("/var/backups/mes"),
    batch_rows: Annotated[
        int, typer.Option(min=1, max=10_000_000, help="rows per transaction when taking a month out of the totals")
    ] = 200_000,
):
    """Detach, dump (one pg_dump -Fc + .sha256 per month, next to the backups), verify and drop old
    months of process records and their trace events; run again to finish an interrupted run. Then
    prune the archived months' idempotency keys received before the station-time window (a retry
    can no longer arrive for them)."""
    from .db.archive import ArchiveError, FarStationTimes, archive_partitions
    from .db.record_keys import retry_window

    settings = _settings()
    until = _date(before, "--before")
    latest = _today().replace(day=1)
    if until > latest:
        console.print(
            f"[red]--before {until.isoformat()} would archive the current month "
            f"({latest.strftime('%Y-%m')}), whose records are still being written: "
            f"the latest allowed date is {latest.isoformat()}[/red]"
        )
        raise typer.Exit(2)

    def progress(month: str, rows: int, what: str) -> None:
        console.print(f"{month}: {rows} {what}", highlight=False)

    def pruned(month: str, keys: int) -> None:
        console.print(f"{month}: {keys} idempotency keys past the retry window pruned", highlight=False)

    try:
        done = asyncio.run(
            _with_engine(
                lambda engine: archive_partitions(
                    engine,
                    database_url=settings.database_url,
                    before=until,
                    backup_dir=backup_dir,
                    batch_rows=batch_rows,
                    on_batch=progress,
                    keep_keys=retry_window(settings),
                    on_prune=pruned,
                )
            )
        )
    except FarStationTimes as exc:
        console.print(f"[red]{escape(str(exc))}[/red]", highlight=False)
        raise typer.Exit(1) from None
    except ArchiveError as exc:
        console.print(f"[red]{exc}[/red] (what was archived stays archived; run again to finish)")
        raise typer.Exit(1) from None
    for item in done:
        rows = ", ".join(f"{name} {count} rows" for name, count in sorted(item["rows"].items()))
        out.print(f"{item['month']}: {rows} → {item['dump']}")
    if not done:
        console.print("nothing to archive")


@partitions_app.command("restore")
def partitions_restore(
    dump: Annotated[Path, typer.Argument(help="an archive written by `mes db partitions archive`")],
):
    """Bring an archived month back online: its records and their trace events (histories and
    totals), its idempotency keys. Its rollups were kept while it was archived (a rebuild never
    rewrites an archived month's), so no KPI rebuild is needed."""
    from .db.archive import ArchiveError, restore_month

    settings = _settings()
    try:
        done = asyncio.run(
            _with_engine(lambda engine: restore_month(engine, database_url=settings.database_url, dump=dump))
        )
    except ArchiveError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    rows = ", ".join(f"{name} {count} rows" for name, count in sorted(done["rows"].items()))
    out.print(f"{done['month']}: {rows} attached")


@kpi_app.command("rebuild")
def kpi_rebuild(
    since: Annotated[
        str | None, typer.Option(help="rebuild hours from this date on (UTC, YYYY-MM-DD; default: all online months)")
    ] = None,
):
    """Recompute the hourly KPI rollups from raw process records, in one transaction, then vacuum
    and analyze the tables rewritten (PostgreSQL). Archived months keep their rollups: without
    --since the rebuild starts after them (and says so); a --since inside them is refused."""
    from datetime import UTC, datetime

    from sqlalchemy.exc import DBAPIError

    from .db.base import make_sessionmaker
    from .db.offline import RollupsOffline, offline_months
    from .services.rollups import rebuild, vacuum_rebuilt

    start = None
    if since is not None:
        day = _date(since, "--since")
        if day > _today():
            console.print(
                f"[red]--since {day.isoformat()} is in the future (today is {_today().isoformat()} UTC): "
                "there is nothing to rebuild[/red]"
            )
            raise typer.Exit(2)
        start = datetime.combine(day, datetime.min.time(), UTC)

    async def run(engine):
        async with make_sessionmaker(engine)() as session:
            offline = await offline_months(session)
        if (
            start is None
            and offline.rebuild_from is not None
            and not offline.unfinished
            and not offline.blocked(datetime.now(UTC))
        ):
            console.print(
                f"{', '.join(offline.archived)} archived (records offline): their rollups are kept; "
                f"rebuilding from {offline.rebuild_from.date().isoformat()}",
                highlight=False,
            )
        async with make_sessionmaker(engine)() as session, session.begin():
            counts = await rebuild(session, since=start)
        try:  # committed: the rollups are rebuilt whatever VACUUM answers
            await vacuum_rebuilt(engine)
        except DBAPIError as exc:
            console.print(
                f"[yellow]rebuilt, but VACUUM was refused ({escape(str(exc.orig))}): index-only reads of the "
                "rollups wait for autovacuum[/yellow]"
            )
        return counts

    try:
        with console.status("rebuilding KPI rollups …"):
            counts = asyncio.run(_with_engine(run))
    except RollupsOffline as exc:
        console.print(f"[red]nothing rebuilt: {escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    console.print(", ".join(f"{table}: {n} rows" for table, n in counts.items()))


# ---------------------------------------------------------------- users
@user_app.command("create")
def user_create(
    username: str,
    role: Annotated[
        str,
        typer.Option(help="the user's role, one of: " + ", ".join(ROLES) + " (what each may do: docs/api.md, Roles)"),
    ],
    full_name: Annotated[str, typer.Option()] = "",
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from stdin")] = False,
):
    """Create a user; the password is prompted (twice) or read from stdin."""
    from pydantic import ValidationError

    from .schemas import UserCreate

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            console.print("[red]passwords differ[/red]")
            raise typer.Exit(1)
    try:
        user_in = UserCreate(username=username, role=role, password=password, full_name=full_name)
    except ValidationError as exc:
        for err in exc.errors():
            console.print(f"[red]{escape('.'.join(map(str, err['loc'])))}: {escape(str(err['msg']))}[/red]")
        raise typer.Exit(2) from None

    async def run():
        from .db.base import make_engine, make_sessionmaker
        from .errors import MesError
        from .services.auth import create_user

        settings = _settings()
        engine = make_engine(settings)
        try:
            async with make_sessionmaker(engine)() as session:
                try:
                    await create_user(session=session, user_in=user_in, actor="cli", settings=settings)
                except MesError as exc:
                    console.print(f"[red]{exc.code}: {exc.message}[/red]")
                    raise typer.Exit(1) from None
                await session.commit()
        finally:
            await engine.dispose()

    asyncio.run(run())
    console.print(f"user {username} created with role {role}")


@user_app.command("unlock")
def user_unlock(username: str):
    """Lift the login lock that too many wrong passwords put on USERNAME (audited)."""

    async def run():
        from .db.base import make_engine, make_sessionmaker
        from .errors import MesError
        from .services.auth import unlock_user

        engine = make_engine(_settings())
        try:
            async with make_sessionmaker(engine)() as session:
                try:
                    user = await unlock_user(session=session, username=username, actor="cli")
                except MesError as exc:
                    console.print(f"[red]{exc.code}: {exc.message}[/red]")
                    raise typer.Exit(1) from None
                await session.commit()
                return user.username
        finally:
            await engine.dispose()

    console.print(f"user {asyncio.run(run())} unlocked")


@user_app.command("list")
def user_list():
    """List users and roles."""

    async def run():
        from sqlalchemy import select

        from .db.base import make_engine, make_sessionmaker
        from .db.models import User

        engine = make_engine(_settings())
        try:
            async with make_sessionmaker(engine)() as session:
                return (await session.execute(select(User).order_by(User.username))).scalars().all()
        finally:
            await engine.dispose()

    table = Table("username", "role", "active", "created")
    for u in asyncio.run(run()):
        table.add_row(u.username, u.role, "yes" if u.is_active else "no", u.created_at.isoformat(timespec="seconds"))
    out.print(table)


# ---------------------------------------------------------------- audit
@audit_app.command("verify")
def audit_verify():
    """Recompute every audit entry's hash and the seal chain; name the first broken link."""
    from .audit import verify
    from .db.base import make_engine, make_sessionmaker

    async def run():
        engine = make_engine(_settings())
        try:
            with Progress(
                TextColumn("verifying audit trail"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as progress:
                task = progress.add_task("verify", total=None)

                def report(done, total):
                    progress.update(task, completed=done, total=total)

                async with make_sessionmaker(engine)() as session:
                    return await verify(session, progress=report)
        finally:
            await engine.dispose()

    result = asyncio.run(run())
    if result.ok:
        out.print(
            f"OK: {result.entries_checked} entries, {result.seals_checked} sealed blocks, "
            f"{result.unsealed} not yet sealed"
        )
        return
    where = f"entry {result.broken_entry_id}" if result.broken_entry_id else f"seal {result.broken_seal_id}"
    out.print(f"BROKEN at {where}: {result.reason}")
    raise typer.Exit(1)


@audit_app.command("seal")
def audit_seal(grace_seconds: Annotated[float, typer.Option()] = 10.0):
    """Seal pending audit entries now (the server also does this in the background)."""
    from .audit import seal_pending
    from .db.base import make_engine, make_sessionmaker

    async def run():
        engine = make_engine(_settings())
        blocks = 0
        try:
            async with make_sessionmaker(engine)() as session:
                while await seal_pending(session, grace_seconds=grace_seconds):
                    await session.commit()
                    blocks += 1
        finally:
            await engine.dispose()
        return blocks

    out.print(f"sealed {asyncio.run(run())} block(s)")


# ---------------------------------------------------------------- lines
@line_app.command("apply")
def line_apply(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="line-a.toml")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="validate and print what would change; write nothing")
    ] = False,
):
    """Validate a line configuration file and apply it (all or nothing), printing each change: the line,
    its stations and its devices created, changed and deleted. ``--dry-run`` runs the same checks and
    prints the same plan, writing nothing."""
    from . import lines
    from .errors import MesError

    try:  # TOML is UTF-8 whatever the machine's locale
        document = tomllib.loads(file.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        console.print(f"[red]{escape(str(file))}: not valid TOML: not UTF-8 text ({escape(str(exc))})[/red]")
        raise typer.Exit(2) from None
    except tomllib.TOMLDecodeError as exc:
        console.print(f"[red]{escape(str(file))}: not valid TOML: {escape(str(exc))}[/red]")
        raise typer.Exit(2) from None

    async def run(application):
        kernel = application.state.kernel
        catalog = lines.catalog_from_app(application)
        config = lines.parse(document)
        async with kernel.sessionmaker() as session:
            if dry_run:  # the very checks and plan of the real apply, against the same database; nothing written
                return config, await lines.plan(session=session, config=config, catalog=catalog)
            _, steps = await lines.apply(
                session=session, config=config, catalog=catalog, actor="cli", at=kernel.clock()
            )
            await session.commit()
        # Running servers follow: at once through Redis, else at their next version check (~1 s).
        await kernel.runtime.announce()
        return config, steps

    try:
        config, steps = asyncio.run(_with_kernel(run))
    except MesError as exc:
        errors = exc.extra.get("errors") or [{"loc": [], "msg": exc.message}]
        console.print(f"[red]{file}: {len(errors)} problem(s)[/red]")
        for err in errors:
            console.print(f"  [red]{escape('.'.join(map(str, err['loc'])))}[/red]: {escape(str(err['msg']))}")
        raise typer.Exit(1) from None
    verb = "is valid" if dry_run else "applied"
    out.print(
        f"line {config.code} {verb}: {len(config.devices)} device(s), "
        f"plugins {config.plugins if config.plugins is not None else 'all loaded'}"
    )
    changes = steps.describe()
    header = "would change" if dry_run else "changed"
    out.print(f"{header}: {'nothing' if not changes else len(changes)}", highlight=False, soft_wrap=True)
    for change in changes:
        out.print(f"  {escape(change)}", highlight=False, soft_wrap=True)


@line_app.command("show")
def line_show(code: str):
    """Print a line's configuration as JSON."""
    from sqlalchemy import select

    from . import lines
    from .db.models import Line

    async def run(application):
        async with application.state.kernel.sessionmaker() as session:
            line = (await session.execute(select(Line).where(Line.code == code))).scalar_one_or_none()
            return await lines.export(session, line) if line else None

    found = asyncio.run(_with_kernel(run))
    if found is None:
        console.print(f"[red]line {code} not found[/red]")
        raise typer.Exit(1)
    out.print_json(json.dumps(found))


# ---------------------------------------------------------------- stations
@station_app.command("create")
def station_create(code: str, line: Annotated[str | None, typer.Option()] = None, name: str = ""):
    """Register a station and print its first machine token."""
    from pydantic import ValidationError
    from sqlalchemy import select, update

    from .api.routes.stations import StationIn

    try:  # the API's rules: a code as in Code, a name stripped, blank or invisible characters refused
        station_in = StationIn(code=code, name=name, line=line)
    except ValidationError as exc:
        for err in exc.errors():
            console.print(f"[red]{escape('.'.join(map(str, err['loc'])))}: {escape(str(err['msg']))}[/red]")
        raise typer.Exit(2) from None
    name = station_in.name

    from .db.models import Line, Station, StationToken
    from .security import STATION_TOKEN_PREFIX, new_opaque_token, token_digest

    async def run(application):
        async with application.state.kernel.sessionmaker() as session:
            line_id = None
            if line:
                line_id = (await session.execute(select(Line.id).where(Line.code == line))).scalar()
                if line_id is None:
                    raise typer.BadParameter(f"line {line} not found")
            if (await session.execute(select(Station.id).where(Station.code == code))).scalar() is not None:
                raise typer.BadParameter(
                    f"station {code} exists already; give it another token with POST /api/v1/stations/{code}/tokens"
                )
            station = Station(code=code, name=name, line_id=line_id, heartbeat={})
            session.add(station)
            if line_id is not None:  # the line's stations changed: its stations follow the new version
                await session.execute(
                    update(Line).where(Line.id == line_id).values(config_version=Line.config_version + 1)
                )
            await session.flush()
            token = new_opaque_token(STATION_TOKEN_PREFIX)
            session.add(StationToken(station_id=station.id, name="cli", token_hash=token_digest(token)))
            from .audit import write_audit

            await write_audit(
                session,
                actor="cli",
                action="create",
                entity="station",
                entity_id=code,
                after={"code": code, "line": line},
            )
            await session.commit()
        # Running servers follow (their dashboards' stations too): at once through Redis, else at their
        # next version check.
        await application.state.kernel.runtime.announce()
        return token

    token = asyncio.run(_with_kernel(run))
    out.print(f"station {code} registered; token (shown once): {token}")


@station_app.command("move")
def station_move(
    code: str,
    line: Annotated[str | None, typer.Option(help="the line to put the station on")] = None,
    off: Annotated[bool, typer.Option("--off", help="take the station off every line")] = False,
):
    """Move a station to another line (--line) or off every line (--off), as PUT
    /api/v1/stations/{code}/line does: its silence is split at the move, both lines' stations follow."""
    from .errors import MesError
    from .services.stations import move_station

    if off == (line is not None):
        console.print("[red]give either --line LINE or --off[/red]")
        raise typer.Exit(2)

    async def run(application):
        kernel = application.state.kernel
        async with kernel.sessionmaker() as session:
            await move_station(session=session, code=code, line_code=line, actor="cli", at=kernel.clock())
            await session.commit()
        await kernel.runtime.announce()

    try:
        asyncio.run(_with_kernel(run))
    except MesError as exc:
        console.print(f"[red]{escape(exc.code)}: {escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    out.print(f"station {code} is {'off every line' if off else f'on line {line}'}")


# ---------------------------------------------------------------- plugins
@plugins_app.command("list")
def plugins_list():
    """Show every installed plugin and its state."""

    async def run(application):
        return application.state.kernel.plugins.snapshot()

    table = Table("plugin", "distribution", "version", "state", "reason")
    for rec in asyncio.run(_with_kernel(run)):
        table.add_row(rec["name"], rec["distribution"] or "-", rec["version"] or "-", rec["state"], rec["reason"] or "")
    out.print(table)


def _switch_plugin(name: str, *, enabled: bool, reason: str) -> None:
    from .errors import MesError
    from .runtime import set_plugin_enabled
    from .schemas import Comment, checked

    try:
        reason = checked(Comment, reason, field="reason")
    except MesError as exc:
        console.print(f"[red]{escape(exc.message)}[/red]")
        raise typer.Exit(2) from None

    async def run(application):
        kernel = application.state.kernel
        if name not in kernel.plugins.records:
            return sorted(kernel.plugins.records)
        async with kernel.sessionmaker() as session:
            await set_plugin_enabled(
                session=session,
                name=name,
                enabled=enabled,
                reason=reason or ("" if enabled else "disabled by cli"),
                actor="cli",
            )
            await session.commit()
        await kernel.runtime.announce()
        return None

    installed = asyncio.run(_with_kernel(run))
    if installed is not None:
        console.print(f"[red]no plugin named {name!r} is installed[/red] (installed: {', '.join(installed)})")
        raise typer.Exit(1)
    out.print(f"plugin {name} {'enabled' if enabled else 'disabled'} on every server (within about a second)")


@plugins_app.command("disable")
def plugins_disable(name: str, reason: Annotated[str, typer.Option(help="shown in /plugins and /health")] = ""):
    """Switch a plugin off on every running server (its routes answer 403 PLUGIN_DISABLED)."""
    _switch_plugin(name, enabled=False, reason=reason)


@plugins_app.command("enable")
def plugins_enable(name: str):
    """Switch a plugin back on on every running server."""
    _switch_plugin(name, enabled=True, reason="")


def _add_plugin_commands() -> None:
    """Command groups contributed by plugins (``mes_register_commands``), each inside its own boundary."""
    from .plugins import PluginManager

    settings = Settings() if "--help" not in sys.argv[1:2] else None
    # the same safe mode, allow and deny lists as the kernel: a denied plugin's code is not run here either
    manager = PluginManager(
        safe_mode=bool(settings and settings.plugins_safe_mode),
        allow=settings.plugins_allow if settings else None,
        deny=settings.plugins_deny if settings else None,
    )
    manager.load_entry_points()
    for _name, groups in asyncio.run(manager.call_each("mes_register_commands")):
        for group_name, typer_app in groups:
            app.add_typer(typer_app, name=group_name)


def _kernel_command_names() -> set[str]:
    """The kernel's own top-level commands and groups (``serve``, ``db``, ``kpi`` …), by the names
    Typer gives them."""
    names = {group.name for group in app.registered_groups}
    for command in app.registered_commands:
        names.add(command.name or command.callback.__name__.lower().replace("_", "-"))
    return names


def main() -> None:
    from .logging import configure_logging

    configure_logging("WARNING", json=False)
    # A kernel command runs without importing a plugin: loading every plugin (OPC UA, MQTT,
    # Modbus …) only to list commands nobody asked for took 1.5–2 s of each `mes db …`. Plugins'
    # groups are loaded for anything else: `mes`, `mes --help`, a plugin's group, a typo.
    if sys.argv[1:2] and sys.argv[1] in _kernel_command_names():
        app()
        return
    try:
        _add_plugin_commands()
    except Exception as exc:  # a plugin's CLI must never make the kernel's CLI unusable
        console.print(f"[yellow]plugin commands not loaded: {exc}[/yellow]")
    app()


if __name__ == "__main__":
    main()
