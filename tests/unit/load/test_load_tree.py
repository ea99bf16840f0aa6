"""The tree record of jitpol.load.cache: a warm run takes a file whose lstat is exactly the
recorded one without reading it, and anything else about the file (its bytes, mtime, inode, a
link in its place, a forged record or pack) makes it read again."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jitpol.load import repository
from jitpol.load.cache import DB_NAME
from jitpol.load.repository import load_repository
from jitpol.load.yamlstrict import read_file_bytes
from tests.helpers.repo import RepoBuilder

GRANTS = 40  # more than _PACK_MIN with the standard files: the serial path writes a pack


@pytest.fixture
def cache_dir(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # files are "racy" (never recorded by their stat) for 2 s after a change; here for 10 ms,
    # and each test waits longer than that before the run that records them
    monkeypatch.setattr(repository, "RACY_SECONDS", 0.01)
    monkeypatch.setattr(repository, "_PACK_MIN", 16)
    return cache_dir


@pytest.fixture
def rb(tmp_path: Path) -> RepoBuilder:
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    for n in range(GRANTS):
        rb.grant(f"g{n}", "alice", "2000-01-01T10:00:00Z")
    return rb


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files this process reads from now on (by their path relative to the repository)."""
    seen: list[str] = []
    real: Callable[..., bytes] = read_file_bytes

    def spy(path: str, shown: str, *args: int) -> bytes:
        seen.append(shown)
        return real(path, shown, *args)

    monkeypatch.setattr(repository, "read_file_bytes", spy)
    return seen


def outcome(root: Path) -> tuple[list[str], list[str]]:
    loaded = load_repository(root)
    return [str(d) for d in loaded.diagnostics], sorted(loaded.policy.grants)


def settle() -> None:
    time.sleep(0.05)  # past the racy window above, by the file system's clock too


def warm(rb: RepoBuilder) -> tuple[list[str], list[str]]:
    """A cold run, then a run that records every file (all old enough by then)."""
    settle()
    first = outcome(rb.root)
    assert outcome(rb.root) == first
    return first


def test_unchanged_files_are_not_read(rb: RepoBuilder, cache_dir: Path, reads: list[str]) -> None:
    first = warm(rb)
    reads.clear()
    assert outcome(rb.root) == first
    assert reads == []
    uncached = load_repository(rb.root, cache=False)
    assert first == ([str(d) for d in uncached.diagnostics], sorted(uncached.policy.grants))


def test_a_changed_file_is_read_again_and_only_it(rb: RepoBuilder, cache_dir: Path, reads: list[str]) -> None:
    warm(rb)
    path = rb.root / "grants" / "g3.yaml"
    data = json.loads(path.read_text())
    data["spec"]["colour"] = "blue"
    path.write_text(json.dumps(data))
    reads.clear()
    got = outcome(rb.root)
    assert any("grants/g3.yaml" in m and "colour" in m for m in got[0])
    assert set(reads) == {"grants/g3.yaml"}  # (twice: hashed, missed, then parsed)


def test_the_same_size_and_mtime_do_not_hide_an_edit(rb: RepoBuilder, cache_dir: Path, reads: list[str]) -> None:
    first = warm(rb)
    path = rb.root / "grants" / "g5.yaml"
    before = os.stat(path)
    text = path.read_text()
    assert "alice" in text
    path.write_text(text.replace("alice", "alicf"))  # same size: an unknown person now
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # the old mtime back (ctime moves on)
    assert os.stat(path).st_size == before.st_size
    reads.clear()
    got = outcome(rb.root)
    assert set(reads) == {"grants/g5.yaml"}
    assert got != first and any("grants/g5.yaml" in m and "alicf" in m for m in got[0])


def test_a_file_replaced_by_another_or_a_link_is_read_again(rb: RepoBuilder, cache_dir: Path, tmp_path: Path,
                                                            reads: list[str]) -> None:
    warm(rb)
    path = rb.root / "grants" / "g7.yaml"
    copy = tmp_path / "g7.copy"
    copy.write_bytes(path.read_bytes())
    os.replace(copy, path)  # the same bytes under a new inode
    (rb.root / "grants" / "g8.yaml").unlink()
    (rb.root / "grants" / "g8.yaml").symlink_to(rb.root / "grants" / "g9.yaml")
    reads.clear()
    messages, grants = outcome(rb.root)
    assert set(reads) == {"grants/g7.yaml", "grants/g8.yaml"}
    assert "g7" in grants and "g8" not in grants
    assert any("grants/g8.yaml" in m and "symbolic link" in m for m in messages)


