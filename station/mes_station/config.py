"""Station configuration: one small TOML file per worker PC (``station.toml``).

It holds only what the station needs to reach its server — the server URL, the station's token and
its work folder — plus optional local overrides. The devices come from the server
(``GET /api/v1/stations/me/config``, see ``mes_station.provisioning``); a ``[devices.<key>]`` table
here overrides the settings of the server's device ``<key>`` (a device code) or, keyed by a role
word such as ``printer``, adds a device only this PC has.
"""

from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_ENV = "MES_STATION_CONFIG"
DEFAULT_CONFIG_NAME = "station.toml"


class ConfigError(ValueError):
    """The station configuration file is missing, unreadable or inconsistent."""


def default_work_dir() -> Path:
    """``C:\\neurohub_work\\`` on Windows, ``~/neurohub_work`` elsewhere."""
    if sys.platform == "win32":
        return Path("C:\\neurohub_work\\")
    return Path.home() / "neurohub_work"


@dataclass(frozen=True)
class DeviceConfig:
    """One device of the station: its role word, the driver name and the driver's own settings.

    ``code`` and ``kind`` are the server's device code and kind for a provisioned device; a device
    only this PC has (declared in ``station.toml``) has neither. ``shared`` marks a device of the
    station's line assigned to no station (e.g. one printer for the line): the station may use it,
    and a device of its own with the same role word is preferred.
    """

    role: str
    driver: str
    namespace: str
    settings: dict[str, Any] = field(default_factory=dict)
    code: str | None = None
    kind: str | None = None
    shared: bool = False


@dataclass(frozen=True)
class StationConfig:
    """Everything the agent needs; paths are absolute after loading."""

    server_url: str
    station_token: str
    station_code: str
    work_dir: Path
    watch_folder: Path
    devices: dict[str, DeviceConfig] = field(default_factory=dict)
    #: ``[devices.<device code>]`` tables: settings laid over the server's configuration of that device
    device_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    request_timeout: float = 10.0
    backoff_initial: float = 2.0
    backoff_max: float = 60.0
    batch_size: int = 200
    heartbeat_interval: float = 30.0
    settle_seconds: float = 1.0
    malformed_after_seconds: float = 10.0
    rescan_seconds: float = 5.0
    completion_retention_days: int = 90
    delivered_retention_days: int = 30
    #: ``[offline] login_days``: a worker who logged in here within this many days may log in offline
    offline_login_days: float = 7.0
    #: ``[offline] cache_sync_seconds``: how often the offline cache (LOTs, units, routing) is refreshed
    cache_sync_seconds: float = 300.0
    #: ``[offline] cache_page_units``: the first (full) cache sync comes in pages of this many units
    cache_page_units: int = 10_000
    #: ``[watcher] inline_max_bytes``: a completion file larger than this travels as an attachment
    inline_completion_bytes: int = 1024 * 1024
    #: ``[ui] defect_codes``: the defect list used when the server has none for a process
    ui_defect_codes: tuple[str, ...] = ()
    source: Path | None = None

    @property
    def api_url(self) -> str:
        """The ``/api/v1`` root every request goes to."""
        return f"{self.server_url}/api/v1"

    @property
    def outbox_path(self) -> Path:
        return self.work_dir / "outbox.sqlite3"

    @property
    def provisioned_cache(self) -> Path:
        """Where the last configuration fetched from the server is kept (so a station starts offline)."""
        return self.work_dir / "station-config.json"

    @property
    def cache_path(self) -> Path:
        """The offline cache (LOTs, units, routing, defect lists, firmware list, worker credentials)."""
        return self.work_dir / "station-cache.sqlite3"

    @property
    def attachments_dir(self) -> Path:
        """Attachments of queued completion records, content-addressed, until the server has them."""
        return self.work_dir / "attachments"

    @property
    def archive_dir(self) -> Path:
        return self.work_dir / "archive"

    @property
    def quarantine_dir(self) -> Path:
        return self.work_dir / "quarantine"

    def redacted(self) -> dict[str, Any]:
        """The configuration for display: the station token never leaves the machine in clear."""
        token = self.station_token
        return {
            "server_url": self.server_url,
            "station_code": self.station_code,
            "station_token": (token[:4] + "…" + token[-2:]) if len(token) > 8 else "***",
            "work_dir": str(self.work_dir),
            "watch_folder": str(self.watch_folder),
            "devices": {
                role: {"driver": d.driver, "namespace": d.namespace, "settings": _redact(d.settings)}
                for role, d in self.devices.items()
            },
        }


_SECRET_KEYS = {"token", "password", "secret", "api_key", "apikey", "station_token"}


def _redact(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: ("***" if k.lower() in _SECRET_KEYS else v) for k, v in settings.items()}


