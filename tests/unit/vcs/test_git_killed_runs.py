"""The git wrapper after kills and faults: stale lock files, an index left behind HEAD, a re-base
stopped half-way, and pushes refused because another job moved the remote at the same moment."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from jitpol.errors import VcsError
from jitpol.ledger.store import Ledger
from jitpol.vcs import git as vcs_git
from jitpol.vcs.git import Rebase, Repo
from tests.helpers.detached import detached, holding_open
from tests.services import require_service
from tests.unit.vcs.gitcase import event, found, git


def needs_proc() -> None:
    require_service(Path("/proc/self/fd").is_dir(), "/proc", "telling live git lock holders needs Linux /proc")


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A work tree whose HEAD holds a README and a one-event ledger."""
    root = tmp_path / "work"
    root.mkdir()
    git(root, "init", "-q")
    (root / "README.md").write_text("policy\n")
    Ledger(root / "audit" / "ledger.jsonl").append([event("seed")])
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "seed")
    return root


def index_matches_head(root: Path) -> bool:
    return subprocess.run(["git", "diff", "--cached", "--quiet", "HEAD"], cwd=root).returncode == 0


# --- push refusals: which ones mean "the remote moved" ------------------------------------------


@pytest.mark.parametrize(("porcelain", "stderr", "moved"), [
    ("!\tHEAD:refs/heads/main\t[rejected] (fetch first)", "", True),
    ("!\tHEAD:refs/heads/main\t[rejected] (non-fast-forward)", "", True),
    ("!\tHEAD:refs/heads/main\t[rejected] (stale info)", "", True),
    ("!\tHEAD:refs/heads/main\t[remote rejected] (failed to update ref)",
     "remote: error: cannot lock ref 'refs/heads/main': is at 6f9f274 but expected 5b847ce", True),
    ("!\tHEAD:refs/heads/main\t[remote rejected] (cannot lock ref 'refs/heads/main': is at 6f9f27408ba1 but "
     "expected 5b847ce40357)", "", True),
    ("", "error: cannot lock ref 'refs/heads/main': is at 6f9f274 but expected 5b847ce\n"
         "! [remote rejected] HEAD -> main (failed to update ref)", True),
    ("!\tHEAD:refs/heads/main\t[remote rejected] (pre-receive hook declined)", "remote: branch is protected", False),
    ("!\tHEAD:refs/heads/main\t[remote rejected] (protected branch hook declined)", "", False),
    ("", "fatal: unable to access 'https://example.invalid/': Could not resolve host", False),
])
def test_push_refusals_because_the_remote_moved(porcelain: str, stderr: str, moved: bool) -> None:
    assert vcs_git._remote_moved(porcelain, stderr) is moved


def remote_with_rival(tmp_path: Path) -> tuple[Path, Path]:
    """A bare remote with one ledger event, and a clone."""
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "-q", str(bare), str(seed))
    Ledger(seed / "audit" / "ledger.jsonl").append([event("seed")])
    git(seed, "add", ".")
    git(seed, "commit", "-q", "-m", "seed")
    git(seed, "push", "-q", "origin", "HEAD:refs/heads/main")
    return bare, seed