def test_a_racy_file_is_not_recorded(rb: RepoBuilder, cache_dir: Path, reads: list[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(repository, "RACY_SECONDS", 3600.0)  # every file changed "just now"
    outcome(rb.root)
    reads.clear()
    outcome(rb.root)
    assert len(set(reads)) == GRANTS + 10  # every file read and hashed again


def test_a_forged_record_or_pack_is_ignored(rb: RepoBuilder, cache_dir: Path, reads: list[str]) -> None:
    first = warm(rb)
    with sqlite3.connect(cache_dir / DB_NAME) as conn:
        packs = list(conn.execute("SELECT id, value FROM packs"))
        assert packs
        for pack_id, value in packs:  # one flipped byte in each pack's values
            conn.execute("UPDATE packs SET value = ? WHERE id = ?", (value[:-5] + b"X" + value[-4:], pack_id))
    reads.clear()
    assert outcome(rb.root) == first  # each value from its single entry (by the recorded key) instead
    assert reads == []
    with sqlite3.connect(cache_dir / DB_NAME) as conn:
        conn.execute("DELETE FROM entries")
    reads.clear()
    assert outcome(rb.root) == first  # neither pack nor entry: read, parsed and checked
    assert {f"grants/g{n}.yaml" for n in range(GRANTS)} <= set(reads)
    with sqlite3.connect(cache_dir / DB_NAME) as conn:
        (key, value), = conn.execute("SELECT key, value FROM trees")
        conn.execute("UPDATE trees SET value = ? WHERE key = ?", (b"\0" * 32 + value[32:], key))
    reads.clear()
    assert outcome(rb.root) == first
    assert len(set(reads)) == GRANTS + 10  # no record: every file read


def test_the_workers_packs_serve_a_warm_run(rb: RepoBuilder, cache_dir: Path, reads: list[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    settle()
    # the cold run in a new process: this one may have threads (another test's server), and a
    # process with threads never forks workers
    cold = ("import json, sys; from jitpol.load import repository as r; r.RACY_SECONDS = 0.01; "
            "l = r.load_repository(r.Path(sys.argv[1])); "
            "print(json.dumps([[str(d) for d in l.diagnostics], sorted(l.policy.grants)]))")
    done = subprocess.run([sys.executable, "-c", cold, str(rb.root)], capture_output=True, text=True, check=True,
                          env={**os.environ, "JITPOL_LOAD_WORKERS": "2"}, timeout=120)
    first = tuple(json.loads(done.stdout))
    with sqlite3.connect(cache_dir / DB_NAME) as conn:
        assert conn.execute("SELECT count(*) FROM packs").fetchone()[0] >= 2  # one per worker chunk
    reads.clear()
    assert outcome(rb.root) == first  # taken from the workers' packs
    assert reads == []


def tree_record(cache_dir: Path) -> bytes:
    with sqlite3.connect(cache_dir / DB_NAME) as conn:
        ((value,),) = conn.execute("SELECT value FROM trees")
    return bytes(value)


def test_the_record_is_written_only_when_it_would_say_more(rb: RepoBuilder, cache_dir: Path,
                                                           reads: list[str]) -> None:
    warm(rb)
    recorded = tree_record(cache_dir)
    outcome(rb.root)
    assert tree_record(cache_dir) == recorded  # nothing changed: not written again
    path = rb.root / "grants" / "g2.yaml"
    path.write_text(path.read_text() + "# edited\n")
    reads.clear()
    outcome(rb.root)  # g2 changed a moment ago: read, but not recorded (nor the record rewritten)
    assert set(reads) == {"grants/g2.yaml"} and tree_record(cache_dir) == recorded
    settle()
    outcome(rb.root)  # old enough now: recorded
    assert tree_record(cache_dir) != recorded
    reads.clear()
    outcome(rb.root)
    assert reads == []


def test_the_racy_window_is_timed_by_the_repositorys_file_system(rb: RepoBuilder, cache_dir: Path, reads: list[str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache on another device than the repository: the clock is read in the repository's .git
    folder; without one, no stat is recorded at all (every file is read and hashed)."""
    import types

    real_stat = os.stat

    def other_device(path: Any, *args: Any, **kwargs: Any) -> Any:
        got = real_stat(path, *args, **kwargs)
        if os.fspath(path) == os.fspath(cache_dir):
            return types.SimpleNamespace(st_dev=got.st_dev + 1, st_mode=got.st_mode)
        return got

    monkeypatch.setattr(os, "stat", other_device)  # (jitpol.load.cache calls os.stat)
    settle()
    outcome(rb.root)
    outcome(rb.root)
    reads.clear()
    outcome(rb.root)
    assert len(set(reads)) == GRANTS + 10  # no .git: nothing recorded
    (rb.root / ".git").mkdir()
    settle()
    outcome(rb.root)
    reads.clear()
    outcome(rb.root)
    assert reads == []  # timed in .git: recorded
    assert not [p for p in (rb.root / ".git").iterdir()]  # the probe file is gone again


def test_what_was_loaded_is_left_out_of_later_collections(rb: RepoBuilder, cache_dir: Path) -> None:
    import gc

    gc.unfreeze()
    try:
        loaded = load_repository(rb.root)
        assert gc.isenabled()  # switched off while loading only
        assert gc.get_freeze_count() > 0 and loaded.policy.grants
    finally:
        gc.unfreeze()


@pytest.fixture
def listed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The folders listed (scandir) from now on, relative to the repository."""
    seen: list[str] = []
    real = repository._entries

    def spy(directory: Path, parts: tuple[str, ...], **kwargs: Any) -> Any:
        seen.append(directory.name if not parts else "/".join(parts))
        return real(directory, parts, **kwargs)

    monkeypatch.setattr(repository, "_entries", spy)
    return seen


def test_unchanged_folders_are_not_listed_again(rb: RepoBuilder, cache_dir: Path, listed: list[str]) -> None:
    (rb.root / "grants" / "2000").mkdir()
    rb.grant("nested", "alice", "2000-01-01T10:00:00Z")
    (rb.root / "grants" / "nested.yaml").rename(rb.root / "grants" / "2000" / "nested.yaml")
    first = warm(rb)
    assert "nested" in first[1]
    listed.clear()
    assert outcome(rb.root) == first
    assert listed == []  # every folder as recorded: the recorded files


@pytest.mark.parametrize("change", ["add", "remove", "add-folder", "folder-to-link", "rename"])
def test_a_changed_folder_is_listed_again(rb: RepoBuilder, cache_dir: Path, listed: list[str],
                                          change: str, tmp_path: Path) -> None:
    sub = rb.root / "grants" / "2000"
    sub.mkdir()
    (rb.root / "grants" / "g1.yaml").rename(sub / "g1.yaml")
    warm(rb)
    grants = sub / "g1.yaml"
    if change == "add":
        (sub / "extra.yaml").write_text((rb.root / "grants" / "g2.yaml").read_text().replace("g2", "extra"))
    elif change == "remove":
        grants.unlink()
    elif change == "add-folder":
        deeper = sub / "deeper"
        deeper.mkdir()
        (deeper / "extra.yaml").write_text((rb.root / "grants" / "g2.yaml").read_text().replace("g2", "extra"))
    elif change == "folder-to-link":
        outside = tmp_path / "outside"
        sub.rename(outside)
        sub.symlink_to(outside, target_is_directory=True)
    else:
        grants.rename(sub / "renamed.yaml")
    listed.clear()
    messages, names = outcome(rb.root)
    assert "grants" in listed  # listed again, not taken from the record
    expected = {"add": {"g1", "extra"}, "remove": set(), "add-folder": {"g1", "extra"},
                "folder-to-link": set(), "rename": {"g1"}}[change]
    assert {n for n in names if n in {"g1", "extra"}} == expected
    uncached = load_repository(rb.root, cache=False)
    assert (messages, names) == ([str(d) for d in uncached.diagnostics], sorted(uncached.policy.grants))


def test_a_folder_changed_a_moment_ago_is_not_recorded(rb: RepoBuilder, cache_dir: Path, listed: list[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(repository, "RACY_SECONDS", 3600.0)
    outcome(rb.root)
    listed.clear()
    outcome(rb.root)
    assert "grants" in listed
