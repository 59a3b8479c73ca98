"""Simulated Zebra-like printers for the demo and the tests: TCP 9100, a pty, an HTTP print service."""

from .core import Faults, PrinterCore
from .http_service import HttpPrintService
from .pty import PtyPrinter
from .tcp import TcpPrinter, ThreadedTcpPrinter

__all__ = ["Faults", "HttpPrintService", "PrinterCore", "PtyPrinter", "TcpPrinter", "ThreadedTcpPrinter"]
