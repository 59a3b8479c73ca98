"""Documentation that cannot drift: every hook, error code, health reason code and route is described."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from mes_kernel import hookspecs

ROOT = Path(__file__).resolve().parents[1]
GUIDE = (ROOT / "docs" / "plugin-guide.md").read_text()
API = (ROOT / "docs" / "api.md").read_text()


def test_every_hook_has_a_section_in_the_plugin_guide():
    hooks = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("mes_")]
    assert len(hooks) >= 10
    missing = [h for h in hooks if f"### {h}" not in GUIDE]
    assert not missing, f"hooks without a section in docs/plugin-guide.md: {missing}"


def test_every_station_extension_field_is_in_the_plugin_guide():
    import dataclasses

    from mes_kernel.contracts import StationExtension

    station_side = GUIDE[GUIDE.index("## 8. The station side"):]
    missing = [f.name for f in dataclasses.fields(StationExtension) if f"`{f.name}`" not in station_side]
    assert not missing, f"StationExtension fields without a word in docs/plugin-guide.md section 8: {missing}"
    assert "### Translating your panels" in station_side


def test_every_hook_documents_itself():
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if name.startswith("mes_"):
            assert fn.__doc__ and ":return:" in fn.__doc__, f"{name} needs a docstring saying what it returns"


def test_every_error_code_the_kernel_raises_is_in_the_api_docs():
    codes = set()
    for path in (ROOT / "mes_kernel").rglob("*.py"):
        if path.name == "demo.py":
            continue
        text = path.read_text()
        codes |= set(re.findall(r'code="([A-Z][A-Z_]+)"', text))
        codes |= set(re.findall(r'"code": "([A-Z][A-Z_]+)"', text))
        codes |= set(re.findall(r'\d{3}: "([A-Z][A-Z_]+)"', text))
    assert len(codes) > 20
    missing = sorted(c for c in codes if f"`{c}`" not in API)
    assert not missing, f"error codes missing from docs/api.md: {missing}"


def test_every_health_reason_code_of_the_kernel_and_bundled_plugins_is_in_the_api_docs():
    """``Reason("CODE", …)`` is how they give one; the web's catalog test checks each has a text."""
    sources = [*(ROOT / "mes_kernel").rglob("*.py"), *(ROOT / "plugins").glob("*/mes_*/**/*.py")]
    codes = set()
    for path in sources:
        codes |= set(re.findall(r'\bReason\(\s*"([A-Z][A-Z0-9_]*)"', path.read_text()))
    assert len(codes) > 50
    section = API[API.index("### Health reason codes") :]
    missing = sorted(c for c in codes if f"`{c}`" not in section)
    assert not missing, f"health reason codes missing from docs/api.md: {missing}"


async def test_every_kernel_route_is_tagged_and_described(client):
    schema = (await client.get("/openapi.json")).json()
    undocumented = [
        f"{method.upper()} {path}"
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
        if not op.get("tags") or not (op.get("summary") or op.get("description"))
    ]
    assert not undocumented, undocumented
    assert (await client.get("/docs")).status_code == 200
    assert (await client.get("/redoc")).status_code == 200


def _orphan_table_rows(text: str) -> list[str]:
    """Rows of a Markdown table block (outside code fences) with no header and separator line: a
    renderer shows them as a paragraph of pipes."""
    orphans, block, fenced = [], [], False
    for line in [*text.splitlines(), ""]:
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("|"):
            block.append(line)
            continue
        if block and not (len(block) >= 2 and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", block[1].replace(" ", ""))):
            orphans.append(block[0])
        block = []
    return orphans


def test_every_table_in_the_user_docs_has_its_header():
    for path in (ROOT / "README.md", ROOT / "docs" / "plugin-guide.md", ROOT / "docs" / "api.md",
                 ROOT / "station" / "README.md"):
        assert not _orphan_table_rows(path.read_text()), (path.name, _orphan_table_rows(path.read_text()))


def test_every_list_of_roles_in_the_docs_names_every_role_the_kernel_knows():
    from mes_kernel.permissions import ROLES

    readme = (ROOT / "README.md").read_text()
    for name, text, start in (("README.md", readme, "Roles: "), ("docs/api.md", API, "- Roles: "),
                              ("docs/plugin-guide.md", GUIDE, "roles that hold it by default")):
        paragraph = text[text.index(start):].split("\n\n")[0]
        missing = [role for role in ROLES if role != "admin" and f"`{role}`" not in paragraph]
        assert not missing, f"{name}'s list of roles lacks {missing}"
