"""plan.render: a Plan's text, JSON and Markdown renderings read its own time, and Markdown keeps
every value (names and reasons come from repository files) inert."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from jitpol.model.assignment import Action, Assignment
from jitpol.plan.diff import Plan
from jitpol.plan.render import code, plan_json, plan_markdown, plan_summary, plan_text

AT = datetime(1999, 6, 1, 12, 0, tzinfo=UTC)


def plan(privilege: str = "app_read", reason: str = "grant g1 is active") -> Plan:
    return Plan((
        Action("revoke", Assignment("db", "role-membership", "bob", "app_write"), resource="", grants=("g0",),
               reason="no active grant backs it (was: g0)"),
        Action("grant", Assignment("db", "role-membership", "alice", privilege), resource="db-prod",
               grants=("g1",), until=datetime(1999, 6, 1, 16, 0, tzinfo=UTC), reason=reason),
    ), notes=("target x could not be observed",), at=AT)


def test_text_and_json_carry_the_plans_time() -> None:
    text = plan_text(plan())
    assert text.splitlines()[0] == "jitpol plan at 1999-06-01T12:00:00Z"
    assert "  + grant          app_read to alice on db" in text and text.endswith("Plan: 1 to grant, 1 to revoke.")
    data = plan_json(plan())
    assert data["at"] == "1999-06-01T12:00:00Z" and [a["op"] for a in data["actions"]] == ["revoke", "grant"]
    assert data["actions"][1]["until"] == "1999-06-01T16:00:00Z"


def test_markdown_lists_each_action_in_a_table() -> None:
    md = plan_markdown(plan())
    assert md.startswith("### 📝 jitpol plan at `1999-06-01T12:00:00Z`")
    assert "| revoke | `revoke` | `app_write` | `bob` | `db` |  | `no active grant backs it (was: g0)` |" in md
    assert "| add | `grant` | `app_read` | `alice` | `db` | `1999-06-01T16:00:00Z` |" in md
    assert "- ⚠️ `target x could not be observed`" in md
    assert md.endswith(plan_summary(plan()))


def test_an_empty_plan_says_so() -> None:
    md = plan_markdown(Plan((), at=AT))
    assert md.startswith("### ✅") and md.endswith("No changes. Targets match the active grants.")


@pytest.mark.parametrize("hostile", [
    "x` <img src=x onerror=alert(1)> `y",
    "@org/admins please approve",
    "a | b | c",
    "[link](https://evil.example)",
    "line\nbreak\r\u202eevil",
    "``double``",
])
def test_markdown_keeps_hostile_values_inert(hostile: str) -> None:
    span = code(hostile)
    fence = span[: len(span) - len(span.lstrip("`"))]
    inner = span[len(fence):-len(fence)]
    assert "`" * len(fence) not in inner, "the value closes its own code span"
    assert "\n" not in span and "\r" not in span and "\u202e" not in span
    assert "|" not in span.replace("\\|", "")
    row = next(line for line in plan_markdown(plan(reason=hostile)).splitlines() if line.startswith("| add"))
    assert len(re.findall(r"(?<!\\)\|", row)) == 8  # still seven cells


def test_code_of_nothing_is_empty() -> None:
    assert code(None) == "" and code("  ") == ""
