"""Which station times the kernel stores: a window around the server's receipt, and no archived month.

A time a station, a client or a machine gives for an event (``recorded_at`` of a process record, a
scan's or a device result's station time, a machine sample's source time) decides the hour the KPI
rollups count it in and where it sorts in a LOT's or unit's history. One from a clock that was never
set (year 0001, 1900) or ran far ahead (2999) would be counted decades away and sort first or last
forever, so the kernel accepts a station time only when it lies within

    [receipt − STATION_TIME_MAX_AGE_DAYS, receipt + STATION_TIME_MAX_LEAD_SECONDS]

(both ends included; receipt is the kernel's clock, :attr:`mes_kernel.kernel.Kernel.clock`),
not in a month ``mes db partitions archive`` took offline, whose rollups are closed, and not before
the LOT or unit it concerns was registered (less the clock lead: :meth:`StationTimeWindow.registration_refusal`).
Anything else is refused with 422 ``IMPLAUSIBLE_TIME`` (:class:`ImplausibleTime`), naming the field,
the value and the bound.
See docs/station-times.md for the reasons behind the defaults.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from .errors import Unprocessable


class ImplausibleTime(Unprocessable):
    """422 ``IMPLAUSIBLE_TIME``: a station time outside the accepted window or in an archived month.
    The body names ``field``, the ``value`` given and the window (``accepted_from``, ``accepted_until``,
    ISO 8601 UTC, computed at ``received_at``); ``archived_month`` (``YYYY-MM``) when that is the reason;
    ``registered_at`` and ``registered`` (``"LOT …"``, ``"unit …"``) when the time is before that registration
    (``accepted_from`` is then the registration less the lead)."""

    code = "IMPLAUSIBLE_TIME"


def month_start(moment: datetime) -> datetime:
    """The first instant (UTC) of the month ``moment`` (aware) falls in."""
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


@dataclass
class StationTimeWindow:
    """The station times accepted for events received at ``received_at`` (aware UTC): from
    ``received_at − max_age`` to ``received_at + max_lead``, both ends included. Made per request
    by :func:`window`; remembers which months it found archived, so a batch asks once per month."""

    received_at: datetime
    max_lead: timedelta
    max_age: timedelta
    _archived: dict[datetime, bool] = field(default_factory=dict, repr=False)

    @property
    def earliest(self) -> datetime:
        return self.received_at - self.max_age

    @property
    def latest(self) -> datetime:
        return self.received_at + self.max_lead

    def _refusal(self, moment: datetime, field_name: str, why: str, **extra: Any) -> ImplausibleTime:
        return ImplausibleTime(
            f"{field_name} {moment.isoformat()} {why}; accepted: {self.earliest.isoformat()} to "
            f"{self.latest.isoformat()} (the server's receipt time minus {_days(self.max_age)}, plus "
            f"{int(self.max_lead.total_seconds())} s). A station whose clock is wrong: correct it, then resend "
            "(`mes-station outbox retry --restamp` sends it at the receipt time, keeping the original)",
            field=field_name,
            value=moment.isoformat(),
            accepted_from=self.earliest.isoformat(),
            accepted_until=self.latest.isoformat(),
            received_at=self.received_at.isoformat(),
            **extra,
        )

    def refusal(self, moment: datetime | None, field_name: str) -> ImplausibleTime | None:
        """The refusal of ``moment`` (aware) as ``field_name``, or None when it lies in the window
        (or is None: the receipt time stands in)."""
        if moment is None:
            return None
        if moment < self.earliest:
            return self._refusal(moment, field_name, "is older than the accepted window")
        if moment > self.latest:
            return self._refusal(moment, field_name, "is later than the accepted window")
        return None

    def registration_refusal(
        self, moment: datetime | None, field_name: str, *, registered_at: datetime | None, subject: str
    ) -> ImplausibleTime | None:
        """The refusal of ``moment`` because it lies before ``subject`` (``"LOT L-1"``, ``"unit S-1"``)
        was registered — more than the clock lead before ``registered_at`` (aware; the registration's
        own time) — or None. A history would show the LOT or unit at work before it existed. The
        body adds ``registered_at`` and ``registered`` (the subject); ``accepted_from`` is the bound."""
        if moment is None or registered_at is None:
            return None
        bound = registered_at.astimezone(UTC) - self.max_lead
        if moment >= bound:
            return None
        return ImplausibleTime(
            f"{field_name} {moment.isoformat()} is before {subject} was registered "
            f"({registered_at.astimezone(UTC).isoformat()}); accepted: {bound.isoformat()} (its registration minus "
            f"{int(self.max_lead.total_seconds())} s) to {self.latest.isoformat()}. A station whose clock is wrong: "
            "correct it, then resend (`mes-station outbox retry --restamp` sends it at the receipt time, keeping "
            "the original)",
            field=field_name,
            value=moment.isoformat(),
            accepted_from=bound.isoformat(),
            accepted_until=self.latest.isoformat(),
            received_at=self.received_at.isoformat(),
            registered_at=registered_at.astimezone(UTC).isoformat(),
            registered=subject,
        )

    async def archived_refusal(
        self, session: AsyncSession, moment: datetime | None, field_name: str
    ) -> ImplausibleTime | None:
        """The refusal of ``moment`` because its month is archived (``archived_months``), or None.
        Asks the database only for a time before the receipt's month: the current month is never
        archived (``mes db partitions archive`` refuses it)."""
        if moment is None:
            return None
        start = month_start(moment)
        if start >= month_start(self.received_at):
            return None
        if start not in self._archived:
            await self._load(session, [start])
        if not self._archived[start]:
            return None
        label = f"{start.year:04d}-{start.month:02d}"
        return self._refusal(
            moment, field_name,
            f"falls in {label}, a month archived (its rollups are closed; restore it with "
            "`mes db partitions restore` to add to it)",
            archived_month=label,
        )

    async def _load(self, session: AsyncSession, starts: Iterable[datetime]) -> None:
        from .db.models import ArchivedMonth

        wanted = sorted(set(starts))
        found = (
            await session.execute(select(ArchivedMonth.month_start).where(ArchivedMonth.month_start.in_(wanted)))
        ).scalars()
        archived = {value.astimezone(UTC) for value in found}
        self._archived.update({start: start in archived for start in wanted})

    async def check(self, session: AsyncSession | None, moment: datetime | None, field_name: str) -> None:
        """Raise :class:`ImplausibleTime` unless ``moment`` is acceptable (the archive is not asked
        without a ``session``)."""
        refusal = self.refusal(moment, field_name)
        if refusal is None and session is not None:
            refusal = await self.archived_refusal(session, moment, field_name)
        if refusal is not None:
            raise refusal


def window(settings: Any, now: datetime) -> StationTimeWindow:
    """The window for events received at ``now`` under ``settings``
    (``station_time_max_lead_seconds``, ``station_time_max_age_days``)."""
    return StationTimeWindow(
        received_at=now.astimezone(UTC),
        max_lead=timedelta(seconds=settings.station_time_max_lead_seconds),
        max_age=timedelta(days=settings.station_time_max_age_days),
    )


def station_time(payload: dict[str, Any]) -> tuple[datetime | None, str]:
    """When the station says the event happened, and the field that says it: ``payload.recorded_at``
    (the agent's clock corrected by the server offset), else ``payload.station_time`` (the agent's
    raw clock; when ``recorded_at`` is given it is only kept, for diagnosis); ``(None, ...)`` when
    neither is given (the server's receipt time stands in). Raises :class:`Unprocessable`
    (``VALIDATION_ERROR``) for a value that is not an ISO 8601 time with a zone and a UTC time,
    as a process record's ``recorded_at`` is refused."""
    name = "recorded_at" if payload.get("recorded_at") is not None else "station_time"
    value = payload.get(name)
    if value is None:
        return None, name
    field_name = f"payload.{name}"
    if not isinstance(value, str) or len(value) > 64:
        raise Unprocessable(f"{field_name} must be an ISO 8601 time with a zone", field=field_name)
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise Unprocessable(f"{field_name} {value!r} has no zone (give Z or an offset)", field=field_name)
        return moment.astimezone(UTC), field_name
    except (ValueError, OverflowError):  # OverflowError: no UTC time (0001-01-01T00:00+09:00)
        raise Unprocessable(f"{field_name} {value!r} is not an ISO 8601 time with a zone", field=field_name) from None


def _days(span: timedelta) -> str:
    days = span.total_seconds() / 86_400
    return f"{days:g} days" if days != 1 else "1 day"
