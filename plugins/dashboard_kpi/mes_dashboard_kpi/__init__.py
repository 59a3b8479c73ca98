"""Production KPIs for managers: LOT status, yield, defects, throughput, devices and alerts."""

__version__ = "0.1.0"
