"""MQTT drivers: the base class of an MQTT client link, and the aiomqtt one (``mqtt``)."""

from __future__ import annotations

import abc
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiomqtt
from paho.mqtt.client import MQTT_ERR_SUCCESS


class MqttLinkError(ConnectionError):
    """The broker cannot be reached, refused the session, or the connection was lost."""


@dataclass(frozen=True)
class Received:
    """One message: ``topic``, raw ``payload``, its ``qos`` and the ``mid`` to acknowledge it by."""

    topic: str
    payload: bytes
    qos: int
    mid: int
    retain: bool = False


class MqttDriver(abc.ABC):
    """One session with a broker. Built by the kernel's ``load_driver`` with ``host``, ``port``,
    ``client_id``, ``username``, ``password``, ``tls``, ``keepalive``, ``timeout`` (seconds) and
    ``persistent``. A persistent session (the default; MQTT 3.1.1 clean session off) has the broker
    keep the subscriptions and queue QoS 1 messages while the client is away; the write route's
    own short link is not persistent. Messages are **acknowledged by the caller**
    (:meth:`ack`) once it has stored them, so a message is never acknowledged and then lost."""

    version: str = ""

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the session. Raises :class:`MqttLinkError`."""

    @abc.abstractmethod
    async def subscribe(self, filters: list[str], qos: int) -> dict[str, bool]:
        """Subscribe every topic filter; returns filter -> granted (False: the broker refused it)."""

    @abc.abstractmethod
    def messages(self) -> AsyncIterator[Received]:
        """The messages as they arrive; ends by raising :class:`MqttLinkError` when the link is lost."""

    @abc.abstractmethod
    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Publish ``payload`` to ``topic``; with QoS 1 return once the broker acknowledged it (PUBACK).
        Raises :class:`MqttLinkError` when not connected, the link fails or no PUBACK comes within the
        timeout."""

    @abc.abstractmethod
    def ack(self, message: Received) -> None:
        """Acknowledge ``message`` (PUBACK for QoS 1; nothing for QoS 0). Call in arrival order."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the session's connection (the broker keeps the session); never raises."""


class AiomqttDriver(MqttDriver):
    """The aiomqtt client (MQTT 3.1.1, persistent session, manual acknowledgements)."""

    version = f"aiomqtt {getattr(aiomqtt, '__version__', '')}".strip()

    def __init__(
        self,
        *,
        host: str,
        port: int = 1883,
        client_id: str,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        keepalive: int = 30,
        timeout: float = 10.0,
        persistent: bool = True,
        **_: Any,
    ) -> None:
        self.host, self.port, self.client_id = host, port, client_id
        self.username, self.password = username, password
        self.tls, self.keepalive, self.timeout = tls, keepalive, timeout
        self.persistent = persistent
        self.client: aiomqtt.Client | None = None
        self._stack: contextlib.AsyncExitStack | None = None

    async def connect(self) -> None:
        await self.close()
        client = aiomqtt.Client(
            self.host,
            self.port,
            identifier=self.client_id,
            username=self.username,
            password=self.password,
            protocol=aiomqtt.ProtocolVersion.V311,
            clean_session=not self.persistent,
            keepalive=self.keepalive,
            timeout=self.timeout,
            tls_context=ssl.create_default_context() if self.tls else None,
        )
        # aiomqtt has no switch for application acknowledgements yet (empicano/aiomqtt#345); its paho
        # client does (paho-mqtt 2.0, manual_ack). Set before connecting: a persistent session's queued
        # messages arrive right after CONNACK.
        client._client.manual_ack_set(True)
        stack = contextlib.AsyncExitStack()
        try:
            await stack.enter_async_context(client)
        except aiomqtt.MqttError as exc:
            raise MqttLinkError(f"{self.host}:{self.port}: {exc}") from exc
        except OSError as exc:
            raise MqttLinkError(f"{self.host}:{self.port}: {exc}") from exc
        self.client, self._stack = client, stack

    async def subscribe(self, filters: list[str], qos: int) -> dict[str, bool]:
        granted: dict[str, bool] = {}
        for topic in filters:
            try:
                result = await self.client.subscribe(topic, qos=qos)
            except aiomqtt.MqttError as exc:
                raise MqttLinkError(f"subscribe {topic}: {exc}") from exc
            code = result[0] if result else 128
            granted[topic] = int(getattr(code, "value", code)) < 128
        return granted

    async def messages(self) -> AsyncIterator[Received]:
        try:
            async for message in self.client.messages:
                yield Received(
                    topic=message.topic.value,
                    payload=bytes(message.payload) if message.payload is not None else b"",
                    qos=message.qos,
                    mid=message.mid,
                    retain=message.retain,
                )
        except aiomqtt.MqttError as exc:
            raise MqttLinkError(f"connection lost: {exc}") from exc
        raise MqttLinkError("connection closed")

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        if self.client is None:
            raise MqttLinkError("not connected")
        try:
            # aiomqtt waits for paho's on_publish: the PUBACK for QoS 1
            await self.client.publish(topic, payload, qos=qos, retain=retain, timeout=self.timeout)
        except aiomqtt.MqttError as exc:
            raise MqttLinkError(f"publish {topic}: {exc}") from exc

    def ack(self, message: Received) -> None:
        if message.qos > 0 and self.client is not None:
            rc = self.client._client.ack(message.mid, message.qos)
            if rc != MQTT_ERR_SUCCESS:
                raise MqttLinkError(f"acknowledging message {message.mid} failed ({rc})")

    async def close(self) -> None:
        stack, self._stack, self.client = self._stack, None, None
        if stack is not None:
            with contextlib.suppress(Exception):
                await stack.aclose()
