"""Stations provisioned from the server: ``GET /api/v1/stations/me/config``, cached on disk.

The server's line configuration says which devices a station has, with which driver and settings,
and which driver distributions and versions they need. The agent fetches it at start and whenever a
heartbeat answer carries a newer ``config_version``; the last answer is kept in the work folder so a
station restarted while the server is away still runs its devices.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mes_kernel.drivers import list_drivers
from mes_station.config import DeviceConfig
from mes_station.extensions import Extensions

CACHE_FORMAT = 1


class CorruptCacheError(ValueError):
    """The cached station configuration cannot be read; the agent sets it aside and fetches a fresh one."""


def read_cache(path: Path) -> dict[str, Any] | None:
    """The cached configuration, None when there is none; CorruptCacheError names what is wrong."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptCacheError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != CACHE_FORMAT or not isinstance(doc.get("config"), dict):
        raise CorruptCacheError(f"{path}: not a station configuration cache (format {CACHE_FORMAT})")
    config = doc["config"]
    if not isinstance(config.get("devices"), list) or not isinstance(config.get("config_version"), int):
        raise CorruptCacheError(f"{path}: the cached configuration has no devices list or config_version")
    for index, item in enumerate(config["devices"]):
        if problem := _device_problem(item):
            raise CorruptCacheError(f"{path}: device {index} of the cached configuration {problem}")
    drivers = config.get("drivers", [])
    if not isinstance(drivers, list) or not all(
        isinstance(d, dict) and all(isinstance(d.get(k), str) for k in ("kind", "namespace", "driver")) for d in drivers
    ):
        raise CorruptCacheError(f"{path}: the cached configuration's drivers are not a list of kind/namespace/driver")
    return config


def _device_problem(item: Any) -> str | None:
    """What makes one cached device entry unusable, or None: the agent would otherwise fail on it at start."""
    if not isinstance(item, dict):
        return "is not an object"
    for key in ("code", "kind", "driver"):
        if not isinstance(item.get(key), str) or not item[key]:
            return f"has no {key}"
    if not isinstance(item.get("config") or {}, dict):
        return "has settings that are not an object"
    if item.get("namespace") is not None and not isinstance(item["namespace"], str):
        return "has a namespace that is not text"
    return None


def write_cache(path: Path, config: dict[str, Any]) -> None:
    """Keep ``config`` atomically (a power cut leaves the old file or the new one, never half of one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"format": CACHE_FORMAT, "config": config}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o600)  # it may hold device secrets
    os.replace(tmp, path)


def set_aside(path: Path) -> Path:
    """Move a corrupt cache to ``<name>.corrupt`` for a person to look at; returns the new path."""
    target = path.with_suffix(".corrupt")
    os.replace(path, target)
    return target


def device_configs(
    config: dict[str, Any], *, extensions: Extensions, overrides: dict[str, dict[str, Any]] | None = None
) -> dict[str, DeviceConfig]:
    """Device code → :class:`DeviceConfig` for the enabled devices in ``config``: the station's own and
    its line's shared ones (assigned to no station, ``shared: true``), which device authority lets
    every station of the line use.

    The role word and the settings to leave out come from the kind's station extension; a kind no
    installed extension declares still gets its driver loaded from the server's namespace (and is
    reported as a driver problem if that fails).
    """
    overrides = overrides or {}
    out: dict[str, DeviceConfig] = {}
    for item in config.get("devices", []):
        if not item.get("enabled", True):
            continue
        declared = extensions.kinds().get(item["kind"])
        namespace = item.get("namespace") or (declared.namespace if declared else "")
        skip = set(declared.server_settings) if declared else set()
        settings = {k: v for k, v in (item.get("config") or {}).items() if k not in skip}
        settings.update(overrides.get(item["code"], {}))
        out[item["code"]] = DeviceConfig(
            role=declared.role if declared else item["kind"],
            driver=item["driver"],
            namespace=namespace,
            settings=settings,
            code=item["code"],
            kind=item["kind"],
            shared=bool(item.get("shared")),
        )
    return out


def driver_problems(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The drivers the configuration needs that are not installed here, or installed in another version
    than the server's: ``[{device, kind, driver, distribution, problem, wanted, installed}]``."""
    problems = []
    for need in config.get("drivers", []):
        devices = [
            d["code"]
            for d in config.get("devices", [])
            if d.get("enabled", True)
            and d["driver"] == need["driver"]
            and d["kind"] == need["kind"]
        ]
        installed = next((d for d in list_drivers(need["namespace"]) if d.name == need["driver"]), None)
        base = {
            "device": ", ".join(devices),
            "kind": need["kind"],
            "driver": need["driver"],
            "distribution": need.get("distribution"),
            "wanted": need.get("version"),
        }
        if installed is None:
            problems.append({**base, "problem": "missing", "installed": None})
        elif need.get("version") and installed.version and installed.version != need["version"]:
            problems.append({**base, "problem": "wrong_version", "installed": installed.version})
    return problems


def known_devices(config: Any, extensions: Extensions) -> dict[str, DeviceConfig]:
    """The devices a station would run now: ``station.toml``'s plus those of the cached server
    configuration (with local overrides). Raises CorruptCacheError for an unreadable cache."""
    devices = dict(config.devices)
    cached = read_cache(config.provisioned_cache)
    if cached:
        devices.update(device_configs(cached, extensions=extensions, overrides=config.device_overrides))
    return devices
