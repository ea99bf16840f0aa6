"""Nothing under audit/ is read or written through a symbolic link: a link in place of a folder or
a file jitpol keeps is refused by name (UnsafePath, a LedgerBroken), whatever it points at."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from jitpol.errors import LedgerBroken
from jitpol.ledger.nofollow import UnsafePath, entries, read_bytes, remove_file, replace_file
from jitpol.ledger.snapshots import read_snapshot, write_snapshot
from jitpol.ledger.store import Ledger, ledger_files
from jitpol.model.canonical import policy_digest


def body(n: int) -> dict[str, Any]:
    return {"time": "1998-11-30T10:00:00Z", "event": "grant.activated", "grant": f"g-{n}"}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    out.mkdir()
    return out


def listing(path: Path) -> list[str]:
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*"))


# -- the helpers ---------------------------------------------------------------------------------------------


def test_a_linked_folder_on_the_way_is_refused_and_nothing_is_written(root: Path, outside: Path) -> None:
    (root / "audit").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePath, match=r"^audit is a symbolic link \(to .*outside\): .*remove the link"):
        replace_file(root, "audit/credentials/g.age", b"secret")
    assert listing(outside) == []


def test_a_link_deeper_down_is_named_by_its_own_path(root: Path, outside: Path) -> None:
    (root / "audit").mkdir()
    (root / "audit" / "credentials").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePath, match=r"^audit/credentials is a symbolic link") as refused:
        replace_file(root, "audit/credentials/g.age", b"secret")
    assert refused.value.rel == "audit/credentials" and isinstance(refused.value, LedgerBroken)
    assert listing(outside) == []
    with pytest.raises(UnsafePath):
        read_bytes(root, "audit/credentials/g.age")
    with pytest.raises(UnsafePath):
        entries(root, "audit/credentials")


def test_a_dangling_link_is_refused_not_created_through(root: Path, tmp_path: Path) -> None:
    (root / "audit").symlink_to(tmp_path / "nowhere", target_is_directory=True)
    with pytest.raises(UnsafePath, match="audit is a symbolic link"):
        replace_file(root, "audit/policies/x.json", b"{}")
    assert not (tmp_path / "nowhere").exists()


def test_a_linked_file_is_refused_and_its_target_untouched(root: Path, outside: Path) -> None:
    (root / "audit").mkdir()
    target = outside / "precious"
    target.write_bytes(b"keep me\n")
    (root / "audit" / "x.json").symlink_to(target)
    with pytest.raises(UnsafePath, match=r"^audit/x.json is a symbolic link"):
        replace_file(root, "audit/x.json", b"overwritten")
    with pytest.raises(UnsafePath):
        read_bytes(root, "audit/x.json")
    assert target.read_bytes() == b"keep me\n"
    assert remove_file(root, "audit/x.json") is True  # the link itself goes, never what it points at
    assert target.read_bytes() == b"keep me\n" and not (root / "audit" / "x.json").is_symlink()


def test_a_folder_or_fifo_in_place_of_a_file_is_refused_without_hanging(root: Path) -> None:
    (root / "audit" / "d.json").mkdir(parents=True)
    os.mkfifo(root / "audit" / "f.json")
    with pytest.raises(UnsafePath, match="not a regular file"):
        read_bytes(root, "audit/d.json")
    with pytest.raises(UnsafePath, match="not a regular file"):
        read_bytes(root, "audit/f.json")
    with pytest.raises(UnsafePath, match="not a regular file"):
        replace_file(root, "audit/f.json", b"x")


def test_a_file_in_place_of_a_folder_is_refused(root: Path) -> None:
    (root / "audit").write_text("not a folder\n")
    with pytest.raises(UnsafePath, match="audit is not a directory"):
        replace_file(root, "audit/ledger.jsonl", b"x")


def test_plain_files_work_and_missing_ones_are_none(root: Path) -> None:
    assert read_bytes(root, "audit/a/b.json") is None
    assert entries(root, "audit") is None
    replace_file(root, "audit/a/b.json", b"one")
    replace_file(root, "audit/a/b.json", b"two")
    assert read_bytes(root, "audit/a/b.json") == b"two"
    assert entries(root, "audit/a") == [("b.json", "file")]  # no temporary file left behind
    assert remove_file(root, "audit/a/b.json") is True and remove_file(root, "audit/a/b.json") is False


def test_the_root_itself_may_be_reached_through_a_link(tmp_path: Path, root: Path) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(root, target_is_directory=True)  # the operator's --repo: not the repository's content
    replace_file(alias, "audit/x.json", b"ok")
    assert (root / "audit" / "x.json").read_bytes() == b"ok"


def test_paths_leaving_the_root_are_not_accepted(root: Path) -> None:
    with pytest.raises(ValueError):
        read_bytes(root, "audit/../../etc/passwd")
    with pytest.raises(ValueError):
        replace_file(root, "/etc/x", b"")


# -- the ledger ------------------------------------------------------------------------------------------------


def test_a_linked_audit_folder_is_a_broken_ledger_never_followed(root: Path, outside: Path) -> None:
    real = outside / "audit"
    Ledger(real / "ledger.jsonl", root=outside).append([body(1)])
    before = (real / "ledger.jsonl").read_bytes()
    (root / "audit").symlink_to(real, target_is_directory=True)
    ledger = Ledger(root / "audit" / "ledger.jsonl")
    problem = ledger.verify()
    assert problem is not None and problem.line == 0 and problem.message.startswith("audit is a symbolic link")
    assert ledger.readable() == ([], problem)  # nothing read through it
    with pytest.raises(LedgerBroken, match="audit is a symbolic link"):
        ledger.events()
    with pytest.raises(LedgerBroken, match="audit is a symbolic link"):
        ledger.append([body(2)])
    assert (real / "ledger.jsonl").read_bytes() == before
    # readers find the damage rather than no ledger at all
    assert ledger_files(root / "audit") == [root / "audit" / "ledger.jsonl"]


def test_a_dangling_audit_link_is_a_broken_ledger_not_a_crash(root: Path, tmp_path: Path) -> None:
    (root / "audit").symlink_to(tmp_path / "nowhere", target_is_directory=True)
    ledger = Ledger(root / "audit" / "ledger.jsonl")
    assert ledger.verify() is not None
    with pytest.raises(LedgerBroken, match="audit is a symbolic link"):
        ledger.append([body(1)])
    assert not (tmp_path / "nowhere").exists()
    assert ledger_files(root / "audit") == [root / "audit" / "ledger.jsonl"]


def test_a_linked_ledger_file_is_listed_and_refused(root: Path, outside: Path) -> None:
    Ledger(root / "audit" / "ledger.jsonl").append([body(1)])
    target = outside / "other.jsonl"
    Ledger(target, root=outside).append([body(1)])
    before = target.read_bytes()
    (root / "audit" / "ledger-1-of-2.jsonl").symlink_to(target)
    assert ledger_files(root / "audit") == [root / "audit" / "ledger-1-of-2.jsonl", root / "audit" / "ledger.jsonl"]
    linked = Ledger(root / "audit" / "ledger-1-of-2.jsonl")
    problem = linked.verify()
    assert problem is not None and "audit/ledger-1-of-2.jsonl is a symbolic link" in problem.message
    with pytest.raises(LedgerBroken):
        linked.append([body(2)])
    assert target.read_bytes() == before


def test_an_explicit_root_checks_every_folder_below_it(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "top"
    (root / "policies").mkdir(parents=True)
    (root / "policies" / "audit").symlink_to(outside, target_is_directory=True)
    ledger = Ledger(root / "policies" / "audit" / "ledger.jsonl", root=root)
    problem = ledger.verify()
    assert problem is not None and problem.message.startswith("policies/audit is a symbolic link")


# -- policy snapshots ------------------------------------------------------------------------------------------


def entries_for(name: str) -> list[dict[str, Any]]:
    return [{"path": "jitpol.yaml", "data": {"apiVersion": "jitpol/v1", "kind": "Config", "metadata": {"name": name},
                                             "spec": {}}}]


def test_snapshots_are_not_written_or_read_through_a_link(root: Path, outside: Path) -> None:
    docs = entries_for("acme")
    digest = policy_digest([e["data"] for e in docs])
    (root / "audit").mkdir()
    (root / "audit" / "policies").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePath, match="audit/policies is a symbolic link"):
        write_snapshot(root / "audit", digest, docs)
    assert listing(outside) == []
    # a valid snapshot behind the link is not read either
    (root / "audit" / "policies").unlink()
    write_snapshot(outside.parent / "elsewhere" / "audit", digest, docs)
    (root / "audit" / "policies").symlink_to(outside.parent / "elsewhere" / "audit" / "policies")
    with pytest.raises(LedgerBroken, match="audit/policies is a symbolic link"):
        read_snapshot(root / "audit", digest)


def test_a_snapshot_digest_from_the_ledger_cannot_name_another_path(root: Path) -> None:
    with pytest.raises(LedgerBroken, match="not a policy digest"):
        read_snapshot(root / "audit", "../../../etc/passwd")
