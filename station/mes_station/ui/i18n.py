"""The window's languages (Qt translation catalogues) and the font that draws them.

Every string the window shows goes through Qt's translation system
(``translate`` below, i.e. ``QCoreApplication.translate``). The English text in the source *is* the
catalogue key, so a string with no Korean translation falls back to English by Qt's own rule.

Catalogues live beside this module in ``i18n/``: ``mes_station_ui_<lang>.ts`` is the source
(edited by hand or with Qt Linguist, refreshed from the code with ``make ui-translations``,
which runs ``pyside6-lupdate``), ``mes_station_ui_<lang>.qm`` the compiled catalogue
(``pyside6-lrelease``). Both are committed, so a station needs no Qt tools to run; a test
checks that the committed ``.qm`` is the one the ``.ts`` compiles to.

Plugins' action panels bring their own words: a station extension's ``translations``
(``{"ko": {"Print a label": "라벨 인쇄"}}``, see ``mes_kernel.contracts.StationExtension``) is
installed into the same translation system by :class:`PluginCatalogues` under the context
``plugin:<extension name>``, and the panels ask for their texts with :func:`plugin_text`. A text a
plugin did not translate stays English, as the window's own do.

The font: Korean needs CJK glyphs, which the usual Latin fonts lack (tofu boxes). The
project installs Noto Sans CJK (``scripts/install-fonts.sh``, Debian ``fonts-noto-cjk``);
``station_font_family`` finds it among the system's fonts, or loads it from the known font
files (``$MES_STATION_UI_FONT`` first), and the window draws all its text with it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QTranslator
from PySide6.QtGui import QFontDatabase

log = logging.getLogger(__name__)

LANGUAGES = {"en": "English", "ko": "한국어"}
"""The languages the window speaks: code → the language's own name (shown on the switch)."""

DEFAULT_LANGUAGE = "en"
CATALOGUE_DIR = Path(__file__).with_name("i18n")
CATALOGUE_PREFIX = "mes_station_ui_"

CJK_FAMILIES = ("Noto Sans CJK KR", "Noto Sans KR", "Noto Sans CJK JP", "Noto Sans CJK SC")
"""Font families tried in order; the first installed one draws the window's text."""

CJK_FONT_FILES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",  # Debian/Ubuntu fonts-noto-cjk
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",  # Arch, Fedora
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "C:/Windows/Fonts/NotoSansKR-VF.ttf",  # Windows with the Noto Sans KR download
    "C:/Windows/Fonts/malgun.ttf",  # Windows' own Korean font (Malgun Gothic)
)
"""Font files loaded when no CJK family is installed (``$MES_STATION_UI_FONT`` is tried first)."""


def translate(context: str, text: str) -> str:
    """``text`` in the current language (``QCoreApplication.translate``); English when untranslated.

    Call it with literal strings, ``translate("MainScreen", "PASS")``: ``pyside6-lupdate`` finds
    the strings to translate by that call's shape.
    """
    return QCoreApplication.translate(context, text)


PLUGIN_CONTEXT = "plugin:"
"""Translation context prefix of a plugin's panel texts: ``plugin:<station extension name>``."""


def plugin_text(plugin: str, text: str) -> str:
    """A plugin panel's ``text`` in the current language, from the plugin's own catalogue
    (``QCoreApplication.translate("plugin:<plugin>", text)``); English when it has none."""
    return QCoreApplication.translate(PLUGIN_CONTEXT + plugin, text)


def language_code(language: str | None) -> str:
    """The bare language code of a setting (``"ko-KR"``, ``"ko_KR"`` → ``"ko"``)."""
    return (language or "").strip().lower().replace("_", "-").split("-")[0]


def plugin_catalogues_of(extensions: Iterable[Any], language: str) -> dict[str, dict[str, str]]:
    """``{extension name: {English: translated}}`` of the station extensions that have a catalogue
    for ``language`` (regional codes such as ``ko-KR`` count as ``ko``). A catalogue that is not a
    mapping of texts is skipped with a warning: it costs that plugin its words, never the window."""
    out: dict[str, dict[str, str]] = {}
    for extension in extensions:
        catalogues = getattr(extension, "translations", None) or {}
        if not isinstance(catalogues, Mapping):
            log.warning("station extension %s: translations is not a mapping, ignored", extension.name)
            continue
        merged: dict[str, str] = {}
        for code, catalogue in catalogues.items():
            if language_code(str(code)) == language and isinstance(catalogue, Mapping):
                merged.update({str(k): v for k, v in catalogue.items() if isinstance(v, str) and v.strip()})
        if merged:
            out[extension.name] = merged
    return out


def installed_plugin_catalogues(language: str) -> dict[str, dict[str, str]]:
    """The catalogues for ``language`` of every station extension installed here."""
    from mes_station.extensions import installed

    return plugin_catalogues_of(installed().loaded.values(), language)


