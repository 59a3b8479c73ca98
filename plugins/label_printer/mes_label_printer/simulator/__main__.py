"""Run a simulated Zebra printer by hand: ``python -m mes_label_printer.simulator --port 9100``.

Faults can be set at start (``--fault paper_out``) and changed while it runs through the
control port, one command per line (``nc 127.0.0.1 9101``)::

    fault paper_out on | fault paper_out off | fault slow 2.5 | clear
    status | count | last
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from .core import Faults, PrinterCore
from .pty import PtyPrinter
from .tcp import TcpPrinter


def _parse_value(text: str) -> bool | float:
    lowered = text.lower()
    if lowered in ("on", "1", "true", "yes"):
        return True
    if lowered in ("off", "0", "false", "no"):
        return False
    return float(text)


def control_command(core: PrinterCore, line: str) -> str:
    """Run one control-port command against ``core``; return the answer line."""
    words = line.split()
    if not words:
        return ""
    try:
        match words[0].lower():
            case "fault" if len(words) >= 2:
                core.set_fault(words[1], _parse_value(words[2]) if len(words) > 2 else True)
                return f"ok {words[1]}={getattr(core.faults, words[1])}"
            case "clear":
                core.clear_faults()
                return "ok faults cleared"
            case "status":
                s = core.status()
                return f"ready={s.ready} problems={s.problems} faults={core.faults}"
            case "count":
                return f"printed={core.label_count} held={len(core.held)}"
            case "last":
                return core.printed[-1].decode("utf-8", "replace") if core.printed else "no label yet"
    except ValueError as exc:
        return f"error {exc}"
    return "error commands: fault NAME [on|off|seconds], clear, status, count, last"


async def _serve_control(core: PrinterCore, host: str, port: int) -> asyncio.base_events.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while line := await reader.readline():
                answer = control_command(core, line.decode("utf-8", "replace"))
                writer.write(answer.encode() + b"\n")
                await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, host, port)


async def _main(args: argparse.Namespace) -> None:
    core = PrinterCore()
    for fault in args.fault or []:
        name, _, value = fault.partition("=")
        core.set_fault(name, _parse_value(value) if value else True)
    if args.pty:
        printer = await PtyPrinter(core).start()
        print(printer.path, flush=True)
    else:
        tcp = await TcpPrinter(core, args.host, args.port).start()
        print(f"zebra simulator listening on {args.host}:{tcp.port}", flush=True)
    if args.control_port is not None:
        control = await _serve_control(core, args.host, args.control_port)
        print(f"control port on {args.host}:{control.sockets[0].getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mes_label_printer.simulator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100, help="TCP port for ZPL (0 = any free port)")
    parser.add_argument("--pty", action="store_true", help="serve on a pseudo-terminal; prints its path")
    parser.add_argument("--control-port", type=int, default=None, help="line-based fault control port")
    parser.add_argument(
        "--fault",
        action="append",
        metavar="NAME[=VALUE]",
        help=f"start with a fault: {', '.join(Faults.names())}",
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
