"""A device whose configured driver cannot start answers a coded 503, never a 500."""

from __future__ import annotations

import pytest
from fastapi import APIRouter

from mes_kernel import hookimpl


class BrokenDriverPlugin:
    """A plugin route that loads a driver the way the plugin guide shows, for a driver that is not there."""

    MES_KERNEL_API = ">=1.0,<2"
    name = "BrokenDriverPlugin"

    def __init__(self):
        self.router = APIRouter(prefix="/broken", tags=["broken"])
        self.kernel = None

        @self.router.post("/read")
        async def read():
            meter = self.kernel.load_driver("mes.drivers.no_such_kind", "no_such_driver", value="abc")
            return {"value": meter.read()}

    @hookimpl
    def mes_register_routers(self, kernel):
        self.kernel = kernel
        return [self.router]


@pytest.mark.mes_plugins(BrokenDriverPlugin())
async def test_a_driver_that_cannot_load_is_503_driver_unavailable_naming_it(client, admin_headers):
    r = await client.post("/api/v1/broken/read", headers=admin_headers)
    assert r.status_code == 503, r.text
    detail = r.json()["detail"]
    assert detail["code"] == "DRIVER_UNAVAILABLE"
    assert detail["driver"] == "no_such_driver" and detail["namespace"] == "mes.drivers.no_such_kind"
    assert r.headers["retry-after"] == "30"
