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


def test_a_driver_installed_while_the_process_runs_loads_without_a_restart(tmp_path):
    """A station told its driver is missing gets it with ``pip install``; the running agent's next load
    must find it. stevedore keeps the entry points it read for the life of the process, so a lookup
    that went through it kept answering NoMatches until a restart."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import importlib, pathlib, sys
        site = pathlib.Path({str(tmp_path)!r})
        sys.path.insert(0, str(site))
        from mes_kernel.drivers import DriverLoadError, load_driver
        load_driver("mes.drivers.label_printer", "simulator", printer_id="late-test")  # warms stevedore
        try:
            load_driver("mes.drivers.late_kind", "late")
        except DriverLoadError:
            pass
        else:
            raise SystemExit("found before it was installed")
        # what pip install writes: the module and its distribution's metadata with the entry point
        module = "class Late:\\n    version = '1'\\n    def __init__(self, x=0):\\n        self.x = x\\n"
        (site / "late_driver_mod.py").write_text(module)
        dist = site / "late_driver-1.0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text("Metadata-Version: 2.1\\nName: late-driver\\nVersion: 1.0\\n")
        (dist / "entry_points.txt").write_text("[mes.drivers.late_kind]\\nlate = late_driver_mod:Late\\n")
        importlib.invalidate_caches()
        print(load_driver("mes.drivers.late_kind", "late", x=3).x)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip().endswith("3"), out.stdout + out.stderr
