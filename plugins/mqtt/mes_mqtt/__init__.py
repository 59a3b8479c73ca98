"""MQTT connector plugin: machines publishing JSON on topics (wildcards allowed), mapped by JSON
pointer to states, part counts and process values of the kernel's machine-data contract; QoS 1 in a
persistent session, acknowledged only once stored."""

DEVICE_KIND = "mqtt"
DRIVER_NAMESPACE = "mes.drivers.mqtt"
PLUGIN = "mqtt"
__version__ = "0.1.0"
