"""Every kill heals, for git: a run killed between its ledger writes and its commit or push, inside
git's own commit steps, or half-way through a re-base is finished by the next run with nothing lost,
and two shard jobs pushing to one remote at the same moment both get their ledger through."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from jitpol.cli.main import cli
from jitpol.ledger.chain import CHAIN_KEYS
from jitpol.ledger.store import Ledger
from tests.helpers.detached import holding_open
from tests.helpers.git import git, publish
from tests.helpers.repo import RepoBuilder
from tests.services import require_service

AT = "1998-12-01T10:30:00Z"
LATER = "1998-12-01T10:40:00Z"  # nothing new to do: a run then appends nothing
ENV = {"CI": "true", "JITPOL_TRUST_ON_FIRST_USE": "1"}


def jitpol(root: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--repo", str(root)], env=ENV, catch_exceptions=False)


def published(tmp_path: Path) -> tuple[RepoBuilder, Path]:
    """A policy repository with one approved grant, pushed to a bare remote."""
    rb = RepoBuilder(tmp_path / "work", tmp_path / "keys").standard()
    rb.grant("a1", "alice", "1998-12-01T10:00:00Z", "1h", approvers=("lead",))
    return rb, publish(rb.root, tmp_path / "remote.git")


def remote_events(remote: Path, name: str = "ledger.jsonl") -> list[dict[str, Any]]:
    """The remote's ledger, after `jitpol audit verify` passed on a fresh clone of it."""
    check = remote.parent / f"check-{len(list(remote.parent.glob('check-*')))}"
    git(remote.parent, "clone", "-q", str(remote), str(check))
    verify = CliRunner().invoke(cli, ["audit", "verify", "--repo", str(check)], catch_exceptions=False)
    assert verify.exit_code == 0, verify.output
    return Ledger(check / "audit" / name).events()


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def bodies(events: list[dict[str, Any]]) -> list[str]:
    return [json.dumps({k: v for k, v in e.items() if k not in ("seq", "prev", "hash")}, sort_keys=True)
            for e in events]


def index_matches_head(root: Path) -> bool:
    return subprocess.run(["git", "diff", "--cached", "--quiet", "HEAD"], cwd=root).returncode == 0


# --- killed before the commit or the push ------------------------------------------------------


def test_lines_a_killed_run_left_uncommitted_are_committed_and_pushed(tmp_path: Path) -> None:
    """Before: the next run appended nothing, so it committed and pushed nothing (exit 0), and the
    remote stayed behind for good."""
    rb, remote = published(tmp_path)
    killed = jitpol(rb.root, "apply", "--no-commit", "--at", AT)  # events written, then "killed"
    assert killed.exit_code == 0, killed.output
    written = lines(rb.root / "audit" / "ledger.jsonl")
    assert "grant.activated" in [e["event"] for e in written]

    res = jitpol(rb.root, "reconcile", "--at", LATER)
    assert res.exit_code == 0, res.output
    assert lines(rb.root / "audit" / "ledger.jsonl") == written  # this run appended nothing
    assert "Committed ledger" in res.output and "Pushed ledger to origin/main" in res.output
    assert remote_events(remote) == written
    assert not subprocess.run(["git", "status", "--porcelain"], cwd=rb.root, capture_output=True,
                              text=True).stdout.strip()


def test_temporary_files_a_killed_write_left_are_never_committed(tmp_path: Path) -> None:
    """A kill inside an atomic write leaves `.<name>-<random>.tmp` beside the file: never
    committed; removed once old enough not to be another run's write in progress."""
    rb, remote = published(tmp_path)
    assert jitpol(rb.root, "apply", "--at", AT, "--no-commit").exit_code == 0
    (rb.root / "audit" / "policies").mkdir(exist_ok=True)
    old = rb.root / "audit" / "policies" / ".3f9c0a1b2d4e-0123456789ab.tmp"
    fresh = rb.root / "audit" / ".ledger.jsonl-abcdefabcdef.tmp"
    for f in (old, fresh):
        f.write_text("half a file")
    os.utime(old, (1, 1))
    res = jitpol(rb.root, "reconcile", "--at", LATER)
    assert res.exit_code == 0, res.output
    assert not old.exists() and fresh.exists()
    tracked = git(rb.root, "ls-files", "audit")
    assert ".tmp" not in tracked and "audit/ledger.jsonl" in tracked
    assert remote_events(remote) == lines(rb.root / "audit" / "ledger.jsonl")


