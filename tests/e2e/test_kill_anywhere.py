"""Every kill heals (issue 12): `jitpol reconcile` of 60 actions, pushed to a remote, is killed
with SIGKILL (its whole process group, git children included) at an instant of its granting run
and again of its revoking run — instants spread over the whole run, measured on this machine;
one ordinary run afterwards converges with no manual step.
Then the target holds exactly what the grants say, every grant's activation and end is recorded
exactly once, the remote holds the whole ledger and it verifies, the index matches HEAD, no git
lock is left, and another run has nothing to do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.test_git_faults import ENV, index_matches_head, lines, remote_events
from tests.helpers.git import git, publish
from tests.helpers.repo import RepoBuilder

START, AT, AFTER = "1998-12-01T10:00:00Z", "1998-12-01T10:30:00Z", "1998-12-01T12:30:00Z"
GRANTS = 60
# where in a run it is killed, as a fraction of an unkilled run's duration on this machine: from
# the interpreter's start through loading, observing, the actions, the ledger, commit and push
FRACTIONS = (0.05, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.97)


def build(tmp: Path) -> tuple[RepoBuilder, Path]:
    rb = RepoBuilder(tmp / "work", tmp / "keys").standard()
    for i in range(GRANTS):
        rb.resource(f"r{i}", roles={"read": {"grants": [f"p{i}"]}})
        rb.grant(f"g{i}", "alice", START, "2h" if i % 2 else "1h", resource=f"r{i}", approvers=("lead",))
    return rb, publish(rb.root, tmp / "remote.git")


def reconcile(root: Path, at: str, kill_after: float | None = None) -> tuple[int, str]:
    proc = subprocess.Popen([sys.executable, "-m", "jitpol.cli", "reconcile", "--repo", str(root), "--at", at],
                            env={**os.environ, **ENV}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    if kill_after is not None:
        time.sleep(kill_after)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    output = proc.communicate(timeout=300)[0]
    return proc.returncode, output


def members(rb: RepoBuilder) -> set[tuple[str, str]]:
    return {(p, who) for p, people in rb.fake_state()["members"].items() for who in people}


def assert_healed(rb: RepoBuilder, remote: Path, at: str, want: set[tuple[str, str]]) -> None:
    code, output = reconcile(rb.root, at)
    assert code == 0, output
    assert "internal error" not in output
    assert members(rb) == want
    assert index_matches_head(rb.root), "the index was left behind HEAD"
    locks = [p for p in (rb.root / ".git").glob("**/*.lock") if p.name != "jitpol.lock"]  # jitpol.lock: flock
    assert not locks, f"a git lock was left behind: {locks}"
    assert not list((rb.root / ".git").glob("jitpol-index-*")), "a killed commit's private index was left behind"
    git(rb.root, "fetch", "-q")
    head = subprocess.run(["git", "rev-parse", "HEAD", "origin/main"], cwd=rb.root, capture_output=True, text=True,
                          check=True).stdout.split()
    assert head[0] == head[1], "the remote is behind the reconciler's branch"
    local = lines(rb.root / "audit" / "ledger.jsonl")
    assert [e["hash"] for e in remote_events(remote)] == [e["hash"] for e in local]
    again_code, again = reconcile(rb.root, at)
    assert again_code == 0 and "0 applied" in again, again


@pytest.fixture(scope="module")
def durations(tmp_path_factory: pytest.TempPathFactory) -> tuple[float, float]:
    """How long an unkilled granting run and an unkilled revoking run take here."""
    rb, _remote = build(tmp_path_factory.mktemp("measure"))
    took = []
    for at in (AT, AFTER):
        began = time.monotonic()
        code, output = reconcile(rb.root, at)
        assert code == 0, output
        took.append(time.monotonic() - began)
    return took[0], took[1]


@pytest.mark.parametrize("fraction", FRACTIONS)
def test_killed_anywhere_a_run_heals(tmp_path: Path, durations: tuple[float, float], fraction: float) -> None:
    rb, remote = build(tmp_path)
    _code, output = reconcile(rb.root, AT, kill_after=fraction * durations[0])
    assert "internal error" not in output, output
    assert_healed(rb, remote, AT, {(f"p{i}", "alice") for i in range(GRANTS)})
    events = lines(rb.root / "audit" / "ledger.jsonl")
    activated = Counter(e["grant"] for e in events if e["event"] == "grant.activated")
    assert activated == Counter({f"g{i}": 1 for i in range(GRANTS)}), "an activation was lost or recorded twice"

    _code, output = reconcile(rb.root, AFTER, kill_after=fraction * durations[1])
    assert "internal error" not in output, output
    assert_healed(rb, remote, AFTER, set())
    events = lines(rb.root / "audit" / "ledger.jsonl")
    ended = Counter(e["grant"] for e in events if e["event"] in ("grant.expired", "grant.ended", "grant.revoked"))
    assert ended == Counter({f"g{i}": 1 for i in range(GRANTS)}), ended
