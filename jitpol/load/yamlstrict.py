"""Strict YAML reading: one mapping per file, plain JSON-like values, 1-based line/col marks.

SPEC section 6 says YAML is read strictly. `load_yaml` accepts a small, unambiguous subset of
YAML and refuses everything else with a `YamlError` that names `path:line:col` and says what
to write instead. Refused:

- anchors (`&a`), aliases (`*a`) and merge keys (`<<`): seen as parser events, before anything
  is expanded, so an alias bomb costs nothing;
- explicit tags of any kind (`!!str`, `!foo`, a lone `!`) and `%YAML` / `%TAG` directives;
- more than one document, an empty file, a top level that is not a mapping;
- duplicate keys (the message names both lines) and keys that are not strings (`1:`, `true:`);
- plain (unquoted) scalars that some YAML tool would read differently from another: YAML 1.1
  booleans (`no`, `on`, `y`, `True`...), `Null`/`NULL`, base-60 numbers (`1:30`, `18:00`),
  dates and timestamps, octal/hex/binary, `+1`, `1_000`, leading zeros, exponents, `.inf`,
  `.nan`, and the 1.1 specials `=` and `<<`;
- input over the limits (bytes, nesting depth, number of values, length of one scalar), input
  that is not UTF-8, and characters YAML forbids or that YAML 1.1 and 1.2 read differently
  (NEL, U+2028, U+2029).

What is accepted becomes plain Python: `dict` (insertion ordered), `list`, `str`, `int`,
`float`, `bool`, `None`. A plain scalar is `None` for `null`, `~` or nothing; `True`/`False`
for lowercase `true`/`false`; `int` for `-?(0|[1-9][0-9]*)`; `float` for `-?[0-9]+.[0-9]+`;
otherwise `str`. Quoted and block (`|`, `>`) scalars are always `str`.

Values are built straight from PyYAML's event stream (libyaml's when available), not through
its composer or constructor, so nothing is resolved by YAML 1.1 rules and no node graph is kept.
"""

from __future__ import annotations

import math
import os
import re
import stat
import sys
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, TypedDict, Unpack

import yaml
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

from jitpol.errors import InvalidInput

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_NODES",
    "MAX_SCALAR_CHARS",
    "YamlDocument",
    "YamlError",
    "load_yaml",
    "load_yaml_file",
    "read_file_bytes",
]

DEFAULT_MAX_BYTES: Final = 1_000_000
DEFAULT_MAX_DEPTH: Final = 32
DEFAULT_MAX_NODES: Final = 200_000
MAX_SCALAR_CHARS: Final = 65_536
# Longer integers are refused: Python refuses int() beyond ~4300 digits, and no jitpol value
# is a number this long (account ids that long are strings and should be quoted).
_MAX_INT_DIGITS: Final = 64

# libyaml is ~10x faster; the pure-Python parser yields the same events and marks (tests
# check both). Only the parser part of the loader class is used.
_LOADER: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

KeyPath = tuple[str | int, ...]

# Keys and short values repeat across thousands of files (kind, requester, resource, role...):
# one shared str each instead of a copy per file (40% less memory for a loaded repository).
_INTERN_MAX: Final = 64
_intern = sys.intern


