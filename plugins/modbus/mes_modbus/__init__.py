"""Modbus connector plugin: polls machines' registers and coils over Modbus TCP or RTU (serial) and
feeds states, part counts and process values into the kernel's machine-data contract; a write route;
a pymodbus simulator."""

DEVICE_KIND = "modbus"
DRIVER_NAMESPACE = "mes.drivers.modbus"
PLUGIN = "modbus"
__version__ = "0.1.0"
