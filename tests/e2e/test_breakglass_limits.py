"""Break-glass is limited per person and every use is announced: through the command line, with
the ledger the reconciler writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from jitpol.cli.main import cli
from tests.helpers.repo import RepoBuilder

T0 = "1998-12-01T10:00:00Z"


def run(rb: RepoBuilder, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--repo", str(rb.root)], catch_exceptions=False)


def status(rb: RepoBuilder, at: str) -> dict[str, dict[str, Any]]:
    res = run(rb, "status", "--at", at, "--format", "json")
    assert res.exit_code == 0, res.output
    return {g["name"]: g for g in json.loads(res.stdout)["grants"]}


def apply(rb: RepoBuilder, at: str) -> None:
    res = run(rb, "apply", "--at", at, "--no-commit")
    assert res.exit_code == 0, res.output


@pytest.fixture
def rb(tmp_path: Path) -> RepoBuilder:
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    rb.workflow("prod", breakglass={"allowed": True, "deadline": "30m"})  # default: 1 use per 24h
    return rb


def test_back_to_back_breakglass_is_refused_by_default(rb: RepoBuilder) -> None:
    rb.grant("bg1", "alice", T0, "2h", breakglass=True)
    apply(rb, "1998-12-01T10:10:00Z")
    assert rb.members("app_read") == ["alice"]
    apply(rb, "1998-12-01T10:40:00Z")  # deadline passed unapproved: revoked
    assert rb.members("app_read") == []
    # the attack: a fresh break-glass grant each time the last one runs out
    rb.grant("bg2", "alice", "1998-12-01T10:40:00Z", "2h", breakglass=True)
    st = status(rb, "1998-12-01T10:41:00Z")["bg2"]
    assert st["state"] == "rejected"
    assert "allows each person 1 break-glass grant(s) per 1d" in st["reason"]
    assert "bg1 (from 1998-12-01T10:00:00Z)" in st["reason"]
    apply(rb, "1998-12-01T10:41:00Z")
    assert rb.members("app_read") == []
    plan = json.loads(run(rb, "plan", "--at", "1998-12-01T10:42:00Z", "--format", "json").stdout)
    assert [r["grant"] for r in plan["rejected"]] == ["bg2"]
    # approved, the same request is an ordinary grant: the cap limits only unapproved access
    assert run(rb, "approve", "bg2", "--as", "lead", "--key", str(rb.key("lead"))).exit_code == 0
    assert status(rb, "1998-12-01T10:43:00Z")["bg2"]["state"] == "active"
    # a day after the first one started, break-glass is there again
    rb.grant("bg3", "alice", "1998-12-02T10:00:00Z", "1h", breakglass=True)
    assert status(rb, "1998-12-02T10:01:00Z")["bg3"]["state"] == "active"


def test_deleting_the_used_grant_file_does_not_reset_the_count(rb: RepoBuilder) -> None:
    path = rb.grant("bg1", "alice", T0, "2h", breakglass=True)
    apply(rb, "1998-12-01T10:10:00Z")
    path.unlink()
    apply(rb, "1998-12-01T10:15:00Z")
    assert rb.members("app_read") == []
    rb.grant("bg2", "alice", "1998-12-01T10:20:00Z", "2h", breakglass=True)
    st = status(rb, "1998-12-01T10:21:00Z")["bg2"]
    assert st["state"] == "rejected" and "bg1 (from 1998-12-01T10:00:00Z)" in st["reason"]
    apply(rb, "1998-12-01T10:21:00Z")
    assert rb.members("app_read") == []


def test_cooldown_set_in_the_workflow(rb: RepoBuilder) -> None:
    rb.workflow("prod", breakglass={"allowed": True, "deadline": "30m", "maxUses": 3, "cooldown": "2h"})
    rb.grant("bg1", "alice", T0, "1h", breakglass=True)
    apply(rb, "1998-12-01T10:10:00Z")
    rb.grant("bg2", "alice", "1998-12-01T12:00:00Z", "1h", breakglass=True)
    st = status(rb, "1998-12-01T12:01:00Z")["bg2"]
    assert st["state"] == "rejected" and "break-glass cool-down" in st["reason"]
    assert "so the next may start at 1998-12-01T13:00:00Z" in st["reason"]
    rb.grant("bg2", "alice", "1998-12-01T13:00:00Z", "1h", breakglass=True)
    assert status(rb, "1998-12-01T13:01:00Z")["bg2"]["state"] == "active"


def test_every_breakglass_use_is_announced(rb: RepoBuilder) -> None:
    rb.grant("bg1", "alice", T0, "2h", breakglass=True)
    apply(rb, "1998-12-01T10:10:00Z")
    apply(rb, "1998-12-01T10:40:00Z")  # revoked at the deadline: still news
    res = run(rb, "notify", "--dry-run", "--at", "1998-12-01T10:45:00Z", "--format", "json")
    assert res.exit_code == 0, res.output
    (msg,) = [m for m in json.loads(res.stdout)["messages"] if m["kind"] == "breakglass"]
    # the workflow's approvers and the admins; never only the requester
    assert msg["grant"] == "bg1" and msg["to"] == ["admin", "bob", "lead"]
    assert "BREAK-GLASS" in msg["text"] and "without approval" in msg["text"]


def test_a_workflow_whose_breakglass_chains_into_lasting_access_is_invalid(rb: RepoBuilder) -> None:
    rb.workflow("prod", breakglass={"allowed": True, "deadline": "4h", "maxUses": 6, "per": "24h"})
    res = run(rb, "validate")
    assert res.exit_code == 1
    assert "workflows/prod.yaml:" in res.output and "unapproved access without end" in res.output
