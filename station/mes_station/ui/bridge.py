"""Runs the station agent on its own asyncio loop thread and hands results to Qt as signals.

Why a thread and not ``QtAsyncio``: ``PySide6.QtAsyncio`` is not part of the
PySide6-Essentials wheel the station installs, and the agent's sender, heartbeat and
watcher must keep running while a modal dialog or a slow paint blocks the Qt event loop.
So the agent owns a plain ``asyncio`` loop in a daemon thread, and the window talks to it
only through this bridge:

* ``submit(fn, ...)`` runs ``fn`` on the agent thread (awaiting it when it returns an
  awaitable) and calls ``on_result``/``on_error`` back on the GUI thread;
* every agent event (``agent.subscribe``) is handed to the ``add_listener`` callbacks on the
  GUI thread.

Every call into the agent — synchronous ones such as ``record_result`` too — happens on the
agent thread, so the agent's SQLite outbox and its state are touched by one thread only.
Results cross threads as posted Qt events (``QCoreApplication.postEvent``, thread-safe by
Qt's contract), never by touching widgets from the agent thread.

Why posted events and not a ``Signal``: in PySide6 6.12 on CPython 3.11 every
``Signal.emit()`` made from Python drops one reference to ``True`` (``emit`` hands back a
borrowed ``True``). Bools are not immortal before 3.12, so a window that emits a few times a
second dies after hours with "Fatal Python error: bool_dealloc". ``postEvent`` has no such
leak; ``test_station_ui_bridge.py`` pins both facts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import itertools
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QCoreApplication, QEvent, QObject

from mes_station.ui.collector import GuiThreadCollector
from mes_station.ui.protocol import AgentLike

ResultCallback = Callable[[Any], None]
ErrorCallback = Callable[[BaseException], None]
EventListener = Callable[[str, Any], None]

_DELIVERY = QEvent.Type(QEvent.registerEventType())


class _Delivery(QEvent):
    """A call to make on the GUI thread, carried through Qt's event queue."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        super().__init__(_DELIVERY)
        self.fn = fn
        self.args = args


