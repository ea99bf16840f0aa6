"""The command line's pure helpers, called directly: `--at` parsing (cli.common.parse_time), the
status views (cli.render) and the pull-request check's Markdown (cli.check.markdown).
Table-driven; the commands themselves are exercised through the CLI in tests/e2e."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import click
import pytest

from jitpol.cli.check import markdown
from jitpol.cli.common import parse_time
from jitpol.cli.render import status_json, status_text
from jitpol.policy.evaluate import GrantStatus, State
from jitpol.policy.trust import PolicyCheck
from jitpol.review import ADMIN_FIRST, NOT_APPROVABLE, CheckReport, GrantReview, Guarded

T0 = datetime(2099, 3, 1, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.mark.parametrize(("text", "expected"), [
    ("2099-03-01T09:00:00Z", T0),
    ("2099-03-01T10:00:00+01:00", T0),
    ("1970-01-01T00:00:00Z", datetime(1970, 1, 1, tzinfo=UTC)),
])
def test_parse_time_accepts_offsets(text: str, expected: datetime) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(("text", "says"), [
    ("2099-03-01T09:00:00", "has no offset"),
    ("tomorrow", "is not an ISO 8601 time"),
    ("1969-12-31T23:59:59Z", "outside the times jitpol accepts"),
    ("0001-01-01T00:00:00+01:00", "outside the times jitpol accepts"),
])
def test_parse_time_refuses(text: str, says: str) -> None:
    with pytest.raises(click.BadParameter, match=says):
        parse_time(text)


def status(name: str, state: State, *, next_change: datetime | None = None) -> GrantStatus:
    return GrantStatus(name, state, f"because {name}", "alice", "prod-db", "read", T0, T0 + 2 * H,
                       next_change=next_change, approvals=("bob",))


def test_status_text_counts_states_and_names_the_next_change() -> None:
    text = status_text([status("g1", "active", next_change=T0 + 2 * H), status("g2", "pending"),
                        status("g3", "active", next_change=T0 - H)], T0 + H)
    lines = text.splitlines()
    assert lines[0] == "jitpol status at 2099-03-01T10:00:00Z"
    assert lines[2].split() == ["GRANT", "STATE", "REQUESTER", "RESOURCE/ROLE", "WINDOW", "REASON"]
    assert lines[3].split()[:4] == ["g1", "active", "alice", "prod-db/read"]
    assert "2 active, 1 pending" in lines
    assert lines[-1] == "Next change due 2099-03-01T11:00:00Z."  # a change already past is not "next"


def test_status_text_without_grants() -> None:
    assert status_text([], T0).splitlines()[-1] == "No grants."


def test_status_json_is_the_documented_shape() -> None:
    out = status_json([status("g1", "active", next_change=T0 + 2 * H), status("g2", "expired")])
    assert json.loads(json.dumps(out)) == out
    assert out["grants"][0] == {
        "name": "g1", "state": "active", "reason": "because g1", "requester": "alice", "resource": "prod-db",
        "role": "read", "start": "2099-03-01T09:00:00Z", "end": "2099-03-01T11:00:00Z", "approvals": ["bob"],
        "next_change": "2099-03-01T11:00:00Z",
    }
    assert out["grants"][1]["next_change"] is None


KEY = ("db", "role-membership", "alice", "app_read")
PENDING_POLICY = PolicyCheck("f" * 64, "0" * 64, 2, ())


def report(**kw: object) -> CheckReport:
    base: dict[str, object] = {"base": "origin/main", "at": T0, "diagnostics": (), "policy_files": (),
                               "policy": None, "grants": (), "adds": (), "removes": ()}
    base.update(kw)
    return CheckReport(**base)  # type: ignore[arg-type]


MD: dict[str, tuple[CheckReport, tuple[str, ...], tuple[str, ...]]] = {
    # report -> lines that must appear, lines that must not
    "nothing changes": (report(), ("### ✅ jitpol check against `origin/main`",
                                   "Merging now (2099-03-01T09:00:00Z) changes no live access."), ("#### Grants",)),
    "a problem blocks": (report(problems=("grant g cannot become active: expired",)),
                         ("### ❌ jitpol check against `origin/main`", "**This change cannot be approved as it is:**",
                          "- grant g cannot become active: expired"), ("changes no live access",)),
    "a guarded path": (report(guarded=(Guarded("audit/ledger.jsonl", "modified", "only jitpol writes audit/"),)),
                       (f"**🚨 {NOT_APPROVABLE.capitalize()}: this change edits what only jitpol or the admins may "
                        "change.**", "- 🚨 `audit/ledger.jsonl` (modified): only jitpol writes audit/"), ()),
    "a grant waits for approval": (
        report(grants=(GrantReview("g", "grants/g.yaml", "added", "pending", "needs 1 approval", "alice", "prod-db",
                                   "read", T0, T0 + H, ("bob", "carol")),), adds=(KEY,)),
        ("| `g` | added | alice | prod-db/read | 2099-03-01T09:00:00Z → 2099-03-01T10:00:00Z | **pending** | "
         "approval by one of: bob, carol |", "- grant `app_read` to `alice` on `db` (role-membership)"), ()),
    "a policy change waits for the admins": (
        report(policy_files=("resources/db.yaml",), policy=PENDING_POLICY, admins=("admin",),
               warnings=(f"{ADMIN_FIRST}: 2 of ... must run",), adds_after_policy=(KEY,)),
        ("#### Policy change", "- `resources/db.yaml`",
         "#### Once the admins approve the policy change, merging would",
         "- grant `app_read` to `alice` on `db` (role-membership)"),
        (f"- ⚠️ {ADMIN_FIRST}: 2 of ... must run",)),  # the policy section says it: not twice
    "the policy root in a subfolder": (report(layout="policies"),
                                       ("### ✅ jitpol check against `origin/main` (policy in `policies/`)",), ()),
}


@pytest.mark.parametrize(("rep", "present", "absent"), MD.values(), ids=MD.keys())
def test_check_markdown(rep: CheckReport, present: tuple[str, ...], absent: tuple[str, ...]) -> None:
    lines = markdown(rep).splitlines()
    for line in present:
        assert line in lines, f"missing: {line}\n" + "\n".join(lines)
    for line in absent:
        assert not any(line in seen for seen in lines), f"unexpected: {line}"
