"""A content-addressed cache of what reading one policy file gave: its data and marks (and the
grant built from it), or its `path:line:col` problems (`repository._cache_value` says what is
stored). A warm `jitpol validate` reads and hashes every file, takes what the
cache knows, and parses and checks only files it has not seen.

What a lookup is keyed by: SHA-256 over the file's bytes, its path in the repository, the kind
its directory holds, and a digest of everything that decides the outcome (jitpol's version, the
bytes of every JSON Schema, the source of `jitpol.load`). A changed file, schema or loader is a
miss, never a stale hit.

Why a planted entry cannot make an invalid file pass: the cache is jitpol.cachedb, where every
value is authenticated with HMAC-SHA256 under a key that never comes from the repository, and a
cache directory inside the repository being read is never used (that module says more).

A warm run need not even read the files that did not change: the cache also keeps, per
repository root, a *tree record* like git's index: each file's `lstat` identity (device, inode,
size, mtime and ctime in nanoseconds) with its entry key, and where its value lies in a *pack*
(the values of a run of files in one blob, read with one query and one MAC check instead of one
per file). A file whose `lstat` is exactly the recorded one is taken from the record; any other
is read, hashed and looked up as above. ctime cannot be set by a user (`touch -d` changes mtime,
and sets ctime to now), so a file edited and given back its old mtime and size still differs.
A file is only recorded when its mtime and ctime are older than `RACY_SECONDS` before the run
started reading, by the clock of the file system the repository is on (`FileCache.now_ns`): a
write in the same clock tick as the read could otherwise leave an old value under an unchanged
stat (git's "racy" files). The record and
every pack are authenticated like entries; a missing, foreign or damaged one is a full miss.
The record also keeps each policy folder's listing with the `lstat` of every directory in it (an
entry added, removed or renamed changes its directory's mtime and ctime): a folder none of whose
directories changed is not listed again (`repository._Record`).

Where, how to switch it off, and what happens when it is damaged: see jitpol.cachedb.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jitpol
from jitpol.cachedb import DB_NAME, CacheDB, decode, encode

__all__ = ["DB_NAME", "RACY_SECONDS", "FileCache", "TreeEntry", "context_digest", "decode", "encode", "entry_key"]

_BATCH: Final = 500  # SQLite's default limit of bound parameters is 999
# a file changed this recently (before the run began reading) is never recorded by its stat
RACY_SECONDS: Final = 2.0
_TREE_TAG: Final = b"jitpol-tree-v3\0"
_PACK_TAG: Final = b"jitpol-pack-v1\0"
# a tree entry: "rel\0kind" -> packed (dev, ino, size, mtime_ns, ctime_ns, pack number or -1, index) + entry key
TreeEntry = bytes


def context_digest() -> bytes:
    """What, besides a file's bytes, decides what reading it gives."""
    from jitpol.load.schema import KINDS, schema_path

    h = hashlib.sha256(f"jitpol {jitpol.__version__}\0".encode())
    for kind in KINDS:
        h.update(schema_path(kind).read_bytes())
        h.update(b"\0")
    for source in sorted(Path(__file__).parent.glob("*.py")):
        h.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    return h.digest()


def entry_key(context: bytes, rel: str, expected: str, data: bytes) -> bytes:
    h = hashlib.sha256(b"jitpol-file-cache-v1\0")
    h.update(context)
    h.update(rel.encode("utf-8", "surrogatepass") + b"\0" + expected.encode() + b"\0")
    h.update(data)
    return h.digest()


