"""jitpol's cache database: one SQLite file whose every value is authenticated, for work that
only ever saves time (jitpol.load.cache: what reading a policy file gave; jitpol.ledger.store:
how much of a ledger file was verified).

Why a planted value cannot change an outcome: every value is stored with HMAC-SHA256 over its
key and bytes, under a secret that never comes from a repository (`$JITPOL_CACHE_KEY`, else a
random key file made with mode 0600 in the cache directory), and the cache directory itself is
refused when it lies inside the repository being read. A value whose MAC does not verify
(corrupt, truncated, written under another key, edited) is a miss, and is only decoded after it
verified; decoding is `marshal` of plain values, which callers check for shape again. Whoever can
write the cache directory and read its key can forge values: it is trusted exactly as much as
the user's own files, like ~/.cache itself. A CI cache that carries the directory (key included)
carries that trust with it: restore it only from runs of the same trusted branch.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

CACHE_DIR_ENV: Final = "JITPOL_CACHE_DIR"
CACHE_KEY_ENV: Final = "JITPOL_CACHE_KEY"
CACHE_SWITCH_ENV: Final = "JITPOL_CACHE"
DB_NAME: Final = "files-v1.sqlite"
KEY_NAME: Final = "key"
MAC_LEN: Final = 32
# table -> its key column (names only ever come from here, never from input)
TABLES: Final = {"entries": "key", "contexts": "digest", "trees": "key", "packs": "id", "ledgers": "key"}


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
class CacheDB:
    """The cache database of one run. Safe to use from forked worker processes: each process
    opens its own connection."""

    directory: Path
    secret: bytes = field(repr=False)  # never shown (the HMAC key)
    _conn: sqlite3.Connection | None = field(default=None, repr=False)
    _pid: int = 0
    broken: bool = False

    @staticmethod
    def located(repo_root: Path | None, env: Mapping[str, str] | None = None) -> tuple[Path, bytes] | None:
        """(directory, secret) of the cache when it may be used for `repo_root` (never one
        inside it), made if missing; None when disabled or unusable."""
        env = os.environ if env is None else env
        if env.get(CACHE_SWITCH_ENV, "").strip().lower() in ("off", "0", "no", "false"):
            return None
        directory = cache_dir(env)
        if directory is None or (repo_root is not None and _inside(directory, repo_root)):
            return None  # what the repository holds never decides what is valid
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            secret = _key_bytes(directory, env)
        except (OSError, ValueError):
            return None
        return None if secret is None else (directory, secret)

    @classmethod
    def open(cls, repo_root: Path | None, env: Mapping[str, str] | None = None) -> CacheDB | None:
        found = cls.located(repo_root, env)
        if found is None:
            return None
        db = cls(*found)
        return db if db._connection() is not None else None

    def mac(self, key: bytes, payload: bytes) -> bytes:
        return hmac.new(self.secret, key + payload, hashlib.sha256).digest()

    def sealed(self, key: bytes, payload: bytes) -> bytes:
        """What is stored for `payload` under `key`: its MAC, then the payload."""
        return self.mac(key, payload) + payload

    def opened(self, key: bytes, stored: object) -> bytes | None:
        """The payload of a stored value whose MAC verifies, else None."""
        if not isinstance(stored, bytes) or len(stored) < MAC_LEN:
            return None
        mac, payload = stored[:MAC_LEN], stored[MAC_LEN:]
        return payload if hmac.compare_digest(mac, self.mac(key, payload)) else None

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
                for table, column in TABLES.items():
                    value = "" if table == "contexts" else ", value BLOB NOT NULL"
                    conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({column} BLOB PRIMARY KEY{value})")
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

    def get(self, table: str, key: bytes) -> object:
        """The decoded value stored under `key` in `table` when its MAC verifies, else None."""
        conn = self._connection()
        if conn is None:
            return None
        try:
            row = conn.execute(f"SELECT value FROM {table} WHERE {TABLES[table]} = ?", (key,)).fetchone()  # noqa: S608 - names from TABLES
        except sqlite3.Error:
            self.broken = True
            return None
        payload = None if row is None else self.opened(key, row[0])
        return None if payload is None else decode(payload)

    def put(self, table: str, key: bytes, value: object) -> None:
        """Store `value` under `key` in `table` (authenticated)."""
        conn = self._connection()
        if conn is None:
            return
        try:
            conn.execute(f"INSERT OR REPLACE INTO {table} ({TABLES[table]}, value) VALUES (?, ?)",  # noqa: S608 - names from TABLES
                         (key, self.sealed(key, encode(value))))
        except sqlite3.Error:
            self.broken = True

    def write(self, steps: Callable[[sqlite3.Connection], object]) -> None:
        """Run `steps` in one write transaction; an SQLite error rolls it back and switches the
        cache off for the run (it only ever saves time)."""
        conn = self._connection()
        if conn is None:
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            steps(conn)
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
