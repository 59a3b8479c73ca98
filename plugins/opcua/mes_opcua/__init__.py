"""OPC UA connector plugin: machines' states, part counts and process values through data-change
subscriptions, fed into the kernel's machine-data contract; a write route; a simulator."""

DEVICE_KIND = "opcua"
DRIVER_NAMESPACE = "mes.drivers.opcua"
PLUGIN = "opcua"
__version__ = "0.1.0"
