"""A third party's device kind at a station, with no change to ``station/``: the sample meter plugin
ships its station side through ``mes_station.plugins``; the agent gets the meter from the server,
loads its driver, shows its action panel and presses its button through the plugin's own route."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import tomli_w
from mes_station.agent import Agent
from mes_station.extensions import ActionError, installed
from mes_station.testing.kernel_server import REQUEST_TIMEOUT, KernelServer, start_kernel

# The end-to-end tests run against the embedded SQLite kernel. Marked so, a PostgreSQL run skips
# them before it takes a database copy (made and dropped per skipped test: seconds each under load).
pytestmark = pytest.mark.sqlite_only


@pytest.fixture
def kernel_server(third_party, settings) -> Iterator[KernelServer]:
    installed(refresh=True)  # the sample plugin was just put on the path
    kernel = start_kernel(settings)
    try:
        yield kernel
    finally:
        kernel.stop()
        installed(refresh=True)


async def test_a_new_device_kind_reaches_the_station_through_its_plugin(tmp_path: Path, kernel_server):
    kernel = kernel_server
    r = kernel.api("POST", "/stations", json={"code": "ST-09", "line": kernel.line_code})
    assert r.status_code == 201, r.text
    meters = [
        {
            "code": "MTR-ST01",
            "kind": "sample_meter",
            "driver": "fake_meter",
            "station": "ST-01",
            "config": {"value": 7.5},
        },
        {
            "code": "MTR-ST09",
            "kind": "sample_meter",
            "driver": "fake_meter",
            "station": "ST-09",
            "config": {"value": 1.0},
        },
    ]
    r = kernel.api("PUT", f"/lines/{kernel.line_code}", json={"name": "Line A", "devices": meters})
    assert r.status_code == 200, r.text

    toml = tmp_path / "station.toml"
    toml.write_text(
        tomli_w.dumps(
            {
                "server": {"url": kernel.base_url, "token": kernel.station_token, "timeout": REQUEST_TIMEOUT},
                "station": {"work_dir": str(tmp_path / "work")},
            }
        )
    )
    agent = Agent.from_config(toml)
    await agent.start()
    try:
        meter = agent.devices.devices["MTR-ST01"]
        assert meter.loaded, meter.error
        assert meter.config.role == "meter" and meter.config.kind == "sample_meter"
        assert await agent.devices.get("meter").read() == 7.5  # the driver runs at the station
        assert set(agent.devices.devices) == {"MTR-ST01"}

        [panel] = agent.action_panels()
        assert (panel["device"], panel["panel"].id) == ("MTR-ST01", "sample_meter.read")
        answer = await agent.run_action("sample_meter.read", "read", device="MTR-ST01", values={})
        assert answer == {"device": "MTR-ST01", "line": "LINE-A", "station": "ST-01", "value": 7.5}

        # a press whose answer was lost keeps its idempotency key: pressing again retries that action
        from mes_station.errors import OfflineError

        real_json, sent = agent.client.json, []

        async def answer_lost_once(method, path, **kwargs):
            if not path.startswith("/sample/meters/"):  # the agent's own background calls (cache sync, heartbeat)
                return await real_json(method, path, **kwargs)
            sent.append(kwargs.get("json") or {})
            answer = await real_json(method, path, **kwargs)
            if len(sent) == 1:
                raise OfflineError("read timed out")
            return answer

        agent.client.json = answer_lost_once
        try:
            with pytest.raises(OfflineError):
                await agent.run_action("sample_meter.read", "read", device="MTR-ST01", values={"note": "n"})
            await agent.run_action("sample_meter.read", "read", device="MTR-ST01", values={"note": "n"})
            await agent.run_action("sample_meter.read", "read", device="MTR-ST01", values={"note": "n"})
        finally:
            agent.client.json = real_json
        keys = [body["idempotency_key"] for body in sent]
        assert keys[0] == keys[1] != keys[2]  # the retry reused it; once answered, a new press is a new action
        with pytest.raises(ActionError):  # not this station's meter: no panel for it here
            await agent.run_action("sample_meter.read", "read", device="MTR-ST09", values={})
        heartbeat = await agent.heartbeat()
        assert heartbeat["config_version"] == agent.config_version
    finally:
        await agent.stop()

    # and the kernel refuses the other station's meter to this station's token, whoever builds the request
    r = httpx.post(
        f"{kernel.base_url}/api/v1/sample/meters/MTR-ST09/read",
        headers={"Authorization": f"Bearer {kernel.station_token}"},
        timeout=10,
    )
    assert r.status_code == 403 and r.json()["detail"]["code"] == "DEVICE_NOT_ON_STATION"
    kernel.make_lot("LOT-SHUT")
    kernel.set_lot_status("LOT-SHUT", "closed")
    r = httpx.post(
        f"{kernel.base_url}/api/v1/sample/meters/MTR-ST01/read?lot_number=LOT-SHUT",
        headers={"Authorization": f"Bearer {kernel.station_token}"},
        timeout=10,
    )
    assert r.status_code == 409 and r.json()["detail"]["code"] == "LOT_CLOSED"  # a plugin's action, as prints
    [station] = [s for s in kernel.api("GET", "/stations").json() if s["code"] == "ST-01"]
    assert station["heartbeat"]["devices"]["MTR-ST01"]["status"] == "up"
