"""Label templates cached from the server for printing while offline, and their rendering to ZPL."""

from __future__ import annotations

import re
from typing import Any

from mes_station.client import ServerClient
from mes_station.errors import OfflineError, ServerError
from mes_station.outbox import Outbox

#: keys a template body may be stored under, as different label plugins name it
BODY_KEYS = ("zpl", "body", "content", "template")

_DOUBLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_SINGLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class TemplateError(ValueError):
    """A template cannot be rendered with the given fields (missing field, forbidden character)."""

    code = "TEMPLATE_INVALID"


def template_body(template: dict[str, Any]) -> str | None:
    for key in BODY_KEYS:
        value = template.get(key)
        if isinstance(value, str):
            return value
    return None


def render(template: dict[str, Any], fields: dict[str, Any]) -> bytes:
    """ZPL for one label.

    A cached template with a ZPL body and its field declarations (as ``GET /labels/templates/{name}``
    gives it) is rendered by the label-printer plugin installed on this station — the same code as
    the server: typed fields validated, ``^FN`` fields filled, every value ``^FH``-escaped. Without
    the plugin, ``{{ field }}`` (or ``{field}``) placeholders are filled, refusing ZPL command
    characters in values. A template without a body is the plugin's built-in one of that name.
    """
    body = template_body(template)
    if body is None:
        return render_with_plugin(str(template.get("name")), fields)
    if "fields" in template and isinstance(template.get("zpl"), str):
        rendered = render_stored_with_plugin(template, fields)
        if rendered is not None:
            return rendered
    pattern = _DOUBLE if _DOUBLE.search(body) else _SINGLE
    missing = sorted({m for m in pattern.findall(body) if m not in fields})
    if missing:
        raise TemplateError(f"template {template.get('name')!r} needs field(s): {', '.join(missing)}")
    for name, value in fields.items():
        if any(ch in str(value) for ch in "^~"):
            raise TemplateError(f"field {name!r} contains a ZPL command character (^ or ~)")
    return pattern.sub(lambda m: str(fields[m.group(1)]), body).encode("utf-8")


def render_stored_with_plugin(template: dict[str, Any], fields: dict[str, Any]) -> bytes | None:
    """Render a synced template with the installed plugin; None when the plugin is not installed."""
    try:
        from mes_label_printer.templates import LabelTemplate
    except ImportError:
        return None
    try:
        return LabelTemplate.from_dict(template).render_zpl(fields)
    except Exception as exc:  # a bad cached template or a field the template refuses
        raise TemplateError(f"template {template.get('name')!r}: {getattr(exc, 'message', exc)}") from exc


def render_with_plugin(name: str, fields: dict[str, Any]) -> bytes:
    """Render through ``mes_label_printer.templates`` (validated, hex-escaped fields)."""
    try:
        from mes_label_printer.templates import get_template
    except ImportError as exc:
        raise TemplateError(
            f"template {name!r} has no ZPL body and the label-printer plugin is not installed here"
        ) from exc
    try:
        return get_template(name).render_zpl(fields)
    except Exception as exc:  # NotFound / Unprocessable from the plugin: a template problem here
        raise TemplateError(f"template {name!r}: {getattr(exc, 'message', exc)}") from exc


def local_template(name: str) -> dict[str, Any] | None:
    """A template the installed label-printer plugin knows, for printing with no sync at all."""
    try:
        from mes_label_printer.templates import TEMPLATES
    except ImportError:
        return None
    template = TEMPLATES.get(name)
    return template.describe(with_zpl=True) if template is not None else None


def _as_list(answer: Any) -> list[dict[str, Any]]:
    if isinstance(answer, dict):
        for key in ("templates", "items", "results"):
            if isinstance(answer.get(key), list):
                return answer[key]
        return []
    return answer if isinstance(answer, list) else []


async def sync_templates(client: ServerClient, outbox: Outbox) -> int:
    """Replace the local cache with ``GET /labels/templates``; returns how many were cached.

    When the list carries summaries only, each template's detail is fetched by name.
    """
    templates = []
    for item in _as_list(await client.json("GET", "/labels/templates")):
        if not isinstance(item, dict) or not item.get("name"):
            continue
        if template_body(item) is None:
            try:
                detail = await client.json("GET", f"/labels/templates/{item['name']}")
            except (OfflineError, ServerError):
                detail = None
            if isinstance(detail, dict):
                item = {**item, **detail}
        # A layout-only template (no ZPL body) is still cached: the local plugin renders it by name.
        templates.append(item)
    outbox.replace_templates(templates)
    return len(templates)
