"""Keyboard-wedge scanner: keystrokes arriving in the station window, told apart from typing.

A scanner in keyboard mode types a whole code in a burst — every gap between keys a few
milliseconds — and ends it with a terminator; a person is an order of magnitude slower. The
window feeds every key with its timestamp to :meth:`WedgeScanner.feed`; a burst that ends with the
terminator becomes a :class:`Scan`, and everything else is handed back, unchanged and in order, to
the window's passthrough callback as the text the person typed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..parsing import split_symbology
from .base import Scan, ScannerDriver, utcnow

TERMINATOR_CHARS = {"enter": frozenset("\r\n"), "tab": frozenset("\t")}


@dataclass(frozen=True)
class WedgeOutput:
    """What the decoder made of keystrokes: a ``scan`` (its code) or ``typed`` text to pass on."""

    kind: Literal["scan", "typed"]
    text: str


@dataclass
class WedgeDecoder:
    """Separates scanner bursts from typing by the gaps between keystrokes.

    :param max_gap: the longest gap in seconds between two keys of one scan (and before the
        terminator). 30 ms by default; scanners type at 2–10 ms per key, people at 80+ ms.
    :param min_length: a burst shorter than this is typing even if fast (two keys pressed together).
    :param terminator: ``"enter"`` (``\\r`` or ``\\n``) or ``"tab"``.
    """

    max_gap: float = 0.030
    min_length: int = 3
    terminator: str = "enter"
    _keys: list[str] = field(default_factory=list)
    _last_at: float | None = None

    def __post_init__(self) -> None:
        if self.terminator not in TERMINATOR_CHARS:
            raise ValueError(f"terminator must be one of {sorted(TERMINATOR_CHARS)}")

    @property
    def pending(self) -> str:
        """Keys held back while it is not yet clear whether they are a scan."""
        return "".join(self._keys)

    @property
    def deadline(self) -> float | None:
        """When the held-back keys become typing if no further key arrives (None when none held)."""
        if not self._keys or self._last_at is None:
            return None
        return self._last_at + self.max_gap

    def feed(self, char: str, at: float) -> list[WedgeOutput]:
        """One keystroke ``char`` at time ``at`` (seconds, any monotonic clock) → what is now known."""
        out: list[WedgeOutput] = []
        if self._keys and self._last_at is not None and at - self._last_at > self.max_gap:
            out.extend(self.flush())
        is_terminator = char in TERMINATOR_CHARS[self.terminator]
        if is_terminator:
            if len(self._keys) >= self.min_length:
                out.append(WedgeOutput("scan", "".join(self._keys)))
                self._keys.clear()
                self._last_at = None
            else:
                out.extend(self.flush())
                out.append(WedgeOutput("typed", char))
            return out
        self._keys.append(char)
        self._last_at = at
        return out

    def flush(self) -> list[WedgeOutput]:
        """Give up on the held-back keys: they were typed by a person."""
        if not self._keys:
            return []
        text = "".join(self._keys)
        self._keys.clear()
        self._last_at = None
        return [WedgeOutput("typed", text)]

    def expire(self, now: float) -> list[WedgeOutput]:
        """Flush the held-back keys if their deadline has passed at ``now``."""
        deadline = self.deadline
        if deadline is not None and now > deadline:
            return self.flush()
        return []


class WedgeScanner(ScannerDriver):
    """A scanner that types into the station window (no device of its own).

    The window calls :meth:`feed` for every key (``timestamp`` in seconds from the event loop's
    clock, ``loop.time()``, or omitted for "now") and registers :meth:`on_typed` to receive what the
    person typed; scans come out of :meth:`scans` like any other driver's.

    :param max_gap_ms: longest gap between keys of one scan, milliseconds (30).
    :param min_length: shortest code accepted as a scan (3).
    :param terminator: ``"enter"`` or ``"tab"``.
    :param clock: seconds on a monotonic clock, for keys fed without a timestamp and for deciding
        when held-back keys have waited long enough; the event loop's ``loop.time()`` by default.
        Tests inject a clock they advance by hand, so a loaded machine cannot turn a burst into typing.
    """

    name = "wedge"

    def __init__(
        self,
        *,
        max_gap_ms: float = 30.0,
        min_length: int = 3,
        terminator: str = "enter",
        clock: Callable[[], float] | None = None,
        **_ignored: Any,
    ) -> None:
        super().__init__(source="wedge")
        self.clock: Callable[[], float] = clock or (lambda: asyncio.get_running_loop().time())
        self.decoder = WedgeDecoder(max_gap=max_gap_ms / 1000.0, min_length=min_length, terminator=terminator)
        self._typed: list[Callable[[str], None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._open = False

    @property
    def connected(self) -> bool:
        return self._open

    async def open(self) -> None:
        if self._open:
            return
        self._open = True
        self._opened()

    async def close(self) -> None:
        self._cancel_timer()
        self._deliver(self.decoder.flush())
        self._open = False
        self._closing()

    def on_typed(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(text)`` with keys that turned out to be typed by a person, in order."""
        self._typed.append(callback)

    def feed(self, char: str, timestamp: float | None = None) -> None:
        """One keystroke from the window, ``timestamp`` on :attr:`clock` (now if omitted).

        Held-back keys are released as typing once :attr:`clock` has passed ``max_gap`` after the
        last key; a timer on the running event loop looks when that should be, and asks the clock
        again rather than trusting that the timer ran on time."""
        at = self.clock() if timestamp is None else timestamp
        self._deliver(self.decoder.feed(char, at))
        self._cancel_timer()
        self._arm_timer()

    def _arm_timer(self) -> None:
        deadline = self.decoder.deadline
        if deadline is not None:
            delay = max(0.0, deadline - self.clock()) + 0.001
            self._timer = asyncio.get_running_loop().call_later(delay, self._expire)

    def _expire(self) -> None:
        self._timer = None
        self._deliver(self.decoder.expire(self.clock()))
        self._arm_timer()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _deliver(self, outputs: list[WedgeOutput]) -> None:
        for output in outputs:
            if output.kind == "scan":
                symbology, code = split_symbology(output.text)
                self._publish(Scan(code=code, symbology=symbology, received_at=utcnow(), source=self.source))
            else:
                for callback in list(self._typed):
                    callback(output.text)
