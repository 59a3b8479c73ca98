"""Command line: ``python -m mes_firmware_uploader.simulator --port 8081``."""

from __future__ import annotations

import argparse

import uvicorn

from .app import FAULTS, UploaderState, create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Firmware-uploader simulator (HTTP).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--flash-seconds", type=float, default=2.0, help="how long a normal flash takes")
    parser.add_argument("--fault", choices=FAULTS, default=None, help="start with this fault switched on")
    args = parser.parse_args(argv)
    state = UploaderState(flash_seconds=args.flash_seconds)
    state.set_fault(args.fault)
    print(f"uploader simulator on http://{args.host}:{args.port}  (faults: PUT /admin/faults)", flush=True)
    uvicorn.run(create_app(state), host=args.host, port=args.port, log_level="info", timeout_graceful_shutdown=1)


if __name__ == "__main__":
    main()