def test_a_commit_that_was_never_pushed_is_pushed(tmp_path: Path) -> None:
    rb, remote = published(tmp_path)
    assert jitpol(rb.root, "apply", "--at", AT).exit_code == 0  # committed, then "killed" before the push
    res = jitpol(rb.root, "reconcile", "--at", LATER)
    assert res.exit_code == 0, res.output
    assert "Pushed ledger to origin/main" in res.output
    assert remote_events(remote) == lines(rb.root / "audit" / "ledger.jsonl")
    again = jitpol(rb.root, "reconcile", "--at", LATER)  # nothing owed any more: no push
    assert again.exit_code == 0 and "Pushed" not in again.output


def rival_pushes(tmp_path: Path, remote: Path) -> dict[str, Any]:
    """Another runner's clone pushes a ledger line first."""
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(remote), str(other))
    [line] = Ledger(other / "audit" / "ledger.jsonl").append(
        [{"time": "1998-12-01T10:35:00Z", "event": "grant.rejected", "grant": "zz", "reason": "rival"}])
    git(other, "add", "-A")
    git(other, "commit", "-q", "-m", "rival ledger")
    git(other, "push", "-q", "origin", "main")
    return line


@pytest.mark.parametrize("committed", [False, True], ids=["left-uncommitted", "committed-unpushed"])
def test_what_an_earlier_run_owes_is_rechained_onto_a_moved_remote(tmp_path: Path, committed: bool) -> None:
    """The remote moved meanwhile: every line the local branch owes is re-chained on top of it —
    including lines this run did not write (before: only this run's events were re-appended)."""
    rb, remote = published(tmp_path)
    Ledger(rb.root / "audit" / "ledger.jsonl").append(
        [{"time": "1998-12-01T10:00:00Z", "event": "grant.rejected", "grant": "seed", "reason": "first"}])
    git(rb.root, "add", "-A")
    git(rb.root, "commit", "-q", "-m", "first ledger line")
    git(rb.root, "push", "-q", "origin", "main")
    args = ("apply", "--at", AT) if committed else ("apply", "--no-commit", "--at", AT)
    assert jitpol(rb.root, *args).exit_code == 0
    owed = lines(rb.root / "audit" / "ledger.jsonl")[1:]
    rival = rival_pushes(tmp_path, remote)

    res = jitpol(rb.root, "reconcile", "--at", LATER)
    assert res.exit_code == 0, res.output
    events = remote_events(remote)
    assert [e["reason"] for e in events[:2]] == ["first", "rival"] and events[1]["hash"] == rival["hash"]
    assert bodies(events[2:]) == bodies(owed)  # every owed line, once, in order
    assert lines(rb.root / "audit" / "ledger.jsonl") == events
    assert index_matches_head(rb.root)


def test_a_rebase_killed_before_rechaining_loses_nothing(tmp_path: Path) -> None:
    """Killed after `git reset --keep` dropped the local ledger commit, before the re-chained one
    was made: the journal (refs/jitpol/rebase/*) still names the dropped commit."""
    rb, remote = published(tmp_path)
    assert jitpol(rb.root, "apply", "--at", AT).exit_code == 0
    owed = lines(rb.root / "audit" / "ledger.jsonl")
    rival_pushes(tmp_path, remote)
    old = git(rb.root, "rev-parse", "HEAD")
    git(rb.root, "fetch", "-q", "origin", "main")
    onto = git(rb.root, "rev-parse", "FETCH_HEAD")
    git(rb.root, "update-ref", "refs/jitpol/rebase/old", old)
    git(rb.root, "update-ref", "refs/jitpol/rebase/onto", onto)
    git(rb.root, "reset", "-q", "--keep", onto)  # ... and here the run was killed

    res = jitpol(rb.root, "reconcile", "--at", LATER)
    assert res.exit_code == 0, res.output
    assert "re-applied the ledger lines" in res.output
    events = remote_events(remote)
    assert events[0]["reason"] == "rival" and bodies(events[1:]) == bodies(owed)
    assert not git(rb.root, "for-each-ref", "refs/jitpol")


