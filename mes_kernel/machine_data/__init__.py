"""Machine data from connector plugins (OPC UA, Modbus, MQTT …): the protocol-neutral mapping,
per-device sinks, the batched writer, health and leases. The public names are re-exported by
:mod:`mes_kernel.contracts`; see ``docs/machine-data.md``."""

from .mapping import (
    MACHINE_STATES,
    MachineMapping,
    MappingError,
    Signal,
    counter_increment,
    from_float32,
    raw_key,
)

__all__ = [
    "MACHINE_STATES",
    "MachineDataHub",
    "MachineMapping",
    "MachineSink",
    "MappingError",
    "Signal",
    "counter_increment",
    "from_float32",
    "raw_key",
]


def __getattr__(name: str):
    # the hub and sink need the server's stack (SQLAlchemy, prometheus): imported on first use only
    if name == "MachineDataHub":
        from .hub import MachineDataHub

        return MachineDataHub
    if name == "MachineSink":
        from .sink import MachineSink

        return MachineSink
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
