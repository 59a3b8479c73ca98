"""A TCP relay for fault tests: put it between a client and a server (PostgreSQL, Redis), then cut
every connection and stop listening — the server restarting or the network gone — and, if needed,
listen again on the same port."""

from __future__ import annotations

import asyncio
import contextlib


class TcpRelay:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        """Listen on 127.0.0.1 (a free port the first time, the same one after a cut)."""
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def _relay(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers += [writer, up_writer]

        async def pipe(src, dst):
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        """Drop every relayed connection and stop listening."""
        self.server.close()
        for writer in self.writers:
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self.writers.clear()
        await self.server.wait_closed()
