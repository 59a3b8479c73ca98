"""Label-printer drivers, registered in the ``mes.drivers.label_printer`` stevedore namespace."""

from .base import (
    LabelPrinterDriver,
    PrinterConnectionError,
    PrinterError,
    PrinterNotReady,
    PrinterTimeout,
)

__all__ = [
    "LabelPrinterDriver",
    "PrinterConnectionError",
    "PrinterError",
    "PrinterNotReady",
    "PrinterTimeout",
]
