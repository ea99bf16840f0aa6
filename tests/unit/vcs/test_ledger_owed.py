"""What of audit/ a run commits (jitpol.cli.run._not_owed): a ledger file is owed only when it
verifies and begins with HEAD's file, and HEAD's entry must be a file for that. Anything that
cannot be compared is left out with a reason, never a failed commit."""

from __future__ import annotations

from pathlib import Path

from jitpol.cli.run import _not_owed
from jitpol.ledger.store import Ledger
from jitpol.vcs.git import Change
from tests.unit.vcs.gitcase import event, found, git, seeded


def _ledger_change(work: Path, was: tuple[str, str]) -> Change:
    Ledger(work / "audit" / "ledger.jsonl").append([event("g1")])
    [change] = found(work).changes(["audit"])
    return Change("M", change.path, change.git_path, change.now, was)


def test_an_appended_ledger_is_owed(tmp_path: Path) -> None:
    work = seeded(tmp_path)
    Ledger(work / "audit" / "ledger.jsonl").append([event("g1")])
    [change] = found(work).changes(["audit"])
    assert _not_owed(work, found(work), change) is None


def test_a_ledger_whose_head_entry_is_a_submodule_or_a_link_is_not_owed(tmp_path: Path) -> None:
    work = seeded(tmp_path)
    head = git(work, "rev-parse", "HEAD").strip()
    for mode in ("160000", "120000"):
        change = _ledger_change(work, (mode, head))
        assert _not_owed(work, found(work), change) == (
            "does not extend the committed file (jitpol only appends to a ledger)")


def test_a_ledger_that_cannot_be_compared_is_left_out_with_the_reason(tmp_path: Path) -> None:
    work = seeded(tmp_path)
    change = _ledger_change(work, ("100644", "0" * 40))  # an object the store lacks
    why = _not_owed(work, found(work), change)
    assert why is not None and why.startswith("cannot be compared with the committed file")
