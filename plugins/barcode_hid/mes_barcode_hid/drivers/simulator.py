"""Simulated scanner for demos and tests: emits configured codes on demand or at an interval."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Iterator
from typing import Any

from ..parsing import split_symbology
from .base import Scan, ScannerDriver, utcnow


class SimulatorScanner(ScannerDriver):
    """Plays back a list of codes.

    :param codes: the codes to emit, in order (an AIM prefix such as ``"]C1"`` is split off as a
        real scanner's would be).
    :param interval: seconds between automatic scans; None (default) emits only on :meth:`trigger`.
    :param repeat: start again from the first code after the last (default); otherwise stop.
    :param connected: start disconnected with False, to demo a scanner that is unplugged.
    """

    name = "simulator"

    def __init__(
        self,
        *,
        codes: list[str] | tuple[str, ...] = ("LOT-DEMO-001",),
        interval: float | None = None,
        repeat: bool = True,
        connected: bool = True,
        source: str = "simulator",
        **_ignored: Any,
    ) -> None:
        super().__init__(source=source)
        if isinstance(codes, str):
            codes = [code for code in codes.split(",") if code]
        self.codes = list(codes)
        self.interval = float(interval) if interval else None
        self.repeat = repeat
        self._online = connected
        self._open = False
        self._next: Iterator[str] = self._sequence()
        self._ticker: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self._open and self._online

    def set_connected(self, connected: bool) -> None:
        """Pretend the scanner was unplugged (False) or plugged back in (True)."""
        self._online = connected

    async def open(self) -> None:
        if self._open:
            return  # already open
        self._open = True
        self._opened()
        if self.interval:
            self._ticker = asyncio.create_task(self._tick(), name=f"scanner {self.source}")

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        self._open = False
        self._closing()

    def trigger(self, code: str | None = None) -> Scan | None:
        """Emit ``code``, or the next configured one; None when the codes ran out or the scanner is
        closed or disconnected."""
        if not self.connected:
            return None
        if code is None:
            code = next(self._next, None)
            if code is None:
                return None
        symbology, data = split_symbology(code)
        scan = Scan(code=data, symbology=symbology, received_at=utcnow(), source=self.source)
        self._publish(scan)
        return scan

    def _sequence(self) -> Iterator[str]:
        if not self.codes:
            return iter(())
        return itertools.cycle(self.codes) if self.repeat else iter(self.codes)

    async def _tick(self) -> None:
        assert self.interval is not None
        while True:
            await asyncio.sleep(self.interval)
            if self.connected and self.trigger() is None and not self.repeat:
                return
