"""Verifying a line hashes the canonical text with its `,"hash":"..."` member taken out instead of
serialising the event twice: the same digest as event_hash, for any event, and the slow path
when the member's text occurs more than once."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from jitpol.ledger.chain import _hash_of_canonical, canonical_json, event_hash, seal, verify_lines

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(extra=st.dictionaries(st.text(max_size=10), JSON, max_size=6), grant=st.none() | st.text(max_size=12))
def test_same_digest_as_event_hash(extra: dict[str, Any], grant: str | None) -> None:
    event = seal({**extra, "time": "1998-11-30T10:00:00Z", "event": "x.y", "grant": grant}, seq=1, prev=None)
    canonical = canonical_json(event)
    assert _hash_of_canonical(canonical, event) == event_hash(event) == event["hash"]
    assert verify_lines([canonical]) is None


def test_a_nested_member_with_the_same_text_takes_the_slow_path() -> None:
    digest = "a" * 64
    event = {"event": "x", "grant": None, "hash": digest, "nested": {"b": 1, "hash": digest}, "prev": None,
             "seq": 1, "time": "1998-11-30T10:00:00Z"}
    canonical = canonical_json(event)
    assert canonical.count(f',"hash":"{digest}"') == 2
    assert _hash_of_canonical(canonical, event) == event_hash(event)


def test_an_edited_line_still_fails() -> None:
    first = seal({"time": "1998-11-30T10:00:00Z", "event": "x.y", "grant": "g", "note": "a"}, seq=1, prev=None)
    line = canonical_json(first).replace('"note":"a"', '"note":"b"')
    problem = verify_lines([line])
    assert problem is not None and "hash does not match" in problem.message
