"""``mes-opcua-sim``: run the simulated OPC UA machine until interrupted.

mes-opcua-sim --port 4840 --cycle 2 --sensors 100 --hz 10
mes-opcua-sim --security basic256sha256 --cert-dir ./pki    # makes server.der/.pem and client.der/.pem
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from pathlib import Path

from ..certs import CLIENT_URI, SERVER_URI, make_certificate
from .machine import MachineSimulator, Security, device_config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mes-opcua-sim", description="A simulated machine on OPC UA")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4840, help="0 = any free port (printed)")
    parser.add_argument("--cycle", type=float, default=2.0, help="seconds per part; 0 = no cycles")
    parser.add_argument("--bad-every", type=int, default=10, help="every N-th part is bad; 0 = none")
    parser.add_argument("--sensors", type=int, default=0, help="extra Sensors.NNNN nodes")
    parser.add_argument("--hz", type=float, default=10.0, help="how often the sensor nodes change")
    parser.add_argument("--security", choices=("none", "basic256sha256"), default="none")
    parser.add_argument("--cert-dir", type=Path, default=Path("./opcua-pki"))
    parser.add_argument(
        "--stats", action="store_true", help="print a JSON line each second: sensor values published so far"
    )
    parser.add_argument("--fault-every", type=float, default=0, help="seconds between jams (0 = none)")
    parser.add_argument("--fault-seconds", type=float, default=30, help="how long a jam lasts")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.sensors < 0 or args.hz <= 0 or args.cycle < 0:
        parser.error("--sensors must be >= 0, --hz > 0, --cycle >= 0")

    security = Security()
    extra = {}
    if args.security == "basic256sha256":
        server_cert, server_key = make_certificate(args.cert_dir, "server", uri=SERVER_URI, server=True)
        client_cert, client_key = make_certificate(args.cert_dir, "client", uri=CLIENT_URI, server=False)
        security = Security("basic256sha256", server_cert, server_key)
        extra["security"] = {
            "policy": "Basic256Sha256",
            "certificate": str(client_cert.resolve()),
            "private_key": str(client_key.resolve()),
            "server_certificate": str(server_cert.resolve()),
        }

    async def run() -> None:
        sim = MachineSimulator(
            host=args.host,
            port=args.port,
            cycle_seconds=args.cycle or None,
            bad_every=args.bad_every,
            sensors=args.sensors,
            sensor_hz=args.hz,
            security=security,
            fault_every=args.fault_every or None,
            fault_seconds=args.fault_seconds,
        )
        endpoint = await sim.start()
        print(f"OPC UA machine simulator on {endpoint}", flush=True)
        print("device config:", json.dumps(device_config(endpoint, sensors=0, **extra)), flush=True)
        try:
            while True:
                await asyncio.sleep(1.0)
                if args.stats:
                    print(json.dumps({"published": sim.published, "at": time.time()}), flush=True)
        finally:
            await sim.stop()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
