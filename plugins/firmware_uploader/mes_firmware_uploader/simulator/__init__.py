"""The firmware-uploader simulator service: a real HTTP server with injectable faults."""

from .app import FAULTS, UploaderState, create_app
from .server import SimulatorServer

__all__ = ["FAULTS", "SimulatorServer", "UploaderState", "create_app"]
