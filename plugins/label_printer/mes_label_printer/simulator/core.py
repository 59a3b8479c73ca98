"""The simulated printer itself: ZPL stream parsing, label store, ``~HS`` replies and faults.

Transport-free, so the TCP server, the pty server, the HTTP print service and the in-process
``simulator`` driver all share one behaviour. It reads ZPL as a Zebra printer does
(:mod:`mes_label_printer.zpl`): commands in any case, ``^PQ`` copies, ``^DF`` formats stored and
not printed, ``^XF`` recalls filled with the recalling format's ``^FN`` data, ``^MT`` print
mode (direct thermal needs no ribbon, so the ``~HS`` ribbon flag does not stop it).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, fields, replace

from ..status import HOST_STATUS_REQUEST, PrinterStatus, format_host_status
from ..zpl import split_formats

LABEL_START, LABEL_END = b"^XA", b"^XZ"
MAX_BUFFER = 1024 * 1024  # a real printer's receive buffer is smaller; this bounds a runaway sender
MAX_COPIES = 10_000  # copies of one format the simulator keeps (``^PQ`` allows up to 99,999,999)


@dataclass
class Faults:
    """Faults that can be switched on and off while the printer runs.

    ``no_reply``: labels are accepted but ``~HS`` is never answered (a silent printer).
    ``reset``: the connection is torn down (TCP reset) as soon as label data arrives.
    ``slow``: seconds to wait before answering ``~HS``.
    """

    paper_out: bool = False
    head_open: bool = False
    ribbon_out: bool = False
    paused: bool = False
    buffer_full: bool = False
    no_reply: bool = False
    reset: bool = False
    slow: float = 0.0

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


@dataclass
class Reply:
    """Bytes the printer sends back after ``delay`` seconds."""

    data: bytes
    delay: float = 0.0


class ResetConnection(Exception):
    """The printer tears the connection down (the ``reset`` fault)."""


@dataclass
class PrinterCore:
    """One Zebra-like printer: what it received, what it printed, its faults."""

    faults: Faults = field(default_factory=Faults)
    printed: list[bytes] = field(default_factory=list)
    held: list[bytes] = field(default_factory=list)
    stored_formats: dict[str, bytes] = field(default_factory=dict)
    thermal_transfer: bool = True
    status_requests: int = 0
    started_at: float = field(default_factory=time.time)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def label_count(self) -> int:
        """Labels printed so far (a ``^PQ3`` format counts three)."""
        return len(self.printed)

    def set_fault(self, name: str, value: bool | float = True) -> None:
        """Switch a fault on or off (``slow`` takes seconds); releases held labels when clear."""
        if name not in Faults.names():
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(Faults.names())}")
        kind = type(getattr(self.faults, name))
        setattr(self.faults, name, kind(value))
        self._release_held()

    def clear_faults(self) -> None:
        """Back to a healthy printer; held labels print."""
        self.faults = Faults()
        self._release_held()

    def status(self) -> PrinterStatus:
        """The state the printer would report now."""
        f = self.faults
        return replace(
            PrinterStatus(),
            paper_out=f.paper_out,
            head_open=f.head_open,
            ribbon_out=f.ribbon_out or not self.thermal_transfer,  # no ribbon to see in DT mode
            paused=f.paused,
            buffer_full=f.buffer_full,
            formats_in_buffer=min(len(self.held), 999),
            label_length_dots=406,
            thermal_transfer=self.thermal_transfer,
        )

    def _can_print(self) -> bool:
        f = self.faults
        ribbon_missing = f.ribbon_out and self.thermal_transfer
        return not (f.paper_out or f.head_open or ribbon_missing or f.paused)

    def _release_held(self) -> None:
        with self._lock:
            if self._can_print() and self.held:
                self.printed.extend(self.held)
                self.held.clear()

    def accept_label(self, label: bytes) -> None:
        """A complete ``^XA ... ^XZ`` format arrived: store it (``^DF``), or print it ``^PQ``
        times — filled from a stored format for ``^XF`` — or hold it while not ready.

        Each printed label is kept as the ZPL of what the printer drew (an ``^XF`` label as the
        stored format with the recalled field data in it)."""
        text = label.decode("utf-8", errors="replace")
        formats, _ = split_formats(text)
        if not formats:
            return
        fmt = formats[0]
        with self._lock:
            mode = fmt.first("MT")
            if mode is not None and mode.args[:1].upper() in ("T", "D"):
                self.thermal_transfer = mode.args[:1].upper() == "T"
            if fmt.stores_as:
                self.stored_formats[fmt.stores_as] = label
                return
            if fmt.recalls:
                stored = self.stored_formats.get(fmt.recalls)
                if stored is None:
                    return  # a printer prints nothing for a format it does not hold
                stored_fmt = split_formats(stored.decode("utf-8", errors="replace"))[0][0]
                label = stored_fmt.merged_with(fmt).zpl().encode("utf-8")
            # a real printer prints its copies one by one; the simulator keeps at most MAX_COPIES of
            # one format (``^PQ99999999`` as a list ran out of memory)
            copies = [label] * min(fmt.quantity, MAX_COPIES)
            (self.printed if self._can_print() else self.held).extend(copies)

    def answer_status(self) -> Reply | None:
        """The reply to ``~HS``, or None when the printer stays silent."""
        self.status_requests += 1
        if self.faults.no_reply:
            return None
        return Reply(format_host_status(self.status()), delay=self.faults.slow)

    def new_stream(self) -> ZplStream:
        """A parser for one connection's byte stream."""
        return ZplStream(self)


class ZplStream:
    """Splits one connection's bytes into labels and ``~HS`` requests, across any segmenting."""

    def __init__(self, core: PrinterCore) -> None:
        self.core = core
        self.buffer = b""

    def feed(self, data: bytes) -> list[Reply]:
        """Take received bytes; return the replies to send. Raises :class:`ResetConnection`."""
        self.buffer += data
        if len(self.buffer) > MAX_BUFFER:
            self.buffer = self.buffer[-MAX_BUFFER:]
        replies: list[Reply] = []
        while True:
            upper = self.buffer.upper()  # commands are case-insensitive; ASCII-only, same length
            status_at = upper.find(HOST_STATUS_REQUEST)
            start = upper.find(LABEL_START)
            end = upper.find(LABEL_END, start + len(LABEL_START)) if start >= 0 else -1
            if start >= 0 and self.core.faults.reset:
                self.buffer = b""
                raise ResetConnection("printer reset the connection")
            # Tilde commands act as soon as they arrive, even inside an unfinished format.
            if status_at >= 0 and (end < 0 or status_at < end):
                self.buffer = self.buffer[:status_at] + self.buffer[status_at + len(HOST_STATUS_REQUEST) :]
                reply = self.core.answer_status()
                if reply is not None:
                    replies.append(reply)
                continue
            if end >= 0:
                label = self.buffer[start : end + len(LABEL_END)]
                self.buffer = self.buffer[end + len(LABEL_END) :]
                if label.strip().upper() != LABEL_START + LABEL_END:  # "^XA^XZ" around a ~HS prints nothing
                    self.core.accept_label(label)
                continue
            # keep an unfinished format, or the last bytes that may begin "^XA" or "~HS"
            self.buffer = self.buffer[start:] if start >= 0 else self.buffer[-2:]
            break
        return replies
