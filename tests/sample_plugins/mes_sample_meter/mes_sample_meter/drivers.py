"""Drivers of the sample meter kind: an abstract base and one fake meter."""

import abc


class MeterDriver(abc.ABC):
    """A meter that returns one reading."""

    version = "1.2.0"

    @abc.abstractmethod
    async def read(self) -> float:
        """Return the current reading; raise ConnectionError when the meter does not answer."""

    @abc.abstractmethod
    async def write_setpoint(self, value: float) -> None:
        """Set the meter's setpoint; raise ValueError (nothing sent) for a value outside 0..1000,
        ConnectionError when the meter does not answer."""


class FakeMeter(MeterDriver):
    #: every setpoint any fake meter of this process was sent, in order (a test's view of the meters)
    setpoints: list[float] = []

    def __init__(self, value: float = 42.0, failing: bool = False):
        self.value = value
        self.failing = failing

    async def read(self) -> float:
        if self.failing:
            raise ConnectionError("meter does not answer")
        return self.value

    async def write_setpoint(self, value: float) -> None:
        if not 0 <= value <= 1000:
            raise ValueError(f"{value} is outside the setpoint range 0..1000")
        if self.failing:
            raise ConnectionError("meter does not answer")
        FakeMeter.setpoints.append(value)
