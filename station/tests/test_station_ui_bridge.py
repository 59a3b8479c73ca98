"""Pins the asyncio–Qt bridge: agent calls on the agent thread, answers on the GUI thread."""

from __future__ import annotations

import asyncio
import threading

import pytest
from mes_station.ui.bridge import AgentBridge
from mes_station.ui.testing import FakeAgent, offscreen_app, wait_until
from PySide6.QtTest import QTest

app = offscreen_app()


@pytest.fixture
def bridge():
    bridge = AgentBridge(FakeAgent())
    bridge.start()
    yield bridge
    bridge.stop()


def test_sync_and_async_calls_run_on_the_agent_thread_and_report_on_the_gui_thread(bridge):
    seen: list[tuple[str, str]] = []

    def sync_call() -> str:
        return threading.current_thread().name

    async def async_call() -> str:
        await asyncio.sleep(0.01)
        return threading.current_thread().name

    for fn in (sync_call, async_call):
        bridge.submit(fn, on_result=lambda ran_on: seen.append((ran_on, threading.current_thread().name)))
    wait_until(lambda: len(seen) == 2, message="both answers")
    main = threading.main_thread().name
    assert seen == [("mes-station-agent", main), ("mes-station-agent", main)]


def test_callbacks_never_run_inside_submit(bridge):
    answers: list[int] = []
    bridge.submit(lambda: 7, on_result=answers.append)
    assert answers == []  # queued, even for an instant answer
    wait_until(lambda: answers == [7])


def test_an_exception_reaches_on_error_as_raised(bridge):
    errors: list[BaseException] = []
    boom = ValueError("no such LOT")

    async def failing() -> None:
        raise boom

    bridge.submit(failing, on_result=lambda _: pytest.fail("no result"), on_error=errors.append)
    wait_until(lambda: errors)
    assert errors == [boom]


def test_agent_events_arrive_on_the_gui_thread(bridge):
    got: list[tuple[str, object, str]] = []
    bridge.agent_event.connect(
        lambda kind, payload: got.append((kind, payload, threading.current_thread().name))
    )
    worker = threading.Thread(target=bridge.agent.emit, args=("scan", {"code": "SN-1"}))
    worker.start()
    worker.join()
    wait_until(lambda: got)
    assert got == [("scan", {"code": "SN-1"}, threading.main_thread().name)]


def test_stop_cancels_pending_calls_and_refuses_new_ones():
    agent = FakeAgent()
    bridge = AgentBridge(agent)
    bridge.start()
    assert agent.started
    errors: list[BaseException] = []
    bridge.submit(asyncio.sleep, 60, on_error=errors.append)
    QTest.qWait(20)
    bridge.stop()
    assert not agent.started
    assert not bridge.loop_thread.is_alive()
    wait_until(lambda: errors, message="the cancelled call's error")
    assert "shutting down" in str(errors[0])
    late: list[BaseException] = []
    bridge.submit(lambda: None, on_error=late.append)
    assert "not running" in str(late[0])
