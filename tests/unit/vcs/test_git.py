"""The git wrapper against real git in temporary directories: commits of exact paths, and a push
race between two clones that re-chains the ledger."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jitpol.errors import VcsError
from jitpol.ledger.store import Ledger
from jitpol.vcs.git import Repo
from jitpol.vcs.gitrun import redact
from tests.unit.vcs.gitcase import event, found, git


@pytest.fixture
def work(tmp_path: Path) -> Path:
    root = tmp_path / "work"
    root.mkdir()
    git(root, "init", "-q")
    return root


# --- finding a repository ---------------------------------------------------------------------


def test_find(tmp_path: Path, work: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert Repo.find(plain) is None
    assert Repo.find(tmp_path / "does-not-exist") is None
    (work / "grants").mkdir()
    assert found(work / "grants").root == work
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    assert Repo.find(bare) is None
    assert Repo.find(work / ".git") is None  # inside the git folder there is no work tree
    policies = work / "a b" / "policies"
    policies.mkdir(parents=True)
    inner = found(policies)
    assert (inner.root, inner.prefix, inner.base) == (work, "a b/policies/", policies)
    assert inner.git_dir == work / ".git"
    assert found(policies / "jitpol.yaml").prefix == "a b/policies/"  # a file: the folder it is in


def test_head_commit(work: Path) -> None:
    repo = found(work)
    assert repo.head_commit() is None
    (work / "a").write_text("a")
    git(work, "add", "a")
    git(work, "commit", "-q", "-m", "a")
    assert repo.head_commit() == git(work, "rev-parse", "HEAD").strip()
    assert repo.current_branch() == "main"


# --- commits ----------------------------------------------------------------------------------


def test_commit_paths_commits_only_the_given_paths(work: Path) -> None:
    repo = found(work)
    (work / "tracked.txt").write_text("v1")
    git(work, "add", "tracked.txt")
    git(work, "commit", "-q", "-m", "base")
    (work / "tracked.txt").write_text("v2, not staged")
    (work / "staged.txt").write_text("staged by the user")
    git(work, "add", "staged.txt")
    (work / "untracked.txt").write_text("untracked")
    Ledger(work / "audit" / "ledger.jsonl").append([event("g1")])

    sha = repo.commit_paths(["audit"], "audit: 1 event")

    assert sha is not None and repo.head_commit() == sha
    assert git(work, "show", "--name-status", "--format=", sha).split() == ["A", "audit/ledger.jsonl"]
    assert git(work, "log", "-1", "--format=%an <%ae>|%cn <%ce>").strip() == (
        "jitpol <jitpol@localhost>|jitpol <jitpol@localhost>"
    )
    # The user's own changes are exactly as they were.
    assert git(work, "diff", "--cached", "--name-only").split() == ["staged.txt"]
    assert git(work, "diff", "--name-only").split() == ["tracked.txt"]
    assert (work / "tracked.txt").read_text() == "v2, not staged"
    assert not repo.is_dirty(["audit"])
    assert repo.is_dirty()


def test_commit_paths_makes_the_first_commit(work: Path) -> None:
    repo = found(work)
    (work / "other.txt").write_text("not mine")
    Ledger(work / "audit" / "ledger.jsonl").append([event("g1")])
    sha = repo.commit_paths(["audit/ledger.jsonl"], "audit: first", author_name="bot", author_email="b@x")
    assert sha is not None and repo.head_commit() == sha
    assert git(work, "ls-tree", "-r", "--name-only", sha).split() == ["audit/ledger.jsonl"]
    assert git(work, "log", "-1", "--format=%an").strip() == "bot"
    assert git(work, "status", "--porcelain").splitlines() == ["?? other.txt"]


def test_commit_paths_returns_none_without_changes(work: Path) -> None:
    repo = found(work)
    assert repo.commit_paths(["audit"], "nothing yet") is None  # unborn, path absent
    (work / "audit").mkdir()
    assert repo.commit_paths(["audit"], "empty dir") is None
    Ledger(work / "audit" / "ledger.jsonl").append([event("g1")])
    first = repo.commit_paths(["audit"], "one")
    assert first is not None
    assert repo.commit_paths(["audit"], "again") is None
    (work / "elsewhere.txt").write_text("x")
    assert repo.commit_paths(["audit"], "still nothing in audit") is None
    assert repo.head_commit() == first


def test_commit_paths_records_deletions(work: Path) -> None:
    repo = found(work)
    ledger = work / "audit" / "old.jsonl"
    Ledger(ledger).append([event("g1")])
    repo.commit_paths(["audit"], "add")
    ledger.unlink()
    sha = repo.commit_paths(["audit/old.jsonl"], "remove")
    assert sha is not None
    assert git(work, "show", "--name-status", "--format=", sha).split() == ["D", "audit/old.jsonl"]
    assert not repo.is_dirty()


def test_commit_paths_treats_paths_literally(work: Path) -> None:
    repo = found(work)
    (work / "a*").write_text("star")
    (work / "ab").write_text("not matched by a literal a*")
    sha = repo.commit_paths(["a*"], "literal")
    assert sha is not None
    assert git(work, "ls-tree", "--name-only", sha).split() == ["a*"]


def test_is_dirty(work: Path) -> None:
    repo = found(work)
    assert not repo.is_dirty()
    (work / "grants").mkdir()
    (work / "grants" / "new.yaml").write_text("x")
    assert repo.is_dirty()
    assert repo.is_dirty(["grants"])
    assert not repo.is_dirty(["audit"])
    (work / ".gitignore").write_text("*.log\n")
    repo.commit_paths([".gitignore", "grants"], "base")
    (work / "debug.log").write_text("ignored")
    assert not repo.is_dirty()


# --- pushing ----------------------------------------------------------------------------------


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare remote whose main branch holds a README and a one-event ledger."""
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "-q", str(bare), str(seed))
    (seed / "README.md").write_text("policy repo\n")
    Ledger(seed / "audit" / "ledger.jsonl").append([event("seed")])
    git(seed, "add", ".")
    git(seed, "commit", "-q", "-m", "seed")
    git(seed, "push", "-q", "origin", "HEAD:refs/heads/main")
    return bare


