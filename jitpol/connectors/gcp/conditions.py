"""jitpol's IAM condition: `request.time < timestamp("END")` titled "jitpol until END", which both
makes IAM stop honouring the binding at END and marks it as jitpol's (fixed text and a time jitpol
computed; no user text, no secret). Pure."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from jitpol.connectors.kit import ceil_second

CONDITION_TITLE_PREFIX = "jitpol"
CONDITION_DESCRIPTION = "Just-in-time access granted by jitpol; IAM stops honouring it at the time in the expression."

_EXPRESSION = re.compile(
    r'request\.time < timestamp\("(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z)"\)'
)


def condition_title(end_text: str) -> str:
    """jitpol's ownership marker: the title of the condition that ends at `end_text`."""
    return f"{CONDITION_TITLE_PREFIX} until {end_text}"


def condition_expression(end_text: str) -> str:
    """The CEL expression IAM evaluates: true until `end_text`."""
    return f'request.time < timestamp("{end_text}")'


def condition_end(expression: str, title: str) -> datetime | None:
    """The END of a condition jitpol wrote (expression exactly `request.time < timestamp("END")`
    and title exactly "jitpol until END", the same END), else None: someone else's condition."""
    m = _EXPRESSION.fullmatch(expression)
    if m is None or title != condition_title(m.group(1)):
        return None
    return datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).astimezone(UTC)


def rfc3339(t: datetime) -> str:
    """`t` in UTC as RFC 3339 with a Z, rounded UP to the second: an end that reads back earlier
    than asked would be 'extended' again on every run."""
    return ceil_second(t).strftime("%Y-%m-%dT%H:%M:%SZ")
