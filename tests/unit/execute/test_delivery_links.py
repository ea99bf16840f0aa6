"""Delivered credentials (audit/credentials/GRANT.age) are never written, read or removed through a
symbolic link: a link where jitpol keeps them makes the delivery fail by name."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from jitpol.errors import InvalidInput, LedgerBroken
from jitpol.execute.delivery import open_delivery, remove_delivery, write_delivery


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "alice"
    path.parent.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alice", "-f", str(path)], check=True)
    return path


def pub(key: Path) -> list[str]:
    return [Path(f"{key}.pub").read_text().strip()]


def test_a_linked_credentials_folder_gets_no_secret(tmp_path: Path, key: Path) -> None:
    root, outside = tmp_path / "repo", tmp_path / "outside"
    (root / "audit").mkdir(parents=True)
    outside.mkdir()
    (root / "audit" / "credentials").symlink_to(outside, target_is_directory=True)
    with pytest.raises(LedgerBroken, match=r"^audit/credentials is a symbolic link .*remove the link"):
        write_delivery(root, "g1", pub(key), {"username": "u", "password": "p"})
    assert list(outside.iterdir()) == []


def test_a_delivery_behind_a_link_is_not_opened_or_removed(tmp_path: Path, key: Path) -> None:
    elsewhere, root = tmp_path / "elsewhere", tmp_path / "repo"
    write_delivery(elsewhere, "g1", pub(key), {"username": "u", "password": "p"})
    assert open_delivery(elsewhere, "g1", key)["password"] == "p"
    (root / "audit").mkdir(parents=True)
    (root / "audit" / "credentials").symlink_to(elsewhere / "audit" / "credentials", target_is_directory=True)
    with pytest.raises(LedgerBroken, match="audit/credentials is a symbolic link"):
        open_delivery(root, "g1", key)
    assert remove_delivery(root, "g1") is False  # nothing of the repository's is there
    assert (elsewhere / "audit" / "credentials" / "g1.age").is_file()


def test_a_linked_delivery_file_is_refused_and_removed_as_a_link(tmp_path: Path, key: Path) -> None:
    elsewhere, root = tmp_path / "elsewhere", tmp_path / "repo"
    target = write_delivery(elsewhere, "g1", pub(key), {"username": "u", "password": "p"})
    (root / "audit" / "credentials").mkdir(parents=True)
    (root / "audit" / "credentials" / "g1.age").symlink_to(target)
    with pytest.raises(LedgerBroken, match=r"audit/credentials/g1\.age is a symbolic link"):
        open_delivery(root, "g1", key)
    with pytest.raises(LedgerBroken, match=r"audit/credentials/g1\.age is a symbolic link"):
        write_delivery(root, "g1", pub(key), {"username": "u", "password": "new"})
    assert open_delivery(elsewhere, "g1", key)["password"] == "p"
    assert remove_delivery(root, "g1") is True
    assert target.is_file() and not (root / "audit" / "credentials" / "g1.age").is_symlink()


def test_a_grant_name_cannot_leave_the_credentials_folder(tmp_path: Path, key: Path) -> None:
    with pytest.raises(InvalidInput, match="not a grant name"):
        open_delivery(tmp_path, "../../secret", key)
