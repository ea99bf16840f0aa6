"""The commit path's shortcuts (issue 14): the re-base journal is looked up with one git command
when there is none, and a tree read by object id is read once. Neither may hide a change."""

from __future__ import annotations

from pathlib import Path

import pytest

from jitpol.ledger.store import Ledger
from jitpol.vcs.git import Rebase, Repo
from tests.unit.vcs.gitcase import event, found, git, seeded


@pytest.fixture
def work(tmp_path: Path) -> Path:
    return seeded(tmp_path)


def test_no_journal_costs_one_command(work: Path, commands: list[tuple[str, ...]]) -> None:
    repo = found(work)
    commands.clear()  # finding the repository ran git too
    assert repo.pending_rebase() is None
    assert [c[0] for c in commands] == ["for-each-ref"]


@pytest.mark.parametrize("packed", [False, True], ids=["loose", "packed"])
def test_a_journal_is_found_loose_or_packed(work: Path, packed: bool) -> None:
    old = git(work, "rev-parse", "HEAD").strip()
    Ledger(work / "audit" / "ledger.jsonl").append([event("next")])
    git(work, "commit", "-q", "-am", "next")
    onto = git(work, "rev-parse", "HEAD").strip()
    git(work, "update-ref", "refs/jitpol/rebase/old", old)
    git(work, "update-ref", "refs/jitpol/rebase/onto", onto)
    if packed:
        git(work, "pack-refs", "--all")
        assert not (work / ".git" / "refs" / "jitpol" / "rebase" / "old").exists()
    assert found(work).pending_rebase() == Rebase(old, onto)


def test_half_a_journal_is_no_rebase_as_before(work: Path) -> None:
    git(work, "update-ref", "refs/jitpol/rebase/old", "HEAD")
    assert found(work).pending_rebase() is None


def test_a_ref_elsewhere_under_the_journal_folder_is_not_a_journal(work: Path) -> None:
    git(work, "update-ref", "refs/jitpol/rebase/older", "HEAD")
    git(work, "update-ref", "refs/jitpol/rebase-onto", "HEAD")
    assert found(work).pending_rebase() is None


def test_a_tree_read_by_object_id_is_read_once(work: Path, commands: list[tuple[str, ...]]) -> None:
    repo = found(work)
    head = repo.head_commit()
    assert head is not None
    first = repo.heal_index(["audit"])
    second = repo.changed_paths(["audit"])
    assert (first, second) == ([], [])
    assert sum(1 for c in commands if c[0] == "ls-tree") == 1


def test_a_named_revision_is_read_again_after_it_moves(work: Path) -> None:
    repo = found(work)
    before = repo.file_at("HEAD", "audit/ledger.jsonl")
    Ledger(work / "audit" / "ledger.jsonl").append([event("more")])
    sha = repo.commit_paths(["audit"], "more")
    assert sha is not None
    after = repo.file_at("HEAD", "audit/ledger.jsonl")
    assert before is not None and after is not None and after != before and after.startswith(before)
    assert repo.changed_paths(["audit"]) == []  # the new HEAD's tree, not the one read before


def test_a_new_repo_object_reads_again(work: Path) -> None:
    assert isinstance(found(work), Repo)
    Ledger(work / "audit" / "ledger.jsonl").append([event("x")])
    assert found(work).changed_paths(["audit"]) == [("M", "audit/ledger.jsonl")]
