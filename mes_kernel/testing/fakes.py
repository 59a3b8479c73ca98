"""Fake device drivers for plugin tests: record what they were asked, fail when told to.

A device plugin's own simulator is the better peer where one exists (a real socket, a real pty);
a fake is for the kernel-facing logic around a driver: breakers, jobs, retries, traceability.

    meter = FakeDriver(version="2.1")
    meter.fail_next(3, ConnectionError("no answer"))
    with pytest.raises(ConnectionError):
        await meter.call("read")
    assert meter.calls == [("read", (), {})]
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any


class FakeDriver:
    """Any method name works: ``await driver.send(b"...")`` records the call and returns ``result``.

    ``fail_next(n, exc)`` makes the next ``n`` calls raise ``exc``; ``hang_next(n)`` makes them
    never return (to test timeouts); ``results`` is a queue of return values used before ``result``.
    """

    def __init__(self, *, version: str = "0.0-fake", result: Any = None, **settings: Any) -> None:
        self.version = version
        self.settings = settings
        self.result = result
        self.results: deque[Any] = deque()
        self.calls: list[tuple[str, tuple, dict]] = []
        self._failures: deque[BaseException | None] = deque()

    def fail_next(self, count: int, exc: BaseException) -> None:
        self._failures.extend([exc] * count)

    def hang_next(self, count: int = 1) -> None:
        self._failures.extend([None] * count)

    async def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((name, args, kwargs))
        if self._failures:
            failure = self._failures.popleft()
            if failure is None:
                await asyncio.Event().wait()
            raise failure
        return self.results.popleft() if self.results else self.result

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)

        async def method(*args: Any, **kwargs: Any) -> Any:
            return await self.call(name, *args, **kwargs)

        return method
