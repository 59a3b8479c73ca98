"""NeuroHub MES firmware-uploader plugin: image registry, flash jobs, uploader drivers."""

__version__ = "0.1.0"

PLUGIN_NAME = "firmware_uploader"
DEVICE_KIND = "firmware_uploader"
DRIVER_NAMESPACE = "mes.drivers.firmware_uploader"
BREAKER_NAME = "firmware_uploader"
