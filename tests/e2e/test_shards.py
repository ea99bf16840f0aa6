"""reconcile --shard K/N: N jobs split the targets, each with its own ledger file."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from jitpol.cli.main import cli
from jitpol.scope import Shard
from tests.helpers.repo import RepoBuilder

TARGETS = [f"db{i}" for i in range(6)]


def run(rb: RepoBuilder, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--repo", str(rb.root)], catch_exceptions=False)


def members(tmp: Path, target: str) -> list[str]:
    path = tmp / f"{target}.json"
    return sorted(json.loads(path.read_text())["members"].get("app_read", [])) if path.exists() else []


def test_shards_partition_targets() -> None:
    from jitpol.model.documents import Source, Target

    names = [Target(f"t{i}", "fake", {}, Source("jitpol.yaml")) for i in range(200)]
    for n in (1, 2, 3, 7):
        owners = [[k for k in range(1, n + 1) if Shard(k, n).owns(t)] for t in names]
        assert all(len(o) == 1 for o in owners)


def test_sharded_runs_grant_and_revoke_everything_once(tmp_path: Path) -> None:
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    rb.config(targets={t: {"type": "fake", "state_file": str(tmp_path / f"{t}.json")} for t in TARGETS})
    (rb.root / "resources" / "db-prod.yaml").unlink()
    for t in TARGETS:
        rb.resource(f"r-{t}", target=t, roles={"read": {"grants": ["app_read"]}})
        rb.grant(f"alice-{t}", "alice", "1998-12-01T10:00:00Z", "1h", resource=f"r-{t}", approvers=("lead",))
    rb.grant("bad", "alice", "1998-12-01T10:00:00Z", "9h", resource="r-db0", approvers=("lead",))
    for k in (1, 2):
        assert run(rb, "apply", "--shard", f"{k}/2", "--at", "1998-12-01T10:10:00Z").exit_code == 0
    assert all(members(tmp_path, t) == ["alice"] for t in TARGETS)
    files = sorted(p.name for p in (rb.root / "audit").glob("*.jsonl"))
    assert files == ["ledger-1-of-2.jsonl", "ledger-2-of-2.jsonl"]
    both = [json.loads(x) for f in files for x in (rb.root / "audit" / f).read_text().splitlines()]
    assert sorted(e["grant"] for e in both if e["event"] == "grant.activated") == sorted(f"alice-{t}" for t in TARGETS)
    assert [e["grant"] for e in both if e["event"] == "grant.rejected"] == ["bad"]  # recorded once
    # an unsharded view of the same ledgers sees nothing left to do
    res = run(rb, "plan", "--at", "1998-12-01T10:20:00Z", "--detailed-exitcode")
    assert res.exit_code == 0, res.output
    for k in (2, 1):
        assert run(rb, "apply", "--shard", f"{k}/2", "--at", "1998-12-01T11:10:00Z").exit_code == 0
    assert all(members(tmp_path, t) == [] for t in TARGETS)
    assert run(rb, "audit", "verify").exit_code == 0
    assert "ledger-2-of-2.jsonl" in run(rb, "audit", "verify").output


def test_bad_shard_is_refused(tmp_path: Path) -> None:
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    res = run(rb, "apply", "--shard", "3/2", "--at", "1998-12-01T10:10:00Z")
    assert res.exit_code == 1 and "1 <= K <= N" in res.output
