"""The content-addressed cache of jitpol.load.cache: a hit is used, and nothing but an entry
jitpol wrote under its own key for exactly these bytes, path, kind, schemas and loader can be."""

from __future__ import annotations

import json
import marshal
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from jitpol.load import schema as schema_module
from jitpol.load.cache import DB_NAME, FileCache, context_digest, encode, entry_key
from jitpol.load.repository import load_repository
from jitpol.load.schema import SCHEMA_DIR_ENV, schema_dir
from tests.helpers.repo import RepoBuilder

PLANTED = "planted by the test"


@pytest.fixture
def rb(tmp_path: Path) -> RepoBuilder:
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    rb.grant("g1", "alice", "2000-01-01T10:00:00Z")
    return rb


def messages(root: Path) -> list[str]:
    return [str(d) for d in load_repository(root).diagnostics]


def open_cache(root: Path) -> FileCache:
    opened = FileCache.open_for(root)
    assert opened is not None
    return opened


def refused(line: int, col: int, message: str) -> object:
    """A cache value saying the file has this one problem (the shape repository._cache_value writes)."""
    return "refused", ((line, col, message),)


def plant(root: Path, rel: str, kind: str, outcome: object, *, secret: bytes | None = None) -> None:
    """Store `outcome` for the file's current bytes, under jitpol's key or under `secret`."""
    cache = open_cache(root)
    if secret is not None:
        cache.secret = secret
    cache.put_many([(cache.key(rel, kind, (root / rel).read_bytes()), outcome)])
    cache.close()


def rows(directory: Path) -> list[tuple[bytes, bytes]]:
    with sqlite3.connect(directory / DB_NAME) as conn:
        return list(conn.execute("SELECT key, value FROM entries"))


def make_invalid(rb: RepoBuilder) -> Path:
    path = rb.root / "grants" / "g1.yaml"
    data = json.loads(path.read_text())
    data["spec"]["colour"] = "blue"  # an unknown field
    path.write_text(json.dumps(data))
    return path


def test_a_second_run_is_served_from_the_cache(rb: RepoBuilder, cache_dir: Path) -> None:
    assert messages(rb.root) == []
    stored = rows(cache_dir)
    assert len(stored) == 11  # one entry per file
    # a hit is really used: an entry written under jitpol's own key decides the outcome
    plant(rb.root, "grants/g1.yaml", "Grant", refused(3, 4, PLANTED))
    assert messages(rb.root) == [f"grants/g1.yaml:3:4: {PLANTED}"]


def test_problems_come_back_from_the_cache_unchanged(rb: RepoBuilder, cache_dir: Path) -> None:
    make_invalid(rb)
    (rb.root / "people" / "broken.yaml").write_text("apiVersion: jitpol/v1\nkind: Person\nkind: Team\n")
    first = messages(rb.root)
    assert any("unknown field 'colour'" in m for m in first)
    assert any("duplicate key 'kind'" in m for m in first)
    assert messages(rb.root) == first
    assert messages(rb.root) == [str(d) for d in load_repository(rb.root, cache=False).diagnostics]


def test_a_planted_entry_cannot_make_an_invalid_file_pass(rb: RepoBuilder, cache_dir: Path) -> None:
    valid = json.loads((rb.root / "grants" / "g1.yaml").read_text())
    make_invalid(rb)
    assert any("unknown field 'colour'" in m for m in messages(rb.root))
    # what an attacker would plant: the data of the valid file for the invalid file's bytes,
    # authenticated with a key of their own, then with no MAC at all
    forged = ("ok", valid, marshal.dumps(((), b"")), None, ())
    plant(rb.root, "grants/g1.yaml", "Grant", forged, secret=b"k" * 32)
    assert any("unknown field 'colour'" in m for m in messages(rb.root))
    key = entry_key(context_digest(), "grants/g1.yaml", "Grant", (rb.root / "grants" / "g1.yaml").read_bytes())
    with sqlite3.connect(cache_dir / DB_NAME) as conn:
        conn.execute("INSERT OR REPLACE INTO entries VALUES (?, ?)", (key, b"\0" * 32 + encode(forged)))
    assert any("unknown field 'colour'" in m for m in messages(rb.root))


