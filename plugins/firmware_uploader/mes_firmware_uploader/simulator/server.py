"""Run ASGI apps (the uploader simulator, or a kernel) as real HTTP servers on 127.0.0.1, in a thread."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import uvicorn

from .app import UploaderState, create_app


class ThreadedServer:
    """An ASGI app under uvicorn on a real socket, in its own thread and event loop.

    Port 0 picks a free port (see :attr:`url` after :meth:`start`). Usable from sync code, async
    tests and the benchmark alike: a handler that hangs never blocks the caller's loop.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *, lifespan: str = "off"):
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", lifespan=lifespan, timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ThreadedServer:
        self._thread = threading.Thread(target=self._run, name="threaded-uvicorn", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.host} did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._server.serve())
        finally:
            self._loop.close()

    def _before_stop(self) -> None:
        return None

    def stop(self) -> None:
        if self._thread is None:
            return
        self._before_stop()
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class SimulatorServer(ThreadedServer):
    """The uploader simulator service on a real socket (see :class:`ThreadedServer`)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, flash_seconds: float = 0.2):
        self.state = UploaderState(flash_seconds=flash_seconds)
        super().__init__(create_app(self.state), host, port)

    def start(self, timeout: float = 10.0) -> SimulatorServer:
        super().start(timeout)
        return self

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def set_fault(self, fault: str | None, *, count: int | None = None, seconds: float | None = None) -> dict[str, Any]:
        """Switch a fault through the admin endpoint, exactly as an operator would."""
        body = {"fault": fault, "count": count, "seconds": seconds}
        response = httpx.put(f"{self.url}/admin/faults", json=body, timeout=5.0)
        response.raise_for_status()
        return response.json()

    def _before_stop(self) -> None:
        # let requests held by a "timeout" fault answer, so the server shuts down promptly
        if self._loop is not None and self.state.release is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.state.release.set)