def clone(remote: Path, name: str) -> Path:
    path = remote.parent / name
    git(remote.parent, "clone", "-q", str(remote), str(path))
    return path


class Run:
    """One jitpol run in a clone: appends its events, commits, and can re-chain them."""

    def __init__(self, root: Path, grants: list[str]) -> None:
        self.root = root
        self.repo = found(root)
        self.bodies = [event(g) for g in grants]
        self.rebuilds = 0

    def record(self) -> str | None:
        Ledger(self.root / "audit" / "ledger.jsonl").append(self.bodies)
        return self.repo.commit_paths(["audit"], f"audit: {len(self.bodies)} events")

    def rebuild(self) -> str | None:
        self.rebuilds += 1
        return self.record()


def remote_ledger(remote: Path, name: str = "check") -> list[dict[str, Any]]:
    return Ledger(clone(remote, name) / "audit" / "ledger.jsonl").events()


def test_push_race_rechains_the_ledger(remote: Path) -> None:
    a = Run(clone(remote, "a"), ["a-1"])
    b = Run(clone(remote, "b"), ["b-1", "b-2"])
    (b.root / "README.md").write_text("local edit that must survive\n")
    (b.root / "scratch.txt").write_text("untracked, must survive\n")

    a.record()
    a.repo.push_with_retry("origin", "main", rebuild=a.rebuild)
    assert a.rebuilds == 0

    b.record()  # chained onto the old ledger: seq 2 and 3, conflicting with a's seq 2
    b.repo.push_with_retry("origin", "main", rebuild=b.rebuild)
    assert b.rebuilds == 1

    events = remote_ledger(remote)  # events() verifies the chain
    assert [(e["seq"], e["grant"]) for e in events] == [(1, "seed"), (2, "a-1"), (3, "b-1"), (4, "b-2")]
    assert (b.root / "README.md").read_text() == "local edit that must survive\n"
    assert (b.root / "scratch.txt").exists()
    assert b.repo.head_commit() == git(remote, "rev-parse", "main").strip()


def test_push_without_a_race_needs_no_rebuild(remote: Path) -> None:
    a = Run(clone(remote, "a"), ["a-1"])
    a.record()
    a.repo.push_with_retry("origin", "main", rebuild=a.rebuild)
    assert a.rebuilds == 0
    assert [e["grant"] for e in remote_ledger(remote)] == ["seed", "a-1"]


def test_push_gives_up_when_the_remote_keeps_moving(remote: Path) -> None:
    rival = Run(clone(remote, "rival"), ["rival"])
    b = Run(clone(remote, "b"), ["b-1"])

    def rebuild_while_the_rival_pushes_again() -> str | None:
        git(rival.root, "pull", "-q", "--ff-only")
        rival.record()
        git(rival.root, "push", "-q", "origin", "HEAD:refs/heads/main")
        return b.rebuild()

    rival.record()
    git(rival.root, "push", "-q", "origin", "HEAD:refs/heads/main")
    b.record()
    with pytest.raises(VcsError, match="rejected 3 times"):
        b.repo.push_with_retry("origin", "main", rebuild=rebuild_while_the_rival_pushes_again, attempts=3)
    assert b.rebuilds == 2
    assert Ledger(b.root / "audit" / "ledger.jsonl").verify() is None