class YamlError(InvalidInput):
    """A YAML file is not acceptable. `str(e)` is `path:line:col: message` (1-based)."""

    path: str
    line: int
    col: int
    message: str

    def __init__(self, path: str, line: int, col: int, message: str) -> None:
        super().__init__(f"{path}:{line}:{col}: {message}")
        self.path = path
        self.line = line
        self.col = col
        self.message = message

    def __reduce__(self) -> tuple[type[YamlError], tuple[str, int, int, str]]:
        # The default would call YamlError(str(self)) and fail; keep it picklable (xdist, processes).
        return (YamlError, (self.path, self.line, self.col, self.message))


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """One loaded file: its plain data and where each value was written.

    `_marks` maps a key path (`("spec", "approvals", 0)`; `()` is the top level) to an index
    i into `_positions`, where `_positions[4*i : 4*i+4]` is `line, col, key_line, key_col`
    (1-based; for list items and the top level the key mark is the value's own mark). A flat
    array instead of a tuple per value makes the marks ~30% smaller.
    """

    path: str
    data: Any
    _marks: dict[KeyPath, int] = field(default_factory=dict, repr=False, compare=False)
    _positions: array[int] = field(default_factory=lambda: array("I"), repr=False, compare=False)
    # Marks not kept (a document read in another process): called once, on the first mark asked
    # for, to read the file again. Its marks are used only if it yields the same data.
    _reload: Callable[[], YamlDocument] | None = field(default=None, repr=False, compare=False)

    def _load_marks(self) -> None:
        reload = self._reload
        object.__setattr__(self, "_reload", None)
        if reload is None:
            return
        try:
            again = reload()
        except InvalidInput:
            return  # changed or gone since: (1, 1) rather than a wrong place
        if again.data == self.data:
            object.__setattr__(self, "_marks", again._marks)
            object.__setattr__(self, "_positions", again._positions)

    def mark(self, *keys: str | int) -> tuple[int, int]:
        """1-based (line, col) of the value at that key path. If the path does not exist, the
        mark of the deepest existing ancestor, so an error about a missing key points at the
        mapping that lacks it. (1, 1) if nothing is known."""
        if self._reload is not None:
            self._load_marks()
        marks = self._marks
        for n in range(len(keys), -1, -1):
            found = marks.get(keys[:n] if n < len(keys) else keys)
            if found is not None:
                return self._positions[4 * found], self._positions[4 * found + 1]
        return 1, 1

    def key_mark(self, *keys: str | int) -> tuple[int, int]:
        """1-based (line, col) of the key token of the last path element when it is a mapping
        key; otherwise (list index, top level, missing path) the same as `mark`."""
        if self._reload is not None:
            self._load_marks()
        found = self._marks.get(keys)
        if found is not None:
            return self._positions[4 * found + 2], self._positions[4 * found + 3]
        return self.mark(*keys)


class _Limits(TypedDict, total=False):
    max_bytes: int
    max_depth: int
    max_nodes: int


class _Refused(Exception):  # an internal signal, turned into YamlError with a mark
    """A scalar was refused; the caller knows where it is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# ---------------------------------------------------------------------------------------------
# Text checks (before parsing)

# What PyYAML's Reader refuses, plus NEL/LS/PS: YAML 1.1 (PyYAML, libyaml) counts them as line
# breaks, YAML 1.2 and editors do not, so lines and even values would differ between tools.
# Written as the characters refused, not as the complement of those allowed
# ("[^\x09\x0a\x0d\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"): the same
# set (a test compares them over every code point), compiled in 0.5 ms instead of 4.5 ms.
_FORBIDDEN_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# Bidirectional overrides and isolates ("Trojan Source"): a reviewer would read a different grant
# than the one the reconciler evaluates.
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")


def _position(text: str, index: int) -> tuple[int, int]:
    """1-based (line, col) of text[index], counting line breaks the way YAML does."""
    head = text[:index]
    line = head.count("\n") + head.count("\r") - head.count("\r\n") + 1
    last_break = max(head.rfind("\n"), head.rfind("\r"))
    return line, index - last_break


def _decode(data: bytes, path: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        line_start = data.rfind(b"\n", 0, e.start) + 1
        col = len(data[line_start : e.start].decode("utf-8", errors="replace")) + 1
        raise YamlError(
            path, line, col, f"not valid UTF-8 (byte 0x{data[e.start]:02x}); save the file as UTF-8"
        ) from None
    return text


def _check_text(text: str, path: str, max_bytes: int, *, size_checked: bool) -> str:
    """The text to parse (BOM removed), or YamlError for size or forbidden characters."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if not size_checked:
        # Characters never outnumber UTF-8 bytes, so a long str is too big without encoding it.
        size = len(text) if len(text) > max_bytes else len(text.encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            raise YamlError(path, 1, 1, f"file is larger than the limit of {max_bytes} bytes; split it")
    bad = _FORBIDDEN_CHAR.search(text)
    if bad is not None:
        ch = bad.group()
        line, col = _position(text, bad.start())
        if ch in "\x85\u2028\u2029":
            message = (
                f"line separator U+{ord(ch):04X} is read as a line break by some YAML tools and not "
                "by others; use a plain newline or remove it"
            )
        elif "\ud800" <= ch <= "\udfff":
            message = f"lone surrogate U+{ord(ch):04X} is not valid text; save the file as UTF-8"
        else:
            message = f"character U+{ord(ch):04X} is not allowed in YAML; remove it"
        raise YamlError(path, line, col, message)
    bidi = _BIDI.search(text)
    if bidi is not None:
        line, col = _position(text, bidi.start())
        raise YamlError(path, line, col, f"bidirectional control character U+{ord(bidi.group()):04X} can make "
                        "the file read differently from what it says; remove it")
    return text


# ---------------------------------------------------------------------------------------------
# Plain scalars

_EXACT: Final[dict[str, object]] = {"null": None, "~": None, "true": True, "false": False}
# YAML 1.1 booleans (the spec's list; PyYAML reads all but y/n) and capitalised 1.2 ones.
_BOOL_WORDS: Final[dict[str, bool]] = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "True", "TRUE"), True),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "off", "Off", "OFF", "False", "FALSE"), False),
}
_NULL_WORDS: Final = frozenset({"Null", "NULL"})
# A plain scalar starting with anything else is a string in every YAML version.
_SPECIAL_FIRST: Final = frozenset("-+.0123456789~nNtTfFyYoO<=")

