"""The kernel gzips its JSON answers of 1 KB or more when the client accepts gzip, and nothing else:
small JSON, clients that do not ask (or refuse with q=0), the metrics, event streams, file downloads
and the precompressed build assets pass byte for byte as before."""

from __future__ import annotations

import gzip
import hashlib
import json
import uuid
from pathlib import Path

import brotli
import pytest
from starlette.responses import StreamingResponse

import mes_kernel.app as kernel_app

API = "/api/v1"
SCRIPT = ("export function lotNumber(n) { return `LOT-${n}`; }\n" * 400).encode()


@pytest.fixture
def web_dist(tmp_path, monkeypatch) -> Path:
    """A dashboard build: a hashed script with .br and .gz twins, and its index page."""
    dist = tmp_path / "web"
    assets = dist / "assets"
    assets.mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>NeuroHub MES</title>" + "<!-- pad -->" * 200)
    (assets / "index-abc123.js").write_bytes(SCRIPT)
    (assets / "index-abc123.js.br").write_bytes(brotli.compress(SCRIPT))
    (assets / "index-abc123.js.gz").write_bytes(gzip.compress(SCRIPT))
    monkeypatch.setattr(kernel_app, "WEB_DIST", dist)
    return dist


@pytest.fixture
def app(settings, web_dist):
    app = kernel_app.create_app(settings)

    async def events():
        async def chunks():
            for i in range(3):
                yield f"event: tick\ndata: {json.dumps({'n': i, 'pad': 'x' * 600})}\n\n".encode()

        return StreamingResponse(chunks(), media_type="text/event-stream")

    app.add_api_route("/test-events", events, include_in_schema=False)
    return app


async def raw_get(client, path: str, accept_encoding: str = "identity", headers=None):
    """The answer and its body as sent on the wire (httpx would otherwise decode it)."""
    async with client.stream("GET", path, headers={"Accept-Encoding": accept_encoding, **(headers or {})}) as r:
        body = b"".join([chunk async for chunk in r.aiter_raw()])
    return r, body


async def test_a_json_answer_is_gzip_when_asked_and_identity_when_not(client, manager_headers):
    path = f"{API}/kpi/output?bucket=hour&from=2026-01-01&to=2026-01-31&tz=UTC"  # ≈ 70 KB of JSON
    plain, plain_body = await raw_get(client, path, headers=manager_headers)
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    assert int(plain.headers["content-length"]) == len(plain_body) > 10_000
    for accept in ("gzip", "gzip, deflate, br, zstd", "br;q=1.0, gzip;q=0.8"):
        packed, body = await raw_get(client, path, accept, headers=manager_headers)
        assert packed.headers["content-encoding"] == "gzip", accept
        assert "Accept-Encoding" in packed.headers["vary"]
        assert int(packed.headers["content-length"]) == len(body) < len(plain_body) / 5
        assert json.loads(gzip.decompress(body)) == json.loads(plain_body)
        assert packed.headers["content-type"] == "application/json"
        assert packed.headers["x-content-type-options"] == "nosniff" and packed.headers["x-request-id"]
    refused, body = await raw_get(client, path, "gzip;q=0, identity", headers=manager_headers)
    assert "content-encoding" not in refused.headers and body == plain_body
    schema, body = await raw_get(client, "/openapi.json", "gzip")
    assert schema.headers["content-encoding"] == "gzip" and json.loads(gzip.decompress(body))["openapi"]


async def test_small_json_and_errors_below_a_kilobyte_stay_identity(client, manager_headers):
    r, body = await raw_get(client, f"{API}/lots", "gzip", headers=manager_headers)  # no LOT yet
    assert r.status_code == 200 and len(body) < 1024
    assert "content-encoding" not in r.headers and "items" in json.loads(body)
    r, body = await raw_get(client, f"{API}/lots", "gzip")  # 401, a small JSON error
    assert r.status_code == 401 and "content-encoding" not in r.headers and json.loads(body)["detail"]["code"]


async def test_metrics_event_streams_and_html_pass_through_untouched(client):
    r, body = await raw_get(client, "/metrics", "gzip")
    assert r.status_code == 200 and "content-encoding" not in r.headers
    assert r.headers["content-type"].startswith("text/plain") and b"# TYPE mes_breaker_state" in body
    async with client.stream("GET", "/test-events", headers={"Accept-Encoding": "gzip"}) as stream:
        assert "content-encoding" not in stream.headers
        assert stream.headers["content-type"].startswith("text/event-stream")
        chunks = [chunk async for chunk in stream.aiter_raw()]
    text = b"".join(chunks).decode()
    assert [json.loads(line[6:])["n"] for line in text.splitlines() if line.startswith("data: ")] == [0, 1, 2]
    r, body = await raw_get(client, "/", "gzip")
    assert r.status_code == 200 and "content-encoding" not in r.headers and body.startswith(b"<!doctype html>")


async def test_precompressed_assets_are_served_as_built_not_compressed_twice(client, web_dist):
    for accept, encoding, twin in (("gzip", "gzip", ".gz"), ("gzip, br", "br", ".br")):
        r, body = await raw_get(client, "/assets/index-abc123.js", accept)
        assert r.headers["content-encoding"] == encoding
        assert body == (web_dist / "assets" / f"index-abc123.js{twin}").read_bytes()
    r, body = await raw_get(client, "/assets/index-abc123.js", "identity")
    assert "content-encoding" not in r.headers and body == SCRIPT


async def test_a_json_file_download_is_sent_as_stored(client, station_headers, worker_headers):
    data = json.dumps({"ripple": list(range(2000))}).encode()  # a JSON attachment, 10 KB
    params = {
        "record_key": str(uuid.uuid4()),
        "name": "ripple.json",
        "sha256": hashlib.sha256(data).hexdigest(),
        "media_type": "application/json",
    }
    r = await client.put(
        f"{API}/completions/attachments",
        params=params,
        content=data,
        headers={**station_headers, "Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 201, r.text
    url = f"{API}/completions/attachments/{r.json()['id']}/content"
    r, body = await raw_get(client, url, "gzip", headers=worker_headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert "content-encoding" not in r.headers and body == data
    assert r.headers["content-disposition"].startswith("attachment")
    r, body = await raw_get(client, url, "gzip", headers={**worker_headers, "Range": "bytes=0-99"})
    assert r.status_code == 206 and "content-encoding" not in r.headers and body == data[:100]


@pytest.mark.parametrize("media_type", ["text/event-stream", "application/x-ndjson"])
async def test_a_streamed_answer_leaves_the_middleware_one_message_per_chunk(media_type):
    """At the ASGI level (httpx's in-process transport gathers a body): each event leaves as it came."""
    from mes_kernel.compression import JsonGzipMiddleware

    events = [f"data: {'x' * 2000}{i}\n\n".encode() for i in range(3)]

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", media_type.encode())]})
        for i, event in enumerate(events):
            await send({"type": "http.response.body", "body": event, "more_body": i < len(events) - 1})

    sent = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [(b"accept-encoding", b"gzip")]}
    await JsonGzipMiddleware(app)(scope, None, send)
    assert [m["type"] for m in sent] == ["http.response.start", *["http.response.body"] * 3]
    assert b"content-encoding" not in {k for k, _ in sent[0]["headers"]}
    assert [m["body"] for m in sent[1:]] == events
