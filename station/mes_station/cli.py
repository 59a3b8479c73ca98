"""``mes-station``: run the agent, show its status, manage the outbox, diagnose the station."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from mes_station.cache import StationCache
from mes_station.config import ConfigError, StationConfig, load_config
from mes_station.instance import is_running
from mes_station.outbox import Outbox
from mes_station.watcher import quarantined_count

app = typer.Typer(help="NeuroHub MES station agent.", no_args_is_help=True, add_completion=False)
outbox_app = typer.Typer(help="Look at and manage the local outbox.", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="station.toml (default: $MES_STATION_CONFIG, ./station.toml)"),
]


def _config(path: Path | None) -> StationConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))


@app.command()
def run(
    config: ConfigOption = None,
    ui: Annotated[bool, typer.Option("--ui", help="open the desktop window")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the agent in the foreground (Ctrl-C stops it; queued events stay in the outbox)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    cfg = _config(config)
    if ui:
        try:
            from mes_station.ui.app import main as ui_main
        except ImportError as exc:
            typer.secho(f"the desktop window is not available: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(3) from exc
        argv = ["--config", str(cfg.source)] if cfg.source else []
        raise typer.Exit(ui_main(argv) or 0)

    from mes_station.agent import Agent

    agent = Agent(cfg)
    try:
        asyncio.run(agent.run_forever())
    except KeyboardInterrupt:
        pass


@app.command()
def status(config: ConfigOption = None) -> None:
    """The station's state: configuration, drivers, outbox, and what the running agent last saw."""
    cfg = _config(config)
    with Outbox(cfg.outbox_path) as outbox:
        snapshot = outbox.get_meta("agent_status")
        report: dict[str, Any] = {
            "config": cfg.redacted(),
            "outbox": {
                **outbox.counts(),
                "oldest_queued_age_seconds": outbox.oldest_queued_age(),
                "path": str(cfg.outbox_path),
            },
            "server_clock_offset_seconds": outbox.clock_offset(),
            "templates_cached": outbox.template_names(),
            "quarantined": quarantined_count(cfg.quarantine_dir),
        }
    if cfg.cache_path.exists():
        cache = StationCache(cfg.cache_path)
        try:
            report["cache"] = cache.status()
        finally:
            cache.close()
    running = is_running(cfg.work_dir / "agent.lock")
    if snapshot:
        age = (datetime.now(UTC) - datetime.fromisoformat(snapshot["updated_at"])).total_seconds()
        report["agent"] = {
            "running": running,
            "pid": snapshot.get("pid"),
            "snapshot_age_seconds": round(age, 1),
            "online": snapshot.get("online"),
            "worker": snapshot.get("worker"),
            "last_error": snapshot.get("last_error") or snapshot.get("sender_error"),
        }
    else:
        report["agent"] = {"running": running}
    if snapshot and report["agent"]["running"]:
        report["drivers"] = snapshot.get("drivers")
    else:
        from mes_station.devices import DeviceSet
        from mes_station.extensions import installed
        from mes_station.provisioning import CorruptCacheError, known_devices

        try:
            devices = DeviceSet(known_devices(cfg, installed()))
        except CorruptCacheError as exc:
            report["provisioning_error"] = str(exc)
            devices = DeviceSet(cfg.devices)
        devices.load()
        report["drivers"] = devices.drivers_report()
    _echo_json(report)
    if report["quarantined"]:
        typer.secho(
            f"{report['quarantined']} completion file(s) in quarantine: {cfg.quarantine_dir} (see the .reason files)",
            fg=typer.colors.YELLOW,
            err=True,
        )
    broken = [role for role, d in (report["drivers"] or {}).items() if not d.get("loaded")]
    if broken:
        typer.secho(f"drivers not loaded: {', '.join(broken)}", fg=typer.colors.YELLOW, err=True)


