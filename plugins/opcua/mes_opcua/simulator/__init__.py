"""The OPC UA machine simulator (``mes-opcua-sim``)."""

from .machine import ESTOP, IDLE, JAM, RUNNING, MachineSimulator, Security, device_config, run_in_thread

__all__ = ["ESTOP", "IDLE", "JAM", "RUNNING", "MachineSimulator", "Security", "device_config", "run_in_thread"]
