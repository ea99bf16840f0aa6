"""When a grant is live: its window intersected with the workflow's schedule.

Schedules are wall-clock times in a named time zone; they are turned into UTC intervals day by
day with zoneinfo, so DST changes move the UTC instants, not the local hours. Local times that
do not exist or occur twice follow PEP 495 with fold=0: 02:30 on a spring-forward night in
Berlin is read with the winter offset (03:30 summer time); on a fall-back night, the first
02:30. An end of "24:00" (or any end not after the start) runs to that time on the next day.

Expansion never raises for any window: it covers at most _MAX_DAYS days from the window's start
(later days stay closed, so a longer window is cut short, never extended), and instants near the
ends of datetime's range (years 1 and 9999) are clamped into it first; the loader refuses such
windows anyway (jitpol.model.times).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from jitpol.model.documents import DAYS, Schedule
from jitpol.model.times import clamped

Interval = tuple[datetime, datetime]

# a grant never spans more than this many days of schedule expansion (maxDuration bounds it anyway)
_MAX_DAYS = 400


def _instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def schedule_intervals(schedule: Schedule, start: datetime, end: datetime) -> Iterator[Interval]:
    """UTC intervals inside [start, end) when the schedule allows access, in order, merged."""
    zone = ZoneInfo(schedule.timezone)
    # clamped: a day either side of any local date stays representable (only shortens the window)
    start, end = clamped(start), clamped(end)
    if end <= start:
        return
    first = start.astimezone(zone).date() - timedelta(days=1)
    last = date.fromordinal(min(end.astimezone(zone).date().toordinal(), first.toordinal() + _MAX_DAYS - 1))
    raw: list[Interval] = []
    day = first
    while day <= last:
        weekday = DAYS[day.weekday()]
        for window in schedule.windows:
            if weekday not in window.days:
                continue
            lo = _instant(day, window.start, zone)
            end_day = day if window.end > window.start else day + timedelta(days=1)
            hi = _instant(end_day, window.end, zone)
            lo, hi = max(lo, start), min(hi, end)
            if lo < hi:
                raw.append((lo, hi))
        day += timedelta(days=1)
    yield from merge(raw)


def merge(intervals: list[Interval]) -> list[Interval]:
    """Sorted, non-overlapping union of intervals (touching intervals join)."""
    out: list[Interval] = []
    for lo, hi in sorted(intervals):
        if out and lo <= out[-1][1]:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def live_intervals(start: datetime, end: datetime, schedule: Schedule | None) -> list[Interval]:
    """When a grant with window [start, end) is live."""
    if end <= start:
        return []
    if schedule is None:
        return [(start, end)]
    return list(schedule_intervals(schedule, start, end))


def position(intervals: list[Interval], now: datetime) -> tuple[Interval | None, datetime | None]:
    """(the interval containing now, the start of the next interval after now)."""
    for lo, hi in intervals:
        if lo <= now < hi:
            return (lo, hi), None
        if now < lo:
            return None, lo
    return None, None
