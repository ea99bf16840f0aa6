"""Schedule expansion never raises, whatever the window: at the ends of Python's datetime range
(years 1 and 9999), in every time zone, for windows of any length. The loader refuses such
windows (tests/unit/load/test_time_limits.py); this is the second line of defence."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, available_timezones

from hypothesis import given, settings
from hypothesis import strategies as st

from jitpol.model.documents import DAYS, Schedule, ScheduleWindow
from jitpol.model.times import shifted, utc_text
from jitpol.policy.windows import live_intervals, position

ZONES = sorted(available_timezones() | {"UTC"})
ALL_DAYS = Schedule("UTC", (ScheduleWindow(DAYS, time(0), time(0)),))


def utc(s: str) -> datetime:
    return datetime.fromisoformat(s).astimezone(UTC)


def test_a_grant_ending_on_the_last_day_of_9999() -> None:
    # the case: it passed validate and crashed apply inside the schedule code
    start, end = utc("9999-12-30T00:00:00Z"), utc("9999-12-31T23:59:59Z")
    for zone in ("UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago", "America/New_York"):
        night = Schedule(zone, (ScheduleWindow(DAYS, time(22), time(6)),))
        for lo, hi in live_intervals(start, end, night):
            assert start <= lo < hi <= end


def test_the_first_days_of_year_1() -> None:
    start, end = datetime(1, 1, 1, tzinfo=UTC), datetime(1, 1, 10, tzinfo=UTC)
    ivs = live_intervals(start, end, Schedule("Asia/Kolkata", ALL_DAYS.windows))
    assert ivs and all(start <= lo < hi <= end for lo, hi in ivs)


def test_expansion_is_bounded_and_only_shortens() -> None:
    start = utc("1998-01-01T00:00:00Z")
    ivs = live_intervals(start, datetime.max.replace(tzinfo=UTC), ALL_DAYS)
    assert len(ivs) == 1 and ivs[0][0] == start
    assert timedelta(days=390) < ivs[0][1] - start <= timedelta(days=400)


def test_shifted_saturates() -> None:
    top = datetime(9999, 12, 31, 12, tzinfo=timezone(timedelta(hours=-5)))
    assert utc_text(shifted(top, timedelta(days=2))) == "9999-12-31T23:59:59Z"
    assert shifted(datetime(1, 1, 1, tzinfo=UTC), -timedelta(days=1)) == datetime.min.replace(tzinfo=UTC)
    assert shifted(utc("1998-12-01T10:00:00Z"), timedelta(hours=2)) == utc("1998-12-01T12:00:00Z")


instants = st.one_of(
    st.datetimes(datetime(1, 1, 1), datetime(1, 2, 1)),
    st.datetimes(datetime(9999, 11, 1), datetime(9999, 12, 31, 23, 59, 59)),
    st.datetimes(),
).map(lambda d: d.replace(tzinfo=UTC))
clock = st.builds(time, st.integers(0, 23), st.sampled_from([0, 30, 59]))
windows = st.builds(ScheduleWindow, st.lists(st.sampled_from(DAYS), min_size=1, max_size=7, unique=True).map(tuple),
                    clock, clock)
schedules = st.builds(Schedule, st.sampled_from(ZONES), st.lists(windows, min_size=1, max_size=3).map(tuple))


@settings(max_examples=300, deadline=None)
@given(instants, instants, st.none() | schedules, instants)
def test_never_raises_and_stays_inside(start: datetime, end: datetime, schedule: Schedule | None,
                                       now: datetime) -> None:
    ivs = live_intervals(start, end, schedule)
    for i, (lo, hi) in enumerate(ivs):
        assert start <= lo < hi <= end
        if i + 1 < len(ivs):
            assert hi < ivs[i + 1][0]
        utc_text(lo), utc_text(hi)
    position(ivs, now)
    if schedule is not None:
        ZoneInfo(schedule.timezone)
