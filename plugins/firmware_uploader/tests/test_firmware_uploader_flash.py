"""Flashing through the kernel's API to the simulator service on a real socket: checks, jobs, breaker, history."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import select

from mes_kernel.db.models import StoredFile
from mes_kernel.testing.helpers import uncoded_reasons

FLASH = "/api/v1/firmware/upload"


@pytest.fixture
async def line(make_lot, upload_image, add_uploader, uploader_service):
    """A WIDGET LOT with two units, a WIDGET image, and uploader UPL-01 on the simulator service."""
    lot = await make_lot(product="WIDGET", units=2)
    image = (await upload_image("WIDGET", "1.4.0")).json()
    await add_uploader("UPL-01", uploader_service.url)
    return {"lot": lot, "serials": lot["serial_numbers"], "image": image, "service": uploader_service}


def _order(line, serial=None, **extra):
    """A flash request; each call a new operator's request (a fresh idempotency key) unless one is given."""
    return {"serial_number": serial or line["serials"][0], "image_id": line["image"]["id"], "device": "UPL-01",
            "idempotency_key": str(uuid.uuid4()), **extra}


def _keyed(order: dict) -> dict:
    """``order`` as a new request (its own idempotency key)."""
    return {**order, "idempotency_key": str(uuid.uuid4())}


def _flashes(service) -> list[dict]:
    return httpx.get(f"{service.url}/flashes").json()["flashes"]


async def test_flash_end_to_end_through_the_uploader_service(client, worker_headers, line):
    r = await client.post(FLASH, json=_order(line, idempotency_key="k-1", operator="kim"), headers=worker_headers)
    assert r.status_code == 201, r.text
    job = r.json()
    assert (job["status"], job["progress"], job["replayed"]) == ("done", 100, False)
    assert job["image"]["sha256"] == line["image"]["sha256"]
    assert job["result"]["device_sha256"] == line["image"]["sha256"]
    [flash] = _flashes(line["service"])
    assert (flash["serial"], flash["sha256"], flash["status"]) == (line["serials"][0], line["image"]["sha256"], "done")
    r = await client.get(f"/api/v1/firmware/jobs/{job['id']}", headers=worker_headers)
    assert r.json()["status"] == "done" and r.json()["result"]["flash_id"] == flash["flash_id"]


