"""Maintenance windows and soak time: when a rollout may start new work. Pure: `now` is an argument.

A window is wall-clock time in its own time zone, as system-upgrade-controller's `window` is: on each
of `days` (every day when empty) it opens at `startTime` and closes at `endTime`, the next day when
`endTime` is not after `startTime` (22:00-04:00 crosses midnight; 00:00-00:00 is the whole day). On a
daylight-saving day the window keeps its wall-clock edges, so it is an hour shorter or longer; an edge
in the skipped hour is the moment the clocks jump (02:30 on a spring-forward night in Europe/Berlin is
03:00 CEST), one in the repeated hour is its first occurrence.

Outside every window nothing new starts (no create, retry, rollback or repair); tasks in flight are
still watched and settle as usual. The time zone database comes from the `tzdata` package, so a slim
image without /usr/share/zoneinfo knows every zone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

TIME_OF_DAY: Final = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
MAX_WINDOWS: Final = 20
MAX_SOAK_SECONDS: Final = 7 * 24 * 3600
_LOOKBACK_DAYS: Final = 1
"""A window that opened yesterday may still be open now (it crosses midnight)."""
_LOOKAHEAD_DAYS: Final = 8
"""Every window opens within a week, and one more day covers the day boundaries of zones."""


class Weekday(StrEnum):
    MONDAY = "Monday"
    TUESDAY = "Tuesday"
    WEDNESDAY = "Wednesday"
    THURSDAY = "Thursday"
    FRIDAY = "Friday"
    SATURDAY = "Saturday"
    SUNDAY = "Sunday"

    @property
    def number(self) -> int:
        """As `date.weekday()`: Monday is 0."""
        return list(Weekday).index(self)


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone (such as 'Europe/Berlin')") from None
    return name


TimeOfDay = Annotated[str, StringConstraints(pattern=TIME_OF_DAY.pattern)]


class Window(BaseModel):
    """One entry of spec.strategy.windows."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True, strict=True
    )

    days: tuple[Weekday, ...] = ()
    """The days the window opens on, in its time zone; empty: every day."""
    start_time: TimeOfDay
    """HH:MM, 24-hour clock."""
    end_time: TimeOfDay
    """HH:MM; not after startTime: the next day."""
    time_zone: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_zone)] = "UTC"

    def describe(self) -> str:
        days = ",".join(d.value[:3] for d in self.days) if self.days else "every day"
        return f"{days} {self.start_time}-{self.end_time} {self.time_zone}"

    def spans(self, day: date) -> tuple[datetime, datetime] | None:
        """When the window that opens on `day` (a date in its zone) opens and closes, in UTC; None when
        it does not open that day."""
        if self.days and day.weekday() not in {d.number for d in self.days}:
            return None
        zone = ZoneInfo(self.time_zone)
        start, end = _clock(self.start_time), _clock(self.end_time)
        end_day = day if end > start else day + timedelta(days=1)
        return _instant(day, start, zone), _instant(end_day, end, zone)


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _instant(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """A wall-clock moment in UTC: in a repeated hour its first occurrence; in a skipped hour the
    instant the clocks jump."""
    wall = datetime.combine(day, clock)
    first = wall.replace(tzinfo=zone).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # fold=1 reads it with the offset after the change: an instant before the gap. Zone changes fall
    # on whole minutes, so the first minute from there that shows `wall` or later ends the gap.
    moment = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    while moment.astimezone(zone).replace(tzinfo=None) < wall:
        moment += timedelta(minutes=1)
    return moment


@dataclass(frozen=True, slots=True)
class Gate:
    """Whether new work may start now, and if not, when it may."""

    open: bool
    opens_at: datetime | None = None
    """When closed: the next moment it opens (None: it never will, e.g. no window has a day)."""
    closes_at: datetime | None = None
    """When open because of a window: when that window closes (None: no window is set)."""
    why: str = ""
    """When closed: in words, for the Reconciling message."""


OPEN: Final = Gate(open=True)


def window_gate(windows: tuple[Window, ...], now: datetime) -> Gate:
    """Open when no window is set or `now` is inside one; otherwise closed until the next opens."""
    if not windows:
        return OPEN
    closes: list[datetime] = []
    opens: list[datetime] = []
    for window in windows:
        today = now.astimezone(ZoneInfo(window.time_zone)).date()
        for offset in range(-_LOOKBACK_DAYS, _LOOKAHEAD_DAYS):
            span = window.spans(today + timedelta(days=offset))
            if span is None:
                continue
            start, end = span
            if start <= now < end:
                closes.append(end)
            elif start > now:
                opens.append(start)
    if closes:
        return Gate(open=True, closes_at=max(closes))
    opens_at = min(opens, default=None)
    names = "; ".join(w.describe() for w in windows)
    when = f"the next opens at {opens_at.isoformat()}" if opens_at else "none ever opens"
    return Gate(open=False, opens_at=opens_at, why=f"outside strategy.windows ({names}): {when}")


def soak_gate(soak_seconds: int, wave_ended_at: datetime | None, now: datetime) -> Gate:
    """After a wave ends, the next waits `soak_seconds` (strategy.soakSeconds)."""
    if soak_seconds <= 0 or wave_ended_at is None:
        return OPEN
    until = wave_ended_at + timedelta(seconds=soak_seconds)
    if now >= until:
        return OPEN
    return Gate(
        open=False,
        opens_at=until,
        why=(
            f"soaking: the last wave ended at {wave_ended_at.isoformat()}, the next starts at "
            f"{until.isoformat()} (strategy.soakSeconds {soak_seconds})"
        ),
    )


def combined(*gates: Gate) -> Gate:
    """Open when every gate is; else the first closed one, opening when the last of them opens."""
    closed = [g for g in gates if not g.open]
    if not closed:
        return OPEN
    if any(g.opens_at is None for g in closed):
        return Gate(open=False, why=closed[0].why)
    return Gate(open=False, opens_at=max(g.opens_at for g in closed if g.opens_at), why=closed[0].why)


__all__ = [
    "MAX_SOAK_SECONDS",
    "MAX_WINDOWS",
    "OPEN",
    "Gate",
    "Weekday",
    "Window",
    "combined",
    "soak_gate",
    "window_gate",
]
