"""The dashboard's build assets are served precompressed (brotli, gzip) by the kernel when the client accepts it."""

from __future__ import annotations

import gzip
from pathlib import Path

import brotli
import pytest

import mes_kernel.app as kernel_app

pytestmark = pytest.mark.sqlite_only  # static serving does not touch the database

SCRIPT = ("export function lotNumber(n) { return `LOT-${n}`; }\n" * 400).encode()
STYLE = b"body { color: #212121; }\n"


@pytest.fixture
def web_dist(tmp_path, monkeypatch) -> Path:
    """A dashboard build as `npm run build` leaves it: a hashed script with .br and .gz twins, a small stylesheet."""
    dist = tmp_path / "web"
    assets = dist / "assets"
    assets.mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>NeuroHub MES</title>")
    (assets / "index-abc123.js").write_bytes(SCRIPT)
    (assets / "index-abc123.js.br").write_bytes(brotli.compress(SCRIPT))
    (assets / "index-abc123.js.gz").write_bytes(gzip.compress(SCRIPT))
    (assets / "index-abc123.css").write_bytes(STYLE)  # below the build's threshold: no twins
    monkeypatch.setattr(kernel_app, "WEB_DIST", dist)
    return dist


@pytest.fixture
def app(settings, web_dist):
    return kernel_app.create_app(settings)


async def raw_get(client, path: str, accept_encoding: str | None):
    """The body as sent on the wire (httpx would otherwise decode it)."""
    headers = {"Accept-Encoding": accept_encoding} if accept_encoding is not None else {"Accept-Encoding": "identity"}
    async with client.stream("GET", path, headers=headers) as response:
        body = b"".join([chunk async for chunk in response.aiter_raw()])
    return response, body


async def test_brotli_is_served_when_accepted(client):
    response, body = await raw_get(client, "/assets/index-abc123.js", "gzip, deflate, br, zstd")
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "br"
    assert response.headers["vary"] == "Accept-Encoding"
    assert response.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert int(response.headers["content-length"]) == len(body) < len(SCRIPT) / 10
    assert brotli.decompress(body) == SCRIPT
    assert "immutable" in response.headers["cache-control"]


async def test_gzip_is_served_to_a_client_without_brotli(client):
    response, body = await raw_get(client, "/assets/index-abc123.js", "gzip")
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["vary"] == "Accept-Encoding"
    assert gzip.decompress(body) == SCRIPT


async def test_a_coding_refused_with_q_zero_is_not_used(client):
    response, body = await raw_get(client, "/assets/index-abc123.js", "br;q=0, gzip;q=0.5")
    assert response.headers["content-encoding"] == "gzip"
    assert gzip.decompress(body) == SCRIPT


async def test_identity_when_nothing_is_accepted(client):
    response, body = await raw_get(client, "/assets/index-abc123.js", None)
    assert "content-encoding" not in response.headers
    assert response.headers["vary"] == "Accept-Encoding"  # a cache must not hand this copy to a brotli client
    assert body == SCRIPT


async def test_an_asset_without_twins_is_served_as_is(client):
    response, body = await raw_get(client, "/assets/index-abc123.css", "br, gzip")
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert body == STYLE


async def test_a_missing_asset_is_404_with_or_without_encoding(client):
    response, _ = await raw_get(client, "/assets/nothing.js", "br")
    assert response.status_code == 404
    response, _ = await raw_get(client, "/assets/index-abc123.js.br.br", "br")
    assert response.status_code == 404


def test_the_real_build_ships_brotli_and_gzip_twins():
    """When the dashboard is built (`make setup`), each script and stylesheet of size has both twins, exact."""
    assets = Path(kernel_app.__file__).parent / "static" / "web" / "assets"
    scripts = [p for p in assets.glob("*.js")] if assets.is_dir() else []
    if not scripts:
        pytest.skip("the dashboard is not built here (no npm): scripts/build-web.sh")
    big = [p for p in [*scripts, *assets.glob("*.css")] if p.stat().st_size >= 1024]
    assert big
    for asset in big:
        original = asset.read_bytes()
        assert brotli.decompress(asset.with_name(asset.name + ".br").read_bytes()) == original, asset.name
        assert gzip.decompress(asset.with_name(asset.name + ".gz").read_bytes()) == original, asset.name
