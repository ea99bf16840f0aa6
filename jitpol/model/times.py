"""How jitpol writes instants everywhere (ledger, plans, status, messages): UTC, seconds, `Z`;
and the range of instants and durations it accepts from policy files.

Python's datetime stops at the years 1 and 9999. Every instant a policy file gives (a grant's
start and end, after its offset is applied) must lie in [EARLIEST, LATEST] and every duration
may be at most MAX_DURATION, so that any sum or difference jitpol computes from them (a window's
end, an approval timeout, a break-glass deadline, a schedule day in any time zone) stays far
inside datetime's range. The loader refuses anything outside (jitpol.load); code that meets
instants from elsewhere uses `shifted`, which saturates instead of raising OverflowError.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 12, 31, 23, 59, 59, tzinfo=UTC)
MAX_DURATION = timedelta(days=36500)  # 100 years (of 365 days)
MAX_DURATION_TEXT = "36500d (100 years)"

# the instants datetime can still move around in: days of margin on both ends, for any time zone
# and a day either side
_FLOOR = datetime(1, 1, 5, tzinfo=UTC)
_CEILING = datetime(9999, 12, 27, tzinfo=UTC)


def utc_text(t: datetime | None) -> str:
    """`2026-12-01T10:00:00Z` for an aware datetime; "" for None."""
    if t is None:
        return ""
    return t.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"  # years < 1000 padded too


def in_range(t: datetime) -> bool:
    """Whether an aware instant lies in the range policy files may use."""
    return EARLIEST <= t <= LATEST


def shifted(t: datetime, delta: timedelta) -> datetime:
    """`t + delta`; past datetime's limits, the last (or first) representable instant instead of
    OverflowError."""
    try:
        return t + delta
    except OverflowError:
        bound = datetime.max if delta > timedelta(0) else datetime.min
        return bound.replace(tzinfo=UTC if t.tzinfo is not None else None)


def clamped(t: datetime) -> datetime:
    """An aware instant moved into the range datetime arithmetic (and any time zone) can handle."""
    return min(max(t, _FLOOR), _CEILING)
