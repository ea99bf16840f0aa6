"""jitpol's ledger commit built from exact changes (issue 14): each file's content is hashed and
stored once, the tree is built from HEAD's with `update-index --index-info`, and the real index
gets exactly the committed entries, refreshed, so that git commands which trust recorded file
metadata (`reset --keep`, the re-base) accept them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from jitpol.errors import VcsError
from jitpol.ledger.store import Ledger
from jitpol.vcs.git import Change, Repo
from jitpol.vcs.gitrun import command
from tests.unit.vcs.gitcase import event, found, git, seeded


@pytest.fixture
def work(tmp_path: Path) -> Path:
    root = seeded(tmp_path)
    (root / "README.md").write_text("base\n")
    git(root, "add", "README.md")
    git(root, "commit", "-q", "-m", "readme")
    return root


def _mode(work: Path, rev: str, path: str) -> str:
    return git(work, "ls-tree", rev, "--", path).split()[0]


def test_one_appended_ledger_is_hashed_once_and_nothing_is_added_or_reset(
        work: Path, commands: list[tuple[str, ...]]) -> None:
    repo = found(work)
    Ledger(work / "audit" / "ledger.jsonl").append([event("g1")])
    commands.clear()
    sha = repo.commit_paths(["audit"], "ledger")
    assert sha is not None
    names = [command(c) for c in commands]
    assert names.count("hash-object") == 1
    assert "add" not in names and "reset" not in names
    assert git(work, "show", f"{sha}:audit/ledger.jsonl") == (work / "audit" / "ledger.jsonl").read_text()


def test_the_index_entries_are_refreshed_so_reset_keep_accepts_them(work: Path) -> None:
    """Entries set without file metadata look modified to `git reset --keep` (which the
    re-base of ledger commits uses): it refused to move."""
    repo = found(work)
    first = git(work, "rev-parse", "HEAD").strip()
    Ledger(work / "audit" / "ledger.jsonl").append([event("g1")])
    assert repo.commit_paths(["audit"], "ledger") is not None
    assert subprocess.run(["git", "diff-files", "--quiet"], cwd=work).returncode == 0
    git(work, "reset", "--quiet", "--keep", first)
    assert (work / "audit" / "ledger.jsonl").read_text().count("\n") == 1


def test_what_was_checked_is_committed_not_what_the_file_holds_later(work: Path) -> None:
    repo = found(work)
    ledger = work / "audit" / "ledger.jsonl"
    Ledger(ledger).append([event("g1")])
    checked = ledger.read_text()
    changes = repo.changes(["audit"], store=True)
    ledger.write_text(checked + "written after the check\n")
    sha = repo.commit_changes(changes, "ledger")
    assert sha is not None
    assert git(work, "show", f"{sha}:audit/ledger.jsonl") == checked
    assert repo.changed_paths(["audit"]) == [("M", "audit/ledger.jsonl")]
    assert git(work, "diff", "--cached", "--name-only") == ""  # the index holds the commit, as HEAD


def test_other_staged_and_unstaged_work_is_left_alone(work: Path) -> None:
    repo = found(work)
    (work / "README.md").write_text("staged by the user\n")
    git(work, "add", "README.md")
    (work / "README.md").write_text("and changed again\n")
    (work / "notes.txt").write_text("untracked\n")
    Ledger(work / "audit" / "ledger.jsonl").append([event("g1")])
    sha = repo.commit_paths(["audit"], "ledger")
    assert sha is not None
    assert git(work, "show", "--name-only", "--format=", sha).split() == ["audit/ledger.jsonl"]
    assert git(work, "show", ":README.md") == "staged by the user\n"
    assert (work / "README.md").read_text() == "and changed again\n"
    assert git(work, "status", "--porcelain").splitlines() == ["MM README.md", "?? notes.txt"]


def test_new_changed_deleted_and_linked_files(work: Path) -> None:
    repo = found(work)
    audit = work / "audit"
    (audit / "policies").mkdir()
    (audit / "policies" / "a.json").write_text("{}\n")
    (audit / "tool.sh").write_text("#!/bin/sh\n")
    (audit / "tool.sh").chmod(0o755)
    os.symlink("ledger.jsonl", audit / "link")
    first = repo.commit_paths(["audit"], "add")
    assert first is not None
    assert _mode(work, first, "audit/tool.sh") == "100755"
    assert _mode(work, first, "audit/link") == "120000"
    assert git(work, "show", f"{first}:audit/link") == "ledger.jsonl"
    (audit / "policies" / "a.json").unlink()
    (audit / "tool.sh").write_text("#!/bin/sh\necho changed\n")
    second = repo.commit_paths(["audit"], "change")
    assert second is not None
    assert sorted(git(work, "show", "--name-status", "--format=", second).splitlines()) == [
        "D\taudit/policies/a.json", "M\taudit/tool.sh"]
    assert not repo.is_dirty()


def test_an_existing_file_keeps_its_executable_bit(work: Path) -> None:
    """On a file system without one, every file looks executable: jitpol never changes it."""
    repo = found(work)
    ledger = work / "audit" / "ledger.jsonl"
    ledger.chmod(0o755)
    Ledger(ledger).append([event("g1")])
    sha = repo.commit_paths(["audit"], "ledger")
    assert sha is not None and _mode(work, sha, "audit/ledger.jsonl") == "100644"


def test_content_missing_from_the_object_store_is_refused_before_head_moves(work: Path) -> None:
    repo = found(work)
    head = repo.head_commit()
    Ledger(work / "audit" / "ledger.jsonl").append([event("g1")])
    [change] = repo.changes(["audit"])  # hashed, not stored
    with pytest.raises(VcsError):
        repo.commit_changes([change], "ledger")
    assert repo.head_commit() == head and not (work / ".git" / "index.lock").exists()
    assert not list((work / ".git").glob("jitpol-index-*"))


def test_something_that_is_no_file_is_refused(work: Path) -> None:
    repo = found(work)
    change = Change("M", "audit/ledger.jsonl", "audit/ledger.jsonl", None, ("100644", "0" * 40))
    with pytest.raises(VcsError, match="neither a regular file nor a symbolic link"):
        repo.commit_changes([change], "ledger")


def test_no_change_commits_nothing(work: Path) -> None:
    repo = found(work)
    assert repo.commit_changes([], "nothing") is None
    assert repo.commit_paths(["audit"], "nothing") is None


@pytest.mark.parametrize("object_format", ["sha1", "sha256"])
def test_blob_starts(tmp_path: Path, object_format: str) -> None:
    work = tmp_path / object_format
    work.mkdir()
    git(work, "init", "-q", f"--object-format={object_format}")
    (work / "f").write_bytes(b"line 1\nline 2\n")
    git(work, "add", "f")
    git(work, "commit", "-q", "-m", "f")
    repo = found(work)
    blob = git(work, "rev-parse", "HEAD:f").strip()
    assert len(blob) == (40 if object_format == "sha1" else 64)
    assert repo.blob_starts(blob, b"line 1\nline 2\n")
    assert repo.blob_starts(blob, b"line 1\nline 2\nline 3\n")
    assert not repo.blob_starts(blob, b"line 1\n")
    assert not repo.blob_starts(blob, b"line 1\nline X\nline 3\n")
    assert not repo.blob_starts(blob, b"")
    with pytest.raises(VcsError):
        repo.blob_starts("--batch", b"")
    tree = git(work, "rev-parse", "HEAD^{tree}").strip()
    with pytest.raises(VcsError, match="not a blob"):
        repo.blob_starts(tree, b"")


def test_changes_report_what_changed_with_head_and_work_tree_objects(work: Path) -> None:
    repo = Repo.find(work)
    assert repo is not None
    before = git(work, "rev-parse", "HEAD:audit/ledger.jsonl").strip()
    Ledger(work / "audit" / "ledger.jsonl").append([event("g1")])
    [change] = repo.changes(["audit"])
    assert (change.status, change.path, change.git_path) == ("M", "audit/ledger.jsonl", "audit/ledger.jsonl")
    assert change.was == ("100644", before)
    assert change.now == ("100644", git(work, "hash-object", "audit/ledger.jsonl").strip())


def test_a_submodule_or_a_fifo_under_the_paths_does_not_stop_the_commit(work: Path) -> None:
    """A merged change can put a submodule (a gitlink) under audit/; its folder is no file to
    hash, and neither is a fifo: both are left as they are, the ledger is committed."""
    head = git(work, "rev-parse", "HEAD").strip()
    git(work, "update-index", "--add", "--cacheinfo", f"160000,{head},audit/sub")
    git(work, "commit", "-q", "-m", "a submodule under audit/")
    (work / "audit" / "sub").mkdir()
    os.mkfifo(work / "audit" / "pipe")
    repo = found(work)
    Ledger(work / "audit" / "ledger.jsonl").append([event("g1")])
    assert [c.path for c in repo.changes(["audit"])] == ["audit/ledger.jsonl"]
    sha = repo.commit_paths(["audit"], "ledger")
    assert sha is not None
    assert git(work, "show", "--name-only", "--format=", sha).split() == ["audit/ledger.jsonl"]
    assert _mode(work, sha, "audit/sub") == "160000"


def test_a_file_gone_after_it_was_listed_is_a_deletion(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = found(work)
    ledger = work / "audit" / "ledger.jsonl"
    real = Repo._work_objects

    def vanish(self: Repo, *args: object, **kwargs: object) -> object:
        ledger.unlink()  # removed between the listing and the hashing
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Repo, "_work_objects", vanish)
    [change] = repo.changes(["audit"])
    assert (change.status, change.path, change.now) == ("D", "audit/ledger.jsonl", None)