def test_a_signed_ledger_rechained_onto_a_moved_remote_stays_authentic(tmp_path: Path) -> None:
    """Two runners with the reconciler's key: the second re-chains onto the first's push, signs
    the result numbering on from both sides, and every later run finds the ledger authentic (no
    unsigned lines, no rollback in its state file)."""
    _, remote = published(tmp_path)
    key = tmp_path / "keys" / "reconciler"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "jitpol", "-f", str(key)], check=True)
    public = Path(f"{key}.pub").read_text()
    signed = {**ENV, "JITPOL_LEDGER_KEY": key.read_text(), "JITPOL_LEDGER_PUBKEY": public}
    a, b = tmp_path / "a", tmp_path / "b"
    for clone in (a, b):
        git(tmp_path, "clone", "-q", str(remote), str(clone))
    first = CliRunner().invoke(cli, ["reconcile", "--repo", str(a), "--at", AT], env=signed, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    state = {**signed, "JITPOL_STATE_FILE": str(tmp_path / "state" / "b.json")}
    second = CliRunner().invoke(cli, ["reconcile", "--repo", str(b), "--at", LATER], env=state,
                                catch_exceptions=False)
    assert second.exit_code == 0, second.output
    assert "re-chained" in git(b, "log", "-1", "--format=%s")
    check = tmp_path / "check"
    git(tmp_path, "clone", "-q", str(remote), str(check))
    verify = CliRunner().invoke(cli, ["audit", "verify", "--ledger-key", public.strip(), "--repo", str(check)],
                                catch_exceptions=False)
    assert verify.exit_code == 0, verify.output
    cp = json.loads((check / "audit" / "checkpoints" / "ledger.jsonl.json").read_text())
    assert cp["seq"] == 2 and cp["lines"] == len(Ledger(check / "audit" / "ledger.jsonl").events())
    again = CliRunner().invoke(cli, ["reconcile", "--repo", str(b), "--at", LATER], env=state,
                               catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert "rolled back" not in again.output and "did not sign" not in again.output


def test_damage_in_the_work_tree_is_never_committed(tmp_path: Path) -> None:
    """Only appended lines are owed: a rewritten or torn ledger stays out of the branch."""
    rb, _ = published(tmp_path)
    assert jitpol(rb.root, "apply", "--at", AT).exit_code == 0
    head = git(rb.root, "rev-parse", "HEAD")
    ledger = rb.root / "audit" / "ledger.jsonl"
    ledger.write_bytes(ledger.read_bytes() + b'{"seq": 99, "torn')
    res = jitpol(rb.root, "apply", "--at", LATER)
    assert "audit/ledger.jsonl" in res.output and "not committed" in res.output
    assert git(rb.root, "rev-parse", "HEAD") == head


@pytest.mark.parametrize("longer", [False, True])
def test_a_ledger_rewritten_into_another_valid_chain_is_never_committed(tmp_path: Path, longer: bool) -> None:
    """A ledger whose lines all verify but which does not begin with HEAD's file (cut back to
    its first line; or cut back and then grown past the committed length by other lines) stays
    out of the branch. The committed file is compared by its object id, never read."""
    rb, _ = published(tmp_path)
    assert jitpol(rb.root, "apply", "--at", AT).exit_code == 0
    head = git(rb.root, "rev-parse", "HEAD")
    ledger = rb.root / "audit" / "ledger.jsonl"
    committed = ledger.read_bytes()
    assert committed.count(b"\n") > 1
    first = {k: v for k, v in Ledger(ledger).events()[0].items() if k not in CHAIN_KEYS}
    ledger.write_bytes(committed.split(b"\n")[0] + b"\n")
    while longer and ledger.stat().st_size <= len(committed):
        Ledger(ledger).append([first])  # the same event again: a valid chain, another file
    assert Ledger(ledger).verify() is None
    res = jitpol(rb.root, "apply", "--at", AT)
    assert "does not extend the committed file (jitpol only appends to a ledger); not committed" in res.output, \
        res.output
    assert git(rb.root, "rev-parse", "HEAD") == head


# --- killed inside git's own commit steps -------------------------------------------------------


def test_stale_git_locks_of_a_killed_run_are_cleared(tmp_path: Path) -> None:
    """Before: every later run with something to commit exited 1 until someone removed them."""
    require_service(Path("/proc/self/fd").is_dir(), "/proc", "telling live git lock holders needs Linux /proc")
    rb, remote = published(tmp_path)
    assert jitpol(rb.root, "apply", "--no-commit", "--at", AT).exit_code == 0
    git_dir = rb.root / ".git"
    locks = [git_dir / "index.lock", git_dir / "HEAD.lock", git_dir / "refs" / "heads" / "main.lock"]
    for lock in locks:
        lock.write_text("")  # what a SIGKILL inside `git commit` leaves
    res = jitpol(rb.root, "reconcile", "--at", LATER)
    assert res.exit_code == 0, res.output
    assert res.output.count("removed the stale git lock") == 3
    assert not any(lock.exists() for lock in locks)
    assert remote_events(remote) == lines(rb.root / "audit" / "ledger.jsonl")


def test_a_lock_held_by_a_live_git_user_is_kept_and_the_index_stays_with_head(tmp_path: Path) -> None:
    """Before: the commit moved HEAD, failed to update the real index, and the user's next
    ordinary commit deleted the ledger from the branch."""
    require_service(Path("/proc/self/fd").is_dir(), "/proc", "telling live git lock holders needs Linux /proc")
    rb, _ = published(tmp_path)
    head = git(rb.root, "rev-parse", "HEAD")
    lock = rb.root / ".git" / "index.lock"
    lock.write_text("")
    with holding_open(lock):
        res = jitpol(rb.root, "apply", "--at", AT)
        assert res.exit_code == 1
        assert "left alone" in res.output and "index.lock exists" in res.output
        assert lock.exists() and git(rb.root, "rev-parse", "HEAD") == head
    lock.unlink()  # the other git user finished
    assert index_matches_head(rb.root)
    (rb.root / "README.md").write_text("an ordinary change\n")
    git(rb.root, "add", "README.md")
    git(rb.root, "commit", "-q", "-m", "ordinary")
    assert "audit/ledger.jsonl" not in git(rb.root, "show", "--name-only", "--format=", "HEAD")
    res = jitpol(rb.root, "apply", "--at", LATER)  # the next run commits what is owed
    assert res.exit_code == 0 and "Committed ledger" in res.output
    assert git(rb.root, "show", "HEAD:audit/ledger.jsonl") == (rb.root / "audit" / "ledger.jsonl").read_text().strip()
    assert index_matches_head(rb.root)


# --- two shard jobs pushing at the same moment ---------------------------------------------------


TARGETS = [f"db{i}" for i in range(6)]


def sharded(tmp_path: Path) -> Path:
    rb = RepoBuilder(tmp_path / "seed", tmp_path / "keys").standard()
    rb.config(targets={t: {"type": "fake", "state_file": str(tmp_path / f"{t}.json")} for t in TARGETS})
    (rb.root / "resources" / "db-prod.yaml").unlink()
    for t in TARGETS:
        rb.resource(f"r-{t}", target=t, roles={"read": {"grants": ["app_read"]}})
        rb.grant(f"alice-{t}", "alice", "1998-12-01T10:00:00Z", "1h", resource=f"r-{t}", approvers=("lead",))
    return publish(rb.root, tmp_path / "remote.git")


def test_two_shard_jobs_pushing_at_once_both_succeed(tmp_path: Path) -> None:
    """Two CI jobs, one clone each, `reconcile --shard K/2` started together against one bare
    remote, a few rounds: both exit 0 every time and the remote holds every event of both,
    chained and verified. (Before, about one run in three failed with `cannot lock ref`.)"""
    env = {**os.environ, **ENV}
    for round_ in range(3):
        base = tmp_path / f"round-{round_}"
        base.mkdir()
        remote = sharded(base)
        clones = []
        for k in (1, 2):
            clone = base / f"job-{k}"
            git(base, "clone", "-q", str(remote), str(clone))
            clones.append(clone)
        jobs = [subprocess.Popen([sys.executable, "-m", "jitpol.cli", "reconcile", "--repo", str(clone),
                                  "--shard", f"{k}/2", "--at", AT], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
                for k, clone in zip((1, 2), clones, strict=True)]
        outputs = [job.communicate(timeout=300)[0] for job in jobs]
        for job, output in zip(jobs, outputs, strict=True):
            assert job.returncode == 0, output
            assert "Pushed ledger" in output
        for k, clone in zip((1, 2), clones, strict=True):
            name = f"ledger-{k}-of-2.jsonl"
            mine = lines(clone / "audit" / name)
            assert mine and bodies(remote_events(remote, name)) == bodies(mine)
        activated = [e["grant"] for k in (1, 2) for e in remote_events(remote, f"ledger-{k}-of-2.jsonl")
                     if e["event"] == "grant.activated"]
        assert sorted(activated) == sorted(f"alice-{t}" for t in TARGETS)
