"""The audit trail, read-only, for admins; and its verification."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import func, select

from ...audit import verify
from ...db.models import AuditEntry
from ...schemas import Page, UtcMoment
from ..deps import Principal, SessionDep, require_permission

router = APIRouter(prefix="/audit", tags=["audit"])


class AuditOut(BaseModel):
    id: int
    occurred_at: datetime
    actor: str
    action: str
    entity: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None
    client_ip: str | None
    row_hash: str

    model_config = {"from_attributes": True}


@router.get("", response_model=Page[AuditOut], summary="Audit entries, newest first, with filters")
async def list_audit(
    session: SessionDep,
    _: Principal = require_permission("audit:read"),
    entity: str | None = None,
    entity_id: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: UtcMoment | None = None,
    until: UtcMoment | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
):
    query = select(AuditEntry)
    for column, value in ((AuditEntry.entity, entity), (AuditEntry.entity_id, entity_id),
                          (AuditEntry.actor, actor), (AuditEntry.action, action)):
        if value is not None:
            query = query.where(column == value)
    if since:
        query = query.where(AuditEntry.occurred_at >= since)
    if until:
        query = query.where(AuditEntry.occurred_at < until)
    total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = (await session.execute(query.order_by(AuditEntry.id.desc()).limit(limit).offset(offset))).scalars()
    return Page[AuditOut](items=[AuditOut.model_validate(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/verify", summary="Recompute the hash chain; names the first broken link")
async def verify_audit(session: SessionDep, _: Principal = require_permission("audit:read")):
    result = await verify(session)
    return result.__dict__
