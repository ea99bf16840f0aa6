"""plan.build.make_plan, called directly on hand-built Prepared and Observation values: the
plan of a valid run (additions, revocations with their resource, rotations, redeliveries,
rejected grants, notes) and of a run that only revokes what is due (invalid repository, no
trusted policy). Table-driven where the rows share a shape."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from jitpol.evaluate.prepare import Prepared
from jitpol.model.assignment import Action, Assignment, AssignmentKey
from jitpol.model.canonical import canonical_json
from jitpol.observe.targets import Observation
from jitpol.plan.build import _with_resource, make_plan
from jitpol.plan.diff import Plan
from jitpol.policy.evaluate import ephemeral_name
from jitpol.policy.history import History, replay
from jitpol.policy.trust import PolicyCheck
from tests.helpers.policyset import T0, H, M, activated, grant, key_line, policy, resource, workflow
from tests.helpers.prepared import DIGEST, observed, prepared, revocations_only, unobservable

NOW = T0 + H
END = T0 + 2 * H
READ: AssignmentKey = ("db", "role-membership", "alice", "app_read")
WRITE: AssignmentKey = ("db", "role-membership", "alice", "app_write")
BOB: AssignmentKey = ("db", "role-membership", "bob", "app_read")
G = grant("g")
OLD = grant("old", start=T0 - 3 * H)  # its window ended at T0 - 1h
ACCOUNT: AssignmentKey = ("db", "ephemeral-account", ephemeral_name("alice", "g"), canonical_json(["app_read"]))
SHARED: AssignmentKey = ("db", "credential-checkout", "svc_app", "checkout")

Row = tuple[str, AssignmentKey, str, tuple[str, ...], str]  # op, key, resource, grants, reason


def rows(plan: Plan) -> list[Row]:
    return [(a.op, a.assignment.key, a.resource, a.grants, a.reason) for a in plan.actions]


def gone(name: str, *keys: AssignmentKey) -> History:
    """The ledger: jitpol granted `keys` to OLD-like grant `name`, recorded until its end."""
    return replay([activated(grant(name, start=T0 - 3 * H), *keys)])


@dataclass(frozen=True)
class Case:
    prep: Prepared
    obs: Observation
    actions: Sequence[Row]
    notes: Sequence[str] = ()
    rejected: Sequence[str] = ()
    valid: bool = True


ADD: Row = ("grant", READ, "db-prod", ("g",), "grant g is active")
REVOKE_OLD: Row = ("revoke", READ, "db-prod", ("old",), "no active grant backs it (was: old)")
EXCLUSIVE = resource(exclusive=True)
CHECKOUT = resource("db-shared", model="credential-checkout", account="svc_app")
EPHEMERAL = resource("db-acct", model="ephemeral-account")

CASES: dict[str, Case] = {
    "an active grant: its addition": Case(prepared(policy(G), NOW), observed(), [ADD]),
    "nothing to do": Case(prepared(policy(G), NOW), observed(Assignment(*READ)), []),
    "a revocation gets its resource from the policy": Case(
        prepared(policy(OLD), NOW, gone("old", READ)), observed(Assignment(*READ)), [REVOKE_OLD]),
    "a revocation of a privilege no resource names keeps none": Case(
        prepared(policy(OLD), NOW, gone("old", ("db", "role-membership", "alice", "legacy"))),
        observed(Assignment("db", "role-membership", "alice", "legacy")),
        [("revoke", ("db", "role-membership", "alice", "legacy"), "", ("old",),
          "no active grant backs it (was: old)")]),
    "revocations first": Case(
        prepared(policy(OLD, grant("g", role="write")), NOW, gone("old", READ, ("db", "role-membership", "zed", "x"))),
        observed(Assignment("db", "role-membership", "zed", "x")), [
            ("revoke", ("db", "role-membership", "zed", "x"), "", ("old",), "no active grant backs it (was: old)"),
            ADD, ("grant", WRITE, "db-prod", ("g",), "grant g is active")]),
    "rejected grants are listed": Case(
        prepared(policy(G, grant("long", hours=5)), NOW), observed(), [ADD], rejected=["long"]),
    "an unobservable target: a note, no additions, revocations anyway": Case(
        prepared(policy(G, OLD), NOW, gone("old", WRITE)), unobservable(),
        [("revoke", WRITE, "db-prod", ("old",), "no active grant backs it (was: old)")],
        notes=["target db could not be observed: connection refused"]),
    "standing access on a managed privilege is a note": Case(
        prepared(policy(G), NOW), observed(Assignment(*BOB)), [ADD],
        notes=["standing access jitpol did not grant: bob holds app_read on db (left alone; the resource is not "
               "exclusive)"]),
    "standing access on an exclusive resource is revoked, not noted": Case(
        prepared(policy(G, resources=[EXCLUSIVE]), NOW), observed(Assignment(*BOB)),
        [("revoke", BOB, "db-prod", (), "standing access on exclusive resource db-prod that no grant backs"), ADD]),
    "standing access on a privilege jitpol does not manage is not looked at": Case(
        prepared(policy(), NOW), observed(Assignment(*BOB)), []),
    "the run's notes come first, then the observation's": Case(
        prepared(policy(G), NOW, notes=("trust root v1 in force",)), unobservable(), [],
        notes=["trust root v1 in force", "target db could not be observed: connection refused"]),
    "a waiting policy change leads the notes": Case(
        prepared(policy(G), NOW, check=PolicyCheck("cd" * 32, DIGEST, 1, ())), observed(Assignment(*READ)), [],
        notes=["policy change abababababab -> cdcdcdcdcdcd: 0 of 1 admin approval(s) from ; until approved (`jitpol "
               "approve --policy`), grants are live only where both the approved and the proposed policy allow "
               "them"]),
    "a checkout rotates the shared account for its holder": Case(
        prepared(policy(grant("g", resource="db-shared"), resources=[CHECKOUT]), NOW), observed(),
        [("rotate", ("db", "credential-checkout", "svc_app", '["g"]'), "db-shared", ("g",), "new secret for g")]),
    "an ephemeral account: created": Case(
        prepared(policy(grant("g", resource="db-acct"), resources=[EPHEMERAL]), NOW), observed(),
        [("create-account", ACCOUNT, "db-acct", ("g",), "grant g is active")]),
    "an ephemeral account without a delivered credential: redelivered": Case(
        prepared(policy(grant("g", resource="db-acct"), resources=[EPHEMERAL]), NOW), observed(Assignment(*ACCOUNT)),
        [("create-account", ACCOUNT, "db-acct", ("g",), "no delivered credential on record: set and deliver a new "
                                                         "one")]),
    "an ephemeral account delivered: nothing": Case(
        prepared(policy(grant("g", resource="db-acct"), resources=[EPHEMERAL]), NOW,
                 replay([{"event": "account.created", "grant": "g", "delivered": True}])),
        observed(Assignment(*ACCOUNT)), []),
    # -- revocations only ----------------------------------------------------------------------
    "invalid: what the ledger still covers stays": Case(
        revocations_only(policy(), T0 - 2 * H, gone("old", READ)), observed(Assignment(*READ)), [],
        notes=["repository is invalid: only revocations that are due are planned, nothing is added"], valid=False),
    "invalid: what the ledger no longer covers goes": Case(
        revocations_only(policy(), NOW, gone("old", READ)), observed(Assignment(*READ)),
        [("revoke", READ, "", ("old",), "no active grant backs it (was: old)")],
        notes=["repository is invalid: only revocations that are due are planned, nothing is added"], valid=False),
    "invalid: a restriction ends it early": Case(
        revocations_only(policy(), T0 - 2 * H, gone("old", READ), ended={"old": "revoke: true"}),
        observed(Assignment(*READ)), [("revoke", READ, "", ("old",), "no active grant backs it (was: old)")],
        notes=["repository is invalid: only revocations that are due are planned, nothing is added"], valid=False),
    "invalid: what a valid grant backs stays (lost ledger)": Case(
        revocations_only(policy(), NOW, gone("old", READ), backed=frozenset({READ})), observed(Assignment(*READ)),
        [], notes=["repository is invalid: only revocations that are due are planned, nothing is added"],
        valid=False),
    "untrusted ledger: only what the reconciler signed keeps access": Case(
        revocations_only(policy(), T0 - 2 * H, gone("old", READ), loaded_ok=True, keeping=History()),
        observed(Assignment(*READ)), [("revoke", READ, "", ("old",), "no active grant backs it (was: old)")],
        notes=["no approved policy is in force: only revocations that are due are planned, nothing is added"],
        valid=False),
    "invalid: a checkout ends for the holders the ledger no longer covers": Case(
        revocations_only(policy(), NOW, replay([
            activated(grant("old", start=T0 - 3 * H), SHARED),
            {"event": "credential.rotated", "target": "db", "account": "svc_app", "holders": ["old"]}])),
        observed(), [("rotate", ("db", "credential-checkout", "svc_app", "[]"), "", (),
                      "checkout by old ended: rotate to a secret nobody holds")],
        notes=["repository is invalid: only revocations that are due are planned, nothing is added"], valid=False),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_make_plan(case: Case) -> None:
    plan = make_plan(case.prep, case.obs)
    assert rows(plan) == list(case.actions)
    assert list(plan.notes) == list(case.notes)
    assert [s.name for s in plan.rejected] == list(case.rejected)
    assert plan.valid is case.valid
    assert plan.at == case.prep.now  # the plan carries the instant it was made for


def test_an_addition_carries_what_the_connector_needs() -> None:
    (action,) = make_plan(prepared(policy(G), NOW), observed()).actions
    assert action == Action("grant", Assignment(*READ, expires=END), "db-prod", ("g",), until=END,
                            reason="grant g is active",
                            details=(("grant", "g"), ("person", "alice"), ("ssh_keys", key_line("alice")),
                                     ("start", "1999-03-01T10:00:00Z")))


def test_a_break_glass_grant_is_planned_until_its_deadline() -> None:
    g = grant("g", approvers=(), breakglass=True)
    prep = prepared(policy(g, workflows=[workflow(breakglass_deadline=30 * M)]), T0 + 10 * M)
    (action,) = make_plan(prep, observed()).actions
    assert (action.op, action.until) == ("grant", T0 + 30 * M)


def test_the_plan_is_a_value_of_its_inputs() -> None:
    prep = prepared(policy(G, OLD), NOW, gone("old", WRITE))
    obs = observed(Assignment(*WRITE), Assignment(*BOB))
    assert make_plan(prep, obs) == make_plan(prep, obs)


def test_an_action_without_a_resource_gets_the_first_that_grants_it_in_policy_order() -> None:
    """The resource index (built once per plan) names what the search through the resources in
    order named: the first whose roles grant the privilege on the target under the model, or the
    credential-checkout resource of the target and account."""
    later = resource("db-later")
    checkout = resource("db-shared", model="credential-checkout", account="svc_app")
    other_target = resource("db-elsewhere", target="other")
    give = _with_resource(policy(resources=[other_target, resource("db-first"), later, checkout]))

    def named(key: AssignmentKey, resource_name: str = "") -> str:
        return give(Action("revoke", Assignment(*key), resource=resource_name, grants=("g",))).resource

    assert named(READ) == "db-first"
    assert named(READ, "kept") == "kept"  # an action that names its resource keeps it
    assert named(SHARED) == "db-shared"
    assert named(("db", "credential-checkout", "someone_else", "checkout")) == ""
    assert named(("db", "role-membership", "alice", "no_such_role")) == ""
    assert named(("other", "role-membership", "alice", "app_read")) == "db-elsewhere"
    assert named(("nowhere", "role-membership", "alice", "app_read")) == ""