@dataclass(slots=True)
class FileCache(CacheDB):
    """The file cache of one run (jitpol.cachedb's database, with the run's context digest)."""

    context: bytes = b""

    @classmethod
    def open_for(cls, repo_root: Path, env: Mapping[str, str] | None = None) -> FileCache | None:
        """The cache for reading `repo_root`, or None when disabled or unusable."""
        found = CacheDB.located(repo_root, env)
        if found is None:
            return None
        try:
            context = context_digest()
        except (OSError, ValueError):
            return None
        cache = cls(found[0], found[1], context=context)
        return cache if cache._connection() is not None else None

    def key(self, rel: str, expected: str, data: bytes) -> bytes:
        return entry_key(self.context, rel, expected, data)

    def knows_context(self) -> bool:
        """Whether entries were ever written under this run's context digest (same jitpol,
        schemas and loader). If not, every lookup would miss: a cold run skips them. Only a hint:
        a forged row costs lookups, a missing one a cold run; entries are verified either way."""
        conn = self._connection()
        if conn is None:
            return False
        try:
            return conn.execute("SELECT 1 FROM contexts WHERE digest = ?", (self.context,)).fetchone() is not None
        except sqlite3.Error:
            self.broken = True
            return False

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, object]:
        """The verified values of those keys that have one (the caller checks their shape)."""
        conn = self._connection()
        found: dict[bytes, object] = {}
        if conn is None:
            return found
        try:
            for start in range(0, len(keys), _BATCH):
                chunk = keys[start : start + _BATCH]
                marks = ",".join("?" * len(chunk))  # only placeholders: the keys are bound parameters
                rows = conn.execute(f"SELECT key, value FROM entries WHERE key IN ({marks})", chunk).fetchall()  # noqa: S608
                for key, value in rows:
                    payload = self.opened(key, value) if isinstance(key, bytes) else None
                    if payload is None:
                        continue  # foreign, tampered or damaged: a miss
                    value = decode(payload)
                    if value is not None:
                        found[key] = value
        except sqlite3.Error:
            self.broken = True
            return {}
        return found

    def put_many(self, items: Iterable[tuple[bytes, object]]) -> None:
        conn = self._connection()
        if conn is None:
            return
        rows = []
        for key, value in items:
            payload = encode(value)
            rows.append((key, self.sealed(key, payload)))
        if not rows:
            return

        def store(conn: sqlite3.Connection) -> None:
            conn.executemany("INSERT OR REPLACE INTO entries (key, value) VALUES (?, ?)", rows)
            conn.execute("INSERT OR IGNORE INTO contexts (digest) VALUES (?)", (self.context,))
        self.write(store)

    # -- the tree record and packs (see the module text) ----------------------------------------

    def now_ns(self, root: Path) -> int | None:
        """The clock of the file system `root` lies on (the mtime a new file gets there), in ns;
        None when it cannot be read there. Read in the cache folder when that is on the same
        device, else in the repository's `.git` folder on it (never in the policy files'
        folders); a repository on a file system of its own without one records no stats (a
        network file system's clock may differ from this machine's: the racy window must be
        measured by the clock that stamps the files)."""
        try:
            device = os.stat(root).st_dev
            if os.stat(self.directory).st_dev == device:
                where = self.directory
            else:
                where = Path(root) / ".git"
                info = os.lstat(where)
                if not stat.S_ISDIR(info.st_mode) or info.st_dev != device:
                    return None
            name = os.path.join(where, f".jitpol-now-{os.urandom(8).hex()}")
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except OSError:
            return None
        try:
            return os.fstat(fd).st_mtime_ns
        finally:
            os.close(fd)
            os.unlink(name)

    def _tree_key(self, root: Path) -> bytes:
        return hashlib.sha256(_TREE_TAG + self.context + os.fsencode(os.path.realpath(root))).digest()

    def get_tree(self, root: Path) -> tuple[dict[str, TreeEntry], tuple[bytes, ...], dict[str, Any]] | None:
        """The tree record of `root`: {rel: TreeEntry}, its pack ids and the directory listings
        ({folder: (((folder, packed lstat), ...), (rel, ...))}); None when there is none (or it
        does not verify, or has another shape)."""
        value = self.get("trees", self._tree_key(root))
        if not isinstance(value, tuple) or len(value) != 3:
            return None
        entries, packs, listings = value
        if not isinstance(entries, dict) or not isinstance(packs, tuple) or not all(
                isinstance(p, bytes) for p in packs) or not isinstance(listings, dict):
            return None
        return entries, packs, listings

    def get_pack(self, pack_id: bytes) -> list[object] | None:
        value = self.get("packs", pack_id)
        return value if isinstance(value, list) else None

    def put_pack(self, payload: bytes) -> bytes | None:
        """Store `payload` (marshal bytes of a list of values) as a pack; its id, or None."""
        conn = self._connection()
        if conn is None:
            return None
        pack_id = hashlib.sha256(_PACK_TAG + payload).digest()
        try:
            conn.execute("INSERT OR REPLACE INTO packs (id, value) VALUES (?, ?)",
                         (pack_id, self.sealed(pack_id, payload)))
        except sqlite3.Error:
            self.broken = True
            return None
        return pack_id

    def put_tree(self, root: Path, entries: dict[str, TreeEntry], packs: tuple[bytes, ...],
                 listings: dict[str, Any], dropped: Iterable[bytes] = ()) -> None:
        """Replace the tree record of `root`; remove the packs in `dropped` (no longer used)."""
        conn = self._connection()
        if conn is None:
            return
        key = self._tree_key(root)
        payload = encode((entries, packs, listings))

        def store(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO trees (key, value) VALUES (?, ?)", (key, self.sealed(key, payload)))
            conn.executemany("DELETE FROM packs WHERE id = ?", [(d,) for d in dropped if d not in packs])
        self.write(store)
