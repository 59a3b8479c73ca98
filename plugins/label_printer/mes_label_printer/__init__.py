"""NeuroHub MES label-printer plugin: templates, print jobs, ZPL printer drivers and simulators."""

from importlib import metadata

try:
    __version__ = metadata.version("mes-label-printer")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

PLUGIN_NAME = "label_printer"
DEVICE_KIND = "label_printer"
DRIVER_NAMESPACE = "mes.drivers.label_printer"
