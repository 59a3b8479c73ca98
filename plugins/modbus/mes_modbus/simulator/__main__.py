"""``mes-modbus-sim``: run the simulated machine as a Modbus TCP server or an RTU device on a serial
port (or a fresh pty pair), making a part every ``--cycle`` seconds and jamming now and then.

    mes-modbus-sim --tcp 127.0.0.1:5020 --cycle 2
    mes-modbus-sim --pty            # prints the port a connector opens (serial_port = ...)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal

from .machine import MachineSimulator, PtyLink, device_config, run_machine


async def main_async(args: argparse.Namespace) -> None:
    sim = MachineSimulator()
    link = None
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        await sim.start_tcp(host or "127.0.0.1", int(port))
        config = device_config(host=host or "127.0.0.1", port=sim.port)
        driver = "tcp"
    else:
        if args.pty:
            link = PtyLink().start()
            path = link.device_side
        else:
            path = args.serial
        await sim.start_serial(path, baudrate=args.baudrate)
        config = device_config(serial_port=link.host_side if link else "<the other end of the line>")
        driver = "rtu"
    print(json.dumps({"kind": "modbus", "driver": driver, "config": config}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    machine = asyncio.create_task(run_machine(sim, cycle=args.cycle, jam_every=args.jam_every, rng=random.Random()))
    await stop.wait()
    machine.cancel()
    await sim.stop()
    if link:
        link.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mes-modbus-sim", description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--tcp", metavar="HOST:PORT", help="serve Modbus TCP (port 0: a free one)")
    where.add_argument("--serial", metavar="PORT", help="serve Modbus RTU on this serial port")
    where.add_argument("--pty", action="store_true", help="serve Modbus RTU on a new pty line; prints its port")
    parser.add_argument("--baudrate", type=int, default=19200)
    parser.add_argument("--cycle", type=float, default=3.0, help="seconds per part")
    parser.add_argument("--jam-every", type=int, default=20, help="jam after every N parts (0: never)")
    asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
