"""The app under test on a real TCP socket (a free port), for clients that are not ASGI: Chromium, schemathesis."""

from __future__ import annotations

import asyncio
import socket

import pytest
import uvicorn


@pytest.fixture(name="served")
async def served_fixture(app, client):
    """The app (its lifespan already started by ``client``) served by uvicorn on 127.0.0.1:<free port>."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning", server_header=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(600):
        if server.started:
            break
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)
        sock.close()
