"""The ledger's hash chain: canonical JSON, sealing an event, verifying a file's lines. Pure.

Every line of a ledger file is the canonical JSON of one event. An event carries at least

    seq    1, 2, 3 ... with no gaps, per file
    time   ISO 8601 text with a UTC offset, given by the caller (the ledger never reads a clock)
    event  what happened ("grant.activated", ...)
    grant  the grant's name, or null
    prev   the previous line's hash, null on the first line
    hash   SHA-256 (hex) of the canonical JSON of the event without "hash"

so editing, deleting, reordering or inserting any line breaks the chain at that line or the
next one. Everything else in an event is the caller's (policy commit, approvals, ...).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jitpol.model.canonical import canonical_json

__all__ = ["canonical_json", "event_hash", "seal", "seal_text", "verify_lines"]

# Keys the chain itself manages; seal() sets them, whatever the body says.
CHAIN_KEYS: frozenset[str] = frozenset({"seq", "prev", "hash"})
REQUIRED_KEYS: tuple[str, ...] = ("seq", "time", "event", "grant", "prev", "hash")

_HEX64 = re.compile(r"[0-9a-f]{64}")


def event_hash(event: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of `event` without its "hash" key."""
    unhashed = {k: v for k, v in event.items() if k != "hash"}
    return hashlib.sha256(canonical_json(unhashed).encode("utf-8")).hexdigest()


def seal(body: Mapping[str, Any], *, seq: int, prev: str | None) -> dict[str, Any]:
    """The event seal_text() makes, as a reader gets it back: normalised through JSON (tuples
    become lists)."""
    event: dict[str, Any] = json.loads(seal_text(body, seq=seq, prev=prev)[0])
    return event


def seal_text(body: Mapping[str, Any], *, seq: int, prev: str | None) -> tuple[str, str]:
    """A new event's line, ready to be written (its canonical JSON, without the newline), and
    its `hash`: `body` plus `seq`, `prev` and the hash. No event object is made (an appender
    needs only the line and the hash; parsing the line back cost a third of sealing: seal()).

    `body` must hold `time` (ISO 8601 with an offset), `event` (non-empty text) and `grant`
    (text or None). Any `seq`/`prev`/`hash` already in `body` are replaced, so an event read
    from one ledger can be re-sealed onto another (re-chaining after a push race). Raises
    ValueError (or TypeError) for a body that cannot be a ledger event."""
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise ValueError(f"seq must be a positive integer, not {seq!r}")
    if seq == 1 and prev is not None:
        raise ValueError("the first event (seq 1) must have prev None")
    if seq > 1 and (not isinstance(prev, str) or not _HEX64.fullmatch(prev)):
        raise ValueError(f"seq {seq} needs the previous event's hash as prev, not {prev!r}")
    for key in ("time", "event", "grant"):
        if key not in body:
            raise ValueError(f"ledger event is missing {key!r}")
    time, event, grant = body["time"], body["event"], body["grant"]
    if not isinstance(time, str) or not _is_aware_iso8601(time):
        raise ValueError(f"event time must be ISO 8601 text with an offset, not {time!r}")
    if not isinstance(event, str) or not event:
        raise ValueError(f"event name must be non-empty text, not {event!r}")
    if grant is not None and not isinstance(grant, str):
        raise ValueError(f"grant must be a name or None, not {grant!r}")
    if not set(map(type, body)) <= _STR and not all(isinstance(k, str) for k in body):
        raise TypeError("ledger event keys must be strings")
    return _sealed_line(body, seq, prev)


_PLACEHOLDER = "0" * 64
_MEMBER = f',"hash":"{_PLACEHOLDER}"'
_STR = frozenset({str})


def _sealed_line(body: Mapping[str, Any], seq: int, prev: str | None) -> tuple[str, str]:
    """The sealed event's line and hash, with one serialisation: the line is made with a
    placeholder hash; without its `,"hash":"<placeholder>"` member it is the canonical JSON the
    hash is taken of ("event" and "grant" sort before "hash", so the member follows a comma;
    its text cannot occur inside a JSON string, whose quotes are escaped). When the member
    occurs more than once (a nested "hash" key with that value), the event is serialised again
    instead. Parsing the line gives the event normalised through JSON (tuples become lists)."""
    fields = {k: v for k, v in body.items() if k not in CHAIN_KEYS}
    fields["seq"] = seq
    fields["prev"] = prev
    fields["hash"] = _PLACEHOLDER
    draft = canonical_json(fields)
    if draft.count(_MEMBER) != 1:
        sealed: dict[str, Any] = json.loads(draft)
        sealed["hash"] = event_hash(sealed)
        return canonical_json(sealed), sealed["hash"]
    digest = hashlib.sha256(draft.replace(_MEMBER, "", 1).encode("utf-8")).hexdigest()
    return draft.replace(_MEMBER, f',"hash":"{digest}"', 1), digest


def _is_aware_iso8601(text: str) -> bool:
    if text in _AWARE:  # a run's events share their time: each text is parsed once
        return True
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return False
    if parsed.tzinfo is None:
        return False
    if len(_AWARE) < 1024:
        _AWARE.add(text)
    return True


_AWARE: set[str] = set()


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """The first entry of a ledger file that does not verify.

    `line` is 1-based in the file; `seq` is the entry's seq when it could be read; `message`
    says what is wrong, without the location (str() adds it).
    """

    line: int
    seq: int | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.seq is None else f"line {self.line} (seq {self.seq})"
        return f"{where}: {self.message}"


