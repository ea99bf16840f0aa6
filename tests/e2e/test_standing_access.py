"""jitpol takes away only what it gave (SPEC section 6): a grant that repeats someone's standing
membership does not make it jitpol's, so the grant's end leaves it; standing holders of managed
privileges are reported (and revoked only on exclusive resources)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from jitpol.cli.main import cli
from tests.helpers.repo import RepoBuilder

START, AT, AFTER = "1998-12-01T10:00:00Z", "1998-12-01T10:30:00Z", "1998-12-01T14:30:00Z"


def run(rb: RepoBuilder, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--repo", str(rb.root)], catch_exceptions=False)


def events(rb: RepoBuilder) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (rb.root / "audit" / "ledger.jsonl").read_text().splitlines()]


def test_a_grant_never_takes_away_access_held_before_it(tmp_path: Path) -> None:
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    rb.set_fake_state({"members": {"app_read": ["alice"]}})  # alice's standing read access
    rb.grant("alice-read", "alice", START, "4h", approvers=("lead",))
    rb.grant("alice-write", "alice", START, "4h", role="write", approvers=("lead",))
    assert run(rb, "apply", "--at", AT).exit_code == 0
    assert rb.members("app_read") == ["alice"] and rb.members("app_write") == ["alice"]
    activated = {e["grant"]: e for e in events(rb) if e["event"] == "grant.activated"}
    assert {"target": "db", "model": "role-membership", "principal": "alice", "privilege": "app_read"} in \
        activated["alice-read"]["standing"]
    assert all(a["privilege"] != "app_read" for a in activated["alice-read"]["assignments"])

    res = run(rb, "apply", "--at", AFTER)
    assert res.exit_code == 0, res.output
    assert rb.members("app_read") == ["alice"], "the grant's end took away access jitpol never gave"
    assert rb.members("app_write") == []  # what jitpol gave is gone


def test_standing_holders_of_managed_privileges_are_reported(tmp_path: Path) -> None:
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    rb.set_fake_state({"members": {"app_read": ["carol"]}})
    rb.grant("alice-read", "alice", START, "4h", approvers=("lead",))
    res = run(rb, "plan", "--at", AT)
    assert "standing access jitpol did not grant: carol holds app_read on db" in res.output, res.output
    assert run(rb, "apply", "--at", AT).exit_code == 0
    assert rb.members("app_read") == ["alice", "carol"]  # reported, not revoked: db-prod is not exclusive
