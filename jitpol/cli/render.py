"""Human and JSON views of plans and statuses (pure)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from jitpol.model.times import utc_text
from jitpol.plan.diff import Plan
from jitpol.policy.evaluate import GrantStatus

_VERB = {"grant": "to grant", "create-account": "to create", "revoke": "to revoke",
         "delete-account": "to delete", "rotate": "to rotate"}


def plan_json(plan: Plan, at: datetime) -> dict[str, Any]:
    return {
        "at": utc_text(at),
        "valid": plan.valid,
        "actions": [
            {
                "op": a.op,
                "grant": a.grants[0] if a.grants else None,
                "grants": list(a.grants),
                "resource": a.resource or None,
                "target": a.target,
                "model": a.assignment.model,
                "principal": a.principal,
                "privilege": a.assignment.privilege,
                "until": utc_text(a.until) or None,
                "drift": a.drift,
                "reason": a.reason,
            }
            for a in plan.actions
        ],
        "rejected": [{"grant": s.name, "reason": s.reason} for s in plan.rejected],
        "notes": list(plan.notes),
    }


def plan_summary(plan: Plan) -> str:
    if not plan.actions:
        return "No changes. Targets match the active grants."
    counts: Counter[str] = Counter(a.op for a in plan.actions)
    parts = [f"{counts[op]} {_VERB[op]}" for op in _VERB if counts[op]]
    return "Plan: " + ", ".join(parts) + "."


def plan_text(plan: Plan, at: datetime) -> str:
    lines = [f"jitpol plan at {utc_text(at)}", ""]
    for note in plan.notes:
        lines.append(f"! {note}")
    if plan.notes:
        lines.append("")
    for a in plan.actions:
        sign = "-" if a.revoking else "+"
        prep = "from" if a.revoking else "to"
        tail = f"until {utc_text(a.until)}; " if a.until else ""
        lines.append(f"  {sign} {a.op:<14} {a.assignment.privilege} {prep} {a.principal} on {a.target}")
        lines.append(f"      {tail}{'DRIFT: ' if a.drift else ''}{a.reason}")
    if plan.rejected:
        lines += ["", "Rejected grants:"]
        lines += [f"  {s.name}: {s.reason}" for s in plan.rejected]
    lines += ["", plan_summary(plan)]
    return "\n".join(lines)


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
