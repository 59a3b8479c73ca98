"""The worker's desktop window: a thin PySide6 window over the station agent."""

from mes_station.ui.protocol import AgentLike

__all__ = ["AgentLike"]
