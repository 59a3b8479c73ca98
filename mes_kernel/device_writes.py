"""A write to a device (a recipe number, a command) behind its breaker, audited in the caller's transaction.

Every route that writes to a machine does the same thing around its protocol's call: run it through
the device's circuit breaker, add one audit entry saying what was written and how it ended, commit,
and answer a failure with the plugin's own stable code. :func:`audited_write` is that block, so the
OPC UA, Modbus and MQTT connectors (and a third party's) answer and audit alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from .audit import write_audit
from .devices import ResolvedDevice
from .errors import DeviceFailed, Unprocessable
from .schemas import _finite

T = TypeVar("T")

#: the most characters of a device's error kept in the audit entry and the answer
ERROR_CHARS = 300


async def audited_write(
    *,
    session: AsyncSession,
    kernel: Any,
    actor: str,
    device: ResolvedDevice,
    name: str,
    write: Callable[[], Awaitable[T]],
    breaker: str,
    entity: str,
    after: dict[str, Any],
    failed_code: str,
    what: str,
    done: str = "written",
    invalid: tuple[type[BaseException], ...] = (),
    invalid_code: str | None = None,
) -> T:
    """Run ``write`` through breaker ``breaker`` for ``device``, audit the attempt, commit, and
    return what ``write`` returned.

    - ``name``: the writable item (a node, a register, a command); the audit entry's ``entity_id``
      is ``"<device code>:<name>"``, its ``entity`` is ``entity``, its ``action`` ``update``.
    - ``after``: what the write carries (address, value …); the entry's ``after`` is it plus
      ``driver`` (the device's driver name) and ``outcome``: ``done`` on success, ``failed``
      otherwise, with ``error``.
    - A failure is what the breaker counts (its ``BreakerConfig.expected_exceptions``): audited with
      ``error = "<ExceptionType>: <message>"`` (at most 300 characters), then
      :class:`~mes_kernel.errors.DeviceFailed` — 502 ``failed_code``, message ``"<what> failed:
      <error>"``, with ``device`` and ``field = "name"``.
    - ``invalid``: exceptions that mean the device was sent nothing because the value cannot be
      written (the caller's mistake, so the breaker must not count them): audited as ``failed``
      with ``error = "<message>"``, then 422 ``invalid_code`` (``VALIDATION_ERROR`` when None)
      with ``field = "value"``.
    - ``after`` holding NaN, ±Infinity or a NUL character (which the audit trail cannot store on
      PostgreSQL) is refused before anything is sent or audited: 422 ``invalid_code`` (or
      ``VALIDATION_ERROR``), so a machine is never written without its audit entry.
    - An open breaker raises :class:`~mes_kernel.breakers.BreakerOpenError` before anything is
      sent or audited (503 ``SERVICE_UNAVAILABLE`` with ``Retry-After``). Any other exception of
      ``write`` passes through unaudited: it is a bug of the plugin, not the device's answer.
    """
    refusal = invalid_code or "VALIDATION_ERROR"
    try:
        _finite(after)
    except ValueError as exc:
        raise Unprocessable(f"{name} on {device.code}: {exc}", code=refusal, field="value") from None
    failures = kernel.breakers.config_for(breaker, device.line_code).expected_exceptions
    outcome, error, refused = done, None, False
    try:
        result = await kernel.breakers.call(breaker, device.code, write, line=device.line_code)
    except invalid as exc:  # before failures: the caller's mistake, however the breaker counted it
        outcome, error, refused, result = "failed", _storable(f"{exc}"), True, None
    except failures as exc:
        outcome, error, result = "failed", _storable(f"{type(exc).__name__}: {exc}"), None
    await write_audit(
        session,
        actor=actor,
        action="update",  # the audit trail's verbs: a write updates the machine (or tried to)
        entity=entity,
        entity_id=f"{device.code}:{name}",
        after={**after, "driver": device.driver, "outcome": outcome, **({} if error is None else {"error": error})},
    )
    await session.commit()
    if refused:
        raise Unprocessable(f"{name} on {device.code}: {error}", code=refusal, field="value")
    if error is not None:
        raise DeviceFailed(f"{what} failed: {error}", code=failed_code, device=device.code, field="name")
    return result  # type: ignore[return-value]


def _storable(reason: str) -> str:
    """A device's error as the audit trail keeps it: at most ``ERROR_CHARS`` characters, no NUL
    (a device's reply may carry one; PostgreSQL text cannot)."""
    return reason.replace("\x00", "")[:ERROR_CHARS]
