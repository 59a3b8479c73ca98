"""``/docs`` and ``/redoc`` render in a real Chromium with no network beyond this machine: their
scripts come from an installed package, not a CDN, and the kernel's CSP lets them run."""

from __future__ import annotations

import asyncio
import shutil

import pytest
from live_server import served_fixture  # noqa: F401  (the `served` fixture)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.skipif(not CHROMIUM, reason="needs chromium"), pytest.mark.slow]


async def _dump_dom(url: str, profile) -> str:
    """The page's DOM after its scripts ran, with every host name but the loopback unresolvable."""
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        "--virtual-time-budget=20000",
        "--dump-dom",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    return out.decode("utf-8", "replace")


@pytest.mark.sqlite_only
async def test_docs_and_redoc_render_offline(served, client, tmp_path):
    page = (await client.get("/docs")).text
    assert "cdn" not in page.lower() and "/docs-assets/swagger-ui-bundle.js" in page
    swagger = await _dump_dom(f"{served}/docs", tmp_path / "p1")
    assert "opblock-tag" in swagger, swagger[:2000]  # Swagger UI drew the operations, grouped by tag
    assert "NeuroHub MES" in swagger

    page = (await client.get("/redoc")).text
    assert "cdn" not in page.lower() and "fonts.googleapis" not in page
    redoc = await _dump_dom(f"{served}/redoc", tmp_path / "p2")
    assert "Create a LOT" in redoc, redoc[:2000]  # ReDoc fetched /openapi.json and drew the operations


async def test_docs_assets_are_served_by_the_kernel(client):
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        r = await client.get(f"/docs-assets/{asset}")
        assert r.status_code == 200 and len(r.content) > 10_000, asset
