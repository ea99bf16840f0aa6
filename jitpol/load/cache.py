"""A content-addressed cache of what reading one policy file gave: its data and marks (and the
grant built from it), or its `path:line:col` problems (`repository._cache_value` says what is
stored). A warm `jitpol validate` reads and hashes every file, takes what the
cache knows, and parses and checks only files it has not seen.

What a lookup is keyed by: SHA-256 over the file's bytes, its path in the repository, the kind
its directory holds, and a digest of everything that decides the outcome (jitpol's version, the
bytes of every JSON Schema, the source of `jitpol.load`). A changed file, schema or loader is a
miss, never a stale hit.

Why a planted entry cannot make an invalid file pass: every entry is authenticated with
HMAC-SHA256 under a key that never comes from the repository (`$JITPOL_CACHE_KEY`, else a
random key file made with mode 0600 in the cache directory), and the cache directory itself is
refused when it lies inside the repository being read. An entry whose MAC does not verify
(corrupt, truncated, written under another key, edited) is a miss, and is only decoded after it
verified; decoding is `marshal` of plain values, checked for shape again. Whoever can write the
cache directory and read its key can forge entries: it is trusted exactly as much as the user's
own files, like ~/.cache itself. A CI cache that carries the directory (key included) carries
that trust with it: restore it only from runs of the same trusted branch.

A warm run need not even read the files that did not change: the cache also keeps, per
repository root, a *tree record* like git's index: each file's `lstat` identity (device, inode,
size, mtime and ctime in nanoseconds) with its entry key, and where its value lies in a *pack*
(the values of a run of files in one blob, read with one query and one MAC check instead of one
per file). A file whose `lstat` is exactly the recorded one is taken from the record; any other
is read, hashed and looked up as above. ctime cannot be set by a user (`touch -d` changes mtime,
and sets ctime to now), so a file edited and given back its old mtime and size still differs.
A file is only recorded when its mtime and ctime are older than `RACY_SECONDS` before the run
started reading (read by the file system's clock): a write in the same clock tick as the read
could otherwise leave an old value under an unchanged stat (git's "racy" files). The record and
every pack are authenticated like entries; a missing, foreign or damaged one is a full miss.

Where: `$JITPOL_CACHE_DIR`, else `$XDG_CACHE_HOME/jitpol`, else `~/.cache/jitpol`; one SQLite
file `files-v1.sqlite` (many processes may use it at once). `JITPOL_CACHE=off` disables it.
Any problem with the cache (unwritable directory, a file that is not a database, a locked
database) disables it for the run: the cache only ever saves time.
"""

from __future__ import annotations

import hashlib
import hmac
import marshal
import os
import sqlite3
import stat
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import jitpol

CACHE_DIR_ENV: Final = "JITPOL_CACHE_DIR"
CACHE_KEY_ENV: Final = "JITPOL_CACHE_KEY"
CACHE_SWITCH_ENV: Final = "JITPOL_CACHE"
DB_NAME: Final = "files-v1.sqlite"
KEY_NAME: Final = "key"
_MAC_LEN: Final = 32
_BATCH: Final = 500  # SQLite's default limit of bound parameters is 999
# a file changed this recently (before the run began reading) is never recorded by its stat
RACY_SECONDS: Final = 2.0
_TREE_TAG: Final = b"jitpol-tree-v1\0"
_PACK_TAG: Final = b"jitpol-pack-v1\0"
# a tree entry: rel -> (kind, (dev, ino, size, mtime_ns, ctime_ns), entry key, pack number or -1, index)
TreeEntry = tuple[str, tuple[int, int, int, int, int], bytes, int, int]

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


def encode(value: object) -> bytes:
    """A plain value (tuples, lists, dicts, str, bytes, numbers, bool, None) as bytes."""
    return marshal.dumps(value)  # type: ignore[arg-type]  # the callers pass plain values only


def decode(payload: bytes) -> object:
    """The value of a payload that verified, or None when it cannot be read."""
    try:
        return marshal.loads(payload)  # noqa: S302 - only after the MAC verified: written by jitpol
    except (ValueError, EOFError, TypeError):
        return None


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def cache_dir(env: Mapping[str, str]) -> Path | None:
    explicit = env.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit)
    base = env.get("XDG_CACHE_HOME")
    if base and Path(base).is_absolute():
        return Path(base) / "jitpol"
    home = env.get("HOME")
    return Path(home) / ".cache" / "jitpol" if home else None


def _key_bytes(directory: Path, env: Mapping[str, str]) -> bytes | None:
    secret = env.get(CACHE_KEY_ENV)
    if secret:
        return hashlib.sha256(b"jitpol-cache-key\0" + secret.encode("utf-8", "surrogatepass")).digest()
    path = directory / KEY_NAME
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as handle:
            handle.write(os.urandom(32))
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077 or info.st_uid != os.getuid():
                return None  # a key others can read or write is no key
            key = handle.read(64)
    except OSError:
        return None
    return key if len(key) == 32 else None


