"""How a test chooses its times: the one rule, enforced by tests/meta/test_times.py.

1. A test whose outcome depends on a clock that `--at` does not reach builds its times from the
   current time, read ONCE per test (`Now.read()`; `now` fixture in conftest.py), never from a
   literal date. Such clocks: a real server's (PostgreSQL `VALID UNTIL`, slapd `pwdEndTime`,
   sshd `expiry-time`, sudo `NOTAFTER`, AD `accountExpires`), a double that checks against the
   real time (a cloud condition, a PIM schedule, a rate-limit reset), a certificate's validity,
   and any code that reads the system clock. Reading the clock once means two reads can never
   straddle a second (or an hour, or a day) and disagree.

2. Every other time is a literal date that the real "now" can never cross, in either direction:
   the years up to LITERAL_PAST_MAX (already past) or from LITERAL_FUTURE_MIN on (far future);
   the suite's own fictional "present" is 1998. The band between them is refused in test files.
   Dates shifted by 28 years keep their weekdays (1998 has 2026's calendar), so schedules keep
   their meaning; a DST case checks the zone's rules of the year it uses.

   A string that looks like a date but is not a time (an API version such as "2022-11-28", a
   schema URI) carries `# not a time` on its line.

3. The suite proves it: `make test` runs the tests that talk to real services a second time under
   libfaketime with the clock a year ahead (`make test-timeshift`, FAKETIME for the test
   processes and every server they start, sudo inside the sshd namespace included).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from jitpol.model.times import utc_text

__all__ = ["LITERAL_FUTURE_MIN", "LITERAL_PAST_MAX", "HoursFromNow", "Now", "iso"]

LITERAL_PAST_MAX = 2024  # already past when the rule was written (2026)
LITERAL_FUTURE_MIN = 2090


def iso(t: datetime) -> str:
    """`t` as jitpol writes times: `YYYY-MM-DDTHH:MM:SSZ`."""
    return utc_text(t)


@dataclass(frozen=True, slots=True)
class Now:
    """The current time, read once, to the second (jitpol's granularity)."""

    at: datetime

    @classmethod
    def read(cls) -> Now:
        return cls(datetime.now(UTC).replace(microsecond=0))

    def plus(self, *, days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0) -> datetime:
        return self.at + timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)

    def text(self, *, days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0) -> str:
        """`plus(...)` as `YYYY-MM-DDTHH:MM:SSZ`, for grant windows and `--at`."""
        return iso(self.plus(days=days, hours=hours, minutes=minutes, seconds=seconds))


class HoursFromNow:
    """`in_hours(2)`: two hours after one reading of the clock, shared by a module's helpers. A
    module makes one (`in_hours = HoursFromNow()`) and an autouse fixture sets `in_hours.now` from
    the `now` fixture, so every helper in a test counts from the same reading."""

    def __init__(self) -> None:
        self.now = Now.read()

    def __call__(self, hours: float) -> datetime:
        return self.now.plus(hours=hours)
