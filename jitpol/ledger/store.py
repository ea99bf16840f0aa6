"""Reading and appending one ledger file (JSON Lines, hash-chained; see jitpol.ledger.chain).

Appends are refused unless the whole file verifies first, so a broken chain is never extended
and stays visible to `jitpol audit verify`. A file that does not end in "\\n" had its last write
cut off and counts as broken too. Lines are split on "\\n" only: canonical JSON keeps characters
such as U+2028 unescaped, and str.splitlines() would wrongly split on them. The file is opened
without following symbolic links (jitpol.ledger.nofollow): a link in its place, or in place of a
folder between it and the repository root, counts as a broken ledger and is never read or
written through.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from io import FileIO
from pathlib import Path
from typing import Any

from jitpol.cachedb import CacheDB
from jitpol.errors import LedgerBroken, LockHeld
from jitpol.ledger.chain import ChainProblem, check_lines, seal_text
from jitpol.ledger.nofollow import UnsafePath, entries, open_file

AUDIT = "audit"
MAIN = "ledger.jsonl"  # the main ledger's name: it stands for a ledger folder that cannot be opened

Append = Callable[[Mapping[str, Any]], dict[str, Any]]


class Ledger:
    """One ledger file, e.g. `repo/audit/ledger.jsonl`. The constructor does no I/O.

    `root` is the repository root: no component between it and the file may be a symbolic link.
    By default it is the folder above `audit/` when the file lies in one (every ledger file of a
    repository does), else the file's own folder."""

    def __init__(self, path: Path, root: Path | None = None) -> None:
        self.path = path
        if root is None:
            root = path.parent.parent if path.parent.name == AUDIT else path.parent
        self.root = root
        self._rel = path.relative_to(root).as_posix()

    def _read(self) -> bytes | None:
        """The file's bytes; while another process is appending (it holds the lock), a last line
        still being written is left out rather than reported as a torn write. UnsafePath when a
        link is in the way."""
        try:
            fd, dir_fd = open_file(self.root, self._rel, os.O_RDONLY)
        except FileNotFoundError:
            return None
        os.close(dir_fd)
        with open(fd, "rb") as handle:
            data = handle.read()
            if data and not data.endswith(b"\n") and _writer_active(handle):
                data = data[: data.rfind(b"\n") + 1]
            return data

    def verify(self) -> ChainProblem | None:
        """The first bad entry, or None when intact. A missing file is an empty, intact ledger; a
        symbolic link in place of the file or of a folder above it is a problem (line 0), never
        followed."""
        try:
            data = self._read()
        except UnsafePath as exc:
            return ChainProblem(0, None, str(exc))
        if data is None or _VERIFIED.tail(hashlib.sha256(data).digest()) is not None:
            return None  # missing, or exactly the bytes this process verified (or wrote) before
        return _verify_bytes(data)[0]

    def events(self) -> list[dict[str, Any]]:
        """All events, oldest first, after verifying the chain. Raises LedgerBroken if it does not
        (UnsafePath, a LedgerBroken, when a symbolic link is in the way)."""
        data = self._read()
        if data is None:
            return []
        problem, events = _REMEMBERED.verify(self, data)
        if problem is not None:
            raise self._broken(problem)
        _VERIFIED.add(hashlib.sha256(data).digest(), events)
        return events

    def readable(self) -> tuple[list[dict[str, Any]], ChainProblem | None]:
        """Never raises for a bad file: (events, None) when intact; otherwise (what can still be
        read, the first problem). What can be read: every event when the only damage is CRLF line
        ends (a .gitattributes transformation: the content is provably the same), else the events
        before the first bad line; nothing when a symbolic link is in the way (it is not followed).
        For revocations, which must not wait for a repaired ledger."""
        try:
            data = self._read()
        except UnsafePath as exc:
            return [], ChainProblem(0, None, str(exc))
        if data is None:
            return [], None
        problem, events = _REMEMBERED.verify(self, data)
        if problem is None:
            _VERIFIED.add(hashlib.sha256(data).digest(), events)
            return events, None
        if b"\r\n" in data:
            again, normalized = _verify_bytes(data.replace(b"\r\n", b"\n"))
            if again is None:
                return normalized, ChainProblem(problem.line, problem.seq,
                                                "CRLF line ends: the file was transformed (see .gitattributes)")
        lines = data.split(b"\n")[: max(problem.line - 1, 0)]
        _, prefix = _verify_bytes(b"".join(x + b"\n" for x in lines))
        return prefix, problem

    def append(self, bodies: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Seal and append events (see chain.seal for what a body holds); return them as written.

        Verifies the file first: a broken chain raises LedgerBroken and nothing is appended.
        The lines are written at once and the file is fsynced at the end.
        """
        with self.appender() as add:
            return add.many(bodies)

    @contextmanager
    def appender(self) -> Iterator[Appender]:
        """Verify once, then hand out a function that seals and appends one event at a time.

        Events are written (and flushed) as they happen, so a run that fails half-way still
        leaves a verified record of what it did: use it as `with ledger.appender() as add:`
        around the work. The file is fsynced when the block exits, also on an exception.
        `add.many(bodies, durable=True)` appends several events in one write and fsyncs them
        before it returns (an intent that must be on disk before its effect).
        Raises LedgerBroken (nothing appended) if the file does not verify or a symbolic link is
        in its place or in place of a folder above it (UnsafePath), and LockHeld if another
        process is appending to the same file right now.
        """
        fd, dir_fd = open_file(self.root, self._rel, os.O_RDWR | os.O_CREAT | os.O_APPEND)
        try:
            created = os.fstat(fd).st_size == 0
        except BaseException:
            os.close(fd)
            os.close(dir_fd)
            raise
        # Unbuffered: a failed write must not linger in a buffer that a later flush retries.
        with open(fd, "a+b", buffering=0) as handle, _closing(dir_fd):
            _lock(handle, self.path)
            handle.seek(0)
            data = handle.read()
            content = hashlib.sha256(data)
            known = _VERIFIED.tail(content.digest())
            if known is None:
                problem, events = _REMEMBERED.verify(self, data)
                if problem is not None:
                    raise self._broken(problem)
                known = (events[-1]["seq"], events[-1]["hash"]) if events else (0, None)
            tail = Appender(handle, seq=known[0], last_hash=known[1], content=content, size=len(data))
            try:
                yield tail
            finally:
                tail.closed = True
                os.fsync(handle.fileno())
                if created:
                    os.fsync(dir_fd)  # make a new file's directory entry durable too
                if tail.size > len(data):  # what this run wrote, after verifying what came before
                    _REMEMBERED.record(self, tail.size, content.digest(), tail.seq, tail.last_hash)

    def _broken(self, problem: ChainProblem) -> LedgerBroken:
        return LedgerBroken(f"{self.path}:{problem.line}: {problem.message}")


class Appender:
    """The end of an open, verified ledger file: appends without re-reading it. Call it with one
    body (`add(body)`: written at once, fsynced when the appender's block exits), or `many`."""

    def __init__(self, handle: FileIO, *, seq: int, last_hash: str | None, content: Any = None,
                 size: int = 0) -> None:
        self._handle = handle
        self._seq = seq
        self._last_hash = last_hash
        self.size = size  # of the file: what was verified, then what this appender wrote
        # SHA-256 of the file's bytes so far (verified, then only what this appender wrote):
        # later readers in this process skip verifying exactly these bytes again
        self._content = content
        self.closed = False

    def __call__(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.add(body)

    @property
    def seq(self) -> int:
        return self._seq

    @property
    def last_hash(self) -> str | None:
        return self._last_hash

    def add(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.many([body])[0]

    def many(self, bodies: Iterable[Mapping[str, Any]], *, durable: bool = False,
             parsed: bool = True) -> list[dict[str, Any]]:
        """Seal and append the events in order, in one write; with durable=True also fsync the
        file before returning. All or nothing: a failed write is cut off again (a partial line
        would break the chain for every later run) and raises OSError. Returns the sealed
        events as a reader gets them back; parsed=False: [] (they are not made)."""
        if self.closed:
            raise RuntimeError("ledger appender used after its with-block ended")
        lines: list[str] = []
        seq, last = self._seq, self._last_hash
        for body in bodies:
            seq += 1
            line, last = seal_text(body, seq=seq, prev=last)
            lines.append(line)
        if not lines:
            return []
        lines.append("")
        data = "\n".join(lines).encode("utf-8")
        size = self._handle.seek(0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[self._handle.write(view) or 0 :]
            if durable:
                os.fsync(self._handle.fileno())
        except OSError:
            self._handle.truncate(size)
            raise
        self._seq, self._last_hash = seq, last
        self.size = size + len(data)
        if self._content is not None:
            self._content.update(data)
            _VERIFIED.put(self._content.digest(), seq, last)
        return [json.loads(line) for line in lines[:-1]] if parsed else []


class _Verified:
    """SHA-256 digests of whole ledger files' bytes that this process verified, or wrote through
    an Appender after verifying what came before, each with its last seq and hash. The same bytes
    read again (the appender opening the file the history read a moment ago, the commit checking
    what the run wrote) need no second walk of the chain: any change to them changes the digest,
    and then the chain is verified in full. Memory only, a few entries."""

    _MAX = 16

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[bytes, tuple[int, str | None]] = {}

    def tail(self, digest: bytes) -> tuple[int, str | None] | None:
        with self._lock:
            return self._known.get(digest)

    def put(self, digest: bytes, seq: int, last_hash: str | None) -> None:
        with self._lock:
            self._known.pop(digest, None)
            self._known[digest] = (seq, last_hash)
            while len(self._known) > self._MAX:
                del self._known[next(iter(self._known))]

    def add(self, digest: bytes, events: list[dict[str, Any]]) -> None:
        self.put(digest, events[-1]["seq"] if events else 0, events[-1]["hash"] if events else None)


_VERIFIED = _Verified()


def ledger_files(audit_dir: Path) -> list[Path]:
    """The ledger files (`*.jsonl`) in `audit_dir`, sorted by name; [] when it does not exist.

    Nothing is followed: a symbolic link named `*.jsonl` is listed (its Ledger reports it), and
    when `audit_dir` itself is a link (or not a folder) the main ledger's path stands for it, so
    that readers report the damage instead of finding no ledger at all."""
    try:
        found = entries(audit_dir.parent, audit_dir.name)
    except UnsafePath:
        return [audit_dir / MAIN]
    if found is None:
        return []
    return [audit_dir / name for name, kind in found if name.endswith(".jsonl") and kind != "dir"]


def _verify_bytes(data: bytes, after: tuple[int, str | None] = (0, None),
                  first: int = 1) -> tuple[ChainProblem | None, list[dict[str, Any]]]:
    """Verify a whole file's content (or the rest after a verified beginning: `after` is the
    (seq, hash) of the entry before it, `first` the number of its first line); on success also
    return its events."""
    if not data:
        return None, []
    raw_lines = data.split(b"\n")
    torn = raw_lines[-1] != b""
    if not torn:
        raw_lines.pop()  # the empty piece after the final "\n"
    lines: list[str] = []
    for number, raw in enumerate(raw_lines, start=first):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            earlier = check_lines(lines, after=after, first=first)[1]
            return earlier or ChainProblem(number, None, "not valid UTF-8"), []
    events, problem = check_lines(lines, after=after, first=first)
    if torn:
        cut = "the file does not end with a newline — the last write was cut off"
        last = first + len(lines) - 1
        if problem is None:
            problem = ChainProblem(last, events[-1]["seq"] if events else after[0] or None, cut)
        elif problem.line == last:
            problem = ChainProblem(problem.line, problem.seq, f"{problem.message}; {cut}")
    return problem, events if problem is None else []


# -- what earlier processes verified (jitpol.cachedb) ------------------------------------------

_PREFIX_TAG = b"jitpol-ledger-verified-v1\0"


class _Remembered:
    """How much of a ledger file an earlier run verified (or wrote after verifying), kept in the
    authenticated cache database: (length, SHA-256 of those bytes, last seq, last hash), per
    file path. A file that still begins with exactly those bytes needs only the rest verified
    (its beginning is parsed, not checked again); any change to them changes the digest, and
    then the whole file is verified. Lookups and writes never fail a run: the cache only ever
    saves time. `jitpol audit verify` never uses it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dbs: dict[str, CacheDB | None] = {}

    def _db(self, root: Path) -> CacheDB | None:
        where = os.fspath(root)
        if where not in self._dbs:
            self._dbs[where] = CacheDB.open(root)
        return self._dbs[where]

    @staticmethod
    def _key(path: Path) -> bytes:
        return hashlib.sha256(_PREFIX_TAG + os.fsencode(os.path.realpath(path))).digest()

    def verify(self, ledger: Ledger, data: bytes) -> tuple[ChainProblem | None, list[dict[str, Any]]]:
        """_verify_bytes(data), skipping the checks of a beginning verified before."""
        known = self._lookup(ledger, data)
        head: list[dict[str, Any]] | None = None
        if known is not None:
            try:  # what the record vouches for; anything odd about it: verify it all instead
                text = data[:known[0]].decode("utf-8")
                head = json.loads("[" + text[:-1].replace("\n", ",") + "]")
            except ValueError:
                known = None
            else:
                if not (head and all(isinstance(e, dict) for e in head)
                        and (head[-1].get("seq"), head[-1].get("hash")) == known[1:]):
                    known = None
        if known is None or head is None:
            problem, events = _verify_bytes(data)
        else:
            problem, rest = _verify_bytes(data[known[0]:], known[1:], len(head) + 1)
            events = [] if problem is not None else head + rest
        if problem is None:
            self.record(ledger, len(data), hashlib.sha256(data).digest(),
                        events[-1]["seq"] if events else 0, events[-1]["hash"] if events else None, known)
        return problem, events

    def _lookup(self, ledger: Ledger, data: bytes) -> tuple[int, int, str | None] | None:
        try:
            with self._lock:
                db = self._db(ledger.root)
                value = None if db is None else db.get("ledgers", self._key(ledger.path))
            if not isinstance(value, tuple) or len(value) != 4:
                return None
            length, digest, seq, last = value
            if (not isinstance(length, int) or not 0 < length <= len(data) or not isinstance(digest, bytes)
                    or not isinstance(seq, int) or not (last is None or isinstance(last, str))
                    or data[length - 1:length] != b"\n" or hashlib.sha256(data[:length]).digest() != digest):
                return None
            return length, seq, last
        except Exception:  # noqa: BLE001 - the cache only ever saves time; verify it all instead
            return None

    def record(self, ledger: Ledger, length: int, digest: bytes, seq: int, last: str | None,
               known: tuple[int, int, str | None] | None = None) -> None:
        if length == 0 or (known is not None and known[0] == length):
            return
        try:
            with self._lock:
                db = self._db(ledger.root)
                if db is not None:
                    db.put("ledgers", self._key(ledger.path), (length, digest, seq, last))
        except Exception:  # noqa: BLE001 - idem: a cache that cannot be written is no cache
            return


_REMEMBERED = _Remembered()


def _writer_active(handle: Any) -> bool:
    """Whether another process holds the append lock on this file right now."""
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return True
        raise
    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return False


def _lock(handle: FileIO, path: Path) -> None:
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise LockHeld(f"another process is appending to {path}; try again when it is done") from exc
        raise


@contextmanager
def _closing(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)
