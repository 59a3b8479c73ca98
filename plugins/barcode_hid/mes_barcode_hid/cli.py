"""``mes barcode …``: parse a code, watch a scanner, record evdev events for replay."""

from __future__ import annotations

import asyncio
import json
import os

import typer

from . import NAMESPACE

app = typer.Typer(help="Barcode scanners: parse codes, watch a driver, record evdev input for replay.")


def _settings(pairs: list[str]) -> dict[str, object]:
    settings: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"{pair!r}: use key=value")
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError:
            settings[key] = value
    return settings


def _readable(text: str) -> str:
    """``text`` for a terminal: GS as ``<GS>``, other control characters as ``\\xNN``."""
    out = []
    for char in text:
        if char == "\x1d":
            out.append("<GS>")
        elif not char.isprintable():
            out.append(f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "".join(out)


@app.command()
def parse(
    code: str = typer.Argument(..., help="the code; <GS> stands for the GS separator, '-' reads stdin"),
    as_json: bool = typer.Option(False, "--json", help="print the verdict as JSON"),
) -> None:
    """Say what CODE is (uses the MES_BARCODE_* patterns): kind, serial/LOT, every GS1 element
    with its AI, name and value. Exit status 0 for a serial, LOT or GTIN, 1 for an unknown code."""
    import sys

    from .parsing import parse_code
    from .settings import BarcodeSettings

    if code == "-":
        code = sys.stdin.buffer.read().decode("utf-8", errors="surrogateescape").rstrip("\r\n")
    # a code that is not valid UTF-8 reaches us with surrogate escapes; keep them visible, not fatal
    code = code.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
    parsed = parse_code(code.replace("<GS>", "\x1d"), config=BarcodeSettings().parser_config())
    if as_json:
        typer.echo(json.dumps(parsed.as_dict(), indent=2, ensure_ascii=True))
    else:
        typer.echo(f"kind:      {parsed.kind}")
        if parsed.symbology:
            typer.echo(f"symbology: {parsed.symbology} ({parsed.symbology_name})")
        for label, value in (
            ("serial", parsed.serial_number),
            ("LOT", parsed.lot_number),
            ("GTIN", parsed.gtin),
            ("expiry", parsed.expiry.isoformat() if parsed.expiry else None),
        ):
            if value:
                typer.echo(f"{label + ':':<10} {value}")
        for element in parsed.elements:
            line = f"  ({element.ai}) {element.name}: {_readable(element.value)}"
            if element.date:
                line += f"  = {element.date.isoformat()}"
            if element.decimal is not None:
                line += f"  = {element.decimal}" + (f" {element.unit}" if element.unit else "")
            if element.error:
                line += f"  ! {element.error}"
            typer.echo(line)
        if parsed.reason:
            typer.echo(f"reason:    {_readable(parsed.reason)}")
    raise typer.Exit(0 if parsed.kind != "unknown" else 1)


@app.command()
def listen(
    driver: str,
    setting: list[str] = typer.Argument(None, help="driver settings as key=value (values may be JSON)"),
    count: int = typer.Option(0, help="stop after this many scans (0 = until Ctrl+C)"),
) -> None:
    """Open DRIVER with the settings and print every scan as JSON, one per line."""
    from mes_kernel.drivers import load_driver

    async def run() -> None:
        scanner = load_driver(NAMESPACE, driver, **_settings(setting or []))
        await scanner.open()
        typer.echo(json.dumps(scanner.status()), err=True)
        seen = 0
        try:
            async for scan in scanner.scans():
                typer.echo(json.dumps(scan.as_dict(), ensure_ascii=False))
                seen += 1
                if count and seen >= count:
                    break
        finally:
            await scanner.close()

    asyncio.run(run())


@app.command()
def record(
    device: str,
    output: str,
    codes: int = typer.Option(1, help="stop after this many complete codes"),
    grab: bool = typer.Option(True, help="grab the device while recording"),
) -> None:
    """Copy raw input_event records of DEVICE into OUTPUT until CODES codes were read (for replay)."""
    import evdev

    from .drivers.evdev_driver import InputEventDecoder

    decoder = InputEventDecoder()
    source = evdev.InputDevice(device)
    seen = 0
    with open(output, "wb") as sink:
        if grab:
            source.grab()
        try:
            while seen < codes:
                data = os.read(source.fd, 24 * 64)
                sink.write(data)
                seen += len(decoder.feed(data))
        finally:
            if grab:
                source.ungrab()
            source.close()
    typer.echo(f"recorded {seen} code(s) into {output}; replay with: evdev device={output} replay=true")
