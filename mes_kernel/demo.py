"""``mes serve --demo``: the plugins' simulators on a demo line, so a new user sees a working plant."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from rich.console import Console
from sqlalchemy import select

from . import lines
from .db.models import Line, Lot, Process, Station, StationToken, Unit
from .plugins import PluginManager
from .security import STATION_TOKEN_PREFIX, new_opaque_token, token_digest
from .settings import Settings

console = Console(stderr=True)
PROCESSES = [
    ("ASSY-10", "Assembly", 10),
    ("FLASH-20", "Firmware flash", 20),
    ("TEST-30", "Functional test", 30),
    ("PACK-40", "Label and pack", 40),
]


def start_demo(settings: Settings, *, base_url: str) -> None:
    """Start every plugin's simulators (daemon threads) and write the demo line, station and LOT."""
    manager = PluginManager(
        safe_mode=settings.plugins_safe_mode, allow=settings.plugins_allow, deny=settings.plugins_deny
    )
    manager.load_entry_points()
    devices = []
    for plugin, specs in asyncio.run(manager.call_each("mes_demo_devices", settings=settings)):
        for spec in specs:
            devices.append({"station": "ST-DEMO", **spec})
            console.print(f"demo: {plugin} started {spec['kind']} {spec['code']} ({spec['driver']})")
    token = asyncio.run(_write_demo_data(settings, devices))
    note = Path(settings.files_dir).parent / "demo-station.toml"
    if token:  # first demo run: the token is shown once, so keep the agent's config now
        printer = next((d for d in devices if d["kind"] == "label_printer"), None)
        lines_ = [
            "# The demo station's agent:  mes-station run --config " + str(note) + "  (add --ui for the window)",
            "[server]",
            f'url = "{base_url}"',
            f'token = "{token}"',
            "",
            "[station]",
            'code = "ST-DEMO"',
            f'work_dir = "{Path(settings.files_dir).parent.resolve() / "station"}"',
            "",
            "[devices.scanner]",
            'driver = "wedge"',
            "",
        ]
        if printer:
            lines_ += ["[devices.printer]", f'driver = "{printer["driver"]}"']
            lines_ += [f"{k} = {json.dumps(v)}" for k, v in printer["config"].items()]
        note.write_text("\n".join(lines_) + "\n")
        note.chmod(0o600)
    console.print(
        f"demo: line DEMO with {len(devices)} device(s), station ST-DEMO (agent config {note}), "
        "LOT DEMO-LOT-001 with units SN-DEMO-0001…0005"
    )


async def _write_demo_data(settings: Settings, devices: list[dict]) -> str | None:
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
                token = new_opaque_token(STATION_TOKEN_PREFIX)
                session.add(StationToken(station_id=station.id, name="demo", token_hash=token_digest(token)))
            for pid, name, seq in PROCESSES:
                if await session.get(Process, pid) is None:
                    session.add(Process(id=pid, name=name, sequence=seq))
            lot = (await session.execute(select(Lot).where(Lot.lot_number == "DEMO-LOT-001"))).scalar()
            if lot is None:
                lot = Lot(lot_number="DEMO-LOT-001", product="PRD-100", quantity=5, status="created", line_id=line.id)
                session.add(lot)
                await session.flush()
                session.add_all([Unit(serial_number=f"SN-DEMO-{i:04d}", lot_id=lot.id) for i in range(1, 6)])
            await session.commit()
            config = lines.parse({"code": "DEMO", "name": "Demo line", "devices": devices})
            await lines.apply(session=session, config=config, catalog=lines.catalog_from_app(application), actor="demo")
            await session.commit()
        return token
