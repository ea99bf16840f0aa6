"""Properties of schedule expansion over random windows, zones and schedules (DST included)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from jitpol.model.documents import DAYS, Schedule, ScheduleWindow
from jitpol.policy.windows import live_intervals

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]

times = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))
windows = st.builds(ScheduleWindow, st.lists(st.sampled_from(DAYS), min_size=1, max_size=7, unique=True)
                    .map(tuple), times, times)
schedules = st.builds(Schedule, st.sampled_from(ZONES), st.lists(windows, min_size=1, max_size=3).map(tuple))
starts = st.datetimes(datetime(1998, 1, 1), datetime(1999, 12, 31)).map(lambda d: d.replace(tzinfo=UTC))


def allowed(schedule: Schedule, t: datetime) -> bool:
    local = t.astimezone(ZoneInfo(schedule.timezone))
    for w in schedule.windows:
        for back in (0, 1):  # a window may have started the previous local day
            day = (local - timedelta(days=back)).date()
            if DAYS[day.weekday()] not in w.days:
                continue
            lo = datetime.combine(day, w.start, tzinfo=local.tzinfo).astimezone(UTC)
            end_day = day if w.end > w.start else day + timedelta(days=1)
            hi = datetime.combine(end_day, w.end, tzinfo=local.tzinfo).astimezone(UTC)
            if lo <= t < hi:
                return True
    return False


@settings(max_examples=150, deadline=None)
@given(schedules, starts, st.integers(1, 72 * 60))
def test_intervals_are_sorted_disjoint_inside_and_allowed(schedule: Schedule, start: datetime, minutes: int) -> None:
    end = start + timedelta(minutes=minutes)
    ivs = live_intervals(start, end, schedule)
    for i, (lo, hi) in enumerate(ivs):
        assert start <= lo < hi <= end
        if i + 1 < len(ivs):
            assert hi < ivs[i + 1][0]
        for probe in (lo, lo + (hi - lo) / 2, hi - timedelta(seconds=1)):
            assert allowed(schedule, probe)
    # sampled instants outside every interval are not allowed
    step = max(timedelta(minutes=7), (end - start) / 50)
    t = start
    while t < end:
        inside = any(lo <= t < hi for lo, hi in ivs)
        assert inside == allowed(schedule, t), t
        t += step
