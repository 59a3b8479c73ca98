"""Append-only, tamper-evident audit trail: every create/update/delete, in the caller's transaction.

Each entry stores the SHA-256 of its own content. A background sealer groups entries that are
older than a grace period into blocks: a block stores the digest of its entries' hashes and the
hash of the previous block, so blocks form a chain. Writers never wait on a shared lock (the chain
is built after the fact); two sealers racing are kept apart by the unique ``prev_hash``.
``verify`` recomputes everything and names the first broken link.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from .db.base import utcnow
from .db.models import AuditEntry, AuditSeal
from .logging import client_ip_var, request_id_var

GENESIS = "0" * 64


def jsonable(value: Any) -> Any:
    """The value as a JSON column gives it back, on both databases: datetimes and other objects as
    strings, tuples as lists, and integral floats as integers (PostgreSQL's JSONB returns ``1e20``
    as ``100000000000000000000``). Hashes are computed over this form, so they survive the round
    trip through the database."""
    kind = type(value)
    if kind in _PLAIN:  # the hot path: exact type checks are much cheaper than isinstance
        return value
    if kind is dict:
        return {k if type(k) is str else str(k): jsonable(v) for k, v in value.items()}
    if kind is float:
        return int(value) if value.is_integer() else value
    if kind is list or kind is tuple:
        return [jsonable(v) for v in value]
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return jsonable(float(value))
    if isinstance(value, dict):
        return jsonable(dict(value))
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


_PLAIN = frozenset({str, int, bool, type(None)})


def canonical_json(value: Any, *, normalized: bool = False) -> bytes:
    """Sorted, compact JSON of ``value`` in its database-independent form (see :func:`jsonable`)."""
    normal = value if normalized else jsonable(value)
    try:
        return orjson.dumps(normal, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an integer beyond 64 bits; the same input always takes the same branch
        return json.dumps(normal, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(row: dict[str, Any], *, normalized: bool = False) -> str:
    """The entry's content hash; ``normalized`` when before/after already went through jsonable."""
    occurred = row["occurred_at"].astimezone(UTC).isoformat()
    body = {
        "occurred_at": occurred,
        "actor": row["actor"],
        "action": row["action"],
        "entity": row["entity"],
        "entity_id": str(row["entity_id"]),
        "before": row.get("before"),
        "after": row.get("after"),
        "request_id": row.get("request_id"),
        "client_ip": row.get("client_ip"),
    }
    return hashlib.sha256(canonical_json(body, normalized=normalized)).hexdigest()


_UNSET: Any = object()


def audit_row(
    *,
    actor: str,
    action: str,
    entity: str,
    entity_id: Any,
    before=None,
    after=None,
    request_id: Any = _UNSET,
    client_ip: Any = _UNSET,
) -> dict:
    """One audit entry as a row, with request id and client address taken from the request
    (or given, when the row is written outside the request's task, as group commit does)."""
    if action not in ("create", "update", "delete"):
        raise ValueError(f"audit action must be create/update/delete, not {action!r}")
    row = {
        "occurred_at": utcnow(),
        "actor": actor,
        "action": action,
        "entity": entity,
        "entity_id": str(entity_id),
        "before": jsonable(before),
        "after": jsonable(after),
        "request_id": request_id_var.get() if request_id is _UNSET else request_id,
        "client_ip": client_ip_var.get() if client_ip is _UNSET else client_ip,
    }
    row["row_hash"] = entry_hash(row, normalized=True)
    return row


async def write_audit(
    session: AsyncSession, *, actor: str, action: str, entity: str, entity_id: Any, before=None, after=None, **context
) -> None:
    """Add an audit entry to the caller's transaction (it commits or rolls back with the change).

    ``context`` may carry ``request_id`` / ``client_ip`` when written outside the request's task."""
    await write_audit_rows(
        session,
        [
            audit_row(
                actor=actor, action=action, entity=entity, entity_id=entity_id, before=before, after=after, **context
            )
        ],
    )


# Writers hold this PostgreSQL advisory lock *shared* until they commit; the sealer takes it
# exclusively for an instant to learn an id below which every entry is committed. Shared holders
# never wait for each other, so writes are not serialized.
AUDIT_LOCK_KEY = 0x6D6573_61756474  # "mes" "audt"