@dataclass(slots=True)
class FileCache:
    """The cache of one run. Safe to use from forked worker processes: each process opens its
    own connection."""

    directory: Path
    secret: bytes
    context: bytes
    _conn: sqlite3.Connection | None = field(default=None, repr=False)
    _pid: int = 0
    broken: bool = False

    @classmethod
    def open_for(cls, repo_root: Path, env: Mapping[str, str] | None = None) -> FileCache | None:
        """The cache for reading `repo_root`, or None when disabled or unusable."""
        env = os.environ if env is None else env
        if env.get(CACHE_SWITCH_ENV, "").strip().lower() in ("off", "0", "no", "false"):
            return None
        directory = cache_dir(env)
        if directory is None or _inside(directory, repo_root):
            return None  # what the repository holds never decides what is valid
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            secret = _key_bytes(directory, env)
            context = context_digest()
        except (OSError, ValueError):
            return None
        if secret is None:
            return None
        cache = cls(directory, secret, context)
        return cache if cache._connection() is not None else None

    def key(self, rel: str, expected: str, data: bytes) -> bytes:
        return entry_key(self.context, rel, expected, data)

    def _mac(self, key: bytes, payload: bytes) -> bytes:
        return hmac.new(self.secret, key + payload, hashlib.sha256).digest()

    def _connection(self) -> sqlite3.Connection | None:
        if self.broken:
            return None
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        path = self.directory / DB_NAME
        for attempt in (1, 2):
            try:
                conn = sqlite3.connect(path, timeout=5, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")  # a cache: losing the last writes on power loss is fine
                conn.execute("CREATE TABLE IF NOT EXISTS entries (key BLOB PRIMARY KEY, value BLOB NOT NULL)")
                conn.execute("CREATE TABLE IF NOT EXISTS contexts (digest BLOB PRIMARY KEY)")
                conn.execute("CREATE TABLE IF NOT EXISTS trees (key BLOB PRIMARY KEY, value BLOB NOT NULL)")
                conn.execute("CREATE TABLE IF NOT EXISTS packs (id BLOB PRIMARY KEY, value BLOB NOT NULL)")
            except sqlite3.DatabaseError:
                if attempt == 2:
                    break
                try:  # not a database (truncated, overwritten): start a new one
                    for suffix in ("", "-wal", "-shm"):
                        Path(f"{path}{suffix}").unlink(missing_ok=True)
                except OSError:
                    break
                continue
            except (sqlite3.Error, OSError):
                break
            self._conn, self._pid = conn, os.getpid()
            return conn
        self.broken = True
        return None

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
                    if not isinstance(key, bytes) or not isinstance(value, bytes) or len(value) < _MAC_LEN:
                        continue
                    mac, payload = value[:_MAC_LEN], value[_MAC_LEN:]
                    if not hmac.compare_digest(mac, self._mac(key, payload)):
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
            rows.append((key, self._mac(key, payload) + payload))
        if not rows:
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT OR REPLACE INTO entries (key, value) VALUES (?, ?)", rows)
            conn.execute("INSERT OR IGNORE INTO contexts (digest) VALUES (?)", (self.context,))
            conn.execute("COMMIT")
        except sqlite3.Error:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self.broken = True

    # -- the tree record and packs (see the module text) ----------------------------------------

    def now_ns(self) -> int | None:
        """The file system's clock in the cache folder (the mtime a new file gets), in ns."""
        try:
            fd, name = tempfile.mkstemp(prefix=".now-", dir=self.directory)
        except OSError:
            return None
        try:
            return os.fstat(fd).st_mtime_ns
        finally:
            os.close(fd)
            os.unlink(name)

    def _tree_key(self, root: Path) -> bytes:
        return hashlib.sha256(_TREE_TAG + self.context + os.fsencode(os.path.realpath(root))).digest()

    def _get_verified(self, table: str, key: bytes) -> object:
        conn = self._connection()
        if conn is None:
            return None
        try:
            row = conn.execute(f"SELECT value FROM {table} WHERE {'key' if table == 'trees' else 'id'} = ?",  # noqa: S608 - two fixed names
                               (key,)).fetchone()
        except sqlite3.Error:
            self.broken = True
            return None
        if row is None or not isinstance(row[0], bytes) or len(row[0]) < _MAC_LEN:
            return None
        mac, payload = row[0][:_MAC_LEN], row[0][_MAC_LEN:]
        if not hmac.compare_digest(mac, self._mac(key, payload)):
            return None
        return decode(payload)

    def get_tree(self, root: Path) -> tuple[dict[str, TreeEntry], tuple[bytes, ...]] | None:
        """The tree record of `root`: {rel: TreeEntry} and its pack ids; None when there is none
        (or it does not verify, or has another shape)."""
        value = self._get_verified("trees", self._tree_key(root))
        if not isinstance(value, tuple) or len(value) != 2:
            return None
        entries, packs = value
        if not isinstance(entries, dict) or not isinstance(packs, tuple) or not all(
                isinstance(p, bytes) for p in packs):
            return None
        return entries, packs

    def get_pack(self, pack_id: bytes) -> list[object] | None:
        value = self._get_verified("packs", pack_id)
        return value if isinstance(value, list) else None

    def put_pack(self, payload: bytes) -> bytes | None:
        """Store `payload` (marshal bytes of a list of values) as a pack; its id, or None."""
        conn = self._connection()
        if conn is None:
            return None
        pack_id = hashlib.sha256(_PACK_TAG + payload).digest()
        try:
            conn.execute("INSERT OR REPLACE INTO packs (id, value) VALUES (?, ?)",
                         (pack_id, self._mac(pack_id, payload) + payload))
        except sqlite3.Error:
            self.broken = True
            return None
        return pack_id

    def put_tree(self, root: Path, entries: dict[str, TreeEntry], packs: tuple[bytes, ...],
                 dropped: Iterable[bytes] = ()) -> None:
        """Replace the tree record of `root`; remove the packs in `dropped` (no longer used)."""
        conn = self._connection()
        if conn is None:
            return
        key = self._tree_key(root)
        payload = encode((entries, packs))
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT OR REPLACE INTO trees (key, value) VALUES (?, ?)",
                         (key, self._mac(key, payload) + payload))
            conn.executemany("DELETE FROM packs WHERE id = ?", [(d,) for d in dropped if d not in packs])
            conn.execute("COMMIT")
        except sqlite3.Error:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self.broken = True

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None