async def test_unit_history_shows_the_flash(client, worker_headers, line):
    await client.post(FLASH, json=_order(line, operator="kim"), headers=worker_headers)
    r = await client.get(f"/api/v1/units/{line['serials'][0]}/history", headers=worker_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    events = body["events"] if isinstance(body, dict) else body
    [action] = [e for e in events if e["type"] == "device_action"]
    data = action["data"]
    assert (data["action"], data["plugin"], data["device"], data["driver"]) == (
        "flash",
        "firmware_uploader",
        "UPL-01",
        "http_uploader",
    )
    assert data["outcome"] == "ok" and data["actor"] == "user:worker" and data["driver_version"]
    detail = data["detail"]
    assert detail["image_id"] == line["image"]["id"] and detail["sha256"] == line["image"]["sha256"]
    assert (detail["product"], detail["version"], detail["operator"]) == ("WIDGET", "1.4.0", "kim")


async def test_station_flash_records_the_station(client, station_headers, line, add_uploader):
    await add_uploader("UPL-ST01", line["service"].url, station="ST-01")
    r = await client.post(FLASH, json=_order(line, device="UPL-ST01"), headers=station_headers)
    assert r.status_code == 201, r.text
    assert r.json()["created_by"] == "station:ST-01"
    r = await client.get(f"/api/v1/units/{line['serials'][0]}/history", headers=station_headers)
    body = r.json()
    events = body["events"] if isinstance(body, dict) else body
    [action] = [e for e in events if e["type"] == "device_action"]
    assert action["data"]["station_id"] is not None and action["data"]["detail"]["operator"] == "ST-01"


async def test_a_station_cannot_flash_through_an_uploader_that_is_not_its_own(
    client, station_headers, worker_headers, line
):
    # UPL-01 belongs to no station and no line: the plant's, not ST-01's
    r = await client.post(FLASH, json=_order(line, idempotency_key="st-other"), headers=station_headers)
    assert r.status_code == 403, r.text
    assert r.json()["detail"]["code"] == "DEVICE_NOT_ON_STATION"
    assert _flashes(line["service"]) == []
    r = await client.post(FLASH, json=_order(line, idempotency_key="worker-any"), headers=worker_headers)
    assert r.status_code == 201, r.text  # a person keeps the rights of their role


async def test_same_idempotency_key_never_flashes_twice(client, worker_headers, line):
    first = await client.post(FLASH, json=_order(line, idempotency_key="once"), headers=worker_headers)
    again = await client.post(FLASH, json=_order(line, idempotency_key="once"), headers=worker_headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"] and again.json()["replayed"] is True
    assert len(_flashes(line["service"])) == 1
    other = await client.post(
        FLASH, json=_order(line, line["serials"][1], idempotency_key="once"), headers=worker_headers
    )
    assert other.status_code == 409 and other.json()["detail"]["code"] == "IDEMPOTENCY_KEY_REUSED"


async def test_concurrent_flashes_with_one_key_flash_once(client, worker_headers, line):
    import asyncio

    answers = await asyncio.gather(
        *(client.post(FLASH, json=_order(line, idempotency_key="race"), headers=worker_headers) for _ in range(3))
    )
    statuses = sorted(r.status_code for r in answers)
    assert statuses.count(201) == 1 and set(statuses) <= {200, 201, 409}, [r.text for r in answers]
    refused = [r.json()["detail"]["code"] for r in answers if r.status_code == 409]
    assert set(refused) <= {"FLASH_IN_PROGRESS"}
    assert len(_flashes(line["service"])) == 1


async def test_a_flash_without_a_key_is_refused_and_touches_nothing(client, worker_headers, line):
    """The key is required: a client that retries a flash whose answer was lost must never flash twice."""
    order = _order(line)
    del order["idempotency_key"]
    r = await client.post(FLASH, json=order, headers=worker_headers)
    assert r.status_code == 422 and r.json()["detail"]["code"] == "VALIDATION_ERROR"
    assert any(e["loc"][-1] == "idempotency_key" for e in r.json()["detail"]["errors"])
    assert _flashes(line["service"]) == []


async def test_the_same_key_for_another_image_is_refused(client, worker_headers, line, upload_image):
    first = await client.post(FLASH, json=_order(line, idempotency_key="img"), headers=worker_headers)
    assert first.status_code == 201, first.text
    other = (await upload_image("WIDGET", "9.9.9")).json()
    r = await client.post(FLASH, json=_order(line, idempotency_key="img", image_id=other["id"]), headers=worker_headers)
    assert r.status_code == 409 and r.json()["detail"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert r.json()["detail"]["job_id"] == first.json()["id"]
    assert len(_flashes(line["service"])) == 1


async def test_image_by_product_and_version(client, worker_headers, line):
    order = {"serial_number": line["serials"][0], "product": "WIDGET", "version": "1.4.0", "device": "UPL-01"}
    r = await client.post(FLASH, json=_keyed(order), headers=worker_headers)
    assert r.status_code == 201 and r.json()["image"]["image_id"] == line["image"]["id"]


async def test_image_for_another_product_is_refused(client, worker_headers, line, upload_image):
    gadget = (await upload_image("GADGET", "1.0")).json()
    r = await client.post(FLASH, json={**_order(line), "image_id": gadget["id"]}, headers=worker_headers)
    assert r.status_code == 409
    detail = r.json()["detail"]
    assert (detail["code"], detail["image_product"], detail["lot_product"]) == ("PRODUCT_MISMATCH", "GADGET", "WIDGET")
    assert _flashes(line["service"]) == []


async def test_unit_of_a_closed_lot_is_refused(client, worker_headers, admin_headers, line):
    lot_number = line["lot"]["lot_number"]
    r = await client.patch(f"/api/v1/lots/{lot_number}", json={"status": "closed"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    r = await client.post(FLASH, json=_order(line), headers=worker_headers)
    assert r.status_code == 409 and r.json()["detail"]["code"] == "LOT_CLOSED"
    assert _flashes(line["service"]) == []


async def test_unknown_unit_device_or_image(client, worker_headers, line, add_uploader):
    r = await client.post(FLASH, json=_order(line, "NO-SUCH-SN"), headers=worker_headers)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "UNIT_NOT_FOUND"
    r = await client.post(FLASH, json={**_order(line), "device": "UPL-99"}, headers=worker_headers)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "DEVICE_NOT_FOUND"
    r = await client.post(FLASH, json={**_order(line), "image_id": 9999}, headers=worker_headers)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "IMAGE_NOT_FOUND"


async def test_tampered_image_on_disk_is_refused(client, worker_headers, line, kernel):
    async with kernel.sessionmaker() as session:
        row = await session.get(StoredFile, line["image"]["id"])
    path = kernel.files_dir / row.path
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))
    r = await client.post(FLASH, json=_order(line), headers=worker_headers)
    assert r.status_code == 409
    detail = r.json()["detail"]
    assert detail["code"] == "IMAGE_CORRUPTED" and detail["expected"] == line["image"]["sha256"]
    assert _flashes(line["service"]) == []


async def test_five_http_failures_open_the_breaker_and_recovery_closes_it(client, worker_headers, line, kernel):
    service = line["service"]
    service.set_fault("http_5xx")
    for _ in range(5):
        r = await client.post(FLASH, json=_order(line), headers=worker_headers)
        assert r.status_code == 502
        assert (r.json()["detail"]["code"], r.json()["detail"]["reason"]) == ("FLASH_FAILED", "UPLOADER_HTTP_ERROR")
    job_id = r.json()["detail"]["job_id"]
    assert (await client.get(f"/api/v1/firmware/jobs/{job_id}", headers=worker_headers)).json()["status"] == "failed"
    seen = service.state.requests

    r = await client.post(FLASH, json=_order(line), headers=worker_headers)
    assert r.status_code == 503
    assert r.json()["detail"]["code"] == "SERVICE_UNAVAILABLE" and r.json()["detail"]["retry_after"] == 60
    assert r.headers["Retry-After"] == "60"
    assert service.state.requests == seen, "an open breaker must not reach the uploader"

    service.set_fault(None)
    now = kernel.breakers.clock()
    kernel.breakers.clock = lambda: now + 60
    r = await client.post(FLASH, json=_order(line), headers=worker_headers)
    assert r.status_code == 201, r.text
    assert (await kernel.breakers.state("firmware_uploader", "UPL-01")).state == "closed"


async def test_a_failed_trial_in_half_open_reopens_the_breaker(client, worker_headers, line, kernel):
    line["service"].set_fault("http_5xx")
    for _ in range(5):
        await client.post(FLASH, json=_order(line), headers=worker_headers)
    now = kernel.breakers.clock()
    kernel.breakers.clock = lambda: now + 61
    assert (await client.post(FLASH, json=_order(line), headers=worker_headers)).status_code == 502
    assert (await client.post(FLASH, json=_order(line), headers=worker_headers)).status_code == 503


async def test_a_device_reported_failure_does_not_count_toward_the_breaker(client, worker_headers, line, kernel):
    service = line["service"]
    service.set_fault("corrupt")
    for _ in range(6):
        r = await client.post(FLASH, json=_order(line), headers=worker_headers)
        assert r.status_code == 502
        assert r.json()["detail"]["reason"] == "TRANSFER_CORRUPTED"
    state = await kernel.breakers.state("firmware_uploader", "UPL-01")
    assert (state.state, state.failures) == ("closed", 0)
    assert service.state.requests == 6


async def test_uploader_timeout_counts_as_an_http_failure(client, worker_headers, line, kernel, add_uploader):
    await add_uploader("UPL-SLOW", line["service"].url, timeout=0.2)
    line["service"].set_fault("timeout")
    r = await client.post(FLASH, json={**_order(line), "device": "UPL-SLOW"}, headers=worker_headers)
    assert r.status_code == 502 and "Timeout" in r.json()["detail"]["message"]
    assert (await kernel.breakers.state("firmware_uploader", "UPL-SLOW")).failures == 1


async def test_breakers_are_per_device(client, worker_headers, line, add_uploader, kernel):
    await add_uploader("UPL-SIM", driver="simulator", flash_seconds=0.01)
    line["service"].set_fault("http_5xx")
    for _ in range(5):
        await client.post(FLASH, json=_order(line), headers=worker_headers)
    assert (await client.post(FLASH, json=_order(line), headers=worker_headers)).status_code == 503
    r = await client.post(FLASH, json={**_order(line), "device": "UPL-SIM"}, headers=worker_headers)
    assert r.status_code == 201 and r.json()["status"] == "done"


async def test_breaker_config_is_the_spec(kernel):
    cfg = kernel.breakers.config_for("firmware_uploader")
    assert (cfg.failure_threshold, cfg.recovery_timeout) == (5, 60)
    assert cfg.expected_exceptions == (httpx.HTTPError,)


async def test_failed_then_retried_with_the_same_key_reuses_the_job(client, worker_headers, line):
    line["service"].set_fault("http_5xx", count=1)
    first = await client.post(FLASH, json=_order(line, idempotency_key="retry"), headers=worker_headers)
    assert first.status_code == 502
    again = await client.post(FLASH, json=_order(line, idempotency_key="retry"), headers=worker_headers)
    assert again.status_code == 201
    assert again.json()["id"] == first.json()["detail"]["job_id"] and again.json()["attempts"] == 2


async def test_jobs_list_and_stats_today(client, worker_headers, viewer_headers, line):
    await client.post(FLASH, json=_order(line), headers=worker_headers)
    line["service"].set_fault("corrupt", count=1)
    await client.post(FLASH, json=_order(line, line["serials"][1]), headers=worker_headers)
    r = await client.get("/api/v1/firmware/jobs", params={"serial_number": line["serials"][1]}, headers=viewer_headers)
    assert [j["status"] for j in r.json()["items"]] == ["failed"]
    stats = (await client.get("/api/v1/firmware/stats/today", headers=viewer_headers)).json()
    assert {i["outcome"]: i["count"] for i in stats["items"]} == {"ok": 1, "failed": 1, "refused": 0}
    assert stats["total"] == 2


async def test_viewer_may_not_flash(client, viewer_headers, line):
    r = await client.post(FLASH, json=_order(line), headers=viewer_headers)
    assert r.status_code == 403


async def test_devices_health_up_and_down_with_reason(client, admin_headers, line, add_uploader):
    await add_uploader("UPL-DEAD", "http://127.0.0.1:9")
    r = await client.get("/api/v1/firmware/devices", headers=admin_headers)
    devices = {d["device"]: d for d in r.json()["items"]}
    assert devices["UPL-01"]["status"] == "UP"
    assert devices["UPL-DEAD"]["status"] == "DOWN" and "unreachable" in devices["UPL-DEAD"]["reason"]
    r = await client.get("/api/v1/health", headers=admin_headers)
    check = r.json()["components"]["plugins"]["checks"]["firmware_uploader"]["checks"]["firmware_uploader.devices"]
    assert check["status"] == "DOWN" and "UPL-DEAD" in check["reason"]
    assert check["details"]["devices"]["UPL-01"]["status"] == "UP"
    # coded for the dashboard: the device's reason, and the check's listing it
    assert devices["UPL-DEAD"]["reason_code"] == "UPLOADER_UNREACHABLE"
    assert devices["UPL-DEAD"]["reason_params"]["error"].startswith("ConnectError")
    assert check["reason_code"] == "DEVICES_NOT_UP" and check["reason_params"]["problems"][0]["device"] == "UPL-DEAD"
    assert uncoded_reasons(check) == []


async def test_device_answering_but_with_an_open_breaker_is_degraded(client, admin_headers, worker_headers, line):
    line["service"].set_fault("http_5xx", count=5)
    for _ in range(5):
        await client.post(FLASH, json=_order(line), headers=worker_headers)
    [device] = (await client.get("/api/v1/firmware/devices", headers=admin_headers)).json()["items"]
    assert (device["status"], device["breaker"], device["reason"]) == ("DEGRADED", "open", "breaker open")
    assert device["reason_code"] == "DEVICE_BREAKER_OPEN"


async def test_plugin_registers_panel_and_device_kind(app, client):
    panels = {panel.id: (plugin, panel) for plugin, panel in app.state.panels}
    plugin, panel = panels["firmware_uploader.flashes_today"]
    assert plugin == "firmware_uploader" and panel.endpoint == "/api/v1/firmware/stats/today"
    assert "firmware_uploader" in app.state.device_kinds


async def test_nothing_is_recorded_for_refusals(client, worker_headers, line, kernel):
    from mes_kernel.db.models import DeviceJob

    await client.post(FLASH, json=_order(line, "NO-SUCH-SN"), headers=worker_headers)
    async with kernel.sessionmaker() as session:
        assert (await session.execute(select(DeviceJob))).scalars().all() == []


async def test_job_shows_progress_while_the_flash_runs(client, worker_headers, line):
    import asyncio

    line["service"].set_fault("slow", seconds=1.0)
    flash = asyncio.create_task(client.post(FLASH, json=_order(line), headers=worker_headers))
    seen: list[tuple[str, int]] = []
    for _ in range(100):  # bounded: at most ~2 s
        await asyncio.sleep(0.02)
        items = (await client.get("/api/v1/firmware/jobs", headers=worker_headers)).json()["items"]
        if items:
            seen.append((items[0]["status"], items[0]["progress"]))
        if flash.done():
            break
    r = await flash
    assert r.status_code == 201 and r.json()["progress"] == 100
    running = [p for status, p in seen if status == "sent"]
    assert running and any(0 < p < 100 for p in running), seen
    assert running == sorted(running)


async def test_wait_false_answers_202_and_the_job_finishes_in_the_background(client, worker_headers, line):
    import asyncio

    r = await client.post(FLASH, json=_order(line, wait=False), headers=worker_headers)
    assert r.status_code == 202 and r.json()["status"] == "sent"
    job_id = r.json()["id"]
    for _ in range(100):  # bounded: at most ~2 s
        job = (await client.get(f"/api/v1/firmware/jobs/{job_id}", headers=worker_headers)).json()
        if job["status"] != "sent":
            break
        await asyncio.sleep(0.02)
    assert (job["status"], job["progress"]) == ("done", 100)
    r = await client.get(f"/api/v1/units/{line['serials'][0]}/history", headers=worker_headers)
    body = r.json()
    events = body["events"] if isinstance(body, dict) else body
    assert [e["data"]["outcome"] for e in events if e["type"] == "device_action"] == ["ok"]


async def test_wait_false_still_refuses_at_once_while_the_breaker_is_open(client, worker_headers, line):
    line["service"].set_fault("http_5xx")
    for _ in range(5):
        await client.post(FLASH, json=_order(line), headers=worker_headers)
    r = await client.post(FLASH, json=_order(line, wait=False), headers=worker_headers)
    assert r.status_code == 503 and r.headers["Retry-After"] == "60"


async def test_an_open_breaker_refuses_without_writing_a_job(client, worker_headers, line):
    line["service"].set_fault("http_5xx")
    for _ in range(5):
        await client.post(FLASH, json=_order(line), headers=worker_headers)
    for _ in range(3):
        assert (await client.post(FLASH, json=_order(line), headers=worker_headers)).status_code == 503
    jobs = (await client.get("/api/v1/firmware/jobs", headers=worker_headers)).json()["items"]
    assert len(jobs) == 5


async def test_a_station_flashes_with_its_own_uploader_when_no_device_is_named(
    client, station_headers, worker_headers, line, add_uploader
):
    await add_uploader("UPL-ST01", line["service"].url, station="ST-01")
    order = {"serial_number": line["serials"][0], "image_id": line["image"]["id"]}
    r = await client.post(FLASH, json=_keyed(order), headers=station_headers)
    assert r.status_code == 201 and r.json()["device"] == "UPL-ST01" and r.json()["station"] == "ST-01"
    r = await client.post(FLASH, json=_keyed(order), headers=worker_headers)
    assert r.status_code == 422 and r.json()["detail"]["field"] == "device"
    r = await client.post(FLASH, json=_keyed({**order, "station_code": "ST-01"}), headers=worker_headers)
    assert r.status_code == 201 and r.json()["device"] == "UPL-ST01"
    await add_uploader("UPL-ST01-B", line["service"].url, station="ST-01")
    r = await client.post(FLASH, json=_keyed(order), headers=station_headers)
    assert r.status_code == 422 and r.json()["detail"]["code"] == "AMBIGUOUS_UPLOADER"


async def test_uploader_configured_through_a_line_with_its_breaker_override(
    client, admin_headers, worker_headers, make_lot, upload_image, uploader_service
):
    config = {
        "code": "LINE-FW",
        "breakers": {"firmware_uploader": {"failure_threshold": 2}},
        "devices": [
            {
                "code": "UPL-L1",
                "kind": "firmware_uploader",
                "driver": "http_uploader",
                "config": {"base_url": uploader_service.url, "timeout": 1.0, "poll_interval": 0.02},
            }
        ],
    }
    r = await client.put("/api/v1/lines/LINE-FW", json=config, headers=admin_headers)
    assert r.status_code in (200, 201), r.text
    lot = await make_lot(product="WIDGET", units=1)
    image = (await upload_image("WIDGET", "3.0")).json()
    order = {"serial_number": lot["serial_numbers"][0], "image_id": image["id"], "device": "UPL-L1"}
    assert (await client.post(FLASH, json=_keyed(order), headers=worker_headers)).status_code == 201
    uploader_service.set_fault("http_5xx")
    assert [(await client.post(FLASH, json=_keyed(order), headers=worker_headers)).status_code for _ in range(3)] == [
        502,
        502,
        503,
    ]
