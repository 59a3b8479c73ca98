"""The firmware-uploader simulator service: a real HTTP server with injectable faults."""

from .app import FAULTS, UploaderState, create_app
from .server import SimulatorServer, ThreadedServer

__all__ = ["FAULTS", "SimulatorServer", "ThreadedServer", "UploaderState", "create_app"]
