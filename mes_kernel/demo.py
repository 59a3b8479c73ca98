"""``mes serve --demo``: the plugins' simulators on a demo line, so a new user sees a working plant."""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import os
import signal
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rich.console import Console
from sqlalchemy import select

from . import lines
from .db.models import Line, Lot, Process, ShiftCalendarVersion, Station, StationToken, Unit
from .plugins import PluginManager
from .private_files import write_private
from .security import STATION_TOKEN_PREFIX, new_opaque_token, token_digest
from .settings import Settings

console = Console(stderr=True)
PROCESSES = [
    ("ASSY-10", "Assembly", 10),
    ("FLASH-20", "Firmware flash", 20),
    ("TEST-30", "Functional test", 30),
    ("PACK-40", "Label and pack", 40),
]
#: the demo line's output step (its configured ``output_step``): a unit packed is a unit made
PACKED_AT = "PACK-40"
DEMO_LOT = "DEMO-LOT-001"
#: the demo LOT's units, passed to the plugins' simulators (``mes_demo_devices(units=...)``)
DEMO_UNITS = [f"SN-DEMO-{i:04d}" for i in range(1, 6)]


def demo_shifts(now: datetime | None = None) -> list[dict]:
    """The demo line's shift: from the hour the demo was first set up (the plant's zone,
    ``MES_DASHBOARD_TIMEZONE``) to midnight, every day. Planned time starts when the demo does, so a
    machine's first stop shows in today's OEE at once (a shift from midnight would hide it in hours
    nobody worked)."""
    try:
        zone = ZoneInfo(os.environ.get("MES_DASHBOARD_TIMEZONE") or "UTC")
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file name
        zone = ZoneInfo("UTC")
    hour = (now or datetime.now(UTC)).astimezone(zone).hour
    return [{"name": "Demo", "start": f"{hour:02d}:00", "end": "00:00", "days": list(range(7)), "planned_output": 600}]


def start_demo(settings: Settings, *, base_url: str, agent: bool = True) -> subprocess.Popen | None:
    """Start every plugin's simulators (daemon threads), write the demo line, station and LOT, and start
    the demo station's agent (``mes-station run``) provisioned from this server; returns its process."""
    manager = PluginManager(
        safe_mode=settings.plugins_safe_mode, allow=settings.plugins_allow, deny=settings.plugins_deny
    )
    manager.load_entry_points()
    devices = []
    for plugin, specs in asyncio.run(manager.call_each("mes_demo_devices", settings=settings, units=list(DEMO_UNITS))):
        for spec in specs:
            devices.append({"station": "ST-DEMO", **spec})
            console.print(f"demo: {plugin} started {spec['kind']} {spec['code']} ({spec['driver']})")
    note = Path(settings.files_dir).parent / "demo-station.toml"
    known = _token_of(note)
    token = asyncio.run(_write_demo_data(settings, devices, need_token=known is None)) or known
    work_dir = Path(settings.files_dir).parent.resolve() / "station"
    # Only what a worker PC keeps: the devices come from the server (GET /stations/me/config).
    write_private(
        note,
        "\n".join(
            [
                "# The demo station's agent (started by `mes serve --demo`; by hand: mes-station run --config "
                + str(note)
                + ", add --ui for the window)",
                "[server]",
                f'url = "{base_url}"',
                f'token = "{token}"',
                "",
                "[station]",
                f'work_dir = "{work_dir}"',
                "",
                "[heartbeat]",
                "interval = 5.0",
                "",
            ]
        ),
    )
    console.print(
        f"demo: line DEMO with {len(devices)} device(s), station ST-DEMO (agent config {note}), "
        f"LOT {DEMO_LOT} with units {DEMO_UNITS[0]}…{DEMO_UNITS[-1][-4:]}"
    )
    return _start_demo_agent(note, work_dir) if agent else None


