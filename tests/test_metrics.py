"""Prometheus metrics: request counts by full route template, health and plugin states."""

import contextlib
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
    assert re.search(
        r'http_request_duration_seconds_bucket\{le="0.5",method="GET",route="/api/v1/lots/\{lot_number\}"', after
    )


async def test_metrics_report_health_and_plugin_states(client, admin_headers):
    await client.get("/api/v1/health", headers=admin_headers)
    text = (await client.get("/metrics")).text
    assert 'health_check_total{status="' in text
    assert 'mes_health_check_state{check="kernel.database"} 0.0' in text
    assert "mes_plugin_loaded{" in text and "mes_db_pool_connections{" in text


async def test_world_gauges_are_read_at_scrape_time_without_anyone_opening_health(client, kernel, station_headers):
    """A station silent for 135 s is 135 s old in /metrics though nobody called /health; a breaker's
    state and the open alerts come from the shared truth too."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from mes_kernel.db.models import Alert, Station

    async with kernel.sessionmaker() as session:
        await session.execute(
            update(Station)
            .where(Station.code == "ST-01")
            .values(last_heartbeat_at=datetime.now(UTC) - timedelta(seconds=135))
        )
        session.add(Alert(key="test:open", severity="warning", source="test", message="m", detail={}))
        await session.commit()
    text = (await client.get("/metrics")).text
    age = sample(text, 'mes_station_heartbeat_age_seconds{station="ST-01"}')
    assert 135 <= age < 135 + 60, text[-2000:]
    assert sample(text, 'mes_alerts_open{severity="warning"}') == 1
    assert sample(text, 'mes_world_source_up{source="database"}') == 1

    name, cfg = next(iter(kernel.breakers.configs.items()))
    assert sample(text, f'mes_breaker_state{{breaker="{name}"}}') == 0
    failure = cfg.expected_exceptions[0] if isinstance(cfg.expected_exceptions, tuple) else cfg.expected_exceptions

    async def fails():
        raise failure("device away")

    for _ in range(cfg.failure_threshold):
        with contextlib.suppress(failure):
            await kernel.breakers.call(name, None, fails)
    assert sample((await client.get("/metrics")).text, f'mes_breaker_state{{breaker="{name}"}}') == 2
    await kernel.breakers.reset(name)  # recovered: the metric follows the store, not the last transition seen
    assert sample((await client.get("/metrics")).text, f'mes_breaker_state{{breaker="{name}"}}') == 0