_STRICT_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_STRICT_FLOAT = re.compile(r"-?[0-9]+\.[0-9]+")
# Everything YAML 1.1 (spec or PyYAML) or the 1.2 core schema reads as a number, minus the above.
_INT_LIKE = re.compile(r"[-+]?(?:0b[01_]+|0o[0-7_]+|0x[0-9a-fA-F_]+|[0-9][0-9_]*)")
_FLOAT_LIKE = re.compile(
    r"[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*|[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|[-+]?\.(?:nan|NaN|NAN)"
)
# Base 60. YAML 1.1 needs a non-zero first digit; "08:00" is refused too so that all clock
# times behave alike (otherwise 08:00 would load as text and 18:00 be refused).
_SEXAGESIMAL = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}")
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9][\s\S]*")
_CORE12_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")


def _yaml11_reading(raw: str) -> object:
    """What PyYAML's YAML 1.1 loader makes of a short plain scalar (for messages only)."""
    if len(raw) > 40:
        return None
    try:
        return yaml.load(raw, Loader=yaml.SafeLoader)  # SafeLoader: builds plain values only
    except (yaml.YAMLError, ValueError):
        return None


def _core12_reading(raw: str) -> object:
    """What a YAML 1.2 core-schema loader makes of a plain scalar (for messages only)."""
    try:
        if re.fullmatch(r"[-+]?[0-9]+", raw):
            return int(raw)
        if re.fullmatch(r"0o[0-7]+", raw):
            return int(raw[2:], 8)
        if re.fullmatch(r"0x[0-9a-fA-F]+", raw):
            return int(raw[2:], 16)
        if re.fullmatch(r"[-+]?\.(?:inf|Inf|INF)", raw):
            return float(raw.replace(".", "", 1))
        if re.fullmatch(r"\.(?:nan|NaN|NAN)", raw):
            return math.nan
        if _CORE12_FLOAT.fullmatch(raw):
            return float(raw)
    except ValueError:  # more digits than int() converts
        return None
    return None


def _number_text(number: int | float) -> str:
    """repr(number), or its size where Python refuses to print it (ints beyond ~4300 digits)."""
    try:
        return repr(number)
    except ValueError:
        return f"<a number of about {int(number).bit_length() * 30103 // 100000 + 1} digits>"


