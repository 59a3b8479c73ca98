"""The Modbus machine simulator (a pymodbus server) and a pty serial line for RTU tests."""

from .machine import ESTOP, IDLE, JAM, RUNNING, MachineSimulator, PtyLink, device_config

__all__ = ["ESTOP", "IDLE", "JAM", "RUNNING", "MachineSimulator", "PtyLink", "device_config"]
