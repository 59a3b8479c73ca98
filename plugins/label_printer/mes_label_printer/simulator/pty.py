"""The same printer behind a pseudo-terminal, for the serial driver (``--pty`` prints the slave path)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty

from .core import PrinterCore, ResetConnection


class PtyPrinter:
    """Serves a :class:`PrinterCore` on the master side of a pty; clients open :attr:`path`.

    The slave side stays open here too, so a client closing and reopening the port never
    leaves the master reading EIO.
    """

    def __init__(self, core: PrinterCore | None = None) -> None:
        self.core = core or PrinterCore()
        self.master_fd = -1
        self.slave_fd = -1
        self.path = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stream = self.core.new_stream()
        self._pending: list[asyncio.Task] = []

    async def start(self) -> PtyPrinter:
        """Open the pty pair and start answering on it."""
        self.master_fd, self.slave_fd = os.openpty()
        tty.setraw(self.slave_fd)  # no echo, no CR/LF translation: a serial line carries bytes
        self.path = os.ttyname(self.slave_fd)
        os.set_blocking(self.master_fd, False)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.master_fd, self._on_readable)
        return self

    async def stop(self) -> None:
        """Close both ends of the pty."""
        if self._loop is not None and self.master_fd >= 0:
            self._loop.remove_reader(self.master_fd)
        for task in self._pending:
            task.cancel()
        for fd in (self.master_fd, self.slave_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.master_fd = self.slave_fd = -1

    async def __aenter__(self) -> PtyPrinter:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def _on_readable(self) -> None:
        try:
            data = os.read(self.master_fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        try:
            replies = self._stream.feed(data)
        except ResetConnection:
            return  # a serial line cannot be reset: the data is simply lost
        for reply in replies:
            if reply.delay:
                self._pending = [t for t in self._pending if not t.done()]
                self._pending.append(asyncio.ensure_future(self._write_later(reply.data, reply.delay)))
            else:
                self._write(reply.data)

    async def _write_later(self, data: bytes, delay: float) -> None:
        await asyncio.sleep(delay)
        self._write(data)

    def _write(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            os.write(self.master_fd, data)
