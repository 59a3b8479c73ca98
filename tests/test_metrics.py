"""Prometheus metrics: request counts by full route template, health and plugin states."""

import re

LOT_200 = 'http_requests_total{method="GET",route="/api/v1/lots/{lot_number}",status="200"}'
LOT_404 = 'http_requests_total{method="GET",route="/api/v1/lots/{lot_number}",status="404"}'


def sample(text: str, series: str) -> float:
    """The value of one series in Prometheus text; 0 when absent (counters are process-wide)."""
    match = re.search(re.escape(series) + r" (\S+)", text)
    return float(match.group(1)) if match else 0.0


async def test_metrics_count_requests_by_full_route_template(client, admin_headers, make_lot):
    lot = await make_lot()
    before = (await client.get("/metrics")).text
    for _ in range(3):
        assert (await client.get(f"/api/v1/lots/{lot['lot_number']}", headers=admin_headers)).status_code == 200
    assert (await client.get("/api/v1/lots/NOPE", headers=admin_headers)).status_code == 404
    after = (await client.get("/metrics")).text
    assert sample(after, LOT_200) - sample(before, LOT_200) == 3
    assert sample(after, LOT_404) - sample(before, LOT_404) == 1
    assert re.search(r'http_request_duration_seconds_bucket\{le="0.5",method="GET",route="/api/v1/lots/\{lot_number\}"',
                     after)


async def test_metrics_report_health_and_plugin_states(client, admin_headers):
    await client.get("/api/v1/health", headers=admin_headers)
    text = (await client.get("/metrics")).text
    assert 'health_check_total{status="' in text
    assert 'mes_health_check_state{check="kernel.database"} 0.0' in text
    assert "mes_plugin_loaded{" in text and "mes_db_pool_connections{" in text