def test_a_ref_lock_race_on_the_remote_is_retried(tmp_path: Path) -> None:
    """Two jobs pushing at the same moment: the remote's receive-pack finds main moved under it
    (`cannot lock ref 'refs/heads/main': is at X but expected Y`). A pre-receive hook makes that
    happen for sure by moving main itself, once, to a rival's commit."""
    bare, seed = remote_with_rival(tmp_path)
    Ledger(seed / "audit" / "ledger.jsonl").append([event("rival")])
    git(seed, "commit", "-q", "-am", "rival")
    git(seed, "push", "-q", "origin", "HEAD:refs/pending/rival")
    rival = git(seed, "rev-parse", "HEAD").strip()
    hook = bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\ncat >/dev/null\n"
                    'if [ ! -e "$GIT_DIR/moved" ]; then\n  touch "$GIT_DIR/moved"\n'
                    "  env -u GIT_QUARANTINE_PATH -u GIT_OBJECT_DIRECTORY -u GIT_ALTERNATE_OBJECT_DIRECTORIES "
                    f"git update-ref refs/heads/main {rival}\nfi\nexit 0\n")
    hook.chmod(0o755)
    mine = tmp_path / "mine"
    git(tmp_path, "clone", "-q", str(bare), str(mine))
    repo = found(mine)
    Ledger(mine / "audit" / "ledger.jsonl").append([event("mine")])
    repo.commit_paths(["audit"], "mine")
    seen: list[Rebase] = []

    def rechain(rebase: Rebase) -> None:
        seen.append(rebase)
        Ledger(mine / "audit" / "ledger.jsonl").append([event("mine")])
        repo.commit_paths(["audit"], "mine (re-chained)")

    repo.push_with_retry("origin", "main", rechain=rechain, backoff=0)
    assert (bare / "moved").exists() and len(seen) == 1 and seen[0].onto == rival
    check = tmp_path / "check"
    git(tmp_path, "clone", "-q", str(bare), str(check))
    assert [e["grant"] for e in Ledger(check / "audit" / "ledger.jsonl").events()] == ["seed", "rival", "mine"]
    assert repo.pending_rebase() is None  # the journal is gone once the re-chained commit exists


def test_a_remote_that_keeps_refusing_names_the_reason(tmp_path: Path) -> None:
    bare, _ = remote_with_rival(tmp_path)
    (bare / "refs" / "heads" / "main.lock").write_text("")  # a push crashed on the remote
    mine = tmp_path / "mine"
    git(tmp_path, "clone", "-q", str(bare), str(mine))
    repo = found(mine)
    Ledger(mine / "audit" / "ledger.jsonl").append([event("mine")])
    repo.commit_paths(["audit"], "mine")
    with pytest.raises(VcsError, match=r"rejected 3 times.*cannot lock ref"):
        repo.push_with_retry("origin", "main", rechain=lambda _: pytest.fail("nothing to re-base"), attempts=3,
                             backoff=0)


# --- committing: HEAD and the index move together --------------------------------------------


def test_a_failed_commit_leaves_the_index_with_head(work: Path) -> None:
    """Before: HEAD moved to the ledger commit, the real index kept the old ledger, and the user's
    next ordinary commit undid the ledger on the branch."""
    repo = found(work)
    Ledger(work / "audit" / "ledger.jsonl").append([event("a")])
    lock = work / ".git" / "index.lock"
    lock.write_text("")  # someone else's git holds the index
    head = repo.head_commit()
    with pytest.raises(VcsError, match=r"index\.lock exists"):
        repo.commit_paths(["audit"], "audit: a")
    assert repo.head_commit() == head and lock.exists()
    lock.unlink()
    assert index_matches_head(work)
    (work / "README.md").write_text("an ordinary change\n")
    git(work, "add", "README.md")
    git(work, "commit", "-q", "-m", "ordinary")
    assert [e["grant"] for e in Ledger(work / "audit" / "ledger.jsonl").events()] == ["seed", "a"]
    assert git(work, "show", "HEAD:audit/ledger.jsonl").count("\n") == 1  # not committed, not undone
    assert repo.commit_paths(["audit"], "audit: a") is not None  # the next run commits what is owed
    assert index_matches_head(work)


def test_commit_keeps_other_staged_changes_and_cleans_its_own(work: Path) -> None:
    repo = found(work)
    (work / "README.md").write_text("staged by the user\n")
    git(work, "add", "README.md")
    Ledger(work / "audit" / "ledger.jsonl").append([event("a")])
    sha = repo.commit_paths(["audit"], "audit: a")
    assert sha is not None
    assert git(work, "status", "--porcelain").splitlines() == ["M  README.md"]
    assert not (work / ".git" / "index.lock").exists()
    assert not list((work / ".git").glob("jitpol-index-*"))


