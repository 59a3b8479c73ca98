"""Scans as the agent announces them, and reading them from whatever scanner driver is loaded."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scan:
    """A code read by a scanner (or typed into the station window), as sent to subscribers."""

    code: str
    source: str = "scanner"
    symbology: str | None = None
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    idempotency_key: str | None = None


async def scans_of(driver: Any, stop: asyncio.Event | None = None) -> AsyncIterator[Any]:
    """Scans from a scanner driver: its ``scans()`` iterator (the plugin's contract), else a read loop."""
    for name in ("scans", "listen", "iter_scans"):
        method = getattr(driver, name, None)
        if callable(method):
            async for scan in method():
                yield scan
            return
    read = getattr(driver, "read_scan", None) or getattr(driver, "read", None)
    if not callable(read):
        log.warning("scanner driver %s offers no way to read scans", type(driver).__name__)
        return
    while stop is None or not stop.is_set():
        scan = await read() if inspect.iscoroutinefunction(read) else await asyncio.to_thread(read)
        if scan:
            yield scan
