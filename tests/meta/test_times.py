"""No test is a time-bomb: literal dates in tests stay out of the years "now" can reach.

The rule lives in tests/helpers/clock.py. This test scans every test source for a literal
instant (ISO dates and year-months, compact `YYYYMMDD[hhmmss][Z]` forms as LDAP, sshd and sudo
write them, `datetime(YYYY, ...)` / `date(YYYY, ...)`, epoch seconds) whose year lies in the band
(LITERAL_PAST_MAX, LITERAL_FUTURE_MIN) and fails naming file and line. The band is fixed: the rule
itself must not depend on today's date.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers.clock import LITERAL_FUTURE_MIN, LITERAL_PAST_MAX

TESTS = Path(__file__).resolve().parents[1]
EXEMPT = "# not a time"

_YEAR_FIRST = re.compile(
    r"(?<![\w.])(?P<year>\d{4})"
    r"(?:-\d{1,2}\b"  # 2040-12, 2040-12-01, 2040-1-5
    r"|(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?:\d{2}){0,3}(?:\.\d+)?Z?\b)"  # 20401201, 20401201120000Z
)
_CONSTRUCTOR = re.compile(r"\b(?:datetime|date)\(\s*(?P<year>\d{4})\s*,")
_EPOCH = re.compile(r"(?<![\w.])(?P<epoch>[1-9](?:_?\d){9})(?![\w.])")  # ten digits: 2001..2286


def _epoch_year(digits: str) -> int:
    return datetime.fromtimestamp(int(digits.replace("_", "")), UTC).year


def literal_years(line: str) -> list[int]:
    """The years of the literal instants on `line` (none when it carries `# not a time`)."""
    if EXEMPT in line:
        return []
    years = [int(m["year"]) for pattern in (_YEAR_FIRST, _CONSTRUCTOR) for m in pattern.finditer(line)]
    years += [_epoch_year(m["epoch"]) for m in _EPOCH.finditer(line)]
    return years


def in_band(year: int) -> bool:
    return LITERAL_PAST_MAX < year < LITERAL_FUTURE_MIN


def violations(path: Path) -> list[str]:
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        bad = sorted({y for y in literal_years(line) if in_band(y)})
        if bad:
            found.append(f"{path.relative_to(TESTS.parent)}:{number}: literal year(s) {bad} can meet the real "
                         f"clock: build the time from `now` (tests/helpers/clock.py) or use a year <= "
                         f"{LITERAL_PAST_MAX} or >= {LITERAL_FUTURE_MIN}")
    return found


@pytest.mark.parametrize(("line", "years"), [
    ('rb.grant("g", "alice", "2040-12-01T10:00:00Z", "1h")', [2040]),
    ('path = "grants/2031-01/a.yaml"', [2031]),
    ('\'expiry-time="20401130120000Z" ssh-ed25519 AAAA\'', [2040]),
    ("NOTAFTER=20400101000000Z", [2040]),
    ('("2040-1-5", "not a date")', [2040]),
    ("until = datetime(2030, 5, 6, tzinfo=UTC)", [2030]),
    ("rate_reset = 1_800_000_000", [2027]),
    ("reset = 1800000000", [2027]),
    ('API_VERSION = "2022-11-28"', [2022]),
    ('API_VERSION = "2042-11-28"  # not a time', []),
    ('"sha256": "ab2040120112cd"', []),
    ("port = 55515; key_size=2048; big = 133_485_408_000_000_000", []),
    ('version = "1.2040-12"', []),
])
def test_the_scanner_finds_literal_instants(line: str, years: list[int]) -> None:
    assert literal_years(line) == years


def test_the_band_holds_the_years_now_can_reach() -> None:
    # the suite must pass from the day the rule was written (2026) to at least 2030, with a
    # clock wrong by a day either way: every such year is in the band
    assert all(in_band(y) for y in range(2025, 2041))
    assert not in_band(1998) and not in_band(2095)


def test_no_test_source_holds_a_literal_date_that_now_can_reach() -> None:
    sources = sorted(p for p in TESTS.rglob("*.py") if p.name != "test_times.py")
    assert len(sources) > 50
    problems = [v for p in sources for v in violations(p)]
    assert not problems, "\n".join(problems)
