"""A Plan's renderings (pure): text for a terminal, JSON for tools, Markdown for a pull-request
comment. Each reads the plan's own time (`Plan.at`).

Every value in a plan may come from a repository file (names, reasons naming grants): Markdown
puts each one in a code span whose fence is longer than any backtick run in it, with `|` escaped
for table cells, so no value becomes markup, a link or a mention.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from jitpol.model.times import utc_text
from jitpol.plan.diff import Plan

_VERB = {"grant": "to grant", "create-account": "to create", "revoke": "to revoke",
         "delete-account": "to delete", "rotate": "to rotate"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]+")


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "at": utc_text(plan.at) if plan.at else None,
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


def plan_text(plan: Plan) -> str:
    lines = [f"jitpol plan at {utc_text(plan.at)}", ""]
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


def code(value: object) -> str:
    """`value` as one inline code span that is safe in a Markdown table cell."""
    text = _CONTROL.sub(" ", "" if value is None else str(value)).strip()
    if not text:
        return ""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}".replace("|", "\\|")


def plan_markdown(plan: Plan) -> str:
    icon = "⚠️" if not plan.valid else ("📝" if plan.actions else "✅")
    out = [f"### {icon} jitpol plan at {code(utc_text(plan.at))}", ""]
    if plan.notes:
        out += [f"- ⚠️ {code(note)}" for note in plan.notes]
        out.append("")
    if plan.actions:
        out += ["| change | op | privilege | principal | target | until | reason |", "|---|---|---|---|---|---|---|"]
        for a in plan.actions:
            sign = "revoke" if a.revoking else "add"
            reason = ("**drift** " if a.drift else "") + code(a.reason)
            out.append(f"| {sign} | {code(a.op)} | {code(a.assignment.privilege)} | {code(a.principal)} | "
                       f"{code(a.target)} | {code(utc_text(a.until)) if a.until else ''} | {reason} |")
        out.append("")
    if plan.rejected:
        out += ["**Rejected grants**", ""]
        out += [f"- {code(s.name)}: {code(s.reason)}" for s in plan.rejected]
        out.append("")
    out.append(plan_summary(plan))
    return "\n".join(out)
