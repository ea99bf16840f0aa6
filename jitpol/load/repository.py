"""Reading a policy repository from disk into a PolicySet plus diagnostics.

Layered like cloud-custodian: YAML structure -> JSON Schema -> building values -> cross-references
and target-specific name checks. Every problem in every file is collected; nothing here raises on
bad input. A repository with any diagnostic is invalid: nothing is added because of it.
"""

from __future__ import annotations

import gc
import marshal
import os
import re
import stat
import struct
import threading
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jitpol.connectors import registry
from jitpol.errors import InvalidInput
from jitpol.load.cache import RACY_SECONDS, FileCache
from jitpol.load.schema import format_path, validate_document
from jitpol.load.yamlstrict import YamlDocument, YamlError, load_yaml, load_yaml_file, read_file_bytes
from jitpol.model.canonical import POLICY_KINDS, canonical_json, grant_digest, policy_digest
from jitpol.model.documents import (
    Approval,
    Config,
    Grant,
    Person,
    PolicyApproval,
    PolicySet,
    Resource,
    Role,
    Schedule,
    ScheduleWindow,
    Source,
    Target,
    Team,
    Workflow,
)
from jitpol.model.duration import format_duration, parse_duration
from jitpol.model.refs import Ref
from jitpol.model.sshkey import fingerprint
from jitpol.model.times import EARLIEST, LATEST, MAX_DURATION, MAX_DURATION_TEXT, in_range, utc_text

# directory -> the kind its files must hold; grants/ is searched recursively
LAYOUT: dict[str, str] = {
    "people": "Person",
    "teams": "Team",
    "workflows": "Workflow",
    "resources": "Resource",
    "grants": "Grant",
    "approvals": "PolicyApproval",
}
CONFIG_FILE = "jitpol.yaml"
NOTIFY_KEYS = frozenset({"github", "slack"})  # accounts that name a person on the git host / chat, not a target
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
BREAKGLASS_MAX_USES = 1  # the schema's defaults for breakglass.maxUses and breakglass.per
BREAKGLASS_PER = "24h"
MAX_FILES = 200_000


@dataclass(frozen=True, slots=True, order=True)
class Diagnostic:
    path: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.message}"


@dataclass(frozen=True, slots=True)
class LoadResult:
    policy: PolicySet
    diagnostics: tuple[Diagnostic, ...]
    files: int = 0
    # every policy document (kinds in POLICY_KINDS) as data, for the policy digest and snapshots
    policy_documents: tuple[tuple[str, dict[str, Any]], ...] = ()  # (path, data)

    @property
    def ok(self) -> bool:
        return not self.diagnostics

    @property
    def policy_digest(self) -> str:
        return policy_digest([data for _, data in self.policy_documents])


@dataclass(slots=True)
class _Loader:
    root: Path
    diags: list[Diagnostic] = field(default_factory=list)
    docs: dict[tuple[str, str], YamlDocument] = field(default_factory=dict)  # (kind, name) -> doc

    def error(self, doc: YamlDocument | str, message: str, *keys: str | int) -> None:
        if isinstance(doc, str):
            self.diags.append(Diagnostic(doc, 1, 1, message))
            return
        line, col = doc.mark(*keys) if keys else (1, 1)
        self.diags.append(Diagnostic(doc.path, line, col, message))

    def files(self, record: _Record | None = None) -> Iterator[tuple[str, str, str]]:
        """(file, the kind expected there, its path relative to the root) for every policy
        file, in a stable order: that of `sorted(Path.glob(...))`, which it replaces (os.scandir
        is several times faster on tens of thousands of files). With a tree `record`, a folder
        whose every directory has exactly the recorded `lstat` (so no entry was added, removed or
        renamed in any of them) is not listed again: its files are the recorded ones."""
        config = self.root / CONFIG_FILE
        if config.exists():
            yield str(config), "Config", CONFIG_FILE
        else:
            self.diags.append(Diagnostic(CONFIG_FILE, 1, 1, "missing: every repository needs jitpol.yaml "
                                                             "(kind: Config)"))
        count = 0
        root_text = str(self.root)
        for directory, kind in LAYOUT.items():
            base = self.root / directory
            if not base.is_dir():
                continue
            known = record.listing(directory) if record is not None else None
            if known is not None:
                rels: list[str] | tuple[str, ...] = known
            else:
                dirs: list[tuple[str, bytes | None]] = []
                listed = sorted(_entries(base, (), recursive=kind == "Grant", dirs=dirs), key=lambda e: e[0])
                found: list[str] = []
                for parts, entry in listed:
                    name = parts[-1]
                    dot = name.rfind(".")
                    if not 0 < dot < len(name) - 1 or name[dot:] not in (".yaml", ".yml") or _is_dir(entry):
                        continue
                    found.append("/".join((directory, *parts)))
                if record is not None:
                    record.learn_listing(directory, dirs, found)
                rels = found
            for rel in rels:
                count += 1
                if count > MAX_FILES:
                    self.diags.append(Diagnostic(directory, 1, 1, f"more than {MAX_FILES} files; refusing"))
                    return
                yield os.path.join(root_text, rel), kind, rel

    def accept(self, doc: YamlDocument, expected: str) -> bool:
        """Register a document that read without problems, unless its name is taken already."""
        name = doc.data["metadata"]["name"]
        key = (expected, name)
        if key in self.docs:
            other = self.docs[key]
            self.error(doc, f"{expected} {name!r} is already defined in {other.path}; names are unique per kind",
                       "metadata", "name")
            return False
        self.docs[key] = doc
        return True


def _entries(directory: Path, parts: tuple[str, ...], *, recursive: bool,
             dirs: list[tuple[str, bytes | None]] | None = None) -> Iterator[tuple[tuple[str, ...],
                                                                                 os.DirEntry[str]]]:
    """What `directory.glob("**/*" if recursive else "*")` yields, as (path parts below the
    starting directory, its entry): every entry, hidden ones too, descending into directories
    but not into links to directories; an unreadable directory yields nothing. Each directory
    listed is added to `dirs` with its lstat, taken before it is listed (None: not a plain
    directory, e.g. a link to one)."""
    if dirs is not None:
        dirs.append(("/".join(parts), _dir_stat(directory)))
    try:
        with os.scandir(directory) as it:
            entries = list(it)
    except PermissionError:
        return
    for entry in entries:
        here = (*parts, entry.name)
        yield here, entry
        if recursive and _is_dir(entry) and not entry.is_symlink():
            yield from _entries(directory / entry.name, here, recursive=True, dirs=dirs)


