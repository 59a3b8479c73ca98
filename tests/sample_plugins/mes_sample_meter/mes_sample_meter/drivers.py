"""Drivers of the sample meter kind: an abstract base and one fake meter."""

import abc


class MeterDriver(abc.ABC):
    """A meter that returns one reading."""

    version = "1.2.0"

    @abc.abstractmethod
    async def read(self) -> float:
        """Return the current reading; raise ConnectionError when the meter does not answer."""


class FakeMeter(MeterDriver):
    def __init__(self, value: float = 42.0, failing: bool = False):
        self.value = value
        self.failing = failing

    async def read(self) -> float:
        if self.failing:
            raise ConnectionError("meter does not answer")
        return self.value
