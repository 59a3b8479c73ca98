"""``mes-mqtt-sim``: a simulated machine publishing JSON to a broker under a topic prefix — its state
(``<prefix>/status``: ``{"state": 1, "ts": ...}``), counters (``<prefix>/counters``: ``{"good": n,
"bad": n, "ts": ...}``), the serial number on it (``<prefix>/unit``) and a spindle temperature
(``<prefix>/spindle/temp``) — with QoS 1, making a part every ``--cycle`` seconds. The state and the
serial number are published **retained**: they describe the machine now, so a kernel that subscribes
later (a restart, a new installation) learns them at once from the broker.

    mes-mqtt-sim --host 127.0.0.1 --prefix plant/mc7 --cycle 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
from datetime import UTC, datetime
from typing import Any

import aiomqtt

RUNNING, IDLE, JAM, ESTOP = 1, 2, 3, 4


def device_config(host: str, prefix: str, **settings: Any) -> dict[str, Any]:
    """The line configuration of a device reading this simulator's topics under ``prefix``."""
    return {
        "host": host,
        "time": "/ts",
        "topics": {
            "state": {"topic": f"{prefix}/status", "path": "/state"},
            "good": {"topic": f"{prefix}/counters", "path": "/good"},
            "bad": {"topic": f"{prefix}/counters", "path": "/bad"},
            "serial": {"topic": f"{prefix}/unit", "path": "/serial"},
            "spindle_temp": {"topic": f"{prefix}/+/temp", "path": "/value"},
        },
        "states": {"running": [RUNNING], "idle": [IDLE], "down": [JAM, ESTOP]},
        "reasons": {str(JAM): "jam", str(ESTOP): "emergency stop"},
        "values": {"spindle_temp": {"unit": "degC"}},
        "writable": {
            "recipe": {"topic": f"{prefix}/cmd/recipe", "type": "integer"},
            "command": {"topic": f"{prefix}/cmd", "path": "/command", "type": "integer"},
        },
        **settings,
    }


class MachinePublisher:
    """Publishes one machine's messages through an open ``aiomqtt.Client`` (QoS 1)."""

    def __init__(self, client: aiomqtt.Client, prefix: str) -> None:
        self.client, self.prefix = client, prefix
        self.good = self.bad = 0

    async def publish(
        self, suffix: str, document: dict[str, Any], *, at: datetime | None = None, retain: bool = False
    ) -> None:
        body = {**document, "ts": (at or datetime.now(UTC)).isoformat()}
        await self.client.publish(f"{self.prefix}/{suffix}", json.dumps(body), qos=1, retain=retain)

    async def state(self, state: int, *, at: datetime | None = None) -> None:
        """The machine's state now: retained, so a late subscriber learns it from the broker."""
        await self.publish("status", {"state": state}, at=at, retain=True)

    async def part(self, *, good: bool = True, at: datetime | None = None) -> None:
        if good:
            self.good += 1
        else:
            self.bad += 1
        await self.publish("counters", {"good": self.good, "bad": self.bad}, at=at)

    async def unit(self, serial: str, *, at: datetime | None = None) -> None:
        """The serial number on the machine now (``""``: none): retained, as the state."""
        await self.publish("unit", {"serial": serial}, at=at, retain=True)

    async def forget(self) -> None:
        """Clear the retained state and serial (an empty retained message deletes the broker's copy)."""
        for suffix in ("status", "unit"):
            await self.client.publish(f"{self.prefix}/{suffix}", b"", qos=1, retain=True)

    async def temperature(self, celsius: float, *, at: datetime | None = None) -> None:
        await self.publish("spindle/temp", {"value": celsius}, at=at)


async def run(args: argparse.Namespace) -> None:
    rng = random.Random()
    async with aiomqtt.Client(args.host, args.port, identifier=f"mes-sim-{args.prefix}") as client:
        machine = MachinePublisher(client, args.prefix)
        await machine.state(RUNNING)
        part = 0
        while True:
            part += 1
            await machine.unit(f"SIM-{part:06d}")
            await machine.temperature(round(60 + rng.uniform(-2, 2), 1))
            await asyncio.sleep(args.cycle)
            await machine.part(good=rng.random() > 0.1)
            if args.jam_every and part % args.jam_every == 0:
                await machine.state(JAM)
                await asyncio.sleep(2 * args.cycle)
                await machine.state(RUNNING)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mes-mqtt-sim", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--prefix", default="plant/mc-sim")
    parser.add_argument("--cycle", type=float, default=3.0, help="seconds per part")
    parser.add_argument("--jam-every", type=int, default=20, help="jam after every N parts (0: never)")
    args = parser.parse_args(argv)
    print(json.dumps({"kind": "mqtt", "driver": "mqtt", "config": device_config(args.host, args.prefix)}), flush=True)
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
