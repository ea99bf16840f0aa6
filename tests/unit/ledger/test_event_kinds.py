"""One definition per ledger event kind: jitpol.ledger.events (what the code writes and reads) and
schemas/ledger-event.json (the same contract for tools) must agree, field by field."""

from __future__ import annotations

from typing import Any

import pytest

from jitpol.ledger.events import KINDS, problems, schema

CHAIN = {"seq", "prev", "hash"}  # added when a line is sealed
RUN = {"time", "policy_commit"}  # added by the run (notify: time only)
BASE = {"seq": 1, "time": "1998-12-01T10:00:00Z", "grant": None, "prev": None, "hash": "0" * 64}


def fields(kind: str) -> tuple[set[str], set[str]]:
    """(all keys, required keys) of the typed definition, chain keys included."""
    td: Any = KINDS[kind]
    return set(td.__annotations__) | _inherited(td) | CHAIN | RUN, set(td.__required_keys__) | CHAIN | {"time"}


def _inherited(td: Any) -> set[str]:
    out: set[str] = set()
    for base in getattr(td, "__orig_bases__", ()):
        out |= set(getattr(base, "__annotations__", {}))
    return out | set(td.__required_keys__) | set(td.__optional_keys__)


def test_every_kind_is_defined_in_both() -> None:
    defs = set(schema()["$defs"]) - {"assignment"}
    assert defs == set(KINDS)
    assert set(schema()["properties"]["event"]["enum"]) == set(KINDS)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_typed_definition_and_the_schema_name_the_same_fields(kind: str) -> None:
    keys, required = fields(kind)
    definition = schema()["$defs"][kind]
    assert set(definition["properties"]) == keys
    top = set(schema()["required"])
    assert set(definition["required"]) | top == required | {"grant", "event"}


@pytest.mark.parametrize(("event", "expect"), [
    ({"event": "account.deleted", "target": "db", "account": "jit-a"}, []),
    ({"event": "account.deleted", "target": "db"}, ["(event): 'account' is a required property"]),
    ({"event": "account.deleted", "target": "db", "account": "jit-a", "password": "x"},
     ["(event): Additional properties are not allowed ('password' was unexpected)"]),
    ({"event": "grant.revoked", "final": "yes", "reason": "r", "assignments": []},
     ["final: 'yes' is not of type 'boolean'"]),
    ({"event": "no.such.kind"}, ["event: 'no.such.kind' is not one of " + repr(sorted(KINDS))]),
    ({"event": "grant.activated", "digest": "d", "until": "not a time", "assignments": []},
     ["until: 'not a time' is not a 'date-time'"]),
])
def test_problems_name_the_field(event: dict[str, Any], expect: list[str]) -> None:
    assert problems({**BASE, **event}) == expect
