"""How jitpol writes instants everywhere (ledger, plans, status, messages): UTC, seconds, `Z`."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_text(t: datetime | None) -> str:
    """`2026-12-01T10:00:00Z` for an aware datetime; "" for None."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if t is not None else ""
