"""Every panel a shipped plugin contributes to the managers' dashboard speaks Korean: each text a
reader sees (``Panel.texts``) has an entry in its ``translations["ko"]``, and the panels route
carries the catalogue to the web shell, which shows a text without an entry as is."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from mes_kernel.contracts import Panel
from mes_kernel.plugins import ENTRY_POINT_GROUP

LANGUAGES = ("ko",)


def _shipped_panels() -> list[tuple[str, Panel]]:
    panels = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        hook = getattr(ep.load(), "mes_register_panels", None)
        if hook is not None:
            panels += [(ep.name, panel) for panel in hook()]
    return panels


def test_the_shipped_plugins_contribute_panels():
    assert {name for name, _ in _shipped_panels()} >= {"dashboard_kpi", "label_printer", "firmware_uploader"}


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_panel_text_has_a_translation(language):
    missing = [
        (name, panel.id, text)
        for name, panel in _shipped_panels()
        for text in panel.texts()
        if not panel.translations.get(language, {}).get(text, "").strip()
    ]
    assert missing == [], f"untranslated panel texts ({language}): {missing}"


def test_a_caption_keeps_its_placeholders_in_translation():
    for _, panel in _shipped_panels():
        for language, catalogue in panel.translations.items():
            for english, translated in catalogue.items():
                for placeholder in {p.split("}")[0] for p in english.split("{")[1:]}:
                    assert "{" + placeholder + "}" in translated, (panel.id, language, english)


def test_texts_are_the_title_caption_series_and_column_titles():
    panel = Panel(
        id="x",
        title="Title",
        kind="table",
        endpoint="/api/v1/x",
        options={"caption": "Cap", "series": ["a", 1], "columns": [{"key": "k", "title": "K"}, "raw"]},
    )
    assert panel.texts() == ["Title", "Cap", "a", "K"]
