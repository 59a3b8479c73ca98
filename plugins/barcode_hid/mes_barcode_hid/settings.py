"""Server-side settings of the barcode plugin, from ``MES_BARCODE_*`` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .parsing import DEFAULT_LOT_PATTERNS, DEFAULT_SERIAL_PATTERNS, ParserConfig


class BarcodeSettings(BaseSettings):
    """``MES_BARCODE_SERIAL_PATTERNS='["SN-\\\\d{6}"]'``, ``MES_BARCODE_LOT_PATTERNS``, …"""

    model_config = SettingsConfigDict(env_prefix="MES_BARCODE_", env_file=".env", extra="ignore")

    serial_patterns: list[str] = Field(default_factory=lambda: list(DEFAULT_SERIAL_PATTERNS))
    lot_patterns: list[str] = Field(default_factory=lambda: list(DEFAULT_LOT_PATTERNS))
    gs1_bare: bool = True
    gs_substitute: str | None = None
    record_scans: bool = Field(True, description="write each lookup of a unit/LOT as a 'scan' device action")
    breaker_failures: int = 5
    breaker_recovery_seconds: float = 30.0

    def parser_config(self) -> ParserConfig:
        return ParserConfig(
            serial_patterns=tuple(self.serial_patterns),
            lot_patterns=tuple(self.lot_patterns),
            gs1_bare=self.gs1_bare,
            gs_substitute=self.gs_substitute or None,
        )
