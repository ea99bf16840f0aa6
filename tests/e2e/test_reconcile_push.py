"""`jitpol reconcile` pushes the ledger commit, re-chaining when another run pushed first."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from click.testing import CliRunner

from jitpol.cli.main import cli
from jitpol.ledger.store import Ledger
from tests.helpers.repo import RepoBuilder


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), "-c", "user.name=t", "-c", "user.email=t@localhost", *args],
                          check=True, capture_output=True, text=True).stdout


def pushed(rb: RepoBuilder, tmp_path: Path) -> Path:
    """Commit the repository and push it to a new bare remote (origin); the remote's path."""
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    git(rb.root, "init", "-q", "-b", "main")
    git(rb.root, "add", "-A")
    git(rb.root, "commit", "-q", "-m", "policies")
    git(rb.root, "remote", "add", "origin", str(remote))
    git(rb.root, "push", "-q", "origin", "main")
    return remote


def test_reconcile_pushes_and_rechains_on_a_moved_remote(tmp_path: Path) -> None:
    rb = RepoBuilder(tmp_path / "work", tmp_path / "keys").standard()
    rb.grant("a1", "alice", "1998-12-01T10:00:00Z", "1h", approvers=("lead",))
    remote = pushed(rb, tmp_path)

    # another runner (a second clone) reconciles first and pushes its ledger
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(remote), str(other)], check=True)
    Ledger(other / "audit" / "ledger.jsonl").append([{"time": "1998-12-01T09:00:00Z", "event": "grant.rejected",
                                                      "grant": "zz", "reason": "test"}])
    git(other, "add", "-A")
    git(other, "commit", "-q", "-m", "other ledger")
    git(other, "push", "-q", "origin", "main")

    # a CI run with no trust root pinned adopts nothing unless told to trust on first use
    refused = CliRunner().invoke(cli, ["reconcile", "--repo", str(rb.root), "--at", "1998-12-01T10:30:00Z"],
                                 env={"CI": "true", "JITPOL_TRUST_ROOT": "", "JITPOL_TRUST_ON_FIRST_USE": ""},
                                 catch_exceptions=False)
    assert refused.exit_code == 1 and "no trust root is pinned" in refused.output
    assert "grant.activated" not in (rb.root / "audit" / "ledger.jsonl").read_text() if (
        rb.root / "audit" / "ledger.jsonl").exists() else True

    res = CliRunner().invoke(cli, ["reconcile", "--repo", str(rb.root), "--at", "1998-12-01T10:30:00Z"],
                             env={"CI": "true", "JITPOL_TRUST_ON_FIRST_USE": "1"}, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "Pushed ledger" in res.output
    check = tmp_path / "check"
    subprocess.run(["git", "clone", "-q", str(remote), str(check)], check=True)
    ledger = Ledger(check / "audit" / "ledger.jsonl")
    assert ledger.verify() is None
    events = [e["event"] for e in ledger.events()]
    assert events[0] == "grant.rejected" and "grant.activated" in events
    assert [json.loads(x)["seq"] for x in (check / "audit" / "ledger.jsonl").read_text().splitlines()] == list(
        range(1, len(events) + 1))


def test_reconcile_acts_on_committed_content_only(tmp_path: Path) -> None:
    rb = RepoBuilder(tmp_path / "work", tmp_path / "keys").standard()
    pushed(rb, tmp_path)
    env = {"CI": "true", "JITPOL_TRUST_ON_FIRST_USE": "1"}
    assert CliRunner().invoke(cli, ["reconcile", "--repo", str(rb.root), "--at", "1998-12-01T10:00:00Z"], env=env,
                              catch_exceptions=False).exit_code == 0
    # an approved grant file that was never committed: the events would name a commit without it
    rb.grant("a1", "alice", "1998-12-01T10:00:00Z", "1h", approvers=("lead",))
    res = CliRunner().invoke(cli, ["reconcile", "--repo", str(rb.root), "--at", "1998-12-01T10:30:00Z"], env=env,
                             catch_exceptions=False)
    assert res.exit_code == 1 and "uncommitted changes to grants/a1.yaml" in res.output, res.output
    assert rb.members("app_read") == []
    git(rb.root, "add", "-A")
    git(rb.root, "commit", "-q", "-m", "a1")
    (rb.root / "report.html").write_text("<p>a CI step's output, nothing a run reads</p>")
    res = CliRunner().invoke(cli, ["reconcile", "--repo", str(rb.root), "--at", "1998-12-01T10:30:00Z"], env=env,
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert rb.members("app_read") == ["alice"]