class AgentBridge(QObject):
    """Owns the agent's event-loop thread; the window's only way to reach the agent."""

    def __init__(self, agent: AgentLike, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.agent = agent
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="mes-station-agent", daemon=True)
        self._callbacks: dict[int, tuple[ResultCallback | None, ErrorCallback | None]] = {}
        self._tokens = itertools.count(1)
        self._pending: set[concurrent.futures.Future[Any]] = set()
        self._listeners: list[EventListener] = []
        self._closed = False
        # cyclic garbage is collected on the GUI thread while the agent's thread runs (collector.py)
        self._collector = GuiThreadCollector(self)

    # -- lifecycle ---------------------------------------------------------------

    @property
    def loop_thread(self) -> threading.Thread:
        """The thread the agent runs on (tests assert calls land there)."""
        return self._thread

    def add_listener(self, listener: EventListener) -> None:
        """Call ``listener(kind, payload)`` on the GUI thread for every agent event."""
        self._listeners.append(listener)

    def start(self, timeout: float = 30.0) -> None:
        """Start the loop thread, subscribe to agent events, then ``await agent.start()``."""
        self._collector.start()
        self._thread.start()
        self.call(self.agent.subscribe, self._on_agent_event, timeout=timeout)
        self.call(self.agent.start, timeout=timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """``await agent.stop()``, cancel whatever is still running, end the thread."""
        if self._closed:
            return
        self._closed = True
        if not self._thread.is_alive():
            self._collector.stop()
            return
        try:
            self.call(self.agent.stop, timeout=timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            self._collector.stop()

    # -- calls -------------------------------------------------------------------

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        on_result: ResultCallback | None = None,
        on_error: ErrorCallback | None = None,
        **kwargs: Any,
    ) -> int:
        """Run ``fn(*args, **kwargs)`` on the agent thread; report back on the GUI thread.

        Returns a token (for logs and tests). After ``stop()`` nothing is submitted and the
        error callback is told so.
        """
        token = next(self._tokens)
        if self._closed or not self._thread.is_alive():
            if on_error is not None:
                on_error(RuntimeError("the station agent is not running"))
            return token
        self._callbacks[token] = (on_result, on_error)
        future = asyncio.run_coroutine_threadsafe(self._invoke(token, fn, args, kwargs), self._loop)
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        return token

    def post(self, fn: Callable[..., Any], *args: Any, on_error: ErrorCallback | None = None) -> None:
        """Run the synchronous ``fn(*args)`` on the agent thread, in order, with no answer.

        For a stream of small calls whose order against the agent's own timers matters
        (keystrokes for the wedge driver): each goes straight into the loop's ready queue, so a
        loop that was busy for a while runs every call posted meanwhile before a timer that came
        due meanwhile — ``submit`` wraps a call in a task, which would run one turn later.
        """
        if self._closed or not self._thread.is_alive():
            if on_error is not None:
                on_error(RuntimeError("the station agent is not running"))
            return

        def run() -> None:
            try:
                fn(*args)
            except Exception as exc:  # reported on the GUI thread like submit's errors
                if on_error is not None:
                    self._post(on_error, (exc,))

        self._loop.call_soon_threadsafe(run)

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 30.0, **kwargs: Any) -> Any:
        """Run ``fn`` on the agent thread and wait for its result (start-up and shutdown only)."""
        future = asyncio.run_coroutine_threadsafe(_call(fn, args, kwargs), self._loop)
        return future.result(timeout)

    def on_gui_thread(self, fn: Callable[..., Any]) -> Callable[..., None]:
        """Wrap ``fn`` so that calling the wrapper from any thread runs ``fn`` on the GUI thread.

        For callbacks handed to agent-side objects (e.g. a wedge driver's ``on_typed``).
        """

        def relay(*args: Any) -> None:
            if not self._closed:
                self._post(fn, args)

        return relay

    # -- agent thread ------------------------------------------------------------

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            # Let cancelled calls report back before the loop closes.
            leftovers = asyncio.all_tasks(self._loop)
            for task in leftovers:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    async def _invoke(self, token: int, fn: Callable[..., Any], args: Any, kwargs: Any) -> None:
        try:
            value = await _call(fn, args, kwargs)
        except asyncio.CancelledError:
            cancelled = RuntimeError("cancelled: the station is shutting down")
            self._post(self._dispatch, (token, None, cancelled))
            raise
        except Exception as exc:  # every failure is shown to the worker, none swallowed
            self._post(self._dispatch, (token, None, exc))
        else:
            self._post(self._dispatch, (token, value, None))

    def _on_agent_event(self, *event: Any) -> None:
        # Accept both ``callback(kind, payload)`` and ``callback((kind, payload))``.
        if len(event) == 1 and isinstance(event[0], tuple):
            event = event[0]
        kind = event[0] if event else "unknown"
        payload = event[1] if len(event) > 1 else None
        self._post(self._notify, (str(kind), payload))

    def _post(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        # Queued even from the GUI thread, so a callback never runs inside submit().
        QCoreApplication.postEvent(self, _Delivery(fn, args))

    # -- GUI thread --------------------------------------------------------------

    def customEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        if isinstance(event, _Delivery):
            event.fn(*event.args)

    def _notify(self, kind: str, payload: Any) -> None:
        for listener in list(self._listeners):
            listener(kind, payload)

    def _dispatch(self, token: int, value: Any, error: Any) -> None:
        on_result, on_error = self._callbacks.pop(token, (None, None))
        if error is not None:
            if on_error is not None:
                on_error(error)
        elif on_result is not None:
            on_result(value)


async def _call(fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    value = fn(*args, **kwargs)
    if inspect.isawaitable(value):
        value = await value
    return value
