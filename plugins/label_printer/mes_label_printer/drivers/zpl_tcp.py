"""ZPL over raw TCP (port 9100), the way networked Zebra printers take labels."""

from __future__ import annotations

import asyncio
import contextlib

from ..status import HOST_STATUS_REQUEST, PrinterStatus, parse_host_status, reply_complete
from .base import LabelPrinterDriver, PrinterConnectionError, PrinterTimeout, ensure_ready


class ZplTcpDriver(LabelPrinterDriver):
    """A printer at ``host:port``; one short connection per job or status read.

    A job is: ask ``~HS`` (refuse if the printer is not ready — nothing sent yet), send the
    label, ask ``~HS`` again on the same connection. The second reply proves the printer read
    every byte before it, since a printer acknowledges nothing else.
    """

    name = "zpl_tcp"
    version = "1.0"

    def __init__(self, host: str, port: int = 9100, timeout: float = 5.0, confirm: bool = True) -> None:
        self.host = host
        self.port = int(port)
        self.timeout = float(timeout)
        self.confirm = bool(confirm)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.wait_for(asyncio.open_connection(self.host, self.port), self.timeout)
        except TimeoutError as exc:
            raise PrinterTimeout(f"no connection to {self.host}:{self.port} within {self.timeout:g} s") from exc
        except OSError as exc:
            raise PrinterConnectionError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc

    async def _ask_status(self, reader, writer, *, label_sent: bool) -> PrinterStatus:
        try:
            writer.write(HOST_STATUS_REQUEST)
            await writer.drain()
            data = b""
            async with asyncio.timeout(self.timeout):
                while not reply_complete(data):
                    chunk = await reader.read(4096)
                    if not chunk:
                        raise PrinterConnectionError(
                            "printer closed the connection before answering ~HS", label_sent=label_sent
                        )
                    data += chunk
        except TimeoutError as exc:
            raise PrinterTimeout(
                f"printer {self.host}:{self.port} did not answer ~HS within {self.timeout:g} s",
                label_sent=label_sent,
            ) from exc
        except (ConnectionError, OSError) as exc:
            raise PrinterConnectionError(
                f"connection to {self.host}:{self.port} broke: {exc or type(exc).__name__}",
                label_sent=label_sent,
            ) from exc
        return parse_host_status(data)

    @staticmethod
    async def _close(writer: asyncio.StreamWriter) -> None:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def send(self, zpl: bytes) -> None:
        reader, writer = await self._connect()
        try:
            if self.confirm:
                ensure_ready(await self._ask_status(reader, writer, label_sent=False))
            try:
                writer.write(zpl)
                await asyncio.wait_for(writer.drain(), self.timeout)
            except TimeoutError as exc:
                raise PrinterTimeout("printer stopped taking data", label_sent=True) from exc
            except (ConnectionError, OSError) as exc:
                raise PrinterConnectionError(f"connection broke while sending: {exc}", label_sent=True) from exc
            if self.confirm:
                await self._ask_status(reader, writer, label_sent=True)
        finally:
            await self._close(writer)

    async def status(self) -> PrinterStatus:
        reader, writer = await self._connect()
        try:
            return await self._ask_status(reader, writer, label_sent=False)
        finally:
            await self._close(writer)

    async def close(self) -> None:
        return None