@outbox_app.command("list")
def outbox_list(
    config: ConfigOption = None,
    status: Annotated[str, typer.Option(help="queued | rejected | delivered | all")] = "all",
    limit: Annotated[int, typer.Option(help="at most this many")] = 50,
    full: Annotated[bool, typer.Option("--full", help="include each event's body")] = False,
) -> None:
    """Events in the outbox, oldest first, with their status and last error."""
    cfg = _config(config)
    with Outbox(cfg.outbox_path) as outbox:
        events = outbox.list(None if status == "all" else status, limit)
        typer.echo(f"{'seq':>6}  {'status':9}  {'kind':14}  {'tries':>5}  key / error")
        for ev in events:
            line = f"{ev.seq:>6}  {ev.status:9}  {ev.kind:14}  {ev.attempts:>5}  {ev.idempotency_key}"
            if ev.source:
                line += f"  [{ev.source}]"
            typer.echo(line)
            if ev.last_error and ev.status != "delivered":
                typer.echo(f"{'':>42}{ev.last_error}")
            if full:
                typer.echo(f"{'':>42}{json.dumps(ev.body, ensure_ascii=False)}")
        counts = outbox.counts()
        wrong_time = sum(1 for ev in outbox.iter_all("rejected") if "IMPLAUSIBLE_TIME" in (ev.last_error or ""))
    typer.echo(f"queued {counts['queued']}, rejected {counts['rejected']}, delivered {counts['delivered']}")
    if wrong_time:
        typer.echo(
            f"{wrong_time} event(s) refused for their time (IMPLAUSIBLE_TIME): the station's clock was wrong when "
            "they were made. Check the clock (mes-station status shows the server offset), then "
            "`mes-station outbox retry --restamp` sends them at the server's receipt time, keeping the original."
        )


@outbox_app.command("retry")
def outbox_retry(
    keys: Annotated[list[str] | None, typer.Argument(help="idempotency keys; none = every rejected event")] = None,
    config: ConfigOption = None,
    restamp: Annotated[
        bool,
        typer.Option(
            "--restamp",
            help="only events refused IMPLAUSIBLE_TIME (the station's clock was wrong): send them without "
            "their time, so the server files them when it receives them; the original time stays in the data",
        ),
    ] = False,
) -> None:
    """Queue rejected events again (after the LOT was reopened, say); the agent sends them."""
    cfg = _config(config)
    with Outbox(cfg.outbox_path) as outbox:
        count = outbox.restamp(keys or None) if restamp else outbox.retry(keys or None)
    typer.echo(f"{count} event(s) queued again" + (" without their refused time" if restamp else ""))


@outbox_app.command("export")
def outbox_export(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="file (default: stdout)")] = None,
    config: ConfigOption = None,
    status: Annotated[str, typer.Option(help="queued | rejected | delivered | all")] = "all",
) -> None:
    """Every event as JSON lines (for support, or to hand to the server by other means)."""
    cfg = _config(config)
    with Outbox(cfg.outbox_path) as outbox:
        stream = output.open("w", encoding="utf-8") if output else sys.stdout
        count = 0
        try:
            for ev in outbox.iter_all(None if status == "all" else status):
                stream.write(json.dumps(ev.as_dict(), ensure_ascii=False) + "\n")
                count += 1
        finally:
            if output:
                stream.close()
    if output:
        typer.echo(f"{count} event(s) written to {output}")


@app.command()
def doctor(config: ConfigOption = None) -> None:
    """Check devices, server reachability and token, folder permissions, disk and clock skew."""
    cfg = _config(config)
    checks = asyncio.run(_doctor(cfg))
    failed = 0
    for name, ok, detail in checks:
        mark = {True: "ok  ", False: "FAIL", None: "warn"}[ok]
        colour = {True: typer.colors.GREEN, False: typer.colors.RED, None: typer.colors.YELLOW}[ok]
        typer.secho(f"[{mark}] {name}: {detail}", fg=colour)
        failed += ok is False
    raise typer.Exit(1 if failed else 0)