def test_a_commit_killed_after_moving_head_is_healed(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kill between the ref update and installing the new index: the lock stays (no ordinary
    commit can record the stale index meanwhile); clearing it and healing the index makes
    HEAD, index and work tree agree again."""
    needs_proc()
    repo = found(work)
    Ledger(work / "audit" / "ledger.jsonl").append([event("a")])
    real_replace = os.replace

    def killed(src: Any, dst: Any) -> None:
        if str(src).endswith("index.lock"):
            raise KeyboardInterrupt  # stands in for SIGKILL: nothing after this line runs
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        repo.commit_paths(["audit"], "audit: a")
    monkeypatch.setattr(os, "replace", real_replace)
    (work / ".git" / "index.lock").write_text("")  # what SIGKILL would have left
    assert git(work, "show", "HEAD:audit/ledger.jsonl").count("\n") == 2  # HEAD moved
    assert not index_matches_head(work)
    result = repo.clear_stale_locks()
    assert [p.name for p, _ in result.removed] == ["index.lock"]
    assert repo.heal_index(["audit"]) == ["audit/ledger.jsonl"]
    assert index_matches_head(work) and not repo.is_dirty(["audit"])


def test_heal_index_leaves_deliberate_staging_alone(work: Path) -> None:
    repo = found(work)
    Ledger(work / "audit" / "ledger.jsonl").append([event("a")])
    git(work, "add", "audit")  # staged on purpose: index matches the work tree
    assert repo.heal_index(["audit"]) == []
    assert not index_matches_head(work)


# --- stale lock files -------------------------------------------------------------------------


def make_locks(root: Path) -> list[Path]:
    git_dir = root / ".git"
    locks = [git_dir / "index.lock", git_dir / "HEAD.lock", git_dir / "refs" / "heads" / "main.lock"]
    for lock in locks:
        lock.write_text("")
    return locks


def test_stale_locks_of_a_dead_run_are_removed(work: Path) -> None:
    needs_proc()
    repo = found(work)
    (work / ".git" / "jitpol.lock").write_text("pid=1 host=x\n")  # jitpol's own run lock is never touched
    locks = make_locks(work)
    assert sorted(repo.lock_files()) == sorted(locks)
    result = repo.clear_stale_locks()
    assert sorted(p for p, _ in result.removed) == sorted(locks) and result.kept == ()
    assert not any(lock.exists() for lock in locks)
    assert (work / ".git" / "jitpol.lock").exists()


def test_a_killed_commits_private_index_and_its_lock_are_removed_at_once(work: Path) -> None:
    """A commit killed while git wrote jitpol's private index leaves `jitpol-index-*` and its
    `.lock`: nobody holds them, so the next run removes both, however young they are."""
    needs_proc()
    repo = found(work)
    index = work / ".git" / "jitpol-index-abc123"
    lock = work / ".git" / "jitpol-index-abc123.lock"
    index.write_text("")
    lock.write_text("")
    assert lock in repo.lock_files()
    result = repo.clear_stale_locks()
    assert [p for p, _ in result.removed] == [lock] and not index.exists() and not lock.exists()


def test_a_private_index_someone_holds_open_is_kept(work: Path) -> None:
    needs_proc()
    repo = found(work)
    index = work / ".git" / "jitpol-index-def456"
    index.write_text("")
    with holding_open(index):
        repo.clear_stale_locks()
        assert index.exists()
    repo.clear_stale_locks()
    assert not index.exists()


def test_a_lock_a_live_process_holds_open_is_kept(work: Path) -> None:
    needs_proc()
    repo = found(work)
    lock = work / ".git" / "index.lock"
    lock.write_text("")
    with holding_open(lock) as pid:
        result = repo.clear_stale_locks(older_than=0)
        assert result.removed == () and lock.exists()
        assert f"pid {pid}" in result.kept[0][1]
    assert [p for p, _ in repo.clear_stale_locks().removed] == [lock]


def test_locks_are_kept_while_a_git_process_works_in_the_repository(work: Path) -> None:
    """`git commit` waiting for its editor holds index.lock without keeping it open."""
    needs_proc()
    repo = found(work)
    lock = work / ".git" / "index.lock"
    lock.write_text("")
    # a git process with the repository as its working directory, blocked reading its input
    with detached(["sh", "-c", "sleep 120 | git cat-file --batch"], work) as group:
        wait_for_git(group)
        result = repo.clear_stale_locks(older_than=0)
        assert result.removed == () and lock.exists(), result
        assert "git" in result.kept[0][1]
    for _ in range(200):  # once it is gone, the lock is stale
        if repo.clear_stale_locks(older_than=0).removed:
            break
        time.sleep(0.02)
    assert not lock.exists()


def wait_for_git(group: int) -> None:
    for _ in range(500):
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                comm, _, rest = stat.read_text().partition(") ")
            except OSError:
                continue
            if comm.endswith("(git") and int(rest.split()[2]) == group:
                return
        time.sleep(0.02)
    raise AssertionError("git did not start")


def test_without_proc_only_old_locks_are_removed(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = found(work)
    monkeypatch.setattr(vcs_git, "_lock_users", lambda lock, places: None)  # a machine without /proc
    young, old = work / ".git" / "index.lock", work / ".git" / "HEAD.lock"
    young.write_text("")
    old.write_text("")
    hour_ago = old.stat().st_mtime - 3600
    os.utime(old, (hour_ago, hour_ago))
    result = repo.clear_stale_locks()
    assert [p for p, _ in result.removed] == [old]
    assert [p for p, _ in result.kept] == [young] and "cannot tell" in result.kept[0][1]
    assert young.exists()


# --- a re-base killed half-way ----------------------------------------------------------------


def diverged(work: Path) -> tuple[Repo, str, str]:
    """HEAD has a local ledger commit; `onto` is a rival commit on the same parent that also
    changes README.md. Returns (repo, old head, onto)."""
    repo = found(work)
    base = repo.head_commit()
    assert base is not None
    Ledger(work / "audit" / "ledger.jsonl").append([event("rival")])
    (work / "README.md").write_text("changed by the rival\n")
    git(work, "commit", "-q", "-am", "rival")
    onto = git(work, "rev-parse", "HEAD").strip()
    git(work, "reset", "-q", "--hard", base)
    Ledger(work / "audit" / "ledger.jsonl").append([event("mine")])
    old = repo.commit_paths(["audit"], "mine")
    assert old is not None
    return repo, old, onto


def journal(work: Path, old: str, onto: str) -> None:
    git(work, "update-ref", "refs/jitpol/rebase/old", old)
    git(work, "update-ref", "refs/jitpol/rebase/onto", onto)


def test_a_reset_killed_before_moving_head_is_finished(work: Path) -> None:
    repo, old, onto = diverged(work)
    journal(work, old, onto)
    git(work, "read-tree", "-m", "-u", old, onto)  # what `reset --keep` does before it moves HEAD
    assert repo.head_commit() == old
    message = repo.recover_interrupted_rebase()
    assert message is not None and "finished" in message
    assert repo.head_commit() == onto and index_matches_head(work)
    assert repo.pending_rebase() == Rebase(old, onto)  # the caller still re-applies what `old` held


def test_a_reset_killed_while_writing_files_is_undone(work: Path) -> None:
    repo, old, onto = diverged(work)
    journal(work, old, onto)
    (work / "README.md").write_text("changed by the rival\n")  # written, index not yet
    message = repo.recover_interrupted_rebase()
    assert message is not None and "undid" in message
    assert repo.head_commit() == old and repo.pending_rebase() is None
    assert not repo.is_dirty() and index_matches_head(work)


def test_unpushed(tmp_path: Path) -> None:
    bare, seed = remote_with_rival(tmp_path)
    repo = found(seed)
    assert not repo.unpushed("origin", "main", ["audit"])
    (seed / "README.md").write_text("not the ledger\n")
    git(seed, "add", "README.md")
    git(seed, "commit", "-q", "-m", "readme")
    assert not repo.unpushed("origin", "main", ["audit"])
    Ledger(seed / "audit" / "ledger.jsonl").append([event("a")])
    repo.commit_paths(["audit"], "a")
    assert repo.unpushed("origin", "main", ["audit"])
    assert not repo.unpushed("nowhere", "main", ["audit"])  # no such remote: nothing known to push
    assert repo.unpushed(str(bare), "main", ["audit"])  # a URL: a push will tell
