"""Settings of the desktop window (defect codes, label template, poll intervals)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_DEFECT_CODES = ("SOLDER", "SCRATCH", "MISSING_PART", "FUNCTIONAL", "LABEL", "OTHER")


@dataclass(frozen=True)
class UiOptions:
    """What the window needs beyond the agent; read from the station config's ``[ui]`` table."""

    defect_codes: tuple[str, ...] = DEFAULT_DEFECT_CODES
    label_template: str = "unit_label"
    firmware_image_id: str = ""
    status_poll_ms: int = 1000
    flash_poll_ms: int = 500
    flash_max_poll_errors: int = 5

    @classmethod
    def from_mapping(cls, raw: dict[str, Any] | None) -> UiOptions:
        """Build from a config mapping; unknown keys are ignored, missing ones keep defaults."""
        raw = dict(raw or {})
        values: dict[str, Any] = {}
        if "defect_codes" in raw:
            values["defect_codes"] = tuple(str(code) for code in raw["defect_codes"])
        for key in ("label_template", "firmware_image_id"):
            if key in raw:
                values[key] = str(raw[key])
        for key in ("status_poll_ms", "flash_poll_ms", "flash_max_poll_errors"):
            if key in raw:
                values[key] = int(raw[key])
        return cls(**values)
