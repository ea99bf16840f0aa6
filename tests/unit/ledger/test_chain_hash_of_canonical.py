"""Verifying a line hashes the canonical text with its `,"hash":"..."` member taken out instead of
serialising the event twice: the same digest as event_hash, for any event, and the slow path
when the member's text occurs more than once."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jitpol.ledger.chain import (
    _hash_of_canonical,
    canonical_json,
    check_lines,
    event_hash,
    seal,
    seal_text,
    verify_lines,
)


def seal_line(body: dict[str, Any], *, seq: int, prev: str | None) -> tuple[dict[str, Any], str]:
    """The sealed event and the line written for it."""
    return seal(body, seq=seq, prev=prev), seal_text(body, seq=seq, prev=prev)[0]


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


@settings(max_examples=200, deadline=None)
@given(extra=st.dictionaries(st.text(max_size=10), JSON, max_size=6), grant=st.none() | st.text(max_size=12),
       seq=st.integers(min_value=2, max_value=10**12))
def test_sealing_writes_the_line_of_the_event_it_returns(extra: dict[str, Any], grant: str | None, seq: int) -> None:
    """Sealing serialises once, with a placeholder hash: the line is exactly the event's
    canonical JSON, the hash is event_hash's, and tuples come back as lists."""
    body = {**extra, "time": "1998-11-30T10:00:00Z", "event": "x.y", "grant": grant, "pair": (1, "two")}
    first, first_line = seal_line(body, seq=1, prev=None)
    event, line = seal_line(body, seq=seq, prev=first["hash"])
    assert (first_line, line) == (canonical_json(first), canonical_json(event))
    assert event["hash"] == event_hash(event) and event["pair"] == [1, "two"] and event["seq"] == seq
    second, second_line = seal_line(body, seq=2, prev=first["hash"])
    assert check_lines([first_line, second_line]) == ([first, second], None)


def test_a_nested_placeholder_member_takes_the_slow_path() -> None:
    body = {"time": "1998-11-30T10:00:00Z", "event": "x", "grant": None, "nested": {"b": 1, "hash": "0" * 64}}
    event, line = seal_line(body, seq=1, prev=None)
    assert line == canonical_json(event) and event["hash"] == event_hash(event) != "0" * 64
    assert event["nested"]["hash"] == "0" * 64 and verify_lines([line]) is None


@settings(max_examples=100, deadline=None)
@given(extra=st.dictionaries(st.text(max_size=10), JSON, max_size=6), grant=st.none() | st.text(max_size=12))
def test_seal_text_is_seal_line_without_parsing(extra: dict[str, Any], grant: str | None) -> None:
    body = {**extra, "time": "1998-11-30T10:00:00+01:00", "event": "x.y", "grant": grant}
    event, line = seal_line(body, seq=1, prev=None)
    assert seal_text(body, seq=1, prev=None) == (line, event["hash"])


class _Key(str):
    pass


def test_keys_must_be_text_a_str_subclass_included() -> None:
    body: dict[Any, Any] = {"time": "1998-11-30T10:00:00Z", "event": "x", "grant": None}
    assert seal_text({**body, _Key("k"): 1}, seq=1, prev=None)[0] == seal_text({**body, "k": 1}, seq=1, prev=None)[0]
    numbered: dict[Any, Any] = {**body, 1: "x"}
    with pytest.raises(TypeError):
        seal_text(numbered, seq=1, prev=None)


def test_a_time_once_accepted_does_not_let_a_naive_one_through() -> None:
    body = {"event": "x", "grant": None}
    seal_text({**body, "time": "1998-11-30T10:00:00Z"}, seq=1, prev=None)
    for naive in ("1998-11-30T10:00:00", "1998-11-30", "not a time"):
        with pytest.raises(ValueError, match="event time"):
            seal_text({**body, "time": naive}, seq=1, prev=None)
