"""The git wrapper when the policy lives in a directory of the git work tree (`--repo policies`):
every path it takes or returns is relative to that policy root, on the work-tree side and on the
side of a base ref, and files outside it are neither exported nor committed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jitpol.errors import VcsError
from jitpol.ledger.store import Ledger
from jitpol.vcs.git import Repo
from tests.unit.vcs.gitcase import event, found, git


def write(path: Path, text: str = "x\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def top(tmp_path: Path) -> Path:
    """A work tree with a policy in policies/ and decoys at the git root of the same names."""
    top = tmp_path / "work"
    top.mkdir()
    git(top, "init", "-q")
    write(top / "policies" / "jitpol.yaml", "policy\n")
    write(top / "policies" / "grants" / "a.yaml", "a\n")
    Ledger(top / "policies" / "audit" / "ledger.jsonl").append([event("g1")])
    write(top / "jitpol.yaml", "decoy at the git root\n")
    write(top / "grants" / "decoy.yaml", "decoy\n")
    write(top / "README.md", "readme\n")
    git(top, "add", "-A")
    git(top, "commit", "-q", "-m", "base")
    return top


def test_find_remembers_the_policy_root(top: Path) -> None:
    at_root = found(top)
    assert (at_root.root, at_root.prefix, at_root.base) == (top, "", top)
    sub = found(top / "policies")
    assert (sub.root, sub.prefix, sub.base) == (top, "policies/", top / "policies")
    assert sub.git_path("audit") == "policies/audit" and sub.git_path("") == "policies"
    assert sub.policy_path("policies/grants/a.yaml") == "grants/a.yaml"
    assert sub.policy_path("grants/decoy.yaml") is None
    assert sub.policy_path("policies-old/x") is None
    assert at_root.git_path("audit") == "audit" and at_root.policy_path("grants/decoy.yaml") == "grants/decoy.yaml"


def test_changed_files_are_relative_to_the_policy_root(top: Path) -> None:
    git(top, "switch", "-q", "-c", "pr")
    write(top / "policies" / "grants" / "b.yaml", "b\n")  # untracked: counts as added
    (top / "policies" / "grants" / "a.yaml").unlink()
    write(top / "policies" / "jitpol.yaml", "changed\n")
    write(top / "grants" / "decoy.yaml", "changed decoy\n")
    write(top / ".gitattributes", "* text\n")
    repo = found(top / "policies")
    assert sorted(repo.changed_files("main")) == [("A", "grants/b.yaml"), ("D", "grants/a.yaml"),
                                                  ("M", "jitpol.yaml")]
    assert sorted(repo.tree_changes("main")) == [
        ("A", ".gitattributes"), ("A", "policies/grants/b.yaml"), ("D", "policies/grants/a.yaml"),
        ("M", "grants/decoy.yaml"), ("M", "policies/jitpol.yaml")]
    assert sorted(found(top).changed_files("main")) == sorted(repo.tree_changes("main"))


def test_changed_files_from_a_subdirectory_cwd(top: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Paths do not depend on the process's working directory."""
    write(top / "policies" / "grants" / "new.yaml")
    monkeypatch.chdir(top / "policies" / "grants")
    assert found(Path("..")).changed_files("HEAD") == [("A", "grants/new.yaml")]


def test_work_files_are_what_git_sees_under_the_policy_root(top: Path) -> None:
    (top / ".gitignore").write_text("*.log\n")
    write(top / "policies" / "grants" / "untracked.yaml")
    write(top / "policies" / "debug.log")
    (top / "policies" / "grants" / "a.yaml").unlink()
    assert sorted(found(top / "policies").work_files()) == [
        "audit/ledger.jsonl", "grants/untracked.yaml", "jitpol.yaml"]


def test_export_tree_reads_the_same_directory_of_the_ref(top: Path, tmp_path: Path) -> None:
    base = git(top, "rev-parse", "HEAD").strip()
    write(top / "policies" / "grants" / "later.yaml")
    git(top, "add", "-A")
    git(top, "commit", "-q", "-m", "later")
    dest = tmp_path / "out"
    dest.mkdir()
    found(top / "policies").export_tree(base, dest)
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == ["audit/ledger.jsonl", "grants/a.yaml", "jitpol.yaml"]
    assert (dest / "jitpol.yaml").read_text() == "policy\n"
    assert Ledger(dest / "audit" / "ledger.jsonl").verify() is None