async def write_audit_rows(session: AsyncSession, rows: list[dict]) -> None:
    if rows:
        if session.bind.dialect.name == "postgresql":
            await session.execute(text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": AUDIT_LOCK_KEY})
        await session.execute(insert(AuditEntry.__table__), rows)


# ---------------------------------------------------------------------- sealing


def seal_hash(prev_hash: str, first_id: int, last_id: int, count: int, digest: str) -> str:
    return hashlib.sha256(f"{prev_hash}|{first_id}|{last_id}|{count}|{digest}".encode()).hexdigest()


def entries_digest(hashes: list[str]) -> str:
    return hashlib.sha256("\n".join(hashes).encode()).hexdigest()


async def committed_horizon(session: AsyncSession) -> int | None:
    """An id at or below which every audit entry is committed (no writer still holds a lower id).

    PostgreSQL hands out ids at insert time, so a slow transaction can commit a lower id after a
    faster one committed a higher id. Taking the writers' lock exclusively waits for those in
    flight; ids handed out afterwards are higher. SQLite has one writer at a time, so what is
    committed is already a prefix. None when the lock is not had within a second (try later).
    """
    if session.bind.dialect.name == "postgresql":
        try:
            await session.execute(text("SET LOCAL lock_timeout = '1s'"))
            await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": AUDIT_LOCK_KEY})
        except DBAPIError:
            await session.rollback()
            return None
    horizon = (await session.execute(select(func.coalesce(func.max(AuditEntry.id), 0)))).scalar_one()
    await session.commit()  # releases the lock at once
    return horizon


async def seal_pending(session: AsyncSession, *, grace_seconds: float, limit: int = 10_000) -> AuditSeal | None:
    """Seal the next run of committed entries older than the grace period; None when nothing to seal.

    A block is always a contiguous run of ids: it stops at the first entry that is too new.
    """
    horizon = await committed_horizon(session)
    if horizon is None:
        return None
    last = (await session.execute(select(AuditSeal).order_by(AuditSeal.id.desc()).limit(1))).scalar_one_or_none()
    after_id = last.last_id if last else 0
    cutoff = datetime.now(UTC) - timedelta(seconds=grace_seconds)
    candidates = (
        await session.execute(
            select(AuditEntry.id, AuditEntry.row_hash, AuditEntry.occurred_at)
            .where(AuditEntry.id > after_id, AuditEntry.id <= horizon)
            .order_by(AuditEntry.id)
            .limit(limit)
        )
    ).all()
    rows = []
    for row in candidates:
        if row.occurred_at >= cutoff:
            break
        rows.append(row)
    if not rows:
        return None
    prev = last.seal_hash if last else GENESIS
    digest = entries_digest([r.row_hash for r in rows])
    first_id, last_id = rows[0].id, rows[-1].id
    seal = AuditSeal(
        first_id=first_id,
        last_id=last_id,
        entry_count=len(rows),
        entries_digest=digest,
        prev_hash=prev,
        seal_hash=seal_hash(prev, first_id, last_id, len(rows), digest),
    )
    session.add(seal)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()  # another worker sealed the same block first
        return None
    return seal


# ---------------------------------------------------------------------- verification


@dataclass
class VerifyResult:
    ok: bool
    entries_checked: int
    seals_checked: int
    unsealed: int
    broken_entry_id: int | None = None
    broken_seal_id: int | None = None
    reason: str | None = None


async def verify(session: AsyncSession, *, chunk: int = 5000, progress=None) -> VerifyResult:
    """Recompute every entry hash and the seal chain; stop at the first broken link."""
    seals = (await session.execute(select(AuditSeal).order_by(AuditSeal.id))).scalars().all()
    total = (await session.execute(select(func.count()).select_from(AuditEntry))).scalar_one()
    prev = GENESIS
    seal_iter = iter(seals)
    current = next(seal_iter, None)
    block_hashes: list[str] = []
    checked = 0
    sealed_upto = seals[-1].last_id if seals else 0
    unsealed = 0
    last_id = 0

    def close_block(seal: AuditSeal, hashes: list[str], prev_hash: str) -> str | None:
        if seal.prev_hash != prev_hash:
            return "seal does not chain to the previous seal"
        if len(hashes) != seal.entry_count:
            return f"seal covers {seal.entry_count} entries, found {len(hashes)} (entries added or removed)"
        if entries_digest(hashes) != seal.entries_digest:
            return "entries of this block do not match its digest"
        if (
            seal_hash(seal.prev_hash, seal.first_id, seal.last_id, seal.entry_count, seal.entries_digest)
            != seal.seal_hash
        ):
            return "seal hash does not match its contents"
        return None

    while True:
        rows = (
            (
                await session.execute(
                    select(AuditEntry).where(AuditEntry.id > last_id).order_by(AuditEntry.id).limit(chunk)
                )
            )
            .scalars()
            .all()
        )
        if not rows:
            break
        for entry in rows:
            last_id = entry.id
            checked += 1
            row = {
                c: getattr(entry, c)
                for c in (
                    "occurred_at",
                    "actor",
                    "action",
                    "entity",
                    "entity_id",
                    "before",
                    "after",
                    "request_id",
                    "client_ip",
                )
            }
            if entry_hash(row) != entry.row_hash:
                return VerifyResult(
                    False,
                    checked,
                    0,
                    unsealed,
                    broken_entry_id=entry.id,
                    reason="entry content does not match its hash",
                )
            while current is not None and entry.id > current.last_id:
                reason = close_block(current, block_hashes, prev)
                if reason:
                    return VerifyResult(False, checked, 0, unsealed, broken_seal_id=current.id, reason=reason)
                prev, block_hashes, current = current.seal_hash, [], next(seal_iter, None)
            if current is not None and entry.id >= current.first_id:
                block_hashes.append(entry.row_hash)
            elif entry.id > sealed_upto:
                unsealed += 1
            elif current is None or entry.id < current.first_id:
                return VerifyResult(
                    False,
                    checked,
                    0,
                    unsealed,
                    broken_entry_id=entry.id,
                    reason="entry lies between sealed blocks (inserted after sealing)",
                )
        if progress:
            progress(checked, total)
    while current is not None:
        reason = close_block(current, block_hashes, prev)
        if reason:
            return VerifyResult(False, checked, 0, unsealed, broken_seal_id=current.id, reason=reason)
        prev, block_hashes, current = current.seal_hash, [], next(seal_iter, None)
    return VerifyResult(True, checked, len(seals), unsealed)