async def _doctor(cfg: StationConfig) -> list[tuple[str, bool | None, str]]:
    from mes_station.client import ServerClient
    from mes_station.devices import DeviceSet
    from mes_station.errors import OfflineError, ServerError
    from mes_station.heartbeat import clock_offset, heartbeat_body

    checks: list[tuple[str, bool | None, str]] = [("config", True, str(cfg.source))]
    for label, folder in (
        ("work dir", cfg.work_dir),
        ("watch folder", cfg.watch_folder),
        ("archive", cfg.archive_dir),
        ("quarantine", cfg.quarantine_dir),
    ):
        checks.append((f"folder {label}", *_writable(folder)))
    try:
        free = shutil.disk_usage(cfg.work_dir).free
        checks.append(("disk", free > 100 * 2**20 or None, f"{free / 2**20:.0f} MiB free in {cfg.work_dir}"))
    except OSError as exc:
        checks.append(("disk", False, str(exc)))
    counts = {"queued": 0, "rejected": 0, "delivered": 0}
    age = None
    try:
        with Outbox(cfg.outbox_path) as outbox:
            counts = outbox.counts()
            age = outbox.oldest_queued_age()
        detail = f"queued {counts['queued']}, rejected {counts['rejected']}"
        if age is not None:
            detail += f", oldest {age:.0f} s"
        checks.append(("outbox", None if counts["rejected"] else True, detail))
    except Exception as exc:
        checks.append(("outbox", False, f"{type(exc).__name__}: {exc}"))

    from mes_station.extensions import installed
    from mes_station.provisioning import CorruptCacheError, known_devices

    try:  # the devices of the last configuration the server gave, and station.toml's own
        configs = known_devices(cfg, installed())
        checks.append(("station configuration", True, f"{len(configs)} device(s) (cached from the server and local)"))
    except CorruptCacheError as exc:
        configs = dict(cfg.devices)
        checks.append(("station configuration", False, f"{exc}; the agent fetches a fresh one at start"))
    devices = DeviceSet(configs)
    devices.load()
    await devices.open_all()
    body = await heartbeat_body(devices, outbox_depth=counts["queued"], oldest_queued_age=age)
    health = body["devices"]
    for role, device in devices.devices.items():
        if not device.loaded:
            checks.append((f"device {role}", False, device.error or "not loaded"))
        else:
            h = health[role]
            checks.append((f"device {role}", h["status"] == "up" or None, f"{device.config.driver}: {h}"))
    await devices.close()

    client = ServerClient(cfg.api_url, cfg.station_token, timeout=min(cfg.request_timeout, 5.0))
    try:
        started = time.monotonic()
        await client.request("GET", "/health/liveness", auth=False)
        checks.append(("server", True, f"{cfg.server_url} answers ({(time.monotonic() - started) * 1000:.0f} ms)"))
        sent = time.time()
        answer = await client.json("POST", "/stations/heartbeat", json=body)
        received = time.time()
        checks.append(("station token", True, f"accepted for {cfg.station_code}"))
        server_time = (answer or {}).get("server_time")
        if server_time:
            skew = clock_offset(server_time, sent, received)
            ok = True if abs(skew) < 5 else (None if abs(skew) < 120 else False)
            checks.append(("clock", ok, f"local clock is {-skew:+.1f} s from the server's"))
    except OfflineError as exc:
        checks.append(("server", False, str(exc)))
    except ServerError as exc:
        name = "station token" if exc.status in (401, 403) else "server"
        checks.append((name, False, str(exc)))
    finally:
        await client.aclose()
    return checks


def _writable(folder: Path) -> tuple[bool, str]:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-", delete=True) as fh:
            fh.write(b"ok")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        return False, f"{folder}: {exc}"
    return True, f"{folder} writable"


def main() -> None:
    app()


if __name__ == "__main__":
    main()