def verify_lines(lines: Sequence[str]) -> ChainProblem | None:
    """Check a ledger file's lines (without their "\\n"); None when the chain is intact.

    Reports the first line that is blank, not a JSON object, missing a required key or of the
    wrong type, not in canonical form, whose hash does not match its content, whose seq does not
    follow the previous one, or whose prev is not the previous line's hash. An empty sequence is
    an intact, empty ledger.
    """
    return check_lines(lines)[1]


def check_lines(lines: Sequence[str], *, after: tuple[int, str | None] = (0, None),
                first: int = 1) -> tuple[list[dict[str, Any]], ChainProblem | None]:
    """Like verify_lines, and also return the events (parsed) that verified before any problem.
    `after` is the (seq, hash) of the entry before `lines`, which are numbered from `first` (the
    rest of a file whose beginning verified earlier)."""
    events: list[dict[str, Any]] = []
    prev_seq, prev_hash = after
    for number, raw in enumerate(lines, start=first):
        line = raw.removesuffix("\n")
        problem, event = _check_line(number, line)
        if problem is not None:
            return events, problem
        assert event is not None  # _check_line returns exactly one of the two
        seq: int = event["seq"]
        if seq != prev_seq + 1:
            return events, ChainProblem(number, seq, _seq_message(prev_seq, seq))
        if event["prev"] != prev_hash:
            if prev_hash is None:
                message = "the first entry must have prev null — entries before it were removed"
            else:
                message = (
                    "prev does not match the previous entry's hash — "
                    "the chain was spliced or an earlier entry was replaced"
                )
            return events, ChainProblem(number, seq, message)
        events.append(event)
        prev_hash = event["hash"]
        prev_seq = seq
    return events, None


def _check_line(number: int, line: str) -> tuple[ChainProblem | None, dict[str, Any] | None]:
    """Everything about one line that does not depend on its neighbours."""
    if not line.strip():
        return ChainProblem(number, None, "blank line inside the ledger"), None
    try:
        event = json.loads(line)
    except json.JSONDecodeError as exc:
        return ChainProblem(number, None, f"not valid JSON ({exc.msg} at column {exc.colno})"), None
    except ValueError as exc:  # e.g. an integer beyond Python's digit limit
        return ChainProblem(number, None, f"not valid JSON ({exc})"), None
    if not isinstance(event, dict):
        return ChainProblem(number, None, f"not a JSON object but {type(event).__name__}"), None
    raw_seq = event.get("seq")
    seq = raw_seq if isinstance(raw_seq, int) and not isinstance(raw_seq, bool) else None
    missing = [k for k in REQUIRED_KEYS if k not in event]
    if missing:
        return ChainProblem(number, seq, f"missing required key(s): {', '.join(missing)}"), None
    type_error = _type_error(event)
    if type_error:
        return ChainProblem(number, seq, type_error), None
    try:
        canonical = canonical_json(event)
        recomputed = _hash_of_canonical(canonical, event)
    except ValueError:  # NaN/Infinity parse but are not JSON
        return ChainProblem(number, seq, "holds a number that is not valid JSON (NaN/Infinity)"), None
    if recomputed != event["hash"]:
        return ChainProblem(number, seq, "hash does not match its content — the entry was edited"), None
    if canonical != line:
        return ChainProblem(
            number, seq, "not in canonical JSON form (re-serialising it differs) — the line was rewritten"
        ), None
    return None, event


def _hash_of_canonical(canonical: str, event: Mapping[str, Any]) -> str:
    """event_hash(event), given canonical_json(event), without serialising the event again.

    The canonical JSON of the event without "hash" is its canonical JSON with the member
    `,"hash":"<hex>"` taken out (sorted keys: "event" and "grant" come before "hash", so the
    member follows a comma; no whitespace). The member's text cannot occur inside a JSON string
    (its quotes would be escaped); when it occurs more than once (a nested object with a "hash"
    key of the same value), the event is serialised again instead."""
    member = f',"hash":"{event["hash"]}"'
    if canonical.count(member) != 1:
        return event_hash(event)
    return hashlib.sha256(canonical.replace(member, "", 1).encode("utf-8")).hexdigest()


def _type_error(event: Mapping[str, Any]) -> str | None:
    seq = event["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        return f"seq must be a positive integer, not {seq!r}"
    if not isinstance(event["time"], str):
        return "time must be text"
    if not isinstance(event["event"], str) or not event["event"]:
        return "event must be non-empty text"
    if event["grant"] is not None and not isinstance(event["grant"], str):
        return "grant must be text or null"
    prev = event["prev"]
    if prev is not None and (not isinstance(prev, str) or not _HEX64.fullmatch(prev)):
        return "prev must be null or a SHA-256 hex digest"
    if not isinstance(event["hash"], str) or not _HEX64.fullmatch(event["hash"]):
        return "hash must be a SHA-256 hex digest"
    return None


def _seq_message(prev_seq: int, seq: int) -> str:
    if prev_seq == 0:
        return f"the first entry must have seq 1, not {seq} — entries before it were removed"
    if seq > prev_seq + 1:
        return f"seq jumps from {prev_seq} to {seq} — entries were deleted"
    return f"seq {seq} after seq {prev_seq} — entries were reordered or duplicated"
