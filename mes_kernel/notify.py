"""Notifications on breaker transitions: an alert row, a Slack-compatible webhook, an e-mail.

An alert's ``message`` is English, for the webhook and the mail; its ``detail`` carries a stable ``code``
(``BREAKER_OPEN``, ``STATION_SILENT``, ``STATION_BACKLOG``) and the values the message names, so the
dashboard words it in the reader's language (``alerts.code.<code>`` in ``web/src/i18n``).

Sending happens in the background so a slow webhook never slows the device action that tripped
the breaker; failures to notify are logged and do not propagate.
"""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage

import httpx
import structlog
from sqlalchemy import select, update

from .db.base import utcnow
from .db.models import Alert

log = structlog.get_logger(__name__)


class Notifier:
    def __init__(self, kernel) -> None:
        self.kernel = kernel
        self.settings = kernel.settings
        self._tasks: set[asyncio.Task] = set()
        self.sent: list[dict] = []  # what went out, for diagnostics

    async def breaker_transition(self, key: str, old: str, new: str, state) -> None:
        if new == "open":
            text = f"Circuit breaker {key} OPENED after {state.failures} failures: {state.last_failure_reason}"
            detail = {
                "code": "BREAKER_OPEN",
                "breaker": key,
                "failures": state.failures,
                "reason": state.last_failure_reason,
            }
            await self._raise_alert(f"breaker:{key}", "critical", "breaker", text, detail)
        elif new == "closed" and old in ("half_open", "open"):
            text = f"Circuit breaker {key} recovered (closed)"
            await self._resolve_alert(f"breaker:{key}")
        else:
            return
        self._spawn(self._send(text))

    async def _raise_alert(self, key: str, severity: str, source: str, message: str, detail: dict) -> bool:
        """Open an alert unless one with this key is open already; True when it opened."""
        async with self.kernel.sessionmaker() as session:
            open_alert = (
                await session.execute(select(Alert.id).where(Alert.key == key, Alert.resolved_at.is_(None)))
            ).first()
            if open_alert is not None:
                return False
            session.add(Alert(key=key, severity=severity, source=source, message=message, detail=detail))
            await session.commit()
            return True

    async def _resolve_alert(self, key: str) -> bool:
        """Close the open alert with this key; True when there was one."""
        async with self.kernel.sessionmaker() as session:
            result = await session.execute(
                update(Alert).where(Alert.key == key, Alert.resolved_at.is_(None)).values(resolved_at=utcnow())
            )
            await session.commit()
            return bool(result.rowcount)

    async def alert(self, key: str, *, severity: str, source: str, message: str, detail: dict | None = None) -> None:
        """Raise an alert (once while it stays open) and notify."""
        if await self._raise_alert(key, severity, source, message, detail or {}):
            self._spawn(self._send(message))

    async def resolve(self, key: str, message: str) -> None:
        """Resolve an open alert and notify that it is over."""
        if await self._resolve_alert(key):
            self._spawn(self._send(message))

    def announce(self, text: str) -> None:
        """Send ``text`` (webhook, mail) in the background, for an alert written elsewhere (a
        station's silence: ``mes_kernel.services.silence``)."""
        self._spawn(self._send(text))

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, text: str) -> None:
        if self.settings.alert_webhook_url:
            try:
                async with httpx.AsyncClient(timeout=5.0) as client:
                    response = await client.post(self.settings.alert_webhook_url, json={"text": text})
                    response.raise_for_status()
                self.sent.append({"channel": "webhook", "text": text})
            except Exception as exc:
                log.warning("notify_webhook_failed", error=str(exc))
        if self.settings.smtp_host and self.settings.smtp_to:
            try:
                await asyncio.to_thread(self._mail, text)
                self.sent.append({"channel": "email", "text": text})
            except Exception as exc:
                log.warning("notify_email_failed", error=str(exc))

    def _mail(self, text: str) -> None:
        msg = EmailMessage()
        msg["Subject"] = f"[NeuroHub MES] {text[:120]}"
        msg["From"] = self.settings.smtp_from
        msg["To"] = ", ".join(self.settings.smtp_to)
        msg.set_content(text)
        with smtplib.SMTP(self.settings.smtp_host, self.settings.smtp_port, timeout=10) as smtp:
            smtp.send_message(msg)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