def _normalise_server_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if url.endswith("/api/v1"):
        url = url[: -len("/api/v1")]
    return url


def resolve_config_path(path: str | os.PathLike[str] | None) -> Path:
    """The explicit path, else ``$MES_STATION_CONFIG``, else ``station.toml`` here or in the work dir."""
    if path:
        return Path(path)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    here = Path.cwd() / DEFAULT_CONFIG_NAME
    if here.exists():
        return here
    return default_work_dir() / DEFAULT_CONFIG_NAME


def load_config(path: str | os.PathLike[str] | None = None) -> StationConfig:
    """Read ``station.toml``; ``API_BASE_URL`` in the environment overrides its server URL."""
    source = resolve_config_path(path)
    try:
        raw = tomllib.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"station configuration not found: {source}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    return config_from_dict(raw, source=source)


def config_from_dict(raw: dict[str, Any], *, source: Path | None = None) -> StationConfig:
    """Build a :class:`StationConfig` from parsed TOML (also used by tests)."""
    server = raw.get("server", {})
    server_url = os.environ.get("API_BASE_URL") or server.get("url") or raw.get("server_url")
    if not server_url:
        raise ConfigError("no server URL: set [server] url in station.toml or API_BASE_URL")
    token = server.get("token") or raw.get("station_token") or os.environ.get("MES_STATION_TOKEN", "")
    station = raw.get("station", {})
    # optional: the server tells a station its code (GET /stations/me/config); this one only fills in offline
    code = station.get("code") or raw.get("station_code") or ""

    base = source.parent if source else Path.cwd()
    work_dir = _path(station.get("work_dir") or raw.get("work_dir"), base) or default_work_dir()
    watch = _path(station.get("watch_folder") or raw.get("watch_folder"), base) or work_dir / "inbox"

    devices: dict[str, DeviceConfig] = {}
    overrides: dict[str, dict[str, Any]] = {}
    for role, table in (raw.get("devices") or {}).items():
        table = dict(table)
        driver = table.pop("driver", None)
        if not driver:  # no driver: settings for the server's device of that code
            overrides[role] = dict(table.pop("settings", None) or table)
            continue
        namespace = table.pop("namespace", None)
        kind = table.pop("kind", None)
        if not namespace:
            from mes_station.extensions import installed

            declared = installed().kind_for(kind or role)
            if declared is None:
                known = sorted({w for k in installed().kinds().values() for w in (k.role, k.kind)})
                raise ConfigError(
                    f"device {role!r}: unknown role and no namespace (roles of the installed plugins: "
                    f"{', '.join(known) or 'none'})"
                )
            namespace, kind = declared.namespace, declared.kind
        settings = table.pop("settings", None) or table
        devices[role] = DeviceConfig(role=role, driver=driver, namespace=namespace, settings=dict(settings), kind=kind)

    outbox = raw.get("outbox", {})
    heartbeat = raw.get("heartbeat", {})
    watcher = raw.get("watcher", {})
    offline = raw.get("offline", {})
    ui = raw.get("ui", {})
    return StationConfig(
        server_url=_normalise_server_url(server_url),
        station_token=token,
        station_code=code,
        work_dir=work_dir,
        watch_folder=watch,
        devices=devices,
        device_overrides=overrides,
        request_timeout=float(server.get("timeout", 10.0)),
        backoff_initial=float(outbox.get("backoff_initial", 2.0)),
        backoff_max=float(outbox.get("backoff_max", 60.0)),
        batch_size=max(1, min(500, int(outbox.get("batch_size", 200)))),
        delivered_retention_days=int(outbox.get("delivered_retention_days", 30)),
        heartbeat_interval=float(heartbeat.get("interval", 30.0)),
        settle_seconds=float(watcher.get("settle_seconds", 1.0)),
        malformed_after_seconds=float(watcher.get("malformed_after_seconds", 10.0)),
        rescan_seconds=float(watcher.get("rescan_seconds", 5.0)),
        completion_retention_days=int(
            watcher.get("completion_retention_days", raw.get("completion_retention_days", 90))
        ),
        offline_login_days=float(offline.get("login_days", 7.0)),
        cache_sync_seconds=float(offline.get("cache_sync_seconds", 300.0)),
        cache_page_units=max(1, min(200_000, int(offline.get("cache_page_units", 10_000)))),
        inline_completion_bytes=int(watcher.get("inline_max_bytes", 1024 * 1024)),
        ui_defect_codes=tuple(str(code) for code in ui.get("defect_codes", ())),
        source=source,
    )


def _path(value: str | None, base: Path) -> Path | None:
    if not value:
        return None
    p = Path(os.path.expandvars(os.path.expanduser(value)))
    return p if p.is_absolute() else (base / p).resolve()
