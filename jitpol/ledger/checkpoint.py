"""Signed checkpoints: the reconciler authenticates what it wrote (SPEC section 5).

The hash chain proves a ledger file is internally consistent, not who wrote it: anyone can
rewrite an entry and re-chain the rest. After each run the reconciler writes, for the ledger file
it appended to, `audit/checkpoints/<file>.json` and signs it with a key only it holds:

    {"ledger": "ledger.jsonl", "seq": 7, "time": "...", "lines": 120, "head": "<hash of line 120>",
     "prefix_sha256": "<SHA-256 of the raw bytes of lines 1..120>",
     "anchors": {"64": "<hash of line 64>", ...},          # every ANCHOR_EVERY lines
     "others": {"ledger-1-of-2.jsonl": {"lines": 40, "head": "..."}},   # the other files it saw
     "signature": "-----BEGIN SSH SIGNATURE----- ..."}

Each run checks that every ledger file extends its checkpoint byte for byte (a rewrite,
re-chaining, reordering, truncation or a transformation such as CRLF line ends all change the
signed prefix), that no file lacks one (an extra file), that every file another checkpoint saw is
still there and at least as long (a deleted file), and that nothing follows the signed prefix that
the reconciler did not sign. Pure: the caller reads bytes and verifies signatures.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jitpol.model.canonical import canonical_json

__all__ = ["ANCHOR_EVERY", "CHECKPOINT_DIR", "Checkpoint", "LineFacts", "build", "extends", "line_facts",
           "message", "parse"]

CHECKPOINT_DIR = "checkpoints"
ANCHOR_EVERY = 64


@dataclass(frozen=True, slots=True)
class LineFacts:
    """What a ledger file's bytes say: its complete lines (raw, with their "\\n") and each line's
    `hash` field (None where a line does not parse)."""

    raw: tuple[bytes, ...]
    hashes: tuple[str | None, ...]

    @property
    def lines(self) -> int:
        return len(self.raw)

    def head(self, n: int) -> str | None:
        return self.hashes[n - 1] if 0 < n <= len(self.hashes) else None

    def prefix_sha256(self, n: int) -> str:
        h = hashlib.sha256()
        for piece in self.raw[:n]:
            h.update(piece)
        return h.hexdigest()


def line_facts(data: bytes) -> LineFacts:
    pieces = data.split(b"\n")
    complete = [p + b"\n" for p in pieces[:-1]]  # a torn last piece (no "\n") is not a line yet
    hashes: list[str | None] = []
    for raw in complete:
        try:
            value = json.loads(raw.decode("utf-8")).get("hash")
        except (ValueError, UnicodeDecodeError, AttributeError):
            value = None
        hashes.append(value if isinstance(value, str) else None)
    return LineFacts(tuple(complete), tuple(hashes))


@dataclass(frozen=True, slots=True)
class Checkpoint:
    ledger: str
    seq: int
    time: str
    lines: int
    head: str | None
    prefix_sha256: str
    anchors: Mapping[int, str]
    others: Mapping[str, tuple[int, str | None]]
    signature: str

    def body(self) -> dict[str, Any]:
        return {"ledger": self.ledger, "seq": self.seq, "time": self.time, "lines": self.lines, "head": self.head,
                "prefix_sha256": self.prefix_sha256, "anchors": {str(k): v for k, v in sorted(self.anchors.items())},
                "others": {n: {"lines": lines, "head": head} for n, (lines, head) in sorted(self.others.items())}}

    def to_json(self) -> str:
        return canonical_json({**self.body(), "signature": self.signature}) + "\n"


def message(body: Mapping[str, Any]) -> bytes:
    """The bytes the reconciler signs for a checkpoint body (everything but the signature)."""
    return f"jitpol-ledger-checkpoint:{hashlib.sha256(canonical_json(dict(body)).encode()).hexdigest()}\n".encode()


def build(ledger: str, facts: LineFacts, *, seq: int, time: str,
          others: Mapping[str, LineFacts]) -> Checkpoint:
    """An unsigned checkpoint (signature "") of `facts`, with the other files' lengths and heads."""
    anchors = {n: h for n in range(ANCHOR_EVERY, facts.lines + 1, ANCHOR_EVERY) if (h := facts.head(n))}
    return Checkpoint(ledger, seq, time, facts.lines, facts.head(facts.lines), facts.prefix_sha256(facts.lines),
                      anchors, {name: (f.lines, f.head(f.lines)) for name, f in others.items()}, "")


def parse(text: str, source: str) -> Checkpoint:
    """A checkpoint from its file; ValueError naming `source` for anything malformed."""
    try:
        data = json.loads(text)
        anchors = {int(k): str(v) for k, v in data["anchors"].items()}
        others = {str(n): (int(o["lines"]), o["head"] if o["head"] is None else str(o["head"]))
                  for n, o in data["others"].items()}
        cp = Checkpoint(str(data["ledger"]), int(data["seq"]), str(data["time"]), int(data["lines"]),
                        None if data["head"] is None else str(data["head"]), str(data["prefix_sha256"]),
                        anchors, others, str(data["signature"]))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{source}: not a jitpol ledger checkpoint ({exc})") from None
    if cp.lines < 0 or cp.seq < 1:
        raise ValueError(f"{source}: not a jitpol ledger checkpoint (negative count)")
    return cp


def extends(cp: Checkpoint, facts: LineFacts, path: str) -> str | None:
    """None when `facts` starts with exactly the bytes `cp` signed; else what is wrong, naming
    the first bad point as closely as the anchors allow."""
    if facts.lines < cp.lines:
        return (f"{path}: has {facts.lines} line(s) but the reconciler signed {cp.lines} (checkpoint {cp.seq}): "
                "entries were removed")
    if facts.prefix_sha256(cp.lines) == cp.prefix_sha256:
        return None
    good = 0
    for n in sorted(cp.anchors):
        if facts.head(n) != cp.anchors[n]:
            break
        good = n
    if facts.head(cp.lines) == cp.head and good == cp.lines - cp.lines % ANCHOR_EVERY:
        return (f"{path}: lines 1-{cp.lines} carry the signed hashes but not the signed bytes (checkpoint "
                f"{cp.seq}): the file was transformed (line ends, encoding: see .gitattributes)")
    first = good + 1
    last = min(cp.lines, good + ANCHOR_EVERY)
    where = f"line {first}" if first == last else f"lines {first}-{last}"
    return (f"{path}: differs from what the reconciler signed (checkpoint {cp.seq}) from {where} on: "
            "entries were rewritten, re-chained or reordered")