def _dir_stat(path: Path | str) -> bytes | None:
    """A directory's lstat as the tree record keeps it; None when it is not a plain directory."""
    found = _stat_of(path, stat.S_ISDIR)
    try:
        return None if found is None else _STAT.pack(*found)
    except struct.error:
        return None


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _read_doc(path: str, rel: str, raw: bytes | None) -> tuple[YamlDocument | tuple[Diagnostic, ...], bool]:
    """Parse and schema-check one file (its bytes `raw` when already read). Never raises.
    The flag says whether the outcome depends only on the bytes (then it may be cached)."""
    try:
        doc = load_yaml(raw, rel) if raw is not None else load_yaml_file(path, display_path=rel)
        problems = validate_document(doc.data, string_keys=True)  # yamlstrict refuses other keys
    except YamlError as exc:
        return (Diagnostic(rel, exc.line, exc.col, exc.message),), raw is not None
    except Exception as exc:  # noqa: BLE001 - a file jitpol cannot read is refused, never a crash
        return (Diagnostic(rel, 1, 1, f"jitpol cannot read this file ({type(exc).__name__}: {exc}); it is refused "
                                      f"(please report this as a bug with the file)"),), False
    if problems:
        return tuple(Diagnostic(rel, *(doc.key_mark(*p.path) if p.at_key else doc.mark(*p.path)), p.message)
                     for p in problems), True
    return doc, True


def _kind_problem(doc: YamlDocument, rel: str, expected: str) -> Diagnostic | None:
    data = doc.data
    if data["kind"] == expected:
        return None
    where = CONFIG_FILE if data["kind"] == "Config" else next(
        (d + "/" for d, k in LAYOUT.items() if k == data["kind"]), "?")
    line, col = doc.mark("kind")
    return Diagnostic(rel, line, col, f"this file holds kind {data['kind']}, but {rel.split('/')[0]} holds "
                                      f"{expected} documents; move it to {where}")


def _build_one(kind: str, doc: YamlDocument) -> tuple[Any, list[Diagnostic]]:
    """The model object of one document (None if it cannot be built) and why not."""
    ld = _Loader(Path("."))
    built = None
    try:
        built = _build(kind, doc, doc.data)
    except _Refused as exc:  # times and durations outside what jitpol computes with
        ld.error(doc, str(exc), *exc.keys)
    except ValueError as exc:  # the schema's patterns make this rare
        ld.error(doc, str(exc), "spec")
    except Exception as exc:  # noqa: BLE001 - a document that cannot be built is refused, never a crash
        ld.error(doc, f"jitpol cannot read this {kind} ({type(exc).__name__}: {exc}); the file is refused "
                      f"(please report this as a bug with the file)", "spec")
    return built, ld.diags


@dataclass(slots=True)
class _FileResult:
    """What one file gave: problems (then nothing else), or its document and model object."""

    rel: str
    expected: str
    problems: tuple[Diagnostic, ...] = ()
    data: dict[str, Any] | None = None
    built: Any = None
    build_problems: tuple[Diagnostic, ...] = ()
    doc: YamlDocument | None = None  # not sent back from a worker process (its marks are large)


def _process(path: str, rel: str, expected: str, raw: bytes | None) -> tuple[_FileResult, object | None]:
    """One file read, checked and built, and what the cache may keep of it (None: nothing, and
    always when `raw` is None: without the bytes there is no key to keep it under)."""
    read, cacheable = _read_doc(path, rel, raw)
    cacheable = cacheable and raw is not None
    if not isinstance(read, YamlDocument):
        return _FileResult(rel, expected, read), _cache_value(read) if cacheable else None
    doc = read
    wrong_kind = _kind_problem(doc, rel, expected)
    if wrong_kind is not None:
        return _FileResult(rel, expected, (wrong_kind,)), _cache_value((wrong_kind,)) if cacheable else None
    built, problems = _build_one(expected, doc)
    result = _FileResult(rel, expected, (), doc.data, built, tuple(problems), doc)
    return result, _cache_value(result) if cacheable else None


# -- what the cache keeps of a file (jitpol.load.cache authenticates it; the shape is checked here)
#    ("refused", ((line, col, message), ...))
#    ("ok", data, marks, grant fields or None, ((line, col, message), ...) found while building)
# where marks is marshal((key paths, positions)) bytes, decoded only when a mark is asked for.

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(t: datetime) -> int:
    return (t - _EPOCH) // timedelta(microseconds=1)


def _cache_value(result: _FileResult | tuple[Diagnostic, ...], *, marks_of_grants: bool = True) -> object:
    """What the cache keeps of a file (and, without a grant's marks, what a worker process sends
    back: the parent reads the file again if it ever needs a mark of a grant)."""
    if isinstance(result, tuple):
        return "refused", tuple((d.line, d.col, d.message) for d in result)
    if result.data is None:
        return "refused", tuple((d.line, d.col, d.message) for d in result.problems)
    doc = result.doc
    assert doc is not None
    grant = result.built if isinstance(result.built, Grant) else None
    marks = None if grant is not None and not marks_of_grants else marshal.dumps(
        (tuple(doc._marks), doc._positions.tobytes()))
    fields = None if grant is None else (
        grant.name, grant.requester, grant.resource, grant.role, _micros(grant.start), _micros(grant.end),
        grant.justification, tuple((a.by, a.key, a.signature, a.source.line, a.source.col) for a in grant.approvals),
        grant.revoke, grant.digest, grant.source.line, grant.source.col, grant.window_source.line,
        grant.window_source.col, grant.breakglass)
    problems = tuple((d.line, d.col, d.message) for d in result.build_problems)
    return "ok", doc.data, marks, fields, problems


def _problems(rel: str, value: object) -> tuple[Diagnostic, ...]:
    if value == ():
        return ()
    if not isinstance(value, tuple) or not all(
            isinstance(p, tuple) and len(p) == 3 and type(p[0]) is int and type(p[1]) is int
            and isinstance(p[2], str) for p in value):
        raise ValueError("problems")
    return tuple(Diagnostic(rel, line, col, message) for line, col, message in value)


def _marks_from(rel: str, data: dict[str, Any], blob: bytes) -> YamlDocument:
    paths, raw = marshal.loads(blob)  # noqa: S302 - part of an entry whose MAC verified
    positions = array("I")
    positions.frombytes(raw)
    if not isinstance(paths, tuple) or len(positions) != 4 * len(paths):
        raise InvalidInput("marks do not fit")
    return YamlDocument(rel, data, dict(zip(paths, range(len(paths)), strict=True)), positions)


# the marks of a document whose marks are read again when first asked for: shared, never changed
# (YamlDocument replaces them as a whole when it reloads)
_NO_MARKS: dict[Any, int] = {}
_NO_POSITIONS = array("I")


def _from_cache(path: str, rel: str, expected: str, value: object) -> _FileResult | None:
    """The result a verified cache value stands for, or None if it is not one jitpol writes."""
    try:
        if not isinstance(value, tuple) or not value:
            return None
        if value[0] == "refused" and len(value) == 2:
            return _FileResult(rel, expected, _problems(rel, value[1]))
        if value[0] != "ok" or len(value) != 5:
            return None
        _, data, marks, fields, problems = value
        if not isinstance(data, dict) or not isinstance(marks, bytes | None) or data.get("kind") != expected:
            return None

        if fields is not None:
            marks = None  # a grant's marks are rarely needed: read the file again then, keep no bytes

        def reload() -> YamlDocument:
            try:
                if marks is not None:
                    return _marks_from(rel, data, marks)
            except (ValueError, EOFError, TypeError):
                pass
            return load_yaml_file(path, display_path=rel)  # then from the file itself

        doc = YamlDocument(rel, data, _NO_MARKS, _NO_POSITIONS, reload)  # (replaced, never changed, on reload)
        if fields is None:
            built, build_problems = _build_one(expected, doc)
            return _FileResult(rel, expected, (), data, built, tuple(build_problems), doc)
        (name, requester, resource, role, start, end, justification, approvals, revoke, digest, line, col,
         window_line, window_col, breakglass) = fields
        grant = Grant(name, requester, resource, role, _EPOCH + timedelta(microseconds=start),
                      _EPOCH + timedelta(microseconds=end), justification,
                      tuple(Approval(by, key, signature, Source(rel, a_line, a_col))
                            for by, key, signature, a_line, a_col in approvals),
                      revoke, digest, Source(rel, line, col), Source(rel, window_line, window_col), breakglass)
        if expected != "Grant" or name != data["metadata"]["name"]:
            return None
        return _FileResult(rel, expected, (), data, grant, _problems(rel, problems), doc)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
        return None