def test_export_tree_without_the_directory_exports_nothing(top: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    write(top / "fresh" / "jitpol.yaml")
    found(top / "fresh").export_tree("HEAD", dest)
    assert list(dest.iterdir()) == []


def test_export_tree_takes_bytes_as_stored(top: Path, tmp_path: Path) -> None:
    """No .gitattributes conversion, filter or export-ignore: the ledger's bytes are git's."""
    (top / ".gitattributes").write_text("*.jsonl text eol=crlf\naudit/** export-ignore\n")
    git(top, "add", "-A")
    git(top, "commit", "-q", "-m", "attributes")
    dest = tmp_path / "out"
    dest.mkdir()
    found(top / "policies").export_tree("HEAD", dest)
    data = (dest / "audit" / "ledger.jsonl").read_bytes()
    assert b"\r\n" not in data and Ledger(dest / "audit" / "ledger.jsonl").verify() is None


def test_export_tree_keeps_only_links_that_stay_inside(top: Path, tmp_path: Path) -> None:
    pol = top / "policies"
    os.symlink("../README.md", pol / "out.yaml")
    os.symlink("/etc/hostname", pol / "abs.yaml")
    os.symlink("grants/a.yaml", pol / "in.yaml")
    git(top, "add", "-A")
    git(top, "commit", "-q", "-m", "links")
    dest = tmp_path / "out"
    dest.mkdir()
    found(pol).export_tree("HEAD", dest)
    assert not os.path.lexists(dest / "out.yaml") and not os.path.lexists(dest / "abs.yaml")
    assert os.readlink(dest / "in.yaml") == "grants/a.yaml"


@pytest.mark.parametrize("ref", ["--output=/tmp/x", "-h", "", "no-such-ref"])
def test_a_ref_that_is_no_commit_is_refused(top: Path, ref: str) -> None:
    repo = found(top / "policies")
    with pytest.raises(VcsError, match="is not a commit"):
        repo.changed_files(ref)
    with pytest.raises(VcsError, match="is not a commit"):
        repo.export_tree(ref, top / "unused")


def test_commit_paths_commits_the_policy_roots_audit(top: Path) -> None:
    """`jitpol apply --repo policies` commits policies/audit, not a directory at the git root."""
    repo = found(top / "policies")
    Ledger(top / "policies" / "audit" / "ledger.jsonl").append([event("g2")])
    write(top / "audit" / "decoy.jsonl")  # an audit/ at the git root is not the policy's
    assert repo.is_dirty(["audit"])
    sha = repo.commit_paths(["audit"], "audit: 1 event")
    assert sha is not None
    assert git(top, "show", "--name-status", "--format=", sha).split() == ["M", "policies/audit/ledger.jsonl"]
    assert not repo.is_dirty(["audit"]) and repo.is_dirty() is False
    assert found(top).is_dirty()  # the decoy, outside the policy root
    assert repo.commit_paths(["audit"], "again") is None


def test_push_race_rechains_the_ledger_in_a_subdirectory(tmp_path: Path, top: Path) -> None:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(top, "push", "-q", str(bare), "HEAD:refs/heads/main")

    def clone(name: str) -> Path:
        git(tmp_path, "clone", "-q", str(bare), str(tmp_path / name))
        return tmp_path / name / "policies"

    a, b = clone("a"), clone("b")
    ra, rb = found(a), found(b)

    def record(root: Path, repo: Repo, grant: str) -> str | None:
        Ledger(root / "audit" / "ledger.jsonl").append([event(grant)])
        return repo.commit_paths(["audit"], f"audit: {grant}")

    record(a, ra, "a-1")
    ra.push_with_retry("origin", "main", rebuild=lambda: record(a, ra, "a-1"))
    rebuilds: list[str] = []

    def rebuild() -> str | None:
        rebuilds.append("b")
        return record(b, rb, "b-1")

    record(b, rb, "b-1")
    rb.push_with_retry("origin", "main", rebuild=rebuild)  # owned paths: the policy root's audit
    assert rebuilds == ["b"]
    check = clone("check")
    assert [e["grant"] for e in Ledger(check / "audit" / "ledger.jsonl").events()] == ["g1", "a-1", "b-1"]