def _number_problem(raw: str, what: str) -> str:
    quoted = f'write "{raw}" (a string)'
    readings: list[int | float] = []
    for reading in (_yaml11_reading(raw), _core12_reading(raw)):
        if isinstance(reading, bool) or not isinstance(reading, int | float):
            continue
        if not any(_same_number(reading, seen) for seen in readings):
            readings.append(reading)
    if any(isinstance(r, float) and not math.isfinite(r) for r in readings):
        if any(math.isnan(r) for r in readings):
            kind = "not-a-number (NaN)"
        else:
            kind = "minus infinity" if raw.startswith("-") else "infinity"
        return f"unquoted {what} {raw!r} would be read as {kind} by some YAML tools; {quoted}"
    if len(readings) == 1:
        number = readings[0]
        alternative = f" or {_number_text(number)}" if what == "value" else ""
        return (
            f"unquoted {what} {raw!r} would be read as the number {_number_text(number)} by some YAML tools; "
            f"{quoted}{alternative}"
        )
    if len(readings) == 2:
        first, second = readings
        alternative = " or the number you mean in plain decimal" if what == "value" else ""
        return (
            f"unquoted {what} {raw!r} would be read as the number {_number_text(first)} by some YAML tools "
            f"and {_number_text(second)} by others; {quoted}{alternative}"
        )
    return f"unquoted {what} {raw!r} would be read as a number by some YAML tools; {quoted}"


def _same_number(a: int | float, b: int | float) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def _base60(raw: str) -> str:
    """The base-60 reading of `raw`, as text for a message."""
    sign = -1 if raw.startswith("-") else 1
    value: int | float = 0
    try:
        for part in raw.lstrip("+-").replace("_", "").split(":"):
            value = value * 60 + (float(part) if "." in part else int(part))
    except ValueError:  # more digits than int() converts
        return "<a very large number>"
    return _number_text(sign * value)


def _ambiguity(raw: str, what: str) -> str | None:
    """Why this plain scalar must be quoted, or None if it is unambiguously a string."""
    quoted = f'write "{raw}" (a string)'
    if raw in _BOOL_WORDS:
        alternative = f" or {'true' if _BOOL_WORDS[raw] else 'false'}" if what == "value" else ""
        return f"unquoted {what} {raw!r} would be read as a boolean by some YAML tools; {quoted}{alternative}"
    if raw in _NULL_WORDS:
        alternative = " or null" if what == "value" else ""
        return f"unquoted {what} {raw!r} would be read as null by some YAML tools; {quoted}{alternative}"
    if _INT_LIKE.fullmatch(raw) or _FLOAT_LIKE.fullmatch(raw):
        return _number_problem(raw, what)
    if _SEXAGESIMAL.fullmatch(raw):
        return (
            f"unquoted {what} {raw!r} could be read as the base-60 number {_base60(raw)} by some "
            f"YAML tools; {quoted}"
        )
    if _DATE.fullmatch(raw):
        return f"unquoted {what} {raw!r} would be read as a date by some YAML tools; {quoted}"
    if _TIMESTAMP.fullmatch(raw):
        return f"unquoted {what} {raw!r} would be read as a timestamp by some YAML tools; {quoted}"
    if raw == "<<":
        if what == "key":
            return "merge keys (<<) are not allowed; write the merged keys out in full"
        return f"unquoted value '<<' is the YAML merge-key marker; {quoted}"
    if raw == "=":
        return f"unquoted {what} '=' has a special meaning in YAML 1.1; {quoted}"
    return None


