"""NeuroHub MES barcode-scanner plugin: scanner drivers, scan parsing and the scan-lookup route."""

from __future__ import annotations

__version__ = "0.1.0"

NAMESPACE = "mes.drivers.barcode_scanner"
"""The stevedore namespace of scanner drivers (``load_driver(NAMESPACE, "serial", ...)``)."""

PLUGIN_NAME = "barcode_hid"
