"""policy.history.replay never raises on an event jitpol would not write, and never applies half
of one: the event is ignored whole and listed with its seq."""

from __future__ import annotations

from typing import Any

import pytest

from jitpol.policy.history import replay

KEY = {"target": "db", "model": "role-membership", "principal": "alice", "privilege": "app_read"}
GOOD = {"seq": 1, "time": "1999-01-01T10:00:00Z", "event": "grant.activated", "grant": "g1", "digest": "d1",
        "until": "1999-01-01T14:00:00Z", "assignments": [KEY]}


@pytest.mark.parametrize("bad", [
    {"event": "grant.activated", "grant": "g2", "digest": "d2", "until": "1999-01-01T14:00:00", "assignments": [KEY]},
    {"event": "grant.activated", "grant": "g2", "digest": "d2", "until": "soon", "assignments": [KEY]},
    {"event": "grant.activated", "grant": "g2", "digest": "d2", "until": "1999-01-01T14:00:00Z",
     "assignments": [KEY, {"target": "db"}]},
    {"event": "grant.activated", "grant": "g2", "digest": "d2", "until": "1999-01-01T14:00:00Z", "assignments": "x"},
    {"event": "action.started", "grant": "g2", "grants": "g2", **KEY},
    {"event": "credential.rotated", "grant": None, "target": "db", "account": "a", "holders": ["g2"], "until": 3},
    {"event": "policy.adopted", "grant": None, "digest": 7},
])
def test_a_bad_event_is_ignored_whole(bad: dict[str, Any]) -> None:
    h = replay([GOOD, {"seq": 2, "time": "1999-01-01T10:05:00Z", **bad}])
    assert [seq for seq, _ in h.ignored] == [2]
    assert set(h.open) == {"g1"} and "g2" not in h.activated and h.holders == {} and h.adopted_digest is None
    assert h.last_seq == 2


def test_good_events_are_not_ignored() -> None:
    assert replay([GOOD]).ignored == []
