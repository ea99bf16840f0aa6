from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from jitpol.model.documents import Schedule, ScheduleWindow
from jitpol.policy.windows import live_intervals, merge, position

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def utc(s: str) -> datetime:
    return datetime.fromisoformat(s).astimezone(UTC)


def office(zone: str = "Europe/Berlin") -> Schedule:
    return Schedule(zone, (ScheduleWindow(WEEKDAYS, time(8), time(18)),))


def test_no_schedule_is_the_window() -> None:
    s, e = utc("1998-12-01T10:00:00Z"), utc("1998-12-01T12:00:00Z")
    assert live_intervals(s, e, None) == [(s, e)]
    assert live_intervals(e, s, None) == []


def test_office_hours_across_spring_forward() -> None:
    # 1998-03-29 (Sunday) Berlin moves from +01:00 to +02:00
    ivs = live_intervals(utc("1998-03-27T00:00:00Z"), utc("1998-03-31T00:00:00Z"), office())
    assert ivs == [
        (utc("1998-03-27T07:00:00Z"), utc("1998-03-27T17:00:00Z")),  # Fri, winter time
        (utc("1998-03-30T06:00:00Z"), utc("1998-03-30T16:00:00Z")),  # Mon, summer time
    ]


def test_office_hours_across_fall_back() -> None:
    ivs = live_intervals(utc("1998-10-23T00:00:00Z"), utc("1998-10-27T00:00:00Z"), office())
    assert ivs == [
        (utc("1998-10-23T06:00:00Z"), utc("1998-10-23T16:00:00Z")),
        (utc("1998-10-26T07:00:00Z"), utc("1998-10-26T17:00:00Z")),
    ]


def test_overnight_window_and_midnight_end() -> None:
    night = Schedule("UTC", (ScheduleWindow(("mon",), time(22), time(6)),))
    ivs = live_intervals(utc("1998-11-30T00:00:00Z"), utc("1998-12-02T00:00:00Z"), night)
    assert ivs == [(utc("1998-11-30T22:00:00Z"), utc("1998-12-01T06:00:00Z"))]
    allday = Schedule("UTC", (ScheduleWindow(("mon", "tue"), time(0), time(0)),))
    ivs = live_intervals(utc("1998-11-30T05:00:00Z"), utc("1998-12-03T00:00:00Z"), allday)
    assert ivs == [(utc("1998-11-30T05:00:00Z"), utc("1998-12-02T00:00:00Z"))]  # merged across midnight


def test_window_clips_schedule() -> None:
    ivs = live_intervals(utc("1998-12-01T16:00:00Z"), utc("1998-12-02T08:00:00Z"), office())
    assert ivs == [(utc("1998-12-01T16:00:00Z"), utc("1998-12-01T17:00:00Z")),
                   (utc("1998-12-02T07:00:00Z"), utc("1998-12-02T08:00:00Z"))]


def test_position() -> None:
    ivs = [(utc("1998-12-01T10:00:00Z"), utc("1998-12-01T11:00:00Z")),
           (utc("1998-12-01T12:00:00Z"), utc("1998-12-01T13:00:00Z"))]
    assert position(ivs, utc("1998-12-01T09:00:00Z")) == (None, ivs[0][0])
    assert position(ivs, utc("1998-12-01T10:00:00Z")) == (ivs[0], None)
    assert position(ivs, utc("1998-12-01T11:00:00Z")) == (None, ivs[1][0])  # end is exclusive
    assert position(ivs, utc("1998-12-01T13:00:00Z")) == (None, None)


def test_merge_touching_and_nested() -> None:
    a = utc("1998-12-01T10:00:00Z")
    h = timedelta(hours=1)
    assert merge([(a, a + h), (a + h, a + 2 * h), (a + h / 2, a + h)]) == [(a, a + 2 * h)]
