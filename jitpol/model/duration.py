"""Go-style durations: 90m, 4h, 1h30m, 7d, 45s."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d{1,6})(d|h|m|s)")
_WHOLE = re.compile(r"(?:\d{1,6}(?:d|h|m|s))+")
_UNIT = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_ORDER = "dhms"


def parse_duration(text: str) -> timedelta:
    """Parse `1h30m` style durations. Units appear at most once, largest first; zero is refused."""
    if not isinstance(text, str) or not _WHOLE.fullmatch(text):
        raise ValueError(f"{text!r} is not a duration; write it like 90m, 4h, 1h30m or 7d")
    seen = ""
    seconds = 0
    for number, unit in _PART.findall(text):
        if unit in seen or (seen and _ORDER.index(unit) < _ORDER.index(seen[-1])):
            raise ValueError(f"{text!r}: each unit once, largest first (e.g. 1d2h30m)")
        seen += unit
        seconds += int(number) * _UNIT[unit]
    if seconds == 0:
        raise ValueError(f"{text!r}: a duration must be longer than zero")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """The shortest Go-style text for a whole number of seconds: 5400s -> 1h30m."""
    seconds = int(delta.total_seconds())
    if seconds <= 0:
        return "0s"
    out = []
    for unit in _ORDER:
        count, seconds = divmod(seconds, _UNIT[unit])
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)
