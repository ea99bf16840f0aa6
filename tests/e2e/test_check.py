"""`jitpol check --base`: the pull-request check an approver reads."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from jitpol.cli.main import cli
from tests.helpers.repo import RepoBuilder

AT = "1998-12-01T10:30:00Z"


def git(rb: RepoBuilder, *args: str) -> None:
    subprocess.run(["git", "-C", str(rb.root), "-c", "user.name=t", "-c", "user.email=t@localhost", *args],
                   check=True, capture_output=True)


def run(rb: RepoBuilder, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--repo", str(rb.root)], catch_exceptions=False)


@pytest.fixture
def rb(tmp_path: Path) -> RepoBuilder:
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    git(rb, "init", "-q", "-b", "main")
    assert run(rb, "apply", "--at", "1998-12-01T09:00:00Z", "--no-commit").exit_code == 0  # adopt policy
    git(rb, "add", "-A")
    git(rb, "commit", "-q", "-m", "policy and ledger")
    git(rb, "switch", "-q", "-c", "access/x")
    return rb


def check(rb: RepoBuilder, fmt: str = "json") -> tuple[int, str]:
    res = run(rb, "check", "--base", "main", "--at", AT, "--format", fmt)
    return res.exit_code, res.output


def test_pending_request_lists_who_must_approve(rb: RepoBuilder) -> None:
    rb.grant("alice-read", "alice", "1998-12-01T10:00:00Z", "2h")
    code, out = check(rb)
    assert code == 0, out
    report = json.loads(out)
    (g,) = report["grants"]
    assert (g["name"], g["change"], g["state"], g["approvers"]) == ("alice-read", "added", "pending",
                                                                     ["bob", "lead"])
    code, md = check(rb, "markdown")
    assert code == 0 and "approval by one of: bob, lead" in md and "| `alice-read` | added |" in md


def test_approved_request_shows_what_merging_grants(rb: RepoBuilder) -> None:
    rb.grant("alice-read", "alice", "1998-12-01T10:00:00Z", "2h", approvers=("lead",))
    git(rb, "add", "-A")
    git(rb, "commit", "-q", "-m", "request")
    code, md = check(rb, "markdown")
    assert code == 0 and "- grant `app_read` to `alice` on `db`" in md


def test_policy_change_mixed_with_a_grant_that_needs_it_is_refused(rb: RepoBuilder) -> None:
    rb.workflow("prod", approvals={"required": 0})
    rb.grant("alice-read", "alice", "1998-12-01T10:00:00Z", "2h")
    code, out = check(rb)
    report = json.loads(out)
    assert code == 1
    assert any("split the policy change" in p for p in report["problems"])
    assert report["policy_files"] == ["workflows/prod.yaml"] and report["policy"]["approved"] is False


def test_policy_only_change_is_approvable_by_admins(rb: RepoBuilder) -> None:
    rb.team("eng", ["alice", "bob", "lead"])
    code, md = check(rb, "markdown")
    assert code == 0 and "#### Policy change" in md and "jitpol approve --policy" in md


def test_rule_violations_and_ledger_edits_are_refused(rb: RepoBuilder) -> None:
    rb.grant("too-long", "alice", "1998-12-01T10:00:00Z", "9h", approvers=("lead",))
    code, out = check(rb)
    assert code == 1 and "allows at most 4h" in out
    (rb.root / "grants" / "too-long.yaml").unlink()
    (rb.root / "audit" / "extra.jsonl").write_text("")
    code, out = check(rb)
    assert code == 1 and "edits audit/" in out
