"""Pins the asyncio–Qt bridge: agent calls on the agent thread, answers on the GUI thread."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time

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


class _Cycle:
    """Garbage only the cyclic collector frees (it refers to itself); says on which thread."""

    freed_on: list[str] = []

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        _Cycle.freed_on.append(threading.current_thread().name)


def test_cyclic_garbage_made_on_the_agent_thread_is_collected_on_the_gui_thread(bridge):
    # Qt objects freed by a collection on the agent thread crash PySide (collector.py); the
    # agent thread makes garbage cycles and allocates far past the collector's thresholds
    _Cycle.freed_on.clear()

    def churn() -> list[list[int]]:
        for _ in range(200):
            _Cycle()
        # container allocations, kept (handed to the GUI thread): what passes the thresholds
        return [[] for _ in range(50_000)]

    done: list[object] = []
    bridge.submit(churn, on_result=done.append)
    wait_until(lambda: done, message="the agent thread's churn")
    wait_until(lambda: len(_Cycle.freed_on) == 200, message="every cycle collected")
    assert set(_Cycle.freed_on) == {threading.main_thread().name}
    done.clear()
    bridge.stop()
    import gc

    assert gc.isenabled()  # automatic collection is back once no bridge runs


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
    bridge.add_listener(lambda kind, payload: got.append((kind, payload, threading.current_thread().name)))
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


def _true_refs_lost(body: str) -> int:
    """Run ``body`` in a fresh interpreter; how many references to ``True`` it lost.

    A subprocess, because in a long test session other objects being freed move the count too.
    """
    prologue = (
        "import gc, sys\n"
        "from mes_station.ui.testing import offscreen_app, wait_until\n"
        "app = offscreen_app()\n"
        "gc.collect(); gc.disable()\n"
        "before = sys.getrefcount(True)\n"
    )
    # os._exit skips finalisation, which a lost True would abort.
    epilogue = "print(before - sys.getrefcount(True))\nimport os; os._exit(0)\n"
    script = prologue + textwrap.dedent(body) + epilogue
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip().splitlines()[-1])


def test_pyside_signal_emit_from_python_drops_a_reference_to_true():
    # The upstream defect (PySide6 6.12, CPython 3.11) the bridge works around. When this fails,
    # PySide has fixed it and signals may carry the bridge's answers again.
    if sys.version_info >= (3, 12):
        pytest.skip("bools are immortal from CPython 3.12: nothing to lose")
    lost = _true_refs_lost(
        """
        from PySide6.QtCore import QObject, Signal
        class Emitter(QObject):
            fired = Signal(object)
        emitter = Emitter()
        emitter.fired.connect(lambda _: None)
        for _ in range(1000):
            emitter.fired.emit(None)
        """
    )
    assert lost == 1000


def test_a_thousand_bridge_calls_leave_the_refcount_of_true_alone():
    lost = _true_refs_lost(
        """
        from mes_station.ui.bridge import AgentBridge
        from mes_station.ui.testing import FakeAgent
        bridge = AgentBridge(FakeAgent())
        bridge.start()
        answers = []
        for n in range(1000):
            bridge.submit(lambda n=n: n, on_result=answers.append)
        wait_until(lambda: len(answers) == 1000)
        assert answers == list(range(1000))
        bridge.stop()
        """
    )
    assert abs(lost) < 50


def test_posted_calls_run_in_order_before_a_timer_that_fell_due_while_the_loop_was_busy(bridge):
    """The wedge feeder's keys must not lose to the driver's expiry timer on a loaded agent thread."""
    order: list[str] = []
    started = threading.Event()

    def arm_timer_then_block() -> None:
        asyncio.get_running_loop().call_later(0.01, order.append, "timer")
        started.set()
        time.sleep(0.3)  # the agent's loop is busy (a slow commit); the timer falls due meanwhile

    bridge.post(arm_timer_then_block)
    assert started.wait(30)
    for n in range(5):
        bridge.post(order.append, f"key{n}")  # the keys arrive while the loop is blocked
    wait_until(lambda: len(order) == 6, message="keys and timer")
    assert order == ["key0", "key1", "key2", "key3", "key4", "timer"]


def test_a_posted_call_that_fails_reports_on_the_gui_thread(bridge):
    errors: list[tuple[BaseException, str]] = []

    def boom() -> None:
        raise ValueError("driver refused the key")

    bridge.post(boom, on_error=lambda exc: errors.append((exc, threading.current_thread().name)))
    wait_until(lambda: errors, message="the error")
    assert isinstance(errors[0][0], ValueError)
    assert errors[0][1] == threading.main_thread().name
