"""Restrictions bite whatever else is invalid (SPEC section 6): while one hostile file makes the
repository invalid (nothing is added), a deleted grant, `revoke: true` and a person's kill switch
still end access at once; other grants keep their recorded intervals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from jitpol.cli.main import cli
from tests.helpers.repo import RepoBuilder

START, AT = "1998-12-01T10:00:00Z", "1998-12-01T10:30:00Z"


def run(rb: RepoBuilder, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--repo", str(rb.root)], catch_exceptions=False)


def events(rb: RepoBuilder) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (rb.root / "audit" / "ledger.jsonl").read_text().splitlines()]


@pytest.fixture
def rb(tmp_path: Path) -> RepoBuilder:
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    rb.grant("alice-read", "alice", START, "4h", approvers=("lead",))
    rb.grant("bob-write", "bob", START, "4h", role="write", approvers=("lead",))
    assert run(rb, "apply", "--at", START).exit_code == 0
    assert rb.members("app_read") == ["alice", "bob"] and rb.members("app_write") == ["bob"]
    (rb.root / "teams" / "hostile.yaml").write_text("kind: [\n")  # one file nobody can evaluate
    return rb


def invalid_apply(rb: RepoBuilder) -> Result:
    res = run(rb, "apply", "--at", AT)
    assert res.exit_code == 1 and "repository is invalid" in res.output, res.output
    return res


def test_a_deleted_grant_ends_while_the_repository_is_invalid(rb: RepoBuilder) -> None:
    (rb.root / "grants" / "bob-write.yaml").unlink()
    invalid_apply(rb)
    assert rb.members("app_write") == [] and rb.members("app_read") == ["alice"]
    (ended,) = [e for e in events(rb) if e["event"] == "grant.revoked"]
    assert ended["grant"] == "bob-write" and ended["reason"] == "grant file deleted" and ended["final"] is True


def test_revoke_true_ends_while_the_repository_is_invalid(rb: RepoBuilder) -> None:
    rb.grant("bob-write", "bob", START, "4h", role="write", approvers=("lead",), revoke=True)
    invalid_apply(rb)
    assert rb.members("app_write") == [] and rb.members("app_read") == ["alice"]


def test_the_kill_switch_bites_while_the_repository_is_invalid(rb: RepoBuilder) -> None:
    rb.person("bob", disabled=True)
    invalid_apply(rb)
    assert rb.members("app_write") == [] and rb.members("app_read") == ["alice"]


def test_an_invalid_grant_file_keeps_its_recorded_interval_and_nothing_else(rb: RepoBuilder) -> None:
    path = rb.root / "grants" / "bob-write.yaml"
    data = json.loads(path.read_text())
    data["spec"]["window"]["duration"] = "forever"  # invalid, but it still names bob-write
    path.write_text(json.dumps(data))
    invalid_apply(rb)
    assert rb.members("app_write") == ["bob"]  # until its recorded end, no longer
    res = run(rb, "apply", "--at", "1998-12-01T14:30:00Z")
    assert res.exit_code == 1 and rb.members("app_write") == [] and rb.members("app_read") == []
