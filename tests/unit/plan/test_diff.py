"""plan.diff, called directly: the actions that make targets match the active grants (diff:
additions, revocations, exclusive drift, invalid-repository mode, unobservable targets, ephemeral
accounts), shared-account rotations (checkout_actions), and the pure helpers a run plans with
(exclusive_privileges, covered_by_history), with observe.scopes and policy.restrictions, which
the stages before planning call. Table-driven."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

from jitpol.model.assignment import Action, Assignment, AssignmentKey, Scope
from jitpol.model.canonical import canonical_json
from jitpol.observe.scopes import scopes
from jitpol.plan.diff import (
    Plan,
    checkout_actions,
    covered_by_history,
    diff,
    exclusive_privileges,
)
from jitpol.policy.evaluate import Desired
from jitpol.policy.history import History, replay
from jitpol.policy.restrictions import restrictions
from tests.helpers.policyset import T0, H, activated, config, grant, person, policy, resource

END = T0 + 2 * H
READ: AssignmentKey = ("db", "role-membership", "alice", "app_read")
WRITE: AssignmentKey = ("db", "role-membership", "alice", "app_write")
BOB: AssignmentKey = ("db", "role-membership", "bob", "app_read")
OTHER: AssignmentKey = ("ldap", "role-membership", "alice", "cn=ops")
ACCOUNT = ("db", "ephemeral-account", "jit-alice-1", canonical_json(["app_read"]))
DRIFTED = ("db", "ephemeral-account", "jit-alice-1", canonical_json(["app_read", "app_write"]))
STRAY = ("db", "ephemeral-account", "jit-mallory-2", canonical_json(["app_read"]))
CHECKOUT = ("db", "credential-checkout", "svc_app", "checkout")
DETAILS = (("grant", "g"), ("person", "alice"))


def want(*keys: AssignmentKey, grants: tuple[str, ...] = ("g",), until: datetime = END) -> dict[AssignmentKey, Desired]:
    return {k: Desired(Assignment(*k, expires=until), "db-prod", grants, until, DETAILS) for k in keys}


def seen(*keys: AssignmentKey, target: str = "db") -> dict[str, frozenset[Assignment] | None]:
    return {target: frozenset(Assignment(*k) for k in keys)}


def ledger(*keys: AssignmentKey, name: str = "old") -> History:
    """jitpol granted these keys to grant `name` (its interval recorded until END)."""
    return replay([activated(grant(name), *keys)])


Row = tuple[str, AssignmentKey, tuple[str, ...], bool, str, str]  # op, key, grants, drift, resource, reason


def rows(actions: Iterable[Action]) -> list[Row]:
    return [(a.op, a.assignment.key, a.grants, a.drift, a.resource, a.reason) for a in actions]


@dataclass(frozen=True)
class Case:
    desired: Mapping[AssignmentKey, Desired]
    observed: Mapping[str, frozenset[Assignment] | None]
    expected: Sequence[Row]
    history: History = field(default_factory=History)
    exclusive: Mapping[tuple[str, str, str], str] = field(default_factory=dict)
    keep: Sequence[AssignmentKey] | None = None
    additions: bool = True


REVOKE_READ: Row = ("revoke", READ, ("old",), False, "", "no active grant backs it (was: old)")
ADD_READ: Row = ("grant", READ, ("g",), False, "db-prod", "grant g is active")

CASES: dict[str, Case] = {
    "nothing": Case({}, {}, []),
    "addition: the target lacks it": Case(want(READ), seen(), [ADD_READ]),
    "addition: already there": Case(want(READ), seen(READ), []),
    "addition: a role of two privileges": Case(want(READ, WRITE), seen(READ), [
        ("grant", WRITE, ("g",), False, "db-prod", "grant g is active")]),
    "addition: an unobservable target gets none": Case(want(READ), {"db": None}, []),
    "addition: a target not observed at all gets none": Case(want(READ), {}, []),
    "revocation: jitpol's, no grant backs it": Case({}, seen(READ), [REVOKE_READ], history=ledger(READ)),
    "revocation: already gone": Case({}, seen(), [], history=ledger(READ)),
    "revocation: an unobservable target is revoked anyway": Case({}, {"db": None}, [REVOKE_READ],
                                                                  history=ledger(READ)),
    "revocation: a target not observed at all too": Case({}, {}, [REVOKE_READ], history=ledger(READ)),
    "revocation: a newer grant backs it": Case(want(READ), seen(READ), [], history=ledger(READ)),
    "revocation: every grant behind it is named": Case({}, seen(READ), [
        ("revoke", READ, ("a", "b"), False, "", "no active grant backs it (was: a, b)")],
        history=replay([activated(grant("a"), READ), activated(grant("b"), READ)])),
    "standing access is not jitpol's to take": Case({}, seen(BOB), []),
    "exclusive: standing access is drift": Case({}, seen(BOB), [
        ("revoke", BOB, (), True, "db-prod", "standing access on exclusive resource db-prod that no grant backs")],
        exclusive={("db", "role-membership", "app_read"): "db-prod"}),
    "exclusive: a backed holder stays": Case(want(READ), seen(READ, BOB), [
        ("revoke", BOB, (), True, "db-prod", "standing access on exclusive resource db-prod that no grant backs")],
        exclusive={("db", "role-membership", "app_read"): "db-prod"}),
    "exclusive: other privileges are not looked at": Case({}, seen(WRITE), [],
                                                          exclusive={("db", "role-membership", "app_read"): "db-prod"}),
    "invalid mode: kept while the ledger covers it": Case({}, seen(READ), [], history=ledger(READ), keep=[READ],
                                                          additions=False),
    "invalid mode: no additions": Case(want(READ), seen(), [], additions=False),
    "invalid mode: what is not kept goes": Case({}, seen(READ, WRITE), [
        ("revoke", WRITE, ("old",), False, "", "no active grant backs it (was: old)")],
        history=ledger(READ, WRITE), keep=[READ], additions=False),
    "ephemeral: created": Case(want(ACCOUNT), seen(), [
        ("create-account", ACCOUNT, ("g",), False, "db-prod", "grant g is active")]),
    "ephemeral: deleted when no grant backs it": Case({}, seen(ACCOUNT), [
        ("delete-account", ACCOUNT, ("old",), False, "", "no active grant backs it (was: old)")],
        history=ledger(ACCOUNT)),
    "ephemeral: deleted as observed, whatever its groups drifted to": Case({}, seen(DRIFTED), [
        ("delete-account", DRIFTED, ("old",), False, "", "no active grant backs it (was: old)")],
        history=ledger(ACCOUNT)),
    "ephemeral: an account still wanted under other groups is not deleted": Case(want(DRIFTED), seen(ACCOUNT), [
        ("create-account", DRIFTED, ("g",), False, "db-prod", "grant g is active")], history=ledger(ACCOUNT)),
    "ephemeral: already gone": Case({}, seen(), [], history=ledger(ACCOUNT)),
    "ephemeral: unobservable, deleted anyway": Case({}, {"db": None}, [
        ("delete-account", ACCOUNT, ("old",), False, "", "no active grant backs it (was: old)")],
        history=ledger(ACCOUNT)),
    "ephemeral: a marked account nothing backs is an orphan": Case({}, seen(STRAY), [
        ("delete-account", STRAY, (), True, "", "an account marked as jitpol's that no grant or ledger entry backs")]),
    "checkout: planned by checkout_actions, not here": Case(want(CHECKOUT), seen(), [], history=ledger(CHECKOUT)),
    "order: revocations first, then by target, principal, privilege": Case(
        want(WRITE, ("ldap", "role-membership", "alice", "cn=dev")), {**seen(), **seen(OTHER, target="ldap")}, [
            ("revoke", OTHER, ("old",), False, "", "no active grant backs it (was: old)"),
            ("grant", WRITE, ("g",), False, "db-prod", "grant g is active"),
            ("grant", ("ldap", "role-membership", "alice", "cn=dev"), ("g",), False, "db-prod", "grant g is active"),
        ], history=ledger(OTHER)),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_diff(case: Case) -> None:
    got = diff(case.desired, case.observed, case.history, case.exclusive, keep=case.keep, additions=case.additions)
    assert rows(got) == list(case.expected)


def test_an_addition_carries_the_end_and_the_details() -> None:
    (action,) = diff(want(READ), seen(), History(), {})
    assert action == Action("grant", Assignment(*READ, expires=END), "db-prod", ("g",), until=END,
                            reason="grant g is active", details=DETAILS)


def test_a_revocation_is_a_plain_assignment() -> None:
    (action,) = diff({}, seen(READ), ledger(READ), {})
    assert action == Action("revoke", Assignment(*READ), "", ("old",), reason="no active grant backs it (was: old)")


def test_plan_splits_revocations_and_additions() -> None:
    actions = diff(want(WRITE), seen(READ), ledger(READ), {})
    plan = Plan(actions)
    assert [a.op for a in plan.revocations] == ["revoke"] and [a.op for a in plan.additions] == ["grant"]
    assert plan.valid and plan.rejected == () and plan.notes == ()


# -- checkout_actions: a shared account's holders ------------------------------------------------

SVC = ("db", "svc_app")


def holders(*grants: str, until: datetime | None = END) -> History:
    return replay([{"event": "credential.rotated", "target": "db", "account": "svc_app", "holders": list(grants),
                    "until": until.isoformat() if until else None}])


def shared(*grants: str) -> dict[AssignmentKey, Desired]:
    return {("db", "credential-checkout", "svc_app", "checkout"):
            Desired(Assignment(*CHECKOUT), "db-shared", tuple(grants), END, DETAILS)}


Rotation = tuple[tuple[str, ...], datetime | None, str, str, tuple[tuple[str, str], ...]]  # holders, until, ...

ROTATIONS: dict[str, tuple[Mapping[AssignmentKey, Desired], History, Sequence[str] | None, Sequence[Rotation]]] = {
    "nothing": ({}, History(), None, []),
    "a first holder": (shared("g"), History(), None, [(("g",), END, "db-shared", "new secret for g", DETAILS)]),
    "another holder joins": (shared("b", "a"), holders("a"), None,
                             [(("a", "b"), END, "db-shared", "new secret for a, b", DETAILS)]),
    "the same holders, the same end": (shared("a"), holders("a"), None, []),
    "the last holder's window ended": (
        {}, holders("a", "b"), None, [((), None, "", "checkout by a, b ended: rotate to a secret nobody holds", ())]),
    "already rotated to nobody": ({}, holders(until=None), None, []),
    "invalid mode: only the kept holders": (
        {}, holders("a", "b"), ["a"], [(("a",), None, "", "new secret for a", ())]),
    "invalid mode: everyone kept": ({}, holders("a", "b"), ["a", "b"], []),
}


@pytest.mark.parametrize(("desired", "history", "keep", "expected"), ROTATIONS.values(), ids=ROTATIONS.keys())
def test_checkout_actions(desired: Mapping[AssignmentKey, Desired], history: History, keep: Sequence[str] | None,
                          expected: Sequence[Rotation]) -> None:
    got = checkout_actions(desired, history, keep=keep)
    assert [a.op for a in got] == ["rotate"] * len(expected)
    assert [a.assignment for a in got] == [
        Assignment("db", "credential-checkout", "svc_app", canonical_json(list(h))) for h, *_ in expected]
    assert [(a.grants, a.until, a.resource, a.reason, a.details) for a in got] == list(expected)


# -- what a run observes, keeps and ends early ---------------------------------------------------

def test_scopes_per_target_and_model() -> None:
    ps = policy(resources=[resource(), resource("db-acct", model="ephemeral-account"),
                           resource("nowhere", target="elsewhere")])
    got = scopes(ps, ledger(BOB, OTHER))
    assert got == {
        ("db", "role-membership"): Scope("db", "role-membership", frozenset({"app_read", "app_write"})),
        ("db", "ephemeral-account"): Scope("db", "ephemeral-account", frozenset({"app_read", "app_write"})),
        ("ldap", "role-membership"): Scope("ldap", "role-membership", frozenset({"cn=ops"})),  # the ledger's
    }


def test_scopes_without_a_policy_are_the_ledgers() -> None:
    assert scopes(None, ledger(READ)) == {("db", "role-membership"): Scope("db", "role-membership",
                                                                             frozenset({"app_read"}))}


def test_exclusive_privileges() -> None:
    ps = policy(resources=[resource(exclusive=True), resource("db-other", roles={})])
    assert exclusive_privileges(ps) == {("db", "role-membership", "app_read"): "db-prod",
                                        ("db", "role-membership", "app_write"): "db-prod"}


COVERED: dict[str, tuple[datetime, Mapping[str, str] | None, set[AssignmentKey]]] = {
    "inside the recorded interval": (END - H, None, {READ, WRITE}),
    "at its end": (END, None, set()),
    "a restriction ended it": (END - H, {"old": "revoke: true"}, set()),
    "another grant's restriction": (END - H, {"other": "revoke: true"}, {READ, WRITE}),
}


@pytest.mark.parametrize(("now", "ended", "expected"), COVERED.values(), ids=COVERED.keys())
def test_covered_by_history(now: datetime, ended: Mapping[str, str] | None, expected: set[AssignmentKey]) -> None:
    assert covered_by_history(ledger(READ, WRITE), now, ended) == expected


def test_nothing_is_covered_without_a_recorded_end() -> None:
    h = replay([{"event": "action.started", "grant": "g", "grants": ["g"], "target": "db",
                 "model": "role-membership", "principal": "alice", "privilege": "app_read"}])
    assert covered_by_history(h, T0, None) == set()


OLD = grant("old")
RESTRICTIONS: dict[str, tuple[dict[str, Any], Mapping[str, str | None], dict[str, str]]] = {
    # policy() keyword arguments of the valid part, names under grants/ -> grant -> why
    "its valid file is there": ({"grants": [OLD]}, {"old": "alice"}, {}),
    "an invalid file still names it": ({}, {"old": None}, {}),
    "grant file deleted": ({}, {}, {"old": "grant file deleted"}),
    "revoke: true": ({"grants": [grant("old", revoke=True)]}, {"old": "alice"}, {"old": "revoke: true"}),
    "requester disabled, from the valid file": (
        {"grants": [OLD], "people": [person("alice", disabled=True)]}, {"old": "alice"},
        {"old": "alice is disabled (kill switch)"}),
    "requester disabled, from the invalid file": (
        {"people": [person("alice", disabled=True)]}, {"old": "alice"}, {"old": "alice is disabled (kill switch)"}),
    "requester disabled, from the ledger": (
        {"people": [person("alice", disabled=True)]}, {"old": None}, {"old": "alice is disabled (kill switch)"}),
}


@pytest.mark.parametrize(("partial", "named", "expected"), RESTRICTIONS.values(), ids=RESTRICTIONS.keys())
def test_restrictions(partial: dict[str, Any], named: Mapping[str, str | None], expected: dict[str, str]) -> None:
    kw = dict(partial)
    ps = policy(*kw.pop("grants", []), cfg=config(), **kw)
    assert restrictions(ledger(READ), ps, named, T0 + H) == expected
    assert restrictions(ledger(READ), ps, named, END) == {}  # the recorded interval is over: nothing to end early
