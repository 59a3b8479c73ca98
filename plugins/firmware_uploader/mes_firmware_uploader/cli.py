"""``mes firmware ...``: command-line tools this plugin adds to the kernel's ``mes`` command."""

from __future__ import annotations

from typing import Annotated

import typer

from .simulator.app import FAULTS

app = typer.Typer(help="Firmware uploader: the uploader simulator service.", no_args_is_help=True)


@app.command("simulator")
def simulator(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8081,
    flash_seconds: Annotated[float, typer.Option(help="how long a normal flash takes")] = 2.0,
    fault: Annotated[str | None, typer.Option(help=f"start with a fault: {', '.join(FAULTS)}")] = None,
) -> None:
    """Run the uploader simulator service (faults switchable at runtime via PUT /admin/faults)."""
    from .simulator.__main__ import main

    argv = ["--host", host, "--port", str(port), "--flash-seconds", str(flash_seconds)]
    main(argv + (["--fault", fault] if fault else []))