# Set in the parent before worker processes are forked (they inherit it, nothing is pickled).
_WORKER_CACHE: FileCache | None = None

_Stat = tuple[int, int, int, int, int]


def _stat_of(path: str | Path, kind: Callable[[int], bool] = stat.S_ISREG) -> _Stat | None:
    """What the tree record keeps of a regular file's lstat (or, with `kind`, of another kind of
    entry); None when it is not of that kind, or gone."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if not kind(info.st_mode):
        return None
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns


def _read_one(path: str, rel: str, expected: str,
              cache: FileCache | None) -> tuple[_FileResult, object | None, bytes | None, _Stat | None]:
    """One file read, checked and built: (result, what the cache may keep of it, its entry key,
    its stat taken before its bytes were read: a later change changes it); no key when nothing
    may be kept (no cache, or bytes that could not be read)."""
    raw: bytes | None = None
    before = None
    if cache is not None:
        before = _stat_of(path)
        try:
            raw = read_file_bytes(path, rel)  # the key is made from the bytes that are parsed
        except YamlError:
            raw = None  # _read_doc reads it again and reports why not
    result, value = _process(path, rel, expected, raw)
    if cache is None or value is None or raw is None:
        return result, None, None, before
    return result, value, cache.key(rel, expected, raw), before


def _process_chunk(chunk: list[tuple[str, str, str]]) -> tuple[bytes, bytes]:
    """Worker process: read, check and build a run of files; store what may be cached. Returns
    the results as marshal bytes of `_cache_value`s without the grants' marks (several times
    cheaper to send back than pickled objects, and `_from_cache` rebuilds them the same way;
    the parent keeps these bytes as a pack), and marshal bytes of each file's (entry key, stat
    taken before it was read), None where it may not be cached."""
    results: list[object] = []
    meta: list[tuple[bytes, _Stat | None] | None] = []
    store: list[tuple[bytes, object]] = []
    cache = _WORKER_CACHE
    for path, rel, expected in chunk:
        result, value, key, before = _read_one(path, rel, expected, cache)
        if key is not None:
            store.append((key, value))
            meta.append((key, before))
        else:
            meta.append(None)
        results.append(_cache_value(result, marks_of_grants=False))
    if cache is not None and store:
        cache.put_many(store)
    return marshal.dumps(results), marshal.dumps(meta)


_LOOKUP_BATCH = 2_000
_PACK_MAX = 2_000  # files per pack (and per worker chunk): one pack's values are held at a time
_PACK_MIN = 64  # fewer new values than this stay single entries until there are enough to pack


@dataclass(slots=True)
class _Record:
    """The tree record of a repository as one load reads it (jitpol.load.cache), the clock it is
    judged by, and the directory listings this load found (to keep)."""

    cache: FileCache
    root: Path
    entries: dict[str, Any]
    packs: tuple[bytes, ...]
    listings: dict[str, Any]
    racy_after: int | None  # ns: whatever changed after this is not recorded (None: nothing is)
    new_listings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, cache: FileCache, root: Path) -> _Record:
        got = cache.get_tree(root)
        started = cache.now_ns(root)
        return cls(cache, root, got[0] if got else {}, got[1] if got else (), got[2] if got else {},
                   None if started is None else started - int(RACY_SECONDS * 1e9))

    def listing(self, folder: str) -> tuple[str, ...] | None:
        """The recorded files of `folder` (relative paths, in order) when every directory in it
        has exactly its recorded lstat (which is then kept again); else None."""
        rec = self.listings.get(folder)
        if not isinstance(rec, tuple) or len(rec) != 2:
            return None
        dirs, rels = rec
        if not isinstance(dirs, tuple) or not dirs or not isinstance(rels, tuple):
            return None
        for item in dirs:
            if not isinstance(item, tuple) or len(item) != 2 or not isinstance(item[0], str):
                return None
            where = os.path.join(self.root, folder, item[0]) if item[0] else os.path.join(self.root, folder)
            if item[1] is None or _dir_stat(where) != item[1]:
                return None
        if not all(isinstance(r, str) and r.startswith(f"{folder}/") for r in rels):
            return None
        self.new_listings[folder] = rec
        return rels

    def learn_listing(self, folder: str, dirs: list[tuple[str, bytes | None]], rels: list[str]) -> None:
        """Keep what listing `folder` found, unless a directory in it is not plain or changed
        a moment ago (an entry added in the same clock tick as the listing could hide)."""
        if self.racy_after is None:
            return
        for _, packed in dirs:
            if packed is None or max(_STAT.unpack(packed)[3:]) >= self.racy_after:
                return
        self.new_listings[folder] = (tuple(dirs), tuple(rels))


_KIND_CODES = {kind: code for code, kind in enumerate(("Config", *LAYOUT.values()))}
_STAT = struct.Struct("<QQQqq")  # dev, ino, size, mtime_ns, ctime_ns
_ENTRY = struct.Struct("<BQQQqqiI")  # kind code, the stat, pack number (-1: none), index in the pack
_PLACE = struct.Struct("<iI")
_PLACE_AT = 1 + _STAT.size
_KEY_LEN = 32


class _Tree:
    """The tree record of one load (jitpol.load.cache): the record read at the start, what this
    run learns of each file that is not exactly as recorded (index in the file list -> its stat
    and key, its place in a pack), and packs read (the last few) or written.

    The record maps a file's path to 81 bytes: `_ENTRY`, then the entry key; what a run learns
    is kept as compactly (~110 bytes a file in memory; tuples took ~450, more than 100 MiB at
    100,000 files)."""

    def __init__(self, cache: FileCache, root: Path, rels: list[tuple[str, str, str]], record: _Record) -> None:
        self.cache = cache
        self.root = root
        self.rels = rels
        self.old = record.entries
        self.old_packs = record.packs
        self.record = record
        # files changed after this are "racy": not recorded by their stat (None: record none)
        self.racy_after = record.racy_after
        self.learned: dict[int, bytes] = {}  # packed stat + key of files that may be recorded
        self.place: dict[int, int] = {}  # pack number << 32 | index, numbers into self.packs
        self.packs: dict[bytes, int] = {}  # pack id -> its number
        self.loose: dict[int, object] = {}  # values of files in no pack, to pack once they are many
        self.same: set[int] = set()  # files found exactly as recorded (stat, key and place)
        self._loaded: dict[bytes, list[object] | None] = {}

    def recorded(self, i: int, kind: str, now: _Stat | None) -> tuple[bytes, tuple[bytes, int] | None] | None:
        """(key, place in a pack or None) when file i's stat is exactly the recorded one."""
        if now is None:
            return None
        rec = self.old.get(self.rels[i][1])
        if type(rec) is not bytes or len(rec) != _ENTRY.size + _KEY_LEN:
            return None
        if rec[0] != _KIND_CODES.get(kind) or rec[1:_PLACE_AT] != _STAT.pack(*now):
            return None
        pack, index = _PLACE.unpack_from(rec, _PLACE_AT)
        place = (self.old_packs[pack], index) if 0 <= pack < len(self.old_packs) else None
        return rec[_ENTRY.size:], place

    def value(self, place: tuple[bytes, int]) -> object:
        pack_id, index = place
        if pack_id not in self._loaded:
            while len(self._loaded) >= 2:
                del self._loaded[next(iter(self._loaded))]
            self._loaded[pack_id] = self.cache.get_pack(pack_id)
        pack = self._loaded[pack_id]
        return pack[index] if pack is not None and 0 <= index < len(pack) else None

    def learn(self, i: int, key: bytes, before: _Stat | None, value: object = None) -> None:
        """What file i is: read with this key, `before` its stat taken before reading (None: not
        recordable), with `value` (kept until packed) unless a pack will hold it."""
        if before is None or self._racy(before):
            return  # never recorded: read again next time
        try:
            self.learned[i] = _STAT.pack(*before) + key
        except struct.error:  # a stat that does not fit (not seen on Linux): read it every time
            return
        if value is not None:
            self.loose[i] = value

    def pack(self, places: Iterable[tuple[int, int]], payload: bytes) -> None:
        """`payload` (marshal bytes of a list of values) is stored as one pack; `places` says
        which file's value is at which index in it (files this run does not record are skipped)."""
        pack_id = self.cache.put_pack(payload)
        if pack_id is None:
            return
        number = self.packs.setdefault(pack_id, len(self.packs))
        for i, index in places:
            if i in self.learned:
                self.place[i] = number << 32 | index
                self.loose.pop(i, None)
                self.same.discard(i)  # its place changed: the record must say so

    def pack_loose(self, minimum: int, among: Iterable[int] | None = None) -> None:
        """Pack the values kept loose (of the files `among`, when given), when there are at
        least `minimum` of them."""
        loose = sorted(i for i in (self.loose if among is None else among) if i in self.loose and i not in self.place)
        if len(loose) < minimum:
            return
        for n in range(0, len(loose), _PACK_MAX):
            part = loose[n:n + _PACK_MAX]
            self.pack(((i, n) for n, i in enumerate(part)), marshal.dumps([self.loose[i] for i in part]))

    def save(self) -> None:
        """Write the new record when it differs from the one read (packing loose values first
        when they are many)."""
        if self.racy_after is None:
            return
        self.pack_loose(max(_PACK_MIN * 4, len(self.rels) // 10))
        if not self._differs():
            return
        ids = list(self.packs)
        used: dict[bytes, int] = {}
        entries: dict[str, bytes] = {}
        for i, (_, rel, kind) in enumerate(self.rels):
            if i in self.same and i not in self.learned:  # as recorded: the old entry, its pack renumbered
                rec = self.old[rel]
                *known, pack, index = _ENTRY.unpack_from(rec)
                number = used.setdefault(self.old_packs[pack], len(used)) if pack >= 0 else -1
                entries[rel] = _ENTRY.pack(*known, number, index) + rec[_ENTRY.size:]
                continue
            learned = self.learned.get(i)
            if learned is None:
                continue  # read again next time
            place = self.place.get(i)
            number = -1 if place is None else used.setdefault(ids[place >> 32], len(used))
            entries[rel] = (bytes((_KIND_CODES[kind],)) + learned[:_STAT.size]
                            + _PLACE.pack(number, 0 if place is None else place & 0xFFFFFFFF)
                            + learned[_STAT.size:])
        order = tuple(used)
        if entries == self.old and order == self.old_packs and self.record.listings == self.record.new_listings:
            return
        self.cache.put_tree(self.root, entries, order, self.record.new_listings, dropped=self.old_packs)

    def _racy(self, before: _Stat) -> bool:
        return self.racy_after is None or max(before[3], before[4]) >= self.racy_after

    def _differs(self) -> bool:
        """Whether a new record would say more than the one read: a file that is not what the
        record says and could be recorded now (a file changed a moment ago cannot: it stays as
        it is, a miss, until it can), or many recorded files that are gone."""
        if any(i not in self.same for i in self.learned) or self.record.new_listings != self.record.listings:
            return True
        present = sum(1 for _, rel, _ in self.rels if rel in self.old)
        gone = len(self.old) - present
        return gone > max(_PACK_MIN, len(self.old) // 10)


def _workers(todo: int) -> int:
    """How many worker processes to read `todo` files with (1: this process alone)."""
    forced = os.environ.get(WORKERS_ENV, "").strip()
    if forced.isdigit():
        wanted = int(forced)
    else:
        if todo < PARALLEL_MIN_FILES:
            return 1
        try:
            wanted = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            wanted = os.cpu_count() or 1
    # fork only: nothing is pickled to the workers, and they start at once; a process with other
    # threads running is not forked (a lock held by one of them would stay held in the child)
    import multiprocessing  # only where workers may be started (~7 ms of every warm run otherwise)

    if wanted < 2 or "fork" not in multiprocessing.get_all_start_methods() or threading.active_count() > 1:
        return 1
    return min(wanted, 8)


# Below this many files to parse, one process is faster than starting workers.
PARALLEL_MIN_FILES = 1_500
WORKERS_ENV = "JITPOL_LOAD_WORKERS"


def _read_all(files: list[tuple[str, str, str]], cache: FileCache | None,
              root: Path | None = None, record: _Record | None = None) -> list[_FileResult]:
    """Every file read, checked and built, in the order of `files` ((path, kind, relative path))."""
    rels = [(path, rel, kind) for path, kind, rel in files]
    results: list[_FileResult | None] = [None] * len(rels)
    tree = _Tree(cache, root, rels, record) if cache is not None and root is not None and record is not None else None
    todo: list[int] = []
    if cache is not None and cache.knows_context():
        _lookup(rels, cache, tree, results, todo)
    else:
        todo = list(range(len(rels)))
    workers = _workers(len(todo))
    if workers > 1:
        _in_workers(rels, todo, workers, cache, tree, results)
    else:
        store: list[tuple[bytes, object]] = []
        for i in todo:
            path, rel, kind = rels[i]
            result, value, key, before = _read_one(path, rel, kind, cache)
            if key is not None:
                store.append((key, value))
                if tree is not None:
                    tree.learn(i, key, before, value)
            results[i] = result
        if cache is not None and store:
            cache.put_many(store)
        if tree is not None:
            tree.pack_loose(_PACK_MIN, among=todo)  # what this run read: found loose, it stays single
    if tree is not None:
        tree.save()
    return [r for r in results if r is not None]


def _lookup(rels: list[tuple[str, str, str]], cache: FileCache, tree: _Tree | None,
            results: list[_FileResult | None], todo: list[int]) -> None:
    """Fill `results` from the cache; what it does not know goes to `todo`. A file whose stat is
    the recorded one is not read; others are read and hashed to find their entry."""
    # in batches: only one batch's bytes and cached values are held at a time (a warm run
    # of 100,000 grants held ~150 MiB of them at once)
    for first in range(0, len(rels), _LOOKUP_BATCH):
        keys: dict[int, bytes] = {}
        befores: dict[int, _Stat | None] = {}
        for i in range(first, min(first + _LOOKUP_BATCH, len(rels))):
            path, rel, kind = rels[i]
            if tree is not None:
                before = befores[i] = _stat_of(path)
                known = tree.recorded(i, kind, before)
                if known is not None:
                    key, place = known
                    if place is not None:  # as recorded, in a pack: nothing to learn
                        value = tree.value(place)
                        hit = None if value is None else _from_cache(path, rel, kind, value)
                        if hit is not None:
                            results[i] = hit
                            tree.same.add(i)
                            continue
                    else:
                        tree.same.add(i)  # as recorded, its value alone: looked up by its key below
                    keys[i] = key
                    continue
            try:
                raw = read_file_bytes(path, rel)
            except YamlError:
                todo.append(i)
                continue
            keys[i] = cache.key(rel, kind, raw)
        found = cache.get_many(list(keys.values()))
        for i, key in keys.items():
            path, rel, kind = rels[i]
            value = found.get(key)
            hit = None if value is None else _from_cache(path, rel, kind, value)
            if hit is None:
                todo.append(i)  # read again below: no bytes are held for the misses meanwhile
                if tree is not None:
                    tree.same.discard(i)
                continue
            results[i] = hit
            if tree is not None:
                tree.learn(i, key, befores[i], value)
    todo.sort()


def _in_workers(rels: list[tuple[str, str, str]], todo: list[int], workers: int, cache: FileCache | None,
                tree: _Tree | None, results: list[_FileResult | None]) -> None:
    global _WORKER_CACHE
    size = max(16, min(_PACK_MAX, len(todo) // (workers * 8)))
    chunks = [[rels[i] for i in todo[n : n + size]] for n in range(0, len(todo), size)]
    _WORKER_CACHE = cache
    if cache is not None:
        cache.close()  # an SQLite connection must not cross a fork; each worker opens its own
    index = iter(todo)
    try:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(workers) as pool:
            # each chunk's results are taken as they come (in order), so only a few chunks' bytes
            # are held at a time: all of them at once were ~80 MiB at 100,000 files
            for payload, meta_bytes in pool.imap(_process_chunk, chunks, chunksize=1):
                _take_chunk(payload, meta_bytes, index, rels, tree, results)
    finally:
        _WORKER_CACHE = None


def _take_chunk(payload: bytes, meta_bytes: bytes, index: Iterator[int], rels: list[tuple[str, str, str]],
                tree: _Tree | None, results: list[_FileResult | None]) -> None:
    values = marshal.loads(payload)  # noqa: S302 - written by our own workers just now
    meta = marshal.loads(meta_bytes)  # noqa: S302 - idem
    taken: list[tuple[int, int]] = []  # (file index, its place in this chunk's values)
    for position, (value, info) in enumerate(zip(values, meta, strict=True)):
        i = next(index)
        path, rel, kind = rels[i]
        result = _from_cache(path, rel, kind, value)
        if result is None:  # cannot happen: the worker wrote it; read the file here then
            result, _ = _process(path, rel, kind, None)
        results[i] = result
        if tree is not None and info is not None:
            tree.learn(i, info[0], info[1] if info[1] is None else tuple(info[1]))
            taken.append((i, position))
    if tree is not None and taken:
        tree.pack(taken, payload)  # the chunk's values as they came: one pack


def _src(doc: YamlDocument, *keys: str | int) -> Source:
    line, col = doc.mark(*keys)
    return Source(doc.path, line, col)


def _refs(items: list[str] | None) -> tuple[Ref, ...]:
    return tuple(Ref.parse(x) for x in items or ())


def _tod(text: str) -> time:
    return time(0, 0) if text == "24:00" else time.fromisoformat(text)


class _Refused(ValueError):
    """A value the schema lets through but jitpol cannot use; `keys` is where it is written."""

    def __init__(self, message: str, *keys: str | int) -> None:
        super().__init__(f"{format_path(keys)}: {message}")
        self.keys = keys


_RANGE = f"from {utc_text(EARLIEST)} to {utc_text(LATEST)}"


def _time_of(text: str, *keys: str | int) -> datetime:
    """A time with an offset (the schema insists), normalised to UTC for all later arithmetic,
    and inside the range jitpol computes with (jitpol.model.times): a time Python's datetime
    cannot hold once its offset is applied (year 1 with +05:00, 9999-12-31 with -05:00) or any
    other time outside that range is refused here, so nothing later overflows."""
    try:
        t = datetime.fromisoformat(text)
    except (TypeError, ValueError) as exc:
        raise _Refused(f"{text!r} is not a valid time ({exc}); write it like 2026-11-30T10:00:00Z", *keys) from None
    if t.tzinfo is None:
        raise _Refused(f"{text!r} has no offset; add Z or an offset like +01:00", *keys)
    try:
        t = t.astimezone(UTC)
    except OverflowError:
        pass  # leaves datetime's range: refused below
    if t.tzinfo is not UTC or not in_range(t):
        raise _Refused(f"{text!r} is outside the times jitpol accepts ({_RANGE}, in UTC); write the real "
                       f"time, with its offset", *keys)
    return t


def _duration(text: str, *keys: str | int) -> timedelta:
    """A duration of at most MAX_DURATION (larger ones would carry instants out of range)."""
    try:
        length = parse_duration(text)
    except ValueError as exc:
        raise _Refused(str(exc), *keys) from None
    if length > MAX_DURATION:
        raise _Refused(f"{text!r} is longer than jitpol accepts (at most {MAX_DURATION_TEXT}); write a shorter "
                       f"duration", *keys)
    return length


def _window(window: dict[str, Any]) -> tuple[datetime, datetime]:
    """A grant's window [start, end) in UTC, both ends inside the accepted range."""
    start = _time_of(window["start"], "spec", "window", "start")
    if "end" in window:
        return start, _time_of(window["end"], "spec", "window", "end")
    end = start + _duration(window["duration"], "spec", "window", "duration")  # both bounded: no overflow
    if end > LATEST:
        raise _Refused(f"starting {utc_text(start)} and lasting {window['duration']}, the window would end after "
                       f"{utc_text(LATEST)}, the latest time jitpol accepts; shorten it or correct the start",
                       "spec", "window", "duration")
    return start, end


def _build(kind: str, doc: YamlDocument, data: dict[str, Any]) -> Any:
    name: str = data["metadata"]["name"]
    spec: dict[str, Any] = data["spec"]
    src = _src(doc)
    if kind == "Config":
        targets = {
            tname: Target(tname, t["type"], {k: v for k, v in t.items() if k != "type"},
                          _src(doc, "spec", "targets", tname))
            for tname, t in spec["targets"].items()
        }
        return Config(name, _refs(spec["admins"]), spec.get("timezone", "UTC"), targets, spec.get("git"), src,
                      int(spec.get("policyApprovals", {}).get("required", 1)))
    if kind == "Person":
        return Person(name, spec["email"], tuple(spec.get("keys", ())), dict(spec.get("accounts", {})), src,
                      bool(spec.get("disabled", False)))
    if kind == "Team":
        return Team(name, tuple(spec["members"]), src)
    if kind == "Workflow":
        approvals = spec["approvals"]
        sched = spec.get("schedule")
        schedule = None
        if sched is not None:
            schedule = Schedule(
                sched.get("timezone", "UTC"),
                tuple(ScheduleWindow(tuple(w["days"]), _tod(w["start"]), _tod(w["end"])) for w in sched["windows"]),
            )
        just = spec.get("justification", {})
        glass = spec.get("breakglass") or {}
        return Workflow(
            name, _refs(spec["requesters"]), int(approvals["required"]), _refs(approvals.get("approvers")),
            approvals.get("via", "signature"), spec.get("mfa", "none"), _duration(spec["maxDuration"], "spec",
                                                                                  "maxDuration"),
            schedule, spec.get("checkout", "shared"), bool(just.get("required", False)), just.get("pattern"), src,
            _duration(approvals["timeout"], "spec", "approvals", "timeout") if "timeout" in approvals else None,
            _duration(glass["deadline"], "spec", "breakglass", "deadline") if glass.get("allowed") else None,
            int(glass.get("maxUses", BREAKGLASS_MAX_USES)),
            _duration(glass.get("per", BREAKGLASS_PER), "spec", "breakglass", "per"),
            _duration(glass["cooldown"], "spec", "breakglass", "cooldown") if "cooldown" in glass else None,
        )
    if kind == "Resource":
        roles = {
            rname: Role(rname, tuple(g if isinstance(g, str) else canonical_json(g) for g in r.get("grants", ())),
                        _src(doc, "spec", "roles", rname))
            for rname, r in spec.get("roles", {}).items()
        }
        rest = {k: v for k, v in spec.items()
                if k not in ("target", "workflow", "model", "roles", "exclusive", "account")}
        return Resource(name, spec["target"], spec["workflow"], spec["model"], roles,
                        bool(spec.get("exclusive", False)), spec.get("account"), rest, src)
    if kind == "Grant":
        start, end = _window(spec["window"])
        approvals = tuple(
            Approval(a["by"], a["key"], a["signature"], _src(doc, "spec", "approvals", i))
            for i, a in enumerate(spec.get("approvals", ()))
        )
        return Grant(name, spec["requester"], spec["resource"], spec.get("role", ""), start, end,
                     spec.get("justification", ""), approvals, bool(spec.get("revoke", False)),
                     grant_digest(data), src, _src(doc, "spec", "window"), bool(spec.get("breakglass", False)))
    if kind == "PolicyApproval":
        return PolicyApproval(name, spec["digest"], spec["by"], spec["key"], spec["signature"], src)
    raise AssertionError(kind)


def backtracking_risk(pattern: str) -> str | None:
    """Why `pattern` could make Python's backtracking matcher take exponential time (a repeated
    group that itself repeats or alternates: `(a+)+`, `(a|a)*`, `(\\w*x?)*`), or None. Such a
    pattern in a workflow would let one grant's justification stall every run, revocations
    included."""
    from re import _constants as c  # type: ignore[attr-defined]
    from re import _parser  # type: ignore[attr-defined]

    repeats = {c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", c.MAX_REPEAT)}

    def inner_risk(items: Any) -> bool:  # a repeat of more than one, or a branch, anywhere inside
        for op, av in items:
            if op in repeats and (av[1] > 1 or inner_risk(av[2])):
                return True
            if op is c.BRANCH or (op is c.SUBPATTERN and inner_risk(av[3])) or (
                    op in (c.ASSERT, c.ASSERT_NOT) and inner_risk(av[1])):
                return True
        return False

    def walk(items: Any) -> str | None:
        for op, av in items:
            if op in repeats:
                if av[1] > 1 and inner_risk(av[2]):
                    return "repeats a group that itself repeats or alternates"
                found = walk(av[2])
            elif op is c.SUBPATTERN:
                found = walk(av[3])
            elif op is c.BRANCH:
                found = next((r for branch in av[1] if (r := walk(branch)) is not None), None)
            elif op in (c.ASSERT, c.ASSERT_NOT):
                found = walk(av[1])
            else:
                found = None
            if found is not None:
                return found
        return None

    return walk(_parser.parse(pattern))


def load_repository(root: Path, *, cache: bool = True) -> LoadResult:
    """Load every policy file under `root`. Never raises on bad input: see diagnostics.

    Files are read by worker processes when there are many (`PARALLEL_MIN_FILES`,
    $JITPOL_LOAD_WORKERS), and what reading a file gave is kept in the content-addressed cache
    of `jitpol.load.cache` unless `cache` is False or it is switched off; the result is the same
    either way."""
    # Loading makes hundreds of thousands of small objects and no reference cycles: the cyclic
    # collector would only walk them again and again (a third of a warm run). Off while loading.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _load(root, cache=cache)
    finally:
        if collecting:
            # what was loaded lives as long as the run: out of the collector's way for good (every
            # later full collection walked it again: ~20 ms each at 2,000 files, more at 100,000)
            gc.freeze()
            gc.enable()


def _load(root: Path, *, cache: bool) -> LoadResult:
    ld = _Loader(root)
    file_cache = FileCache.open_for(root) if cache else None
    try:
        record = _Record.read(file_cache, root) if file_cache is not None else None
        files = list(ld.files(record))
        results = _read_all(files, file_cache, root, record)
    finally:
        if file_cache is not None:
            file_cache.close()
    built: dict[str, dict[str, Any]] = {k: {} for k in built_kinds()}
    policy_documents: list[tuple[str, dict[str, Any]]] = []
    for result in results:
        ld.diags.extend(result.problems)
        doc = result.doc
        if doc is None or not ld.accept(doc, result.expected):
            continue
        kind = result.expected
        if kind in POLICY_KINDS:
            policy_documents.append((doc.path, doc.data))
        ld.diags.extend(result.build_problems)
        if result.built is not None:
            built[kind][doc.data["metadata"]["name"]] = result.built
    loaded = _finish(ld, built, policy_documents, len(files))
    templates = _templates(ld)
    if templates:
        loaded = replace(loaded, policy_documents=tuple(sorted((*loaded.policy_documents, *templates))),
                         diagnostics=tuple(sorted(set(ld.diags))))
    return loaded


TEMPLATE_DIR = "notifications"
MAX_TEMPLATE_BYTES = 65_536


def _templates(ld: _Loader) -> list[tuple[str, dict[str, Any]]]:
    """Notification templates are policy too (they decide what people are told): part of the
    digest admins approve, never used while a change to them waits for approval."""
    out: list[tuple[str, dict[str, Any]]] = []
    base = ld.root / TEMPLATE_DIR
    if not base.is_dir() or base.is_symlink():
        return out
    for path in sorted(base.glob("*.j2")):
        rel = path.relative_to(ld.root).as_posix()
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_TEMPLATE_BYTES:
            ld.diags.append(Diagnostic(rel, 1, 1, "templates must be regular files of at most 64 KiB"))
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            ld.diags.append(Diagnostic(rel, 1, 1, "not valid UTF-8"))
            continue
        out.append((rel, {"apiVersion": "jitpol/v1", "kind": "Template", "metadata": {"name": path.name},
                          "spec": {"text": text}}))
    return out


def load_snapshot(entries: list[dict[str, Any]]) -> LoadResult:
    """Build a PolicySet from stored policy documents ([{"path", "data"}], as written by
    snapshot_entries) — the last approved policy, kept in the ledger directory."""
    ld = _Loader(Path("."))
    docs: list[tuple[str, YamlDocument]] = []
    for entry in entries:
        data = entry.get("data") if isinstance(entry, Mapping) else None
        if not isinstance(data, Mapping):
            ld.error("snapshot", "an entry of the stored policy is not a document; it is ignored")
            continue
        if data.get("kind") == "Template":
            continue  # in the digest; not a document to build
        doc = YamlDocument(str(entry.get("path")), data)
        problems = validate_document(doc.data)
        for problem in problems:
            ld.error(doc, problem.message)
        kind = str(doc.data.get("kind"))
        name = data["metadata"].get("name") if isinstance(data.get("metadata"), Mapping) else None
        if kind not in built_kinds() or not isinstance(name, str):
            continue  # nothing to build it into (the problems say why)
        ld.docs[(kind, name)] = doc
        docs.append((kind, doc))
    return _assemble(ld, docs, len(docs))


def built_kinds() -> tuple[str, ...]:
    """The kinds a repository is built from: Config and every kind of LAYOUT."""
    return ("Config", *LAYOUT.values())


def snapshot_entries(result: LoadResult) -> list[dict[str, Any]]:
    return [{"path": path, "data": data} for path, data in result.policy_documents]


def _assemble(ld: _Loader, docs: list[tuple[str, YamlDocument]], count: int) -> LoadResult:
    built: dict[str, dict[str, Any]] = {k: {} for k in built_kinds()}
    policy_documents: list[tuple[str, dict[str, Any]]] = []
    for kind, doc in docs:
        data = doc.data
        if kind in POLICY_KINDS:
            policy_documents.append((doc.path, data))
        value, problems = _build_one(kind, doc)
        ld.diags.extend(problems)
        if value is not None:
            built[kind][data["metadata"]["name"]] = value
    return _finish(ld, built, policy_documents, count)


def _finish(ld: _Loader, built: dict[str, dict[str, Any]], policy_documents: list[tuple[str, dict[str, Any]]],
            count: int) -> LoadResult:
    config = next(iter(built["Config"].values()), None)
    policy = PolicySet(config, built["Person"], built["Team"], built["Workflow"], built["Resource"],
                       built["Grant"], built["PolicyApproval"])
    try:
        _cross_check(ld, policy)
    except Exception as exc:  # noqa: BLE001 - documents jitpol cannot check make the repository invalid, never a crash
        ld.error(CONFIG_FILE, f"jitpol cannot check the references between the files ({type(exc).__name__}: {exc}); "
                              f"the repository is invalid (please report this as a bug with the files)")
    return LoadResult(policy, tuple(sorted(set(ld.diags))), count, tuple(sorted(policy_documents)))


def _cross_check(ld: _Loader, policy: PolicySet) -> None:
    def doc(kind: str, name: str) -> YamlDocument:
        return ld.docs[(kind, name)]

    def check_refs(kind: str, name: str, refs: tuple[Ref, ...], *keys: str) -> None:
        for i, ref in enumerate(refs):
            table: dict[str, Any] = policy.people if ref.kind == "person" else policy.teams  # type: ignore[assignment]
            if ref.name not in table:
                ld.error(doc(kind, name), f"{ref} does not exist (no {ref.kind} named {ref.name!r})", *keys, i)

    cfg = policy.config
    if cfg is not None:
        check_refs("Config", cfg.name, cfg.admins, "spec", "admins")
        _check_zone(ld, doc("Config", cfg.name), cfg.timezone, "spec", "timezone")
        for t in cfg.targets.values():
            if registry.record(t.type) is None:
                ld.error(doc("Config", cfg.name), f"target {t.name}: type {t.type!r} is not supported by this "
                         f"version (supported: {', '.join(sorted(registry.TYPES))})", "spec", "targets",
                         t.name, "type")
    target_names = set(cfg.targets) if cfg else set()
    target_types = {t.type for t in cfg.targets.values()} if cfg else set()

    for team in policy.teams.values():
        for i, m in enumerate(team.members):
            if m not in policy.people:
                ld.error(doc("Team", team.name), f"member {m!r} is not a person in people/", "spec", "members", i)

    for p in policy.people.values():
        for acct_key, value in p.accounts.items():
            if acct_key not in target_names and acct_key not in registry.TYPES and acct_key not in NOTIFY_KEYS:
                ld.error(doc("Person", p.name), f"accounts.{acct_key}: not a target name or target type",
                         "spec", "accounts", acct_key)
                continue
            types = {cfg.targets[acct_key].type} if cfg and acct_key in cfg.targets else {acct_key}
            for ttype in types & target_types:
                _check_name(ld, doc("Person", p.name), ttype, "principal", value, "spec", "accounts", acct_key)

    _check_identities(ld, policy)

    for wf in policy.workflows.values():
        check_refs("Workflow", wf.name, wf.requesters, "spec", "requesters")
        check_refs("Workflow", wf.name, wf.approvers, "spec", "approvals", "approvers")
        if wf.schedule is not None:
            _check_zone(ld, doc("Workflow", wf.name), wf.schedule.timezone, "spec", "schedule", "timezone")
        if wf.justification_pattern is not None:
            try:
                re.compile(wf.justification_pattern)
                risk = backtracking_risk(wf.justification_pattern)
            except (re.error, RecursionError, OverflowError, ValueError) as exc:  # nesting, huge repeats
                ld.error(doc("Workflow", wf.name), f"justification.pattern is not a valid regular expression: "
                         f"{exc}", "spec", "justification", "pattern")
            else:
                if risk is not None:
                    ld.error(doc("Workflow", wf.name), f"justification.pattern {risk}: matching could take "
                             "exponential time and stall every run; write it without a repeat inside a repeat "
                             "(e.g. ^(INC|CHG)-[0-9]+)", "spec", "justification", "pattern")
        if wf.breakglass_deadline is not None:
            _check_breakglass(ld, doc("Workflow", wf.name), wf)
        if wf.approvals_required > len(wf.approvers) and all(r.kind == "person" for r in wf.approvers):
            ld.error(doc("Workflow", wf.name), f"approvals.required is {wf.approvals_required} but only "
                     f"{len(wf.approvers)} approver(s) are named", "spec", "approvals", "required")

    for res in policy.resources.values():
        d = doc("Resource", res.name)
        if res.workflow not in policy.workflows:
            ld.error(d, f"workflow {res.workflow!r} does not exist in workflows/", "spec", "workflow")
        if cfg is None:
            continue
        target = cfg.targets.get(res.target)
        if target is None:
            ld.error(d, f"target {res.target!r} is not configured in jitpol.yaml spec.targets", "spec", "target")
            continue
        record = registry.record(target.type)
        models = record.models if record is not None else frozenset()
        if res.model not in models:
            ld.error(d, f"model {res.model} is not supported on {target.type} target {target.name} "
                     f"(supported: {', '.join(sorted(models)) or 'none yet'})", "spec", "model")
            continue
        if res.model == "credential-checkout" and not res.account:
            ld.error(d, "credential-checkout needs spec.account (the shared account)", "spec")
        elif res.model == "credential-checkout":
            _check_name(ld, d, target.type, "principal", res.account, "spec", "account")
        escrow = (res.settings.get("options") or {}).get("escrow")
        if escrow is not None:
            store = cfg.targets.get(str(escrow.get("target"))) if isinstance(escrow, dict) else None
            if store is None or store.type not in registry.escrow_types() or not isinstance(escrow.get("secret"), str):
                ld.error(d, "options.escrow needs {target: <an aws target>, secret: <Secrets Manager name>}",
                         "spec", "options", "escrow")
        for role in res.roles.values():
            for i, entry in enumerate(role.grants):
                _check_name(ld, d, target.type, "privilege", entry, "spec", "roles", role.name, "grants", i)

    for g in policy.grants.values():
        d = doc("Grant", g.name)
        if g.requester not in policy.people:
            ld.error(d, f"requester {g.requester!r} is not a person in people/", "spec", "requester")
        g_res = policy.resources.get(g.resource)
        if g_res is None:
            ld.error(d, f"resource {g.resource!r} does not exist in resources/", "spec", "resource")
        elif g_res.roles and g.role not in g_res.roles:
            ld.error(d, f"resource {g_res.name} has no role {g.role!r} (roles: {', '.join(sorted(g_res.roles))})",
                     "spec", "role")
        if g.end <= g.start:
            ld.error(d, "window ends before it starts", "spec", "window")


# one human, one Person: an alias (a second file with the same key, address, git-host login or
# target account) could approve its own human's grants, or hold access the other was refused
_ONE_PERSON = "one human is one Person file"


def _check_identities(ld: _Loader, policy: PolicySet) -> None:
    """Refuse two people sharing an SSH key (by fingerprint), an email or a git-host login (case-
    insensitively), or an account on the same target. Files are compared in path order: the
    error points at the value in the later file and names the earlier person."""
    people = sorted(policy.people.values(), key=lambda p: (ld.docs[("Person", p.name)].path, p.name))
    seen: dict[tuple[str, ...], tuple[str, str, tuple[str | int, ...]]] = {}  # what -> (person, path, keys)
    reported: set[tuple[str, str, str]] = set()

    def claim(person: Person, what: tuple[str, ...], keys: tuple[str | int, ...], message: str) -> None:
        doc = ld.docs[("Person", person.name)]
        first = seen.get(what)
        if first is None:
            seen[what] = (person.name, doc.path, keys)
            return
        other, other_path, other_keys = first
        if other == person.name or (person.name, other, str(keys[:3])) in reported:
            return
        reported.add((person.name, other, str(keys[:3])))
        line, col = ld.docs[("Person", other)].mark(*other_keys)
        ld.error(doc, f"{message} is also person {other}'s ({other_path}:{line}:{col}); {_ONE_PERSON}: "
                      f"{_FIX[what[0]]}", *keys)

    cfg = policy.config
    for p in people:
        for i, key in enumerate(p.keys):
            try:
                fp = fingerprint(key)
            except ValueError:
                continue  # the schema reports a malformed key
            claim(p, ("key", fp), ("spec", "keys", i), f"SSH key {fp}")
        claim(p, ("email", p.email.strip().casefold()), ("spec", "email"), f"email {p.email}")
        login = p.accounts.get("github")
        if isinstance(login, str):
            claim(p, ("github", login.casefold()), ("spec", "accounts", "github"),
                  f"git-host login {login!r} (accounts.github)")
        for where, acct_key, value in _account_slots(p, cfg.targets.values() if cfg else ()):
            label = f"accounts.{acct_key} ({where})"
            if isinstance(value, Mapping):
                claim(p, ("account", where, canonical_json(value).casefold()), ("spec", "accounts", acct_key),
                      f"{label} {canonical_json(value)}")
                for fname, fvalue in sorted(value.items()):
                    claim(p, ("account", where, fname, str(fvalue).casefold()),
                          ("spec", "accounts", acct_key, fname), f"{label} {fname} {fvalue!r}")
            else:
                claim(p, ("account", where, str(value).casefold()), ("spec", "accounts", acct_key),
                      f"{label} {value!r}")


_FIX = {
    "key": "each person must have their own key; remove it from one of the files",
    "email": "each person must have their own email address; remove the duplicate person or correct the address",
    "github": "a git-host login belongs to one person; remove it from one of the files",
    "account": "an account on a target belongs to one person; remove it from one of the files",
}


def _account_slots(person: Person, targets: Iterable[Target]) -> list[tuple[str, str, Any]]:
    """(where, accounts key, value) for each account of `person`: per configured target it applies
    to (by target name, else by type, as Person.account_for picks it), and per remaining key."""
    out: list[tuple[str, str, Any]] = []
    used: set[str] = set()
    for t in sorted(targets, key=lambda t: t.name):
        if t.name in person.accounts:
            key = t.name
        elif t.type == "local" and "local" not in person.accounts:
            key = "ssh"
        else:
            key = t.type
        if key in person.accounts:
            out.append((f"target {t.name}", key, person.accounts[key]))
            used.add(key)
    for key, value in sorted(person.accounts.items()):
        if key not in used and key != "github":
            out.append((key if key in NOTIFY_KEYS else f"{key} targets", key, value))
    return out


def _check_breakglass(ld: _Loader, doc: YamlDocument, wf: Workflow) -> None:
    """Break-glass must not chain into lasting unapproved access: the unapproved stretches one
    person may string together within `per` must leave part of it uncovered."""
    assert wf.breakglass_deadline is not None
    stretch = min(wf.breakglass_deadline, wf.max_duration)
    if stretch * wf.breakglass_max_uses >= wf.breakglass_per:
        ld.error(doc, f"breakglass allows {wf.breakglass_max_uses} use(s) of up to {format_duration(stretch)} "
                      f"unapproved each within {format_duration(wf.breakglass_per)}: chained, that is unapproved "
                      f"access without end; lower maxUses or deadline, or make per longer",
                 "spec", "breakglass")


def _check_zone(ld: _Loader, doc: YamlDocument, zone: str, *keys: str) -> None:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        ld.error(doc, f"unknown time zone {zone!r} (use an IANA name like UTC or Europe/Berlin)", *keys)


def _check_name(ld: _Loader, doc: YamlDocument, target_type: str, what: str, value: Any, *keys: str | int) -> None:
    check: Callable[[Any, str], None] | None = registry.name_check(target_type)
    if check is None:
        return
    try:
        check(value, what)
    except InvalidInput as exc:
        ld.error(doc, str(exc), *keys)
