"""Label templates in the kernel's ``label_templates`` table: versions, seeding, retiring, audit.

Every upload of a name is its next version; a print names the version it used. Retiring a name
stops new prints from it (reprints of labels already printed still reproduce their version). The
built-in templates are seeded as version 1 the first time the table is read, so a plant can list,
preview, replace and retire them like its own.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, distinct, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mes_kernel.audit import write_audit
from mes_kernel.db.models import LabelTemplate as TemplateRow
from mes_kernel.errors import Conflict, NotFound, Unprocessable

from .templates import TEMPLATES, Field, LabelTemplate
from .validation import validate_zpl

TEMPLATE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
SEEDED_KEY = "label_printer.templates_seeded"


def _invalid(message: str, **extra: Any) -> Unprocessable:
    return Unprocessable(message, code="TEMPLATE_INVALID", **extra)


def _from_row(row: TemplateRow) -> LabelTemplate:
    return LabelTemplate(
        name=row.name,
        zpl=row.zpl,
        fields=tuple(Field.from_dict(f) for f in row.fields or []),
        title=row.title,
        description=row.description,
        width=row.width,
        height=row.height,
        dpi=row.dpi,
        version=row.version,
        status=row.status,
        extra={
            "source": row.source,
            "created_by": row.created_by,
            "created_at": row.created_at.isoformat() if row.created_at else None,
            "retired_at": row.retired_at.isoformat() if row.retired_at else None,
        },
    )


async def ensure_seeded(session: AsyncSession, state: dict[str, Any] | None = None) -> None:
    """Insert the built-in templates as version 1 where their name has no row yet (once per process)."""
    if state is not None and state.get(SEEDED_KEY):
        return
    have = set((await session.execute(select(TemplateRow.name).distinct())).scalars())
    missing = [t for name, t in TEMPLATES.items() if name not in have]
    if missing:
        session.add_all(
            TemplateRow(
                name=t.name,
                version=1,
                title=t.title,
                description=t.description,
                zpl=t.zpl,
                fields=[f.describe() for f in t.fields],
                width=t.width,
                height=t.height,
                dpi=t.dpi,
                status="active",
                source="builtin",
                created_by="system",
            )
            for t in missing
        )
        try:
            await session.commit()
        except IntegrityError:  # another worker seeded them at the same moment
            await session.rollback()
    if state is not None:
        state[SEEDED_KEY] = True


async def templates_version(session: AsyncSession, state: dict[str, Any] | None = None) -> dict[str, int]:
    """``{"version", "count"}`` of the stored template set, as a station's configuration names it.

    ``version`` is the number of stored template versions plus the number of retired ones: every
    upload adds one row and every retire marks at least one row, so it grows with each change and
    a station re-syncs its cached templates exactly then. ``count`` is the number of active
    templates (names a new print may use). One aggregate query over a small table.
    """
    await ensure_seeded(session, state)
    rows, retired, active = (
        await session.execute(
            select(
                func.count(TemplateRow.id),
                func.count(case((TemplateRow.status == "retired", TemplateRow.id))),
                func.count(distinct(case((TemplateRow.status == "active", TemplateRow.name)))),
            )
        )
    ).one()
    return {"version": rows + retired, "count": active}


async def get_stored(
    session: AsyncSession, name: str, *, version: int | None = None, allow_retired: bool = False
) -> LabelTemplate:
    """The latest (or the given) version of template ``name``.

    :raises NotFound: ``TEMPLATE_NOT_FOUND`` for an unknown name or version.
    :raises Conflict: ``TEMPLATE_RETIRED`` when the template is retired and ``allow_retired`` is off.
    """
    query = select(TemplateRow).where(TemplateRow.name == name)
    if version is not None:
        query = query.where(TemplateRow.version == version)
    row = (await session.execute(query.order_by(TemplateRow.version.desc()).limit(1))).scalar_one_or_none()
    if row is None:
        what = f"{name!r} version {version}" if version is not None else repr(name)
        raise NotFound(f"no label template {what}", code="TEMPLATE_NOT_FOUND", template=name)
    if row.status == "retired" and not allow_retired:
        raise Conflict(
            f"label template {name!r} is retired; upload a new version to print from it",
            code="TEMPLATE_RETIRED",
            template=name,
            version=row.version,
        )
    return _from_row(row)


async def list_stored(session: AsyncSession, *, include_retired: bool = False) -> list[LabelTemplate]:
    """The latest version of every template name, by name."""
    latest = select(TemplateRow.name, func.max(TemplateRow.version).label("version")).group_by(TemplateRow.name)
    latest = latest.subquery()
    query = select(TemplateRow).join(
        latest, (TemplateRow.name == latest.c.name) & (TemplateRow.version == latest.c.version)
    )
    if not include_retired:
        query = query.where(TemplateRow.status == "active")
    rows = (await session.execute(query.order_by(TemplateRow.name))).scalars()
    return [_from_row(row) for row in rows]


async def versions_of(session: AsyncSession, name: str) -> list[LabelTemplate]:
    """Every version of ``name``, newest first (NotFound for an unknown name)."""
    rows = (
        await session.execute(select(TemplateRow).where(TemplateRow.name == name).order_by(TemplateRow.version.desc()))
    ).scalars()
    out = [_from_row(row) for row in rows]
    if not out:
        raise NotFound(f"no label template {name!r}", code="TEMPLATE_NOT_FOUND", template=name)
    return out


def parse_fields(fields: Any) -> tuple[Field, ...]:
    """Field declarations from a list (JSON body) or a JSON string (multipart form)."""
    if isinstance(fields, str):
        try:
            fields = json.loads(fields) if fields.strip() else []
        except json.JSONDecodeError as exc:
            raise _invalid(f"fields is not valid JSON: {exc.msg}", field="fields") from None
    if not isinstance(fields, list):
        raise _invalid("fields must be a list of field declarations", field="fields")
    try:
        return tuple(Field.from_dict(f) for f in fields)
    except ValueError as exc:
        raise _invalid(str(exc), field="fields") from None


async def create_template(
    *,
    session: AsyncSession,
    name: str,
    zpl: bytes | str,
    fields: Any,
    title: str = "",
    description: str = "",
    dpi: int = 203,
    actor: str,
) -> tuple[LabelTemplate, list[str]]:
    """Validate a designer's ZPL with its field declarations and store it as the name's next version.

    Answers the stored template and the warnings of validation: what of a designer's export was
    left out (a leading prefix change, a printer settings format) and why; only the label format
    is stored.

    :raises Unprocessable: ``ZPL_INVALID`` (the file) or ``TEMPLATE_INVALID`` (name, fields, or
        a field the ZPL does not carry).
    """
    if not isinstance(name, str) or not TEMPLATE_NAME.match(name):
        raise _invalid("name must be 1-64 lower-case letters, digits, '_' or '-', starting with a letter", field="name")
    if dpi not in (152, 203, 300, 600):
        raise _invalid("dpi must be 152, 203, 300 or 600", field="dpi")
    text, info = validate_zpl(zpl)
    declared = parse_fields(fields)
    try:
        template = LabelTemplate(
            name=name,
            zpl=text,
            fields=declared,
            title=(title or name)[:200],
            description=description or "",
            width=info.width or 812,
            height=info.height or 406,
            dpi=dpi,
        )
        template.validate(template.sample_values())
    except ValueError as exc:
        raise _invalid(str(exc), field="fields") from None
    except Unprocessable as exc:
        raise _invalid(f"the template cannot be filled: {exc.message}", field="fields") from None

    for _ in range(3):  # two uploads of one name racing: the loser takes the next number
        current = (
            await session.execute(select(func.max(TemplateRow.version)).where(TemplateRow.name == name))
        ).scalar()
        row = TemplateRow(
            name=name,
            version=(current or 0) + 1,
            title=template.title,
            description=template.description,
            zpl=template.zpl,
            fields=[f.describe() for f in template.fields],
            width=template.width,
            height=template.height,
            dpi=template.dpi,
            status="active",
            source="upload",
            created_by=actor,
        )
        session.add(row)
        try:
            await session.flush()
        except IntegrityError:
            await session.rollback()
            continue
        await write_audit(
            session,
            actor=actor,
            action="create",
            entity="label_template",
            entity_id=f"{name}:{row.version}",
            after={
                "name": name,
                "version": row.version,
                "fields": row.fields,
                "width": row.width,
                "height": row.height,
                "zpl_bytes": len(text.encode("utf-8")),
                "graphics": info.graphics,
                **({"left_out": info.warnings} if info.warnings else {}),
            },
        )
        await session.commit()
        return _from_row(row), list(info.warnings)
    raise Conflict(f"label template {name!r} is being changed by someone else; retry", code="CONFLICT")


async def retire_template(*, session: AsyncSession, name: str, actor: str, reason: str | None) -> LabelTemplate:
    """Retire every version of ``name``: no new prints from it until a new version is uploaded."""
    latest = await get_stored(session, name, allow_retired=True)
    if latest.status == "retired":
        return latest
    now = datetime.now(UTC)
    await session.execute(
        update(TemplateRow)
        .where(TemplateRow.name == name, TemplateRow.status == "active")
        .values(status="retired", retired_at=now, retired_by=actor)
    )
    await write_audit(
        session,
        actor=actor,
        action="update",
        entity="label_template",
        entity_id=name,
        before={"status": "active", "version": latest.version},
        after={"status": "retired", "version": latest.version, "reason": reason},
    )
    await session.commit()
    return await get_stored(session, name, allow_retired=True)
