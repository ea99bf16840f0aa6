"""policy.history, called directly: what each ledger event kind does to History (replay), one
view of several ledger files (merge), and a shard's part of it (restricted). Table-driven."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from jitpol.policy.history import Activation, History, OpenGrant, merge, replay, restricted

K1 = ("db", "role-membership", "alice", "app_read")
K2 = ("db", "role-membership", "alice", "app_write")
K3 = ("ldap", "role-membership", "alice", "cn=ops")


def key(k: tuple[str, str, str, str]) -> dict[str, str]:
    return dict(zip(("target", "model", "principal", "privilege"), k, strict=True))


def t(hour: int, day: int = 1) -> datetime:
    return datetime(1999, 3, day, hour, tzinfo=UTC)


def iso(hour: int, day: int = 1) -> str:
    return t(hour, day).isoformat()


def act(grant: str = "g", digest: str = "d1", *keys: tuple[str, str, str, str], **kw: Any) -> dict[str, Any]:
    return {"event": "grant.activated", "grant": grant, "digest": digest, "time": iso(10), "until": iso(12),
            "requester": "alice", "resource": "db-prod", "start": iso(10), "end": iso(12),
            "assignments": [key(k) for k in (keys or (K1,))], **kw}


def started(*keys: tuple[str, str, str, str], grants: Sequence[str] = ("g",)) -> list[dict[str, Any]]:
    return [{"event": "action.started", "grant": grants[0], "op": "grant", **key(k), "grants": list(grants)}
            for k in keys]


# each row: events -> {History field: expected value}; every other field stays as History() has it
REPLAY: dict[str, tuple[Sequence[Mapping[str, Any]], Mapping[str, Any]]] = {
    "nothing": ([], {}),
    "action.started opens the grant with the key (intent before an addition)": (
        started(K1), {"open": {"g": OpenGrant("g", None, None, {K1})}}),
    "action.started for several grants opens each": (
        started(K1, grants=("a", "b")),
        {"open": {"a": OpenGrant("a", None, None, {K1}), "b": OpenGrant("b", None, None, {K1})}}),
    "grant.activated records digest, until, keys and the activation": (
        [act()], {
            "open": {"g": OpenGrant("g", "d1", t(12), {K1})},
            "activated": {"g": "d1"},
            "first_activated": {"g": iso(10)},
            "activations": {"g": Activation("g", "alice", t(10), t(12), None, iso(10), "db-prod", "d1", None)},
        }),
    "grant.activated after action.started adds to the keys": (
        [*started(K2), act()], {
            "open": {"g": OpenGrant("g", "d1", t(12), {K1, K2})},
            "activated": {"g": "d1"},
            "first_activated": {"g": iso(10)},
            "activations": {"g": Activation("g", "alice", t(10), t(12), None, iso(10), "db-prod", "d1", None)},
        }),
    "a second activation keeps the first time and the first facts, breakglass once any says so": (
        [act(approvals=[{"by": "lead"}], breakglass=False),
         act(digest="d2", time=iso(11), until=iso(13), approvals=[], breakglass={"deadline": "x"})], {
            "open": {"g": OpenGrant("g", "d2", t(13), {K1})},
            "activated": {"g": "d2"},
            "first_activated": {"g": iso(10)},
            "activations": {"g": Activation("g", "alice", t(10), t(12), True, iso(10), "db-prod", "d1", 1)},
        }),
    "an activation without start or end falls back to its time and until": (
        [{"event": "grant.activated", "grant": "g", "digest": "d1", "time": iso(9), "until": iso(11),
          "assignments": []}], {
            "open": {"g": OpenGrant("g", "d1", t(11), set())},
            "activated": {"g": "d1"},
            "first_activated": {"g": iso(9)},
            "activations": {"g": Activation("g", "", t(9), t(11), None, iso(9), "", "d1", None)},
        }),
    "grant.revoked final closes and ends the name": (
        [act(), {"event": "grant.revoked", "grant": "g", "final": True, "reason": "expired: window ended"}], {
            "activated": {"g": "d1"},
            "first_activated": {"g": iso(10)},
            "activations": {"g": Activation("g", "alice", t(10), t(12), None, iso(10), "db-prod", "d1", None)},
            "ended": {"g": "expired: window ended"},
        }),
    "grant.revoked without final is final, reason defaults": (
        [*started(K1), {"event": "grant.revoked", "grant": "g"}], {"ended": {"g": "ended"}}),
    "grant.revoked not final closes but does not end the name": (
        [*started(K1), {"event": "grant.revoked", "grant": "g", "final": False, "reason": "kill switch"}], {}),
    "credential.rotated sets holders and their end": (
        [{"event": "credential.rotated", "target": "db", "account": "svc", "holders": ["a", "b"], "until": iso(12)}],
        {"holders": {("db", "svc"): ("a", "b")}, "holders_until": {("db", "svc"): t(12)}}),
    "credential.rotated to nobody, no end recorded": (
        [{"event": "credential.rotated", "target": "db", "account": "svc", "holders": [], "until": None}],
        {"holders": {("db", "svc"): ()}, "holders_until": {("db", "svc"): None}}),
    "account.created delivered": (
        [{"event": "account.created", "grant": "g", "delivered": True}], {"delivered": {"g"}}),
    "account.created not delivered": (
        [{"event": "account.created", "grant": "g", "delivered": False}], {}),
    "mfa.checked": (
        [{"event": "mfa.checked", "grant": "g", "digest": "d1", "result": "REJECTED"}],
        {"mfa": {("g", "d1"): "REJECTED"}}),
    "policy.adopted: the last one is in force": (
        [{"event": "policy.adopted", "digest": "p1", "policy_commit": "c1", "time": iso(8)},
         {"event": "policy.adopted", "digest": "p2", "policy_commit": "c2", "time": iso(9)}],
        {"adopted_digest": "p2", "adopted_commit": "c2", "adopted_at": iso(9)}),
    "grant.rejected": (
        [{"event": "grant.rejected", "grant": "g", "reason": "quorum"}], {"rejected": {("g", "quorum")}}),
    "seq: the highest": (
        [{"event": "other", "seq": 7}, {"event": "other", "seq": 3}], {"last_seq": 7}),
    "unknown kinds and grant events without a grant change nothing": (
        [{"event": "drift.corrected", **key(K1)}, {"event": "grant.activated", "grant": None, "digest": "x"},
         {"event": "grant.rejected", "reason": "r"}, {"event": "mfa.checked", "result": "SUCCESS"}], {}),
}


@pytest.mark.parametrize(("events", "changed"), REPLAY.values(), ids=REPLAY.keys())
def test_replay(events: Sequence[Mapping[str, Any]], changed: Mapping[str, Any]) -> None:
    assert replay(events) == History(**changed)


def test_managed_maps_each_key_to_the_grants_behind_it() -> None:
    h = replay([*started(K1, K2, grants=("a",)), *started(K1, grants=("b",))])
    assert h.managed() == {K1: {"a", "b"}, K2: {"a"}}


def test_an_unreadable_recorded_start_falls_back_to_the_time() -> None:
    h = replay([act(start="not a time", end="")])
    assert (h.activations["g"].start, h.activations["g"].end) == (t(10), t(12))


# -- merge: several ledger files, each replayed on its own --------------------------------------

def test_one_history_merges_to_itself() -> None:
    only = replay([act()])
    assert merge([only]) is only


MERGE: dict[str, tuple[Sequence[Sequence[Mapping[str, Any]]], Mapping[str, Any]]] = {
    "a grant closed in one file stays open where another still holds it": (
        [[act("g", "d1", K1), {"event": "grant.revoked", "grant": "g", "final": False}], [act("g", "d1", K3)]],
        {"open": {"g": OpenGrant("g", "d1", t(12), {K3})}}),
    "open keys unite, the later until wins": (
        [[act("g", "d1", K1)], [act("g", "d1", K3, until=iso(14))]],
        {"open": {"g": OpenGrant("g", "d1", t(14), {K1, K3})}}),
    "the first activation in time wins, breakglass once any says so": (
        [[act(time=iso(11), breakglass=True, requester="late")], [act(time=iso(10), breakglass=False)]],
        {"activations": {"g": Activation("g", "alice", t(10), t(12), True, iso(10), "db-prod", "d1", None)},
         "first_activated": {"g": iso(10)}}),
    "ends, rejections, MFA answers, deliveries unite": (
        [[{"event": "grant.revoked", "grant": "a", "reason": "x"}, {"event": "grant.rejected", "grant": "b",
                                                                      "reason": "r"}],
         [{"event": "mfa.checked", "grant": "c", "digest": "d", "result": "SUCCESS"},
          {"event": "account.created", "grant": "e", "delivered": True}]],
        {"ended": {"a": "x"}, "rejected": {("b", "r")}, "mfa": {("c", "d"): "SUCCESS"}, "delivered": {"e"}}),
    "holders per account from every file": (
        [[{"event": "credential.rotated", "target": "db", "account": "svc", "holders": ["a"], "until": iso(12)}],
         [{"event": "credential.rotated", "target": "ldap", "account": "svc", "holders": [], "until": None}]],
        {"holders": {("db", "svc"): ("a",), ("ldap", "svc"): ()},
         "holders_until": {("db", "svc"): t(12), ("ldap", "svc"): None}}),
    "the latest adoption is in force, whichever file has it": (
        [[{"event": "policy.adopted", "digest": "p2", "policy_commit": "c2", "time": iso(9)}],
         [{"event": "policy.adopted", "digest": "p1", "policy_commit": "c1", "time": iso(8)}]],
        {"adopted_digest": "p2", "adopted_commit": "c2", "adopted_at": iso(9)}),
    "the highest seq": ([[{"event": "x", "seq": 4}], [{"event": "x", "seq": 9}], []], {"last_seq": 9}),
}


@pytest.mark.parametrize(("files", "fields"), MERGE.values(), ids=MERGE.keys())
def test_merge(files: Sequence[Sequence[Mapping[str, Any]]], fields: Mapping[str, Any]) -> None:
    got = merge([replay(f) for f in files])
    assert {k: getattr(got, k) for k in fields} == dict(fields)


def test_merge_keeps_what_each_file_says_about_activation() -> None:
    got = merge([replay([act("a")]), replay([act("b", "d2", K3)])])
    assert got.activated == {"a": "d1", "b": "d2"}
    assert got.managed() == {K1: {"a"}, K3: {"b"}}


# -- restricted: a shard's view ------------------------------------------------------------------

def test_restricted_keeps_only_the_shards_targets_of_open_grants_and_holders() -> None:
    h = replay([
        act("both", "d1", K1, K3), act("ldap-only", "d2", K3),
        {"event": "credential.rotated", "target": "db", "account": "svc", "holders": ["both"], "until": iso(12)},
        {"event": "credential.rotated", "target": "ldap", "account": "svc", "holders": [], "until": None},
        {"event": "grant.revoked", "grant": "gone", "reason": "expired"},
        {"event": "mfa.checked", "grant": "both", "digest": "d1", "result": "SUCCESS"},
        {"event": "policy.adopted", "digest": "p1", "time": iso(8)},
    ])
    got = restricted(h, frozenset({"db"}))
    assert got.open == {"both": OpenGrant("both", "d1", t(12), {K1})}
    assert (got.holders, got.holders_until) == ({("db", "svc"): ("both",)}, {("db", "svc"): t(12)})
    # facts about grant names and the policy stay whole
    assert got.activated == {"both": "d1", "ldap-only": "d2"}
    assert got.ended == {"gone": "expired"} and got.mfa == {("both", "d1"): "SUCCESS"}
    assert got.adopted_digest == "p1"
    # the original is not changed
    assert h.open["both"].keys == {K1, K3}


def test_restricted_to_every_target_changes_nothing() -> None:
    h = replay([act("g", "d1", K1, K3)])
    assert restricted(h, frozenset({"db", "ldap"})) == h
