"""Breaker transitions become alerts and notifications: a Slack-compatible webhook and e-mail,
received here by a real HTTP server and a real SMTP sink on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import select

from mes_kernel.db.models import Alert


class HttpSink:
    """Accepts POSTs and keeps their JSON bodies."""

    def __init__(self):
        self.bodies: list[dict] = []

    async def start(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        )
        self.bodies.append(json.loads(await reader.readexactly(length)))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()


class SmtpSink:
    """Speaks just enough SMTP to receive messages."""

    def __init__(self):
        self.messages: list[str] = []

    async def start(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader, writer):
        writer.write(b"220 sink ESMTP\r\n")
        while line := await reader.readline():
            verb = line.split(b" ")[0].strip().upper()
            if verb in (b"EHLO", b"HELO"):
                writer.write(b"250 sink\r\n")
            elif verb == b"DATA":
                writer.write(b"354 go on\r\n")
                await writer.drain()
                data = []
                while (chunk := await reader.readline()) != b".\r\n":
                    data.append(chunk.decode())
                self.messages.append("".join(data))
                writer.write(b"250 queued\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()


async def _until(predicate, seconds=10.0):
    for _ in range(int(seconds / 0.05)):
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.fixture
async def sinks():
    return await HttpSink().start(), await SmtpSink().start()


@pytest.fixture
def settings(settings, sinks):
    web, mail = sinks
    return settings.model_copy(
        update={
            "alert_webhook_url": f"http://127.0.0.1:{web.port}/hook",
            "smtp_host": "127.0.0.1",
            "smtp_port": mail.port,
            "smtp_to": ["ops@plant.example"],
        }
    )


async def test_breaker_open_and_recovery_are_notified_and_alerted(third_party, sinks, client, admin_headers, kernel):
    web, mail = sinks
    now = [5_000_000.0]
    kernel.breakers.clock = lambda: now[0]
    for _ in range(2):
        await client.get("/api/v1/sample/reading?fail=true", headers=admin_headers)
    assert await _until(lambda: web.bodies and mail.messages)
    assert "sample_meter:M-1 OPENED" in web.bodies[0]["text"] and "meter does not answer" in web.bodies[0]["text"]
    assert "ops@plant.example" in mail.messages[0] and "OPENED" in mail.messages[0]
    async with kernel.sessionmaker() as session:
        alert = (await session.execute(select(Alert).where(Alert.key == "breaker:sample_meter:M-1"))).scalar_one()
    assert alert.severity == "critical" and alert.resolved_at is None
    # the dashboard words it by code in the reader's language (web/src/i18n: alerts.code.BREAKER_OPEN)
    assert alert.detail["code"] == "BREAKER_OPEN" and alert.detail["breaker"] == "sample_meter:M-1"
    assert alert.detail["failures"] == 2 and "meter does not answer" in alert.detail["reason"]

    now[0] += 5.0
    assert (await client.get("/api/v1/sample/reading", headers=admin_headers)).status_code == 200
    assert await _until(lambda: len(web.bodies) == 2 and len(mail.messages) == 2)
    assert "recovered" in web.bodies[1]["text"]
    async with kernel.sessionmaker() as session:
        alert = (await session.execute(select(Alert).where(Alert.key == "breaker:sample_meter:M-1"))).scalar_one()
    assert alert.resolved_at is not None


async def test_a_stations_silence_and_its_end_are_notified(sinks, client, station_headers, kernel):
    from datetime import UTC, datetime, timedelta

    from mes_kernel.services.stations import watch_stations

    web, _ = sinks
    heard = datetime.now(UTC)
    beat = {"agent_version": "1"}
    kernel.clock = lambda: heard
    assert (await client.post("/api/v1/stations/heartbeat", json=beat, headers=station_headers)).status_code == 200
    kernel.clock = lambda: heard + timedelta(minutes=5)
    await watch_stations(kernel, kernel.state["notifier"])
    assert await _until(lambda: len(web.bodies) == 1)
    assert web.bodies[0]["text"] == "Station ST-01 silent for 300 s"
    # the heartbeat that ends it resolves the alert, and says so
    kernel.clock = lambda: heard + timedelta(minutes=6)
    assert (await client.post("/api/v1/stations/heartbeat", json=beat, headers=station_headers)).status_code == 200
    assert await _until(lambda: len(web.bodies) == 2)
    assert web.bodies[1]["text"] == "Station ST-01 reports again after 360 s silent"
