"""Scanner drivers, registered by short name in the ``mes.drivers.barcode_scanner`` namespace."""

from .base import Scan, ScannerDriver, ScannerError, ScannerNotFound

__all__ = ["Scan", "ScannerDriver", "ScannerError", "ScannerNotFound"]