def _plain(raw: str, what: str) -> object:
    """The value of a plain scalar under the strict core schema, or _Refused."""
    if not raw:
        return None
    if raw[0] not in _SPECIAL_FIRST:
        return raw
    exact = _EXACT.get(raw, _Refused)
    if exact is not _Refused:
        return exact
    if _STRICT_INT.fullmatch(raw):
        if len(raw) > _MAX_INT_DIGITS:
            raise _Refused(f"integer is longer than {_MAX_INT_DIGITS} digits; write it as a quoted string")
        return int(raw)
    if _STRICT_FLOAT.fullmatch(raw):
        number = float(raw)
        if not math.isfinite(number):
            raise _Refused(f"number {raw[:20]}... is too large; write it as a quoted string")
        return number
    problem = _ambiguity(raw, what)
    if problem is not None:
        raise _Refused(problem)
    return raw


_TYPE_NAMES: Final[dict[type, str]] = {bool: "a boolean", int: "a number", float: "a number"}


def _key(event: Any) -> str:
    """A mapping key as a string, or _Refused."""
    raw: str = event.value
    if not event.implicit[0]:  # quoted or block: always a string
        return raw
    if raw == "":
        raise _Refused("mapping key is empty; write a key name")
    value = _plain(raw, "key")
    if value is None:
        raise _Refused(f'mapping key {raw!r} would be read as null; keys must be strings: write "{raw}"')
    if not isinstance(value, str):
        kind = _TYPE_NAMES[type(value)]
        raise _Refused(f'mapping key {raw!r} would be read as {kind}; keys must be strings: write "{raw}"')
    return value


def _short_tag(tag: str) -> str:
    if tag.startswith("tag:yaml.org,2002:"):
        return "!!" + tag[len("tag:yaml.org,2002:") :]
    return tag


def _node_problem(event: Any) -> str | None:
    """Why a node event is refused whatever its place (alias, anchor, tag), else None."""
    if type(event) is AliasEvent:
        return f"aliases (*{event.anchor}) are not allowed; write the value out in full"
    anchor = getattr(event, "anchor", None)
    if anchor is not None:
        return f"anchors (&{anchor}) are not allowed; remove it and write repeated values out in full"
    tag = getattr(event, "tag", None)
    if tag is not None:
        return (
            f"explicit tags ({_short_tag(tag)}) are not allowed; remove it "
            "(quote the value if it must be a string)"
        )
    return None


def _kind(event: Any) -> str:
    if type(event) is SequenceStartEvent:
        return "a list"
    if type(event) is ScalarEvent:
        return "a single value"
    return "something else"


# ---------------------------------------------------------------------------------------------
# The event loop


class _Frame:
    """An open mapping or sequence while its events arrive."""

    __slots__ = ("container", "is_map", "key", "key_col", "key_line", "path")

    def __init__(self, container: dict[str, Any] | list[Any], path: KeyPath) -> None:
        self.container = container
        self.is_map = isinstance(container, dict)
        self.path = path
        self.key: str | None = None  # a mapping's key waiting for its value
        self.key_line = 0
        self.key_col = 0


