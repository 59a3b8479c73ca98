"""NeuroHub MES station agent: the offline-first worker PC."""

from mes_station.errors import OfflineError, OutboxFullError, ServerError, StationError

__version__ = "0.1.0"

__all__ = ["OfflineError", "OutboxFullError", "ServerError", "StationError", "__version__"]
