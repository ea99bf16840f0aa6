"""Human and JSON views of grant statuses (pure); a plan's own renderings are in plan.render."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from jitpol.model.times import utc_text
from jitpol.policy.evaluate import GrantStatus


def status_json(statuses: Iterable[GrantStatus]) -> dict[str, Any]:
    return {
        "grants": [
            {
                "name": s.name, "state": s.state, "reason": s.reason, "requester": s.requester,
                "resource": s.resource, "role": s.role, "start": utc_text(s.start), "end": utc_text(s.end),
                "approvals": list(s.approvals), "next_change": utc_text(s.next_change) or None,
            }
            for s in statuses
        ]
    }


def status_text(statuses: Iterable[GrantStatus], at: datetime) -> str:
    rows = [("GRANT", "STATE", "REQUESTER", "RESOURCE/ROLE", "WINDOW", "REASON")]
    items = list(statuses)
    for s in items:
        rows.append((s.name, s.state, s.requester, f"{s.resource}/{s.role}",
                     f"{utc_text(s.start)} → {utc_text(s.end)}", s.reason))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    out = [f"jitpol status at {utc_text(at)}", ""]
    for r in rows:
        out.append("  ".join(r[i].ljust(widths[i]) for i in range(5)) + "  " + r[5])
    counts = Counter(s.state for s in items)
    out += ["", ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "No grants."]
    nxt = min((s.next_change for s in items if s.next_change and s.next_change > at), default=None)
    if nxt:
        out.append(f"Next change due {utc_text(nxt)}.")
    return "\n".join(out)
