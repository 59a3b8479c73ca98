"""A Zebra-like printer on a TCP port (raw port 9100 protocol): asyncio server, or in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading

from .core import PrinterCore, ResetConnection


class TcpPrinter:
    """Serves one :class:`PrinterCore` on ``host:port`` (port 0 picks a free one).

    The printer sends nothing for a label (no acknowledgement), only ``~HS`` replies.
    """

    def __init__(self, core: PrinterCore | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.core = core or PrinterCore()
        self.host = host
        self.port = port
        self.connections = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> TcpPrinter:
        """Start listening; ``self.port`` is the bound port afterwards."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Stop listening and drop every open connection."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> TcpPrinter:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        stream = self.core.new_stream()
        try:
            while data := await reader.read(65536):
                for reply in stream.feed(data):
                    if reply.delay:
                        await asyncio.sleep(reply.delay)
                    writer.write(reply.data)
                    await writer.drain()
        except ResetConnection:
            _abort_with_reset(writer)
            return
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()
            await writer.wait_closed()


def _abort_with_reset(writer: asyncio.StreamWriter) -> None:
    """Close so that the peer sees a TCP reset, as a printer that power-cycles mid-job."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class ThreadedTcpPrinter:
    """A :class:`TcpPrinter` running on its own event loop in a daemon thread (for sync code)."""

    def __init__(self, core: PrinterCore | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.printer = TcpPrinter(core, host, port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="zebra-sim", daemon=True)

    @property
    def core(self) -> PrinterCore:
        return self.printer.core

    @property
    def port(self) -> int:
        return self.printer.port

    def start(self) -> ThreadedTcpPrinter:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.printer.start(), self._loop).result(timeout=5)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.printer.stop(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def __enter__(self) -> ThreadedTcpPrinter:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