def _build(
    next_event: Callable[[], Any], text: str, path: str, max_depth: int, max_nodes: int
) -> tuple[Any, dict[KeyPath, int], array[int]]:
    """Data and marks from one stream of parser events; YamlError for anything refused."""
    line = col = 1
    event: Any
    frame: _Frame | None
    try:
        next_event()  # StreamStartEvent
        event = next_event()
        if type(event) is StreamEndEvent:
            raise YamlError(path, 1, 1, "empty file; a jitpol file holds one YAML mapping")
        # Otherwise the parser guarantees a DocumentStartEvent here.
        line, col = event.start_mark.line + 1, event.start_mark.column + 1
        if event.version is not None:
            raise _Refused("%YAML directives are not allowed; remove the line (values are read as YAML 1.2)")
        if event.tags:
            raise _Refused("%TAG directives are not allowed; remove the line (tags are not allowed either)")

        marks: dict[KeyPath, int] = {}
        positions = array("I")
        stack: list[_Frame] = []
        root: Any = None
        nodes = 0
        while True:
            event = next_event()
            kind = type(event)
            if kind is MappingEndEvent or kind is SequenceEndEvent:
                stack.pop()
                if not stack:
                    break
                continue
            start = event.start_mark
            line, col = start.line + 1, start.column + 1
            if kind is not ScalarEvent or event.anchor is not None or event.tag is not None:
                problem = _node_problem(event)
                if problem is not None:
                    raise _Refused(problem)
            nodes += 1
            if nodes > max_nodes:
                raise _Refused(f"more than {max_nodes} values in one file; split it")
            if kind is ScalarEvent and len(event.value) > MAX_SCALAR_CHARS:
                raise _Refused(f"value is longer than {MAX_SCALAR_CHARS} characters")

            if stack:
                frame = stack[-1]
                if frame.is_map:
                    key = frame.key
                    if key is None:  # this event is a key
                        if kind is not ScalarEvent:
                            raise _Refused(f"mapping keys must be strings, not {_kind(event)}")
                        key = _intern(_key(event))
                        if key in frame.container:
                            first = 4 * marks[(*frame.path, key)]
                            first_line, first_col = positions[first + 2], positions[first + 3]
                            raise _Refused(
                                f"duplicate key {key!r} (first at line {first_line}, column {first_col}); "
                                "remove one of them"
                            )
                        frame.key, frame.key_line, frame.key_col = key, line, col
                        continue
                    frame.key = None
                    node_path: KeyPath = (*frame.path, key)
                    key_line, key_col = frame.key_line, frame.key_col
                else:
                    node_path = (*frame.path, len(frame.container))
                    key_line, key_col = line, col
            else:
                if kind is not MappingStartEvent:
                    if kind is ScalarEvent and event.implicit[0] and event.value == "":
                        raise _Refused("the document is empty; a jitpol file holds one YAML mapping")
                    raise _Refused(f"the top level must be a mapping of keys to values, not {_kind(event)}")
                frame = None
                node_path = ()
                key_line, key_col = line, col

            value: Any
            if kind is ScalarEvent:
                if event.implicit[0]:
                    value = _plain(event.value, "value")
                    if type(value) is str and len(value) <= _INTERN_MAX:
                        value = _intern(value)
                else:
                    value = event.value
                    if len(value) <= _INTERN_MAX:
                        value = _intern(value)
                    # Only the pure-Python parser lets "\ud83d" escapes through; libyaml refuses them.
                    if event.style == '"' and _SURROGATE.search(value):
                        raise _Refused(
                            "escaped surrogate (\\uD800-\\uDFFF) is not text; write the character itself"
                        )
            else:
                if len(stack) >= max_depth:
                    raise _Refused(f"nesting is deeper than {max_depth} levels")
                value = {} if kind is MappingStartEvent else []
                stack.append(_Frame(value, node_path))

            if frame is None:
                root = value
            elif frame.is_map:
                frame.container[node_path[-1]] = value  # type: ignore[index]
            else:
                frame.container.append(value)  # type: ignore[union-attr]
            marks[node_path] = len(marks)
            positions.extend((line, col, key_line, key_col))

        next_event()  # the parser guarantees a DocumentEndEvent here
        event = next_event()
        if type(event) is not StreamEndEvent:
            start = event.start_mark
            line, col = start.line + 1, start.column + 1
            raise _Refused("more than one YAML document (---); put each document in its own file")
    except _Refused as refused:
        raise YamlError(path, line, col, refused.message) from None
    except (ValueError, ArithmeticError, RecursionError) as e:  # a scalar Python cannot convert; never a crash
        raise YamlError(path, line, col, f"value cannot be read ({type(e).__name__}: {e}); quote it") from None
    except yaml.MarkedYAMLError as e:
        raise _syntax_error(e, text, path) from None
    except yaml.YAMLError as e:  # ReaderError has no mark; the text checks make it unreachable
        raise YamlError(path, 1, 1, f"invalid YAML: {e}") from None
    return root, marks, positions