def test_reset_refuses_to_overwrite_local_changes(remote: Path) -> None:
    a = clone(remote, "a")
    (a / "README.md").write_text("changed upstream\n")
    git(a, "commit", "-q", "-am", "readme")
    git(a, "push", "-q", "origin", "HEAD:refs/heads/main")
    b = Run(clone(remote, "b"), ["b-1"])
    git(b.root, "reset", "-q", "--hard", "HEAD~1")  # b is behind
    (b.root / "README.md").write_text("uncommitted local work\n")
    b.record()
    with pytest.raises(VcsError, match="reset failed"):
        b.repo.push_with_retry("origin", "main", rebuild=b.rebuild)
    assert b.rebuilds == 0
    assert (b.root / "README.md").read_text() == "uncommitted local work\n"


def test_foreign_local_commits_are_never_reset_away(remote: Path) -> None:
    a = Run(clone(remote, "a"), ["a-1"])
    a.record()
    git(a.root, "push", "-q", "origin", "HEAD:refs/heads/main")
    b = Run(clone(remote, "b"), ["b-1"])
    git(b.root, "reset", "-q", "--hard", "HEAD~1")
    (b.root / "grants").mkdir()
    (b.root / "grants" / "mine.yaml").write_text("kind: Grant\n")
    git(b.root, "add", "grants")
    git(b.root, "commit", "-q", "-m", "my unpushed grant")
    b.record()
    before = b.repo.head_commit()
    with pytest.raises(VcsError, match=r"grants/mine\.yaml"):
        b.repo.push_with_retry("origin", "main", rebuild=b.rebuild)
    assert b.repo.head_commit() == before and b.rebuilds == 0


def test_push_refused_by_the_remote_is_not_retried(remote: Path) -> None:
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'branch is protected' >&2\nexit 1\n")
    hook.chmod(0o755)
    a = Run(clone(remote, "a"), ["a-1"])
    a.record()
    with pytest.raises(VcsError, match="branch is protected"):
        a.repo.push_with_retry("origin", "main", rebuild=a.rebuild)
    assert a.rebuilds == 0


def test_errors_never_show_credentials(work: Path) -> None:
    repo = found(work)
    Ledger(work / "audit" / "ledger.jsonl").append([event("g")])
    repo.commit_paths(["audit"], "one")
    url = "http://deploy:s3cr3t-token@127.0.0.1:1/org/access.git"
    never: Callable[[], str | None] = lambda: pytest.fail("no rebuild without a rejection")  # noqa: E731
    with pytest.raises(VcsError) as failed:
        repo.push_with_retry(url, "main", rebuild=never)
    message = str(failed.value)
    assert "s3cr3t" not in message and "deploy" not in message
    assert "127.0.0.1" in message


def test_redact() -> None:
    assert redact("fatal: https://x-access-token:ghs_abc@github.com/o/r.git") == (
        "fatal: https://github.com/o/r.git"
    )
    assert redact("ssh://git@host/r and git@host:r") == "ssh://host/r and git@host:r"


def test_create_branch(work: Path) -> None:
    repo = found(work)
    (work / "a").write_text("a")
    repo.commit_paths(["a"], "base")
    (work / "grants").mkdir()
    (work / "grants" / "new.yaml").write_text("x")
    repo.create_branch("access/alice-db")
    assert repo.current_branch() == "access/alice-db"
    assert (work / "grants" / "new.yaml").exists()  # uncommitted work comes along
    with pytest.raises(VcsError):
        repo.create_branch("access/alice-db")
    for bad in ("-x", "a..b", "has space"):
        with pytest.raises(VcsError, match="not a valid branch name"):
            repo.create_branch(bad)


def test_a_linked_work_tree_knows_its_common_git_folder(work: Path, tmp_path: Path) -> None:
    (work / "a").write_text("a")
    git(work, "add", "a")
    git(work, "commit", "-q", "-m", "a")
    linked = tmp_path / "linked"
    git(work, "worktree", "add", "-q", str(linked))
    (linked / "policies").mkdir()
    repo = found(linked / "policies")
    assert (repo.root, repo.prefix) == (linked, "policies/")
    assert repo.git_dir == work / ".git" / "worktrees" / "linked"
    assert repo._common_dir() == (work / ".git").resolve()
    (work / ".git" / "refs" / "heads" / "x.lock").write_text("")
    assert work / ".git" / "refs" / "heads" / "x.lock" in repo.lock_files()  # refs live in the common folder