def test_a_cache_inside_the_repository_is_never_used(rb: RepoBuilder, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JITPOL_CACHE_DIR", str(rb.root / ".jitpol-cache"))
    monkeypatch.setenv("JITPOL_LOAD_WORKERS", "1")
    assert FileCache.open_for(rb.root) is None
    assert messages(rb.root) == []
    assert not (rb.root / ".jitpol-cache").exists()
    # the same through a link that leads into the repository
    (tmp_path / "link").symlink_to(rb.root, target_is_directory=True)
    monkeypatch.setenv("JITPOL_CACHE_DIR", str(tmp_path / "link" / "cache"))
    assert FileCache.open_for(rb.root) is None


def test_a_foreign_cache_is_ignored(rb: RepoBuilder, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JITPOL_CACHE_KEY", "one secret")
    plant(rb.root, "grants/g1.yaml", "Grant", refused(1, 1, PLANTED))
    assert messages(rb.root) == [f"grants/g1.yaml:1:1: {PLANTED}"]
    monkeypatch.setenv("JITPOL_CACHE_KEY", "another secret")  # e.g. a CI cache from elsewhere
    assert messages(rb.root) == []


def test_a_truncated_or_edited_entry_is_ignored(rb: RepoBuilder, cache_dir: Path) -> None:
    plant(rb.root, "grants/g1.yaml", "Grant", refused(1, 1, PLANTED))
    key = entry_key(context_digest(), "grants/g1.yaml", "Grant", (rb.root / "grants" / "g1.yaml").read_bytes())
    with sqlite3.connect(cache_dir / DB_NAME) as conn:
        (value,) = conn.execute("SELECT value FROM entries WHERE key = ?", (key,)).fetchone()
        conn.execute("UPDATE entries SET value = ? WHERE key = ?", (value[:-3], key))
    assert messages(rb.root) == []
    with sqlite3.connect(cache_dir / DB_NAME) as conn:
        conn.execute("UPDATE entries SET value = ? WHERE key = ?", (value.replace(b"test", b"tess"), key))
    assert messages(rb.root) == []
    with sqlite3.connect(cache_dir / DB_NAME) as conn:
        conn.execute("UPDATE entries SET value = ? WHERE key = ?", (b"short", key))
    assert messages(rb.root) == []


def test_a_corrupt_database_is_replaced(rb: RepoBuilder, cache_dir: Path) -> None:
    assert messages(rb.root) == []
    (cache_dir / DB_NAME).write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (cache_dir / f"{DB_NAME}{suffix}").unlink(missing_ok=True)
    assert messages(rb.root) == []
    assert len(rows(cache_dir)) == 11  # written again


def test_a_changed_file_is_read_again(rb: RepoBuilder, cache_dir: Path) -> None:
    plant(rb.root, "grants/g1.yaml", "Grant", refused(1, 1, PLANTED))
    assert messages(rb.root) == [f"grants/g1.yaml:1:1: {PLANTED}"]
    make_invalid(rb)
    got = messages(rb.root)
    assert PLANTED not in " ".join(got)
    assert any("unknown field 'colour'" in m for m in got)


def test_the_same_bytes_at_another_path_or_kind_are_another_entry(rb: RepoBuilder, cache_dir: Path) -> None:
    raw = (rb.root / "grants" / "g1.yaml").read_bytes()
    context = context_digest()
    keys = {entry_key(context, "grants/g1.yaml", "Grant", raw), entry_key(context, "grants/g2.yaml", "Grant", raw),
            entry_key(context, "grants/g1.yaml", "Person", raw)}
    assert len(keys) == 3


@pytest.fixture
def schema_caches() -> Iterator[None]:
    """The schemas read (and compiled) while a test points $JITPOL_SCHEMA_DIR at a changed copy
    are forgotten after it: later tests in this process see jitpol's own again."""
    yield
    for name in ("load_schema", "_compiled", "_validator", "_fast_check"):
        getattr(schema_module, name).cache_clear()


@pytest.mark.usefixtures("schema_caches")
def test_changed_schemas_are_a_miss(rb: RepoBuilder, cache_dir: Path, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "schemas"
    shutil.copytree(schema_dir(), copy)
    monkeypatch.setenv(SCHEMA_DIR_ENV, str(copy))
    plant(rb.root, "grants/g1.yaml", "Grant", refused(1, 1, PLANTED))
    assert messages(rb.root) == [f"grants/g1.yaml:1:1: {PLANTED}"]
    grant_schema = copy / "grant.schema.json"
    grant_schema.write_text(grant_schema.read_text().replace('"description"', '"$comment"', 1))
    assert messages(rb.root) == []


def test_a_key_file_others_can_read_disables_the_cache(rb: RepoBuilder, cache_dir: Path) -> None:
    assert open_cache(rb.root) is not None
    os.chmod(cache_dir / "key", 0o644)
    assert FileCache.open_for(rb.root) is None
    assert messages(rb.root) == []


def test_switched_off(rb: RepoBuilder, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JITPOL_CACHE", "off")
    assert messages(rb.root) == []
    assert not cache_dir.exists()


def test_the_cache_key_is_never_shown(rb: RepoBuilder, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JITPOL_CACHE_KEY", "s3cret-cache-key")
    cache = open_cache(rb.root)
    assert "secret=" not in repr(cache) and repr(cache.secret) not in repr(cache)