def _syntax_error(e: yaml.MarkedYAMLError, text: str, path: str) -> YamlError:
    """A parser or scanner error, at its 1-based mark, with a hint for the common tab mistake."""
    mark = e.problem_mark or e.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    message = f"invalid YAML: {e.problem or 'syntax error'}"
    if e.context:
        where = f" at line {e.context_mark.line + 1}" if e.context_mark is not None else ""
        message += f" ({e.context}{where})"
    # The text passed the character checks, so splitlines() breaks lines exactly where YAML does.
    lines = text.splitlines()
    if "\t" in (lines[line - 1][col - 1 : col] if line <= len(lines) else "") or "'\\t'" in message:
        message += "; indent with spaces, not tabs"
    return YamlError(path, line, col, message)


# ---------------------------------------------------------------------------------------------
# Public entry points


def load_yaml(
    text: str | bytes,
    path: str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_nodes: int = DEFAULT_MAX_NODES,
) -> YamlDocument:
    """Read one strict YAML document whose top level is a mapping.

    `path` is only used in messages. Bytes must be UTF-8 (one leading BOM is dropped). Raises
    YamlError (an InvalidInput) for anything the module docstring lists; never returns a
    partially read document. Limits: `max_bytes` of UTF-8 (checked before parsing starts),
    `max_depth` nested mappings/lists (the top level is 1), `max_nodes` mappings, lists and
    scalars counting keys, and MAX_SCALAR_CHARS characters per scalar.
    """
    size_checked = isinstance(text, bytes)
    if isinstance(text, bytes):
        if len(text) > max_bytes:
            raise YamlError(path, 1, 1, f"file is larger than the limit of {max_bytes} bytes; split it")
        text = _decode(text, path)
    text = _check_text(text, path, max_bytes, size_checked=size_checked)
    loader = _LOADER(text)
    try:
        data, marks, positions = _build(loader.get_event, text, path, max_depth, max_nodes)
    finally:
        loader.dispose()
    return YamlDocument(path, data, marks, positions)


def load_yaml_file(path: str | os.PathLike[str], display_path: str | None = None,
                   **limits: Unpack[_Limits]) -> YamlDocument:
    """Read and `load_yaml` a regular file; messages name `display_path` (default: `path`).

    Symbolic links are refused (a policy file must be what the repository holds, not a pointer
    elsewhere), as are devices, FIFOs and directories. Size is checked with fstat before any
    byte is read. Unreadable files raise YamlError at 1:1.
    """
    shown = display_path if display_path is not None else str(path)
    return load_yaml(read_file_bytes(path, shown, limits.get("max_bytes", DEFAULT_MAX_BYTES)), shown, **limits)


def read_file_bytes(path: str | os.PathLike[str], shown: str, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes of a regular file as `load_yaml_file` reads them (no symbolic links, devices,
    FIFOs or directories; size checked with fstat first), or YamlError at 1:1 naming `shown`."""
    try:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            raise YamlError(shown, 1, 1, "is a symbolic link; jitpol reads only regular files")
        if not stat.S_ISREG(info.st_mode):
            raise YamlError(shown, 1, 1, "is not a regular file")
        # O_NOFOLLOW/O_NONBLOCK: if the file is swapped for a link or FIFO after lstat, the open
        # fails or does not hang; fstat below then re-checks what was actually opened.
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(path, flags)
        with os.fdopen(fd, "rb") as handle:
            opened = os.fstat(handle.fileno())
            if not stat.S_ISREG(opened.st_mode):
                raise YamlError(shown, 1, 1, "is not a regular file")
            if opened.st_size > max_bytes:
                size = opened.st_size
                raise YamlError(
                    shown, 1, 1, f"file is larger than the limit of {max_bytes} bytes ({size}); split it"
                )
            # Read what fstat promised (a 1 MB read buffer per file would dominate the run time);
            # if the file grew meanwhile, read on up to the limit and let load_yaml refuse it.
            data = handle.read(opened.st_size + 1)
            if len(data) > opened.st_size:
                data += handle.read(max_bytes + 1 - len(data))
    except OSError as e:
        raise YamlError(shown, 1, 1, f"cannot read the file: {e.strerror or e}") from None
    return data
