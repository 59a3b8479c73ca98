"""Helpers for plugin authors' tests, beside the fixtures of :mod:`mes_kernel.testing.fixtures`.

``eventually`` waits on a condition without depending on the machine's speed (a generous deadline,
the last answer in the failure); ``put_line`` applies a line configuration through the API;
``record_body`` builds a station's process record; ``machine_counts`` sums what the machine-data
hub stored for a connector's device; ``uncoded_reasons`` finds health reasons a dashboard could
not word in its reader's language.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

API = "/api/v1"


async def eventually(probe: Callable[[], Awaitable[Any]], *, timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Await ``probe()`` until it returns something truthy and return that; after ``timeout`` seconds
    raise AssertionError with its last answer."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"not reached within {timeout} s; last: {last!r}")


def record_body(lot_number: str, **fields: Any) -> dict[str, Any]:
    """A station's process record for ``POST /process-records`` (a pass of ``ASSY-10`` by ``W-1``
    under a fresh idempotency key), ``fields`` added or replacing; a ``recorded_at`` given as a
    datetime is sent in ISO 8601."""
    body: dict[str, Any] = {
        "idempotency_key": uuid.uuid4().hex,
        "lot_number": lot_number,
        "process_id": "ASSY-10",
        "worker_id": "W-1",
        "result": "pass",
        **fields,
    }
    if isinstance(body.get("recorded_at"), datetime):
        body["recorded_at"] = body["recorded_at"].isoformat()
    return body


async def put_line(client, headers: dict[str, str], code: str, devices: list[dict[str, Any]], **document: Any) -> None:
    """``PUT /api/v1/lines/{code}`` with ``devices`` (and any other keys of a line document); the
    line's name is its code unless given. Fails the test unless the kernel answers 200."""
    body = {"name": code, "devices": devices, **document}
    r = await client.put(f"{API}/lines/{code}", json=body, headers=headers)
    assert r.status_code == 200, r.text


async def machine_counts(kernel, device: str) -> tuple[int, int]:
    """``(good, bad)`` parts the machine-data hub stored for ``device`` (all hours)."""
    from sqlalchemy import func, select

    from ..db.models import MachineCount

    async with kernel.sessionmaker() as session:
        good, bad = (
            await session.execute(
                select(
                    func.coalesce(func.sum(MachineCount.good), 0), func.coalesce(func.sum(MachineCount.bad), 0)
                ).where(MachineCount.device == device)
            )
        ).one()
        return int(good), int(bad)


async def run_sql(settings: Any, statement: str, **params: Any) -> list[Any] | None:
    """Run one SQL ``statement`` on the database of ``settings`` in its own transaction (a fresh
    engine, disposed after): its rows, or None for a statement that returns none."""
    from sqlalchemy import text

    from mes_kernel.db.base import make_engine

    engine = make_engine(settings)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(statement), params)
            return result.all() if result.returns_rows else None
    finally:
        await engine.dispose()


#: the ``trace_totals`` rows that differ from a count of ``trace_events`` per LOT and unit (none when
#: the totals are exact)
TRACE_TOTALS_OFF = """
    SELECT scope, subject_id, events FROM trace_totals WHERE events <> 0
    EXCEPT (SELECT 'lot', lot_id, count(*) FROM trace_events GROUP BY lot_id
            UNION ALL SELECT 'unit', unit_id, count(*) FROM trace_events WHERE unit_id IS NOT NULL GROUP BY unit_id)
    UNION ALL
    (SELECT 'lot', lot_id, count(*) FROM trace_events GROUP BY lot_id
     UNION ALL SELECT 'unit', unit_id, count(*) FROM trace_events WHERE unit_id IS NOT NULL GROUP BY unit_id)
    EXCEPT SELECT scope, subject_id, events FROM trace_totals WHERE events <> 0
"""


async def register_lots_at(kernel: Any, at: Any) -> None:
    """Make every LOT and unit registered after ``at`` (aware) registered at ``at`` (their
    ``created_at``): a test that files records at station times in the past registers its LOTs
    before them, as a plant does (a station time before a LOT's or unit's registration is refused,
    docs/station-times.md). Registrations already earlier stay."""
    from sqlalchemy import update

    from mes_kernel.db.models import Lot, Unit

    async with kernel.sessionmaker() as session:
        for model in (Lot, Unit):
            await session.execute(update(model).where(model.created_at > at).values(created_at=at))
        await session.commit()


def uncoded_reasons(node: Any, path: str = "") -> list[str]:
    """Where in a ``/api/v1/health`` tree (or any part of it) a ``reason`` comes without a
    ``reason_code`` — including each reason a coded one lists in its ``reason_params`` (several
    devices, several problems) — as ``"path: reason"``. A check built with
    :class:`mes_kernel.contracts.Reason` leaves none: ``assert uncoded_reasons(tree) == []``."""
    found: list[str] = []
    if isinstance(node, dict):
        if node.get("reason") and not node.get("reason_code"):
            found.append(f"{path or '.'}: {node['reason']}")
        for key, value in node.items():
            found += uncoded_reasons(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += uncoded_reasons(value, f"{path}[{i}]")
    return found
