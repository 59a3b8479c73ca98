"""``mes-mqtt-sim`` as integrators run it: it prints the configuration of the device that reads it and
publishes the machine's JSON under its prefix."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid

import aiomqtt


async def test_the_simulator_command_prints_its_device_config_and_publishes(broker, prefix):
    async with aiomqtt.Client(broker[0], broker[1], identifier=f"sub-{uuid.uuid4().hex[:8]}") as client:
        await client.subscribe(f"{prefix}/#", qos=1)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mes_mqtt.simulator",
                "--host",
                broker[0],
                "--port",
                str(broker[1]),
                "--prefix",
                prefix,
                "--cycle",
                "0.05",
                "--jam-every",
                "0",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            device = json.loads(await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30))
            assert device["kind"] == "mqtt" and device["config"]["topics"]["good"]["topic"] == f"{prefix}/counters"

            async def first_counters():
                async for message in client.messages:
                    if message.topic.value == f"{prefix}/counters":
                        return json.loads(message.payload)

            counters = await asyncio.wait_for(first_counters(), 30)
            assert counters["good"] + counters["bad"] == 1 and "ts" in counters
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
