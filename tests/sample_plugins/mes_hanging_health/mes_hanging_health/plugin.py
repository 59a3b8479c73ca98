"""Its health check waits forever, like a device that never answers."""

import asyncio

from mes_kernel import hookimpl
from mes_kernel.contracts import HealthCheck

MES_KERNEL_API = ">=1.0"


@hookimpl
def mes_register_health_checks(kernel):
    async def hangs():
        await asyncio.Event().wait()

    return [HealthCheck("stuck_device", hangs, timeout=0.5)]
