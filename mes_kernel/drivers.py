"""One driver loader for every device kind: stevedore namespaces, short names from configuration."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from typing import Any


class DriverLoadError(Exception):
    """A configured driver could not be loaded; names the driver, namespace and package."""

    def __init__(self, *, namespace: str, name: str, package: str | None, reason: str):
        self.namespace = namespace
        self.name = name
        self.package = package
        self.reason = reason
        where = f" (package {package})" if package else ""
        super().__init__(f"driver {name!r} in namespace {namespace!r}{where} failed to load: {reason}")


@dataclass(frozen=True)
class DriverInfo:
    """A driver registered in a namespace, as seen from its entry point."""

    name: str
    namespace: str
    target: str
    package: str | None
    version: str | None


def _entry_points(namespace: str) -> list[metadata.EntryPoint]:
    return list(metadata.entry_points(group=namespace))


def _package_of(ep: metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def list_drivers(namespace: str) -> list[DriverInfo]:
    """Every driver registered in ``namespace``, whether or not it would load."""
    out = []
    for ep in _entry_points(namespace):
        package, version = _package_of(ep)
        out.append(DriverInfo(ep.name, namespace, ep.value, package, version))
    return sorted(out, key=lambda d: d.name)


def load_driver(namespace: str, name: str, **settings: Any) -> Any:
    """Load driver ``name`` from ``namespace`` and instantiate it with ``settings``.

    Raises :class:`DriverLoadError` when the name is unknown, the import fails or the
    constructor rejects the settings.
    """
    eps = [ep for ep in _entry_points(namespace) if ep.name == name]
    package = _package_of(eps[0])[0] if eps else None
    if not eps:
        known = ", ".join(d.name for d in list_drivers(namespace)) or "none"
        raise DriverLoadError(
            namespace=namespace, name=name, package=None, reason=f"no such driver (known: {known})"
        )
    # Loaded from the entry point importlib.metadata just found, as stevedore's DriverManager would
    # (import, then call with the settings), but not through stevedore's lookup: it keeps the entry
    # points it read for the life of the process, so a driver pip-installed on a running station
    # (or server) would stay "not found" until a restart.
    try:
        factory = eps[0].load()
    except Exception as exc:  # the boundary: a driver that fails to import is reported, not fatal
        raise DriverLoadError(
            namespace=namespace, name=name, package=package, reason=f"{type(exc).__name__}: {exc}"
        ) from exc
    try:
        return factory(**settings)
    except Exception as exc:  # the constructor rejected the settings
        raise DriverLoadError(
            namespace=namespace, name=name, package=package, reason=f"{type(exc).__name__}: {exc}"
        ) from exc


def driver_version(driver: Any) -> str:
    """The version a driver reports for traceability: its ``version`` or its package's."""
    version = getattr(driver, "version", None)
    if version:
        return str(version)
    module = type(driver).__module__.split(".")[0]
    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return "unknown"
