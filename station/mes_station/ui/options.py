"""Settings of the desktop window (language, defect codes, label template, poll intervals)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_DEFECT_CODES = ("SOLDER", "SCRATCH", "MISSING_PART", "FUNCTIONAL", "LABEL", "OTHER")


@dataclass(frozen=True)
class UiOptions:
    """What the window needs beyond the agent; read from the station config's ``[ui]`` table.

    ``label_fields`` are fixed fields added to every label, for what the line's product
    master data would give (``gtin = "09506000134352"``); a scanned value wins over them.
    ``defect_codes`` are the FAIL buttons when the agent has no defect list for the process.
    ``language`` is the station's language (``en``, ``ko``); a worker's own (from the login
    answer) or the window's switch overrides it until logout. ``banner_ms`` is how long the
    result banner stays after a save.
    """

    defect_codes: tuple[str, ...] = DEFAULT_DEFECT_CODES
    label_template: str = "unit_label"
    lot_label_template: str = "lot_label"
    label_fields: tuple[tuple[str, str], ...] = ()
    firmware_image_id: str = ""
    status_poll_ms: int = 1000
    flash_poll_ms: int = 500
    flash_max_poll_errors: int = 5
    language: str = "en"
    banner_ms: int = 4000

    @classmethod
    def from_mapping(cls, raw: dict[str, Any] | None) -> UiOptions:
        """Build from a config mapping; unknown keys are ignored, missing ones keep defaults."""
        raw = dict(raw or {})
        values: dict[str, Any] = {}
        if "defect_codes" in raw:
            values["defect_codes"] = tuple(str(code) for code in raw["defect_codes"])
        if "label_fields" in raw:
            values["label_fields"] = tuple((str(k), str(v)) for k, v in dict(raw["label_fields"]).items())
        for key in ("label_template", "lot_label_template", "firmware_image_id", "language"):
            if key in raw:
                values[key] = str(raw[key])
        for key in ("status_poll_ms", "flash_poll_ms", "flash_max_poll_errors", "banner_ms"):
            if key in raw:
                values[key] = int(raw[key])
        return cls(**values)
