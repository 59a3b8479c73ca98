"""Uploader drivers: the base class and the bundled ``http_uploader`` and ``simulator`` drivers."""

from .base import FirmwareImage, FirmwareUploaderDriver, FlashFailed, FlashOutcome, ProgressCallback

__all__ = ["FirmwareImage", "FirmwareUploaderDriver", "FlashFailed", "FlashOutcome", "ProgressCallback"]
