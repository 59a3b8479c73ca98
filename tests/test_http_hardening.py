"""What every answer carries (security headers, rate headers) and the one JSON access-log line per request."""

from __future__ import annotations

import json

import httpx

from mes_kernel.app import create_app


async def test_every_answer_carries_the_security_headers(client, admin_headers):
    for path in ("/api/v1/lots", "/api/v1/health/liveness", "/metrics", "/", "/api/v1/nowhere"):
        r = await client.get(path, headers=admin_headers)
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["x-frame-options"] == "DENY", path
        assert r.headers["referrer-policy"] == "no-referrer", path
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp, path
        # WebAssembly (the label page's ZPL renderer) may compile; no eval(), no inline script
        assert "script-src 'self' 'wasm-unsafe-eval';" in csp and "'unsafe-eval'" not in csp, path
        assert "strict-transport-security" not in r.headers, path  # plain HTTP: no HSTS
        assert "server" not in r.headers, path
    docs = await client.get("/docs")
    assert "'unsafe-inline'" in docs.headers["content-security-policy"]  # Swagger UI starts from an inline script


async def test_hsts_only_when_the_request_came_over_tls(app, client):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://mes.test") as tls:
        r = await tls.get("/api/v1/health/liveness")
    assert r.headers["strict-transport-security"].startswith("max-age=31536000")


async def test_one_json_access_line_per_request(settings, kernel, capsys):
    app = create_app(settings.model_copy(update={"log_level": "INFO", "log_json": True}), load_entry_points=False)
    from mes_kernel.security import create_access_token

    token = create_access_token(subject="alice", role="viewer", uid=0, secret=settings.secret_key, minutes=5)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://mes.test") as c:
            capsys.readouterr()
            r = await c.get(
                "/api/v1/lots/LOT-LOG-1", headers={"Authorization": f"Bearer {token}", "X-Request-ID": "req-log-1"}
            )
            assert r.status_code == 404
            await c.get("/api/v1/health/liveness")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("event") == "request"]
    assert len(access) == 2, lines
    first = access[0]
    assert first["method"] == "GET" and first["route"] == "/api/v1/lots/{lot_number}"
    assert first["status"] == 404 and first["request_id"] == "req-log-1"
    assert first["principal"] == "user:alice" and first["client"] == "198.51.100.7"
    assert 0 < first["duration_ms"] < 60_000 and first["logger"] == "mes.access"
    assert access[1]["route"] == "/api/v1/health/liveness" and access[1]["principal"] is None
