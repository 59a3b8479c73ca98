"""NeuroHub MES kernel: FastAPI service, LOT persistence, audit trail and the plugin manager."""

import pluggy

from .contracts import KERNEL_API_VERSION

__version__ = "0.1.0"
__all__ = ["KERNEL_API_VERSION", "__version__", "hookimpl"]

hookimpl = pluggy.HookimplMarker("mes_kernel")