def _token_of(note: Path) -> str | None:
    """The demo station's token kept in its agent configuration (shown once, so kept there)."""
    try:
        return tomllib.loads(note.read_text()).get("server", {}).get("token") or None
    except (OSError, tomllib.TOMLDecodeError):
        return None


def _start_demo_agent(note: Path, work_dir: Path) -> subprocess.Popen | None:
    """``mes-station run`` for ST-DEMO as a child process, stopped when the server exits."""
    if importlib.util.find_spec("mes_station") is None:
        console.print("demo: mes-station is not installed here; start the demo station's agent yourself")
        return None
    work_dir.mkdir(parents=True, exist_ok=True)
    log = open(work_dir / "agent.log", "ab")  # kept open: the child writes it as long as it runs
    process = subprocess.Popen(
        [sys.executable, "-m", "mes_station", "run", "--config", str(note)], stdout=log, stderr=subprocess.STDOUT
    )
    console.print(f"demo: station agent ST-DEMO started (pid {process.pid}, log {work_dir / 'agent.log'})")

    def stop() -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()

    atexit.register(stop)
    # uvicorn re-raises the SIGTERM that stopped it once it has shut down; by default that kills this
    # process before atexit runs. Exiting instead lets ``stop`` take the agent down with the server.
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    return process


def _exit_on_sigterm(signum, _frame) -> None:
    raise SystemExit(128 + signum)


async def _write_demo_data(settings: Settings, devices: list[dict], *, need_token: bool = False) -> str | None:
    """Write the demo line, station, processes and LOT; the station's new token when one was issued."""
    from .app import create_app

    application = create_app(settings, server=False)
    async with application.router.lifespan_context(application):
        kernel = application.state.kernel
        async with kernel.sessionmaker() as session:
            token = None
            if (await session.execute(select(Line).where(Line.code == "DEMO"))).scalar() is None:
                session.add(Line(code="DEMO", name="Demo line", config={}))
                await session.flush()
            line = (await session.execute(select(Line).where(Line.code == "DEMO"))).scalar_one()
            station = (await session.execute(select(Station).where(Station.code == "ST-DEMO"))).scalar()
            if station is None:
                station = Station(code="ST-DEMO", name="Demo station", line_id=line.id, heartbeat={})
                session.add(station)
                await session.flush()
                need_token = True
            if need_token:  # first run, or the agent's configuration (holding the token) was lost
                token = new_opaque_token(STATION_TOKEN_PREFIX)
                session.add(StationToken(station_id=station.id, name="demo", token_hash=token_digest(token)))
            for pid, name, seq in PROCESSES:
                if await session.get(Process, pid) is None:
                    session.add(Process(id=pid, name=name, sequence=seq))
            calendar = select(ShiftCalendarVersion.id).where(ShiftCalendarVersion.line_id == line.id).limit(1)
            if (await session.execute(calendar)).scalar() is None:  # OEE needs planned time, from now on
                session.add(
                    ShiftCalendarVersion(
                        line_id=line.id,
                        # on the hour, as every calendar version (rollup hours count whole)
                        valid_from=datetime.now(UTC).replace(minute=0, second=0, microsecond=0),
                        shifts=demo_shifts(),
                        updated_by="demo",
                    )
                )
            lot = (await session.execute(select(Lot).where(Lot.lot_number == DEMO_LOT))).scalar()
            if lot is None:
                lot = Lot(
                    lot_number=DEMO_LOT, product="PRD-100", quantity=len(DEMO_UNITS), status="created", line_id=line.id
                )
                session.add(lot)
                await session.flush()
                session.add_all([Unit(serial_number=serial, lot_id=lot.id) for serial in DEMO_UNITS])
            await session.commit()
            # the demo's output is what passes its pack step, whatever other steps the plant defines
            config = lines.parse({"code": "DEMO", "name": "Demo line", "devices": devices, "output_step": PACKED_AT})
            await lines.apply(session=session, config=config, catalog=lines.catalog_from_app(application), actor="demo")
            await session.commit()
        return token
