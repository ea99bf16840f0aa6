"""The ledger's hash chain: sealing, canonical form, and every kind of tampering verify_lines catches."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jitpol.ledger.chain import ChainProblem, canonical_json, event_hash, seal, verify_lines


def body(n: int, **extra: Any) -> dict[str, Any]:
    return {"time": f"1998-11-30T10:{n % 60:02d}:00Z", "event": "grant.activated", "grant": f"g-{n}", **extra}


def chain(count: int) -> list[str]:
    lines: list[str] = []
    prev: str | None = None
    for n in range(1, count + 1):
        event = seal(body(n, policy_commit="abc123"), seq=n, prev=prev)
        lines.append(canonical_json(event))
        prev = event["hash"]
    return lines


def rewrite(line: str, **changes: Any) -> str:
    """Edit an entry and re-hash it, as a careful forger would."""
    event = json.loads(line) | changes
    event["hash"] = event_hash(event)
    return canonical_json(event)


# --- canonical JSON and sealing ---------------------------------------------------------------


def test_canonical_json_sorts_keys_drops_spaces_and_keeps_unicode() -> None:
    assert canonical_json({"b": 1, "a": [1, "ü"]}) == '{"a":[1,"ü"],"b":1}'


def test_canonical_json_refuses_nan() -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_seal_adds_chain_keys_and_hash_over_the_rest() -> None:
    event = seal(body(1), seq=1, prev=None)
    assert event["seq"] == 1 and event["prev"] is None
    without_hash = {k: v for k, v in event.items() if k != "hash"}
    assert event["hash"] == hashlib.sha256(canonical_json(without_hash).encode()).hexdigest()
    assert event["hash"] == event_hash(event)


def test_seal_replaces_chain_keys_of_an_already_sealed_event() -> None:
    first = seal(body(1), seq=1, prev=None)
    moved = seal(first, seq=2, prev="f" * 64)
    assert (moved["seq"], moved["prev"]) == (2, "f" * 64)
    assert moved["hash"] == event_hash(moved) != first["hash"]


def test_seal_normalises_through_json() -> None:
    event = seal(body(1, approvals=("bob", "carol")), seq=1, prev=None)
    assert event["approvals"] == ["bob", "carol"]
    assert json.loads(canonical_json(event)) == event


@pytest.mark.parametrize(
    ("change", "seq", "prev"),
    [
        ({"time": None}, 1, None),
        ({"time": "1998-11-30T10:00:00"}, 1, None),  # no offset
        ({"time": "yesterday"}, 1, None),
        ({"event": ""}, 1, None),
        ({"grant": 7}, 1, None),
        ({}, 0, None),
        ({}, True, None),
        ({}, 1, "a" * 64),  # first event with a prev
        ({}, 2, None),  # later event without one
        ({}, 2, "not-a-hash"),
    ],
)
def test_seal_refuses_bad_events(change: dict[str, Any], seq: int, prev: str | None) -> None:
    with pytest.raises(ValueError):
        seal(body(1) | change, seq=seq, prev=prev)


def test_seal_needs_time_event_and_grant() -> None:
    for key in ("time", "event", "grant"):
        incomplete = {k: v for k, v in body(1).items() if k != key}
        with pytest.raises(ValueError, match=key):
            seal(incomplete, seq=1, prev=None)


# --- verify_lines -----------------------------------------------------------------------------


def test_intact_chain_and_empty_ledger_verify() -> None:
    assert verify_lines(chain(10)) is None
    assert verify_lines([]) is None
    assert verify_lines([line + "\n" for line in chain(3)]) is None


def test_edited_entry_is_named_with_line_and_seq() -> None:
    lines = chain(10)
    lines[6] = lines[6].replace('"g-7"', '"g-eve"')
    problem = verify_lines(lines)
    assert problem == ChainProblem(7, 7, "hash does not match its content — the entry was edited")
    assert str(problem) == "line 7 (seq 7): hash does not match its content — the entry was edited"


def test_edited_and_rehashed_entry_breaks_the_next_link() -> None:
    lines = chain(10)
    lines[6] = rewrite(lines[6], grant="g-eve")
    problem = verify_lines(lines)
    assert problem is not None and (problem.line, problem.seq) == (8, 8)
    assert "prev does not match" in problem.message


def test_rehashed_last_entry_still_chains() -> None:
    # The chain protects what came before; the last entry is protected by git history instead.
    lines = chain(3)
    lines[2] = rewrite(lines[2], grant="g-eve")
    assert verify_lines(lines) is None


def test_deleted_entry() -> None:
    lines = chain(10)
    del lines[4]
    problem = verify_lines(lines)
    assert problem is not None and (problem.line, problem.seq) == (5, 6)
    assert "jumps from 4 to 6" in problem.message


def test_deleted_first_entry() -> None:
    problem = verify_lines(chain(3)[1:])
    assert problem is not None and (problem.line, problem.seq) == (1, 2)
    assert "seq 1" in problem.message


def test_first_entry_with_a_prev() -> None:
    lines = chain(2)
    lines[0] = rewrite(lines[0], prev="0" * 64)
    problem = verify_lines(lines)
    assert problem is not None and problem.line == 1 and "prev null" in problem.message


def test_reordered_entries() -> None:
    lines = chain(10)
    lines[3], lines[4] = lines[4], lines[3]
    problem = verify_lines(lines)
    assert problem is not None and (problem.line, problem.seq) == (4, 5)
    assert "jumps" in problem.message


def test_duplicated_entry() -> None:
    lines = chain(5)
    lines.insert(3, lines[2])
    problem = verify_lines(lines)
    assert problem is not None and (problem.line, problem.seq) == (4, 3)
    assert "reordered or duplicated" in problem.message


def test_renumbered_entries_still_fail_on_prev() -> None:
    lines = chain(5)
    del lines[2]
    lines[2] = rewrite(lines[2], seq=3)
    problem = verify_lines(lines)
    assert problem is not None and problem.line == 3 and "prev" in problem.message


def test_blank_line_inside() -> None:
    lines = chain(4)
    lines.insert(2, "")
    problem = verify_lines(lines)
    assert problem == ChainProblem(3, None, "blank line inside the ledger")


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"seq": 1}', "missing required key(s): time, event, grant, prev, hash"),
        (
            '{"x": NaN, "seq":1,"time":"t","event":"e","grant":null,"prev":null,"hash":"' + "a" * 64 + '"}',
            "NaN",
        ),
    ],
)
def test_unreadable_lines(line: str, fragment: str) -> None:
    lines = chain(3)
    lines[1] = line
    problem = verify_lines(lines)
    assert problem is not None and problem.line == 2
    assert fragment in problem.message


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"grant": 5}, "grant must be text or null"),
        ({"seq": "2"}, "seq must be a positive integer"),
        ({"seq": True}, "seq must be a positive integer"),
        ({"event": ""}, "event must be non-empty text"),
        ({"time": 1234}, "time must be text"),
        ({"prev": "xyz"}, "prev must be null or a SHA-256"),
    ],
)
def test_wrong_types(change: dict[str, Any], fragment: str) -> None:
    lines = chain(3)
    lines[1] = rewrite(lines[1], **change)
    problem = verify_lines(lines)
    assert problem is not None and problem.line == 2
    assert fragment in problem.message


def test_non_canonical_line_is_refused_even_with_a_valid_hash() -> None:
    lines = chain(3)
    lines[1] = json.dumps(json.loads(lines[1]), indent=None, sort_keys=False)  # spaces, key order
    problem = verify_lines(lines)
    assert problem is not None and problem.line == 2 and "canonical" in problem.message


def test_duplicate_keys_are_not_canonical() -> None:
    lines = chain(2)
    lines[1] = lines[1][:-1] + ',"grant":"g-2"}'
    problem = verify_lines(lines)
    assert problem is not None and problem.line == 2


def test_first_problem_wins() -> None:
    lines = chain(10)
    lines[8] = "garbage"
    lines[2] = lines[2].replace('"g-3"', '"g-x"')
    problem = verify_lines(lines)
    assert problem is not None and problem.line == 3


@given(
    count=st.integers(min_value=2, max_value=12),
    data=st.data(),
)
def test_any_deletion_swap_duplication_or_edit_before_the_end_is_caught(
    count: int, data: st.DataObject
) -> None:
    lines = chain(count)
    kind = data.draw(st.sampled_from(["delete", "swap", "duplicate", "edit"]))
    i = data.draw(st.integers(min_value=0, max_value=count - 2))
    if kind == "delete":
        del lines[i]
    elif kind == "swap":
        j = data.draw(st.integers(min_value=i + 1, max_value=count - 1))
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "duplicate":
        lines.insert(i + 1, lines[i])
    else:
        lines[i] = rewrite(lines[i], note=data.draw(st.integers()))
    problem = verify_lines(lines)
    assert problem is not None
    assert problem.line <= i + 2