class PluginCatalogues(QTranslator):
    """The plugins' panel catalogues of one language, as a Qt translator: it answers the
    ``plugin:<name>`` contexts from the named plugin's catalogue and nothing else (``None`` lets Qt
    ask the next translator, and at the end fall back to the English source)."""

    def __init__(self, catalogues: Mapping[str, Mapping[str, str]]) -> None:
        super().__init__()
        self.catalogues = {name: dict(messages) for name, messages in catalogues.items()}

    def translate(self, context, source_text, disambiguation=None, n=-1):  # noqa: N802 - Qt's signature
        if not context or not context.startswith(PLUGIN_CONTEXT):
            return None
        return self.catalogues.get(context[len(PLUGIN_CONTEXT) :], {}).get(source_text)

    def isEmpty(self) -> bool:  # noqa: N802 - Qt's name
        return not self.catalogues


def normalise_language(language: str | None) -> str:
    """A supported language code from a setting or a login answer (``"ko-KR"`` → ``"ko"``); else English."""
    code = language_code(language)
    return code if code in LANGUAGES else DEFAULT_LANGUAGE


class Translations:
    """Installs one language's catalogue into the application (one at a time), with the installed
    plugins' catalogues of that language (``plugin_catalogues(language)``)."""

    def __init__(
        self,
        catalogue_dir: Path = CATALOGUE_DIR,
        plugin_catalogues: Callable[[str], Mapping[str, Mapping[str, str]]] = installed_plugin_catalogues,
    ) -> None:
        self.catalogue_dir = catalogue_dir
        self.plugin_catalogues = plugin_catalogues
        self.language = DEFAULT_LANGUAGE
        self._translator: QTranslator | None = None
        self._plugins: PluginCatalogues | None = None

    def catalogue(self, language: str) -> Path:
        """The compiled catalogue file of ``language`` (may not exist)."""
        return self.catalogue_dir / f"{CATALOGUE_PREFIX}{language}.qm"

    def use(self, language: str | None) -> str:
        """Switch the application to ``language``; returns the language now in use.

        English needs no catalogue. A language without a loadable catalogue leaves the window
        in English (every string falls back), never half in a stale language.
        """
        wanted = normalise_language(language)
        app = QCoreApplication.instance()
        for installed_translator in (self._translator, self._plugins):
            if installed_translator is not None and app is not None:
                app.removeTranslator(installed_translator)
        self._translator = self._plugins = None
        self.language = DEFAULT_LANGUAGE
        if wanted == DEFAULT_LANGUAGE or app is None:
            return self.language
        translator = QTranslator()
        if translator.load(str(self.catalogue(wanted))) and app.installTranslator(translator):
            self._translator = translator
            self.language = wanted
            try:
                plugins = PluginCatalogues(self.plugin_catalogues(wanted))
            except Exception as exc:  # a plugin's bad catalogue costs its words, never the window's
                log.warning("plugin catalogues for %s not loaded: %s", wanted, exc)
            else:
                if not plugins.isEmpty() and app.installTranslator(plugins):
                    self._plugins = plugins
        return self.language


_TRANSLATIONS = Translations()


def use_language(language: str | None) -> str:
    """Switch the process's window language (see ``Translations.use``)."""
    return _TRANSLATIONS.use(language)


def current_language() -> str:
    """The language the window speaks now."""
    return _TRANSLATIONS.language


def station_font_family() -> str | None:
    """The installed CJK font family the window draws with, loading a known font file if needed.

    Returns None when no CJK font can be found (Korean text would then show as boxes; the
    window still works in English).
    """
    families = set(QFontDatabase.families())
    for family in CJK_FAMILIES:
        if family in families:
            return family
    candidates = [os.environ.get("MES_STATION_UI_FONT", ""), *CJK_FONT_FILES]
    for path in candidates:
        if not path or not Path(path).is_file():
            continue
        font_id = QFontDatabase.addApplicationFont(path)
        loaded = QFontDatabase.applicationFontFamilies(font_id) if font_id >= 0 else []
        for family in CJK_FAMILIES:
            if family in loaded:
                return family
        if loaded:
            return loaded[0]
    return None


class WorkerLanguages:
    """The language each worker last chose at this station (the switch), kept across logins.

    A JSON object ``{"username": "ko"}`` in ``path`` (the station's work folder, written whole
    and replaced, so a crash leaves the old file); in memory only when ``path`` is None. A file
    that cannot be read or written costs only the preference, never the login.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._chosen: dict[str, str] = {}
        if path is not None:
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                loaded = {}
            if isinstance(loaded, dict):
                self._chosen = {str(k): normalise_language(str(v)) for k, v in loaded.items()}

    def get(self, worker: str | None) -> str | None:
        return self._chosen.get(worker) if worker else None

    def remember(self, worker: str | None, language: str) -> None:
        if not worker:
            return
        self._chosen[worker] = normalise_language(language)
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(json.dumps(self._chosen, ensure_ascii=False, indent=1), encoding="utf-8")
            os.replace(temporary, self.path)
        except OSError as exc:
            log.warning("could not keep the workers' languages in %s: %s", self.path, exc)
