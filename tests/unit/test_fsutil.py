"""jitpol.fsutil: the one atomic write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jitpol.fsutil import replace_at, write_atomic


def test_writes_the_file_whole_with_exactly_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "out.html"
    target.write_text("old")
    old_umask = os.umask(0o077)
    try:
        write_atomic(target, b"new", mode=0o644)
    finally:
        os.umask(old_umask)
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.html"]


def test_a_failed_rename_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "inside").write_text("x")  # a non-empty folder cannot be renamed over
    with pytest.raises(OSError):
        write_atomic(target, b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_a_link_at_the_destination_is_replaced_never_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("untouched")
    link = tmp_path / "link"
    link.symlink_to(elsewhere)
    write_atomic(link, b"mine")
    assert not link.is_symlink() and link.read_bytes() == b"mine"
    assert elsewhere.read_text() == "untouched"


def test_the_temporary_name_uses_the_prefix_and_a_planted_link_there_is_not_followed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("jitpol.fsutil.secrets.token_hex", lambda n: "fixed")
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    (tmp_path / ".f-fixed.tmp").symlink_to(victim)
    dir_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(FileExistsError):
            replace_at(dir_fd, "f", b"data", prefix=".f-")
    finally:
        os.close(dir_fd)
    assert victim.read_text() == "untouched" and not (tmp_path / "f").exists()


def test_a_write_error_removes_the_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("jitpol.fsutil.os.fsync", broken)
    with pytest.raises(OSError, match="Input/output"):
        write_atomic(tmp_path / "f", b"data")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "missing" / "f", b"data")
