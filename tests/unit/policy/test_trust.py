"""policy.trust, called directly: whose approvals put a proposed policy in force (check_policy by
the admins in force, check_policy_root by a pinned trust root), and while a change waits, each
grant under both policies — the most restrictive wins, field by field (combine). Table-driven."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, time
from typing import Any

import pytest

from jitpol.model.assignment import Assignment
from jitpol.model.documents import PolicyApproval, PolicySet, Schedule, ScheduleWindow
from jitpol.model.refs import Ref
from jitpol.policy.effective import effective_policy
from jitpol.policy.evaluate import Desired, Evaluation, GrantStatus, State, evaluate
from jitpol.policy.history import History
from jitpol.policy.root import TrustRoot
from jitpol.policy.trust import PolicyCheck, check_policy, check_policy_root, combine
from tests.helpers.policyset import (
    T0,
    H,
    M,
    Signatures,
    config,
    fp,
    grant,
    key_line,
    person,
    policy,
    policy_approval,
    workflow,
)

OLD = "0123456789ab" + "0" * 52  # the digest in force
NEW = "fedcba987654" + "f" * 52  # the proposed digest
ADMINS = (Ref("team", "admins"),)
TEAMS = {"eng": ("alice", "bob"), "leads": ("lead", "lead2"), "admins": ("admin", "admin2")}


def in_force(required: int = 1) -> PolicySet:
    folks = [person(n) for n in ("alice", "bob", "lead", "lead2", "admin", "admin2")]
    return policy(people=folks, teams=TEAMS, cfg=config(required=required))


def proposed(*approvals: PolicyApproval, people: Sequence[str] = ("alice", "bob", "lead", "lead2", "admin", "admin2"),
             teams: dict[str, tuple[str, ...]] | None = None) -> PolicySet:
    return policy(people=[person(n) for n in people], teams=teams or TEAMS, policy_approvals=approvals)


CHECKS: dict[str, tuple[PolicySet, int, PolicyCheck]] = {
    "approved by an admin": (
        proposed(policy_approval("a1", NEW, "admin")), 1, PolicyCheck(NEW, OLD, 1, ADMINS, counted=("admin",))),
    "no approvals yet": (proposed(), 1, PolicyCheck(NEW, OLD, 1, ADMINS)),
    "an approval of another version is not looked at": (
        proposed(policy_approval("a1", "1" * 64, "admin")), 1, PolicyCheck(NEW, OLD, 1, ADMINS)),
    "not an admin": (
        proposed(policy_approval("a1", NEW, "bob")), 1,
        PolicyCheck(NEW, OLD, 1, ADMINS, ignored=("bob: not an admin of the policy in force",))),
    "made admin by the change itself": (
        proposed(policy_approval("a1", NEW, "bob"), teams={**TEAMS, "admins": ("admin", "bob")}), 1,
        PolicyCheck(NEW, OLD, 1, ADMINS, ignored=("bob: not an admin of the policy in force",))),
    "an admin the change removes still approves it": (
        proposed(policy_approval("a1", NEW, "admin"), people=("alice", "bob", "lead"), teams={"admins": ()}), 1,
        PolicyCheck(NEW, OLD, 1, ADMINS, counted=("admin",))),
    "a key not theirs in the policy in force": (
        proposed(policy_approval("a1", NEW, "admin", key_owner="admin2")), 1,
        PolicyCheck(NEW, OLD, 1, ADMINS,
                    ignored=(f"admin: key {fp('admin2')} is not theirs in the policy in force",))),
    "signed another digest": (
        proposed(policy_approval("a1", NEW, "admin", signed_digest=OLD)), 1,
        PolicyCheck(NEW, OLD, 1, ADMINS, ignored=("admin: signature does not match policy fedcba987654",))),
    "the same admin twice counts once": (
        proposed(policy_approval("a1", NEW, "admin"), policy_approval("a2", NEW, "admin")), 2,
        PolicyCheck(NEW, OLD, 2, ADMINS, counted=("admin",))),
    "two admins meet a quorum of two": (
        proposed(policy_approval("a2", NEW, "admin2"), policy_approval("a1", NEW, "admin")), 2,
        PolicyCheck(NEW, OLD, 2, ADMINS, counted=("admin", "admin2"))),
}


@pytest.mark.parametrize(("prop", "required", "expected"), CHECKS.values(), ids=CHECKS.keys())
def test_check_policy(prop: PolicySet, required: int, expected: PolicyCheck) -> None:
    assert check_policy(prop, NEW, in_force(required), OLD, Signatures()) == expected


@pytest.mark.parametrize(("case", "approved"), [
    ("approved by an admin", True), ("no approvals yet", False), ("the same admin twice counts once", False),
    ("two admins meet a quorum of two", True), ("signed another digest", False),
], ids=lambda v: str(v))
def test_check_policy_approved(case: str, approved: bool) -> None:
    prop, required, _ = CHECKS[case]
    check = check_policy(prop, NEW, in_force(required), OLD, Signatures())
    assert (check.approved, check.unchanged) == (approved, False)


@pytest.mark.parametrize(("force", "force_digest"), [
    (None, OLD), (replace(in_force(), config=None), OLD), (in_force(), None),
], ids=["no policy in force", "policy in force without a config", "no digest in force"])
def test_bootstrap_needs_no_approval(force: PolicySet | None, force_digest: str | None) -> None:
    check = check_policy(proposed(), NEW, force, force_digest, Signatures())
    assert check == PolicyCheck(NEW, None, 0, ())
    assert check.approved and not check.unchanged


def test_the_policy_in_force_is_unchanged_and_approved() -> None:
    check = check_policy(proposed(), OLD, in_force(2), OLD, Signatures())
    assert check == PolicyCheck(OLD, OLD, 2, ADMINS)
    assert check.unchanged and check.approved


# -- a pinned trust root: distinct root keys, whoever the files name ---------------------------

ROOT = TrustRoot(1, 2, (key_line("r1"), key_line("r2"), key_line("r3")), None, (), "test")
DESCRIBED = "trust root v1 (2 of 3 keys, from test)"


Names = tuple[str, ...]
ROOTS: dict[str, tuple[Sequence[PolicyApproval], str | None, Names, Names, Names, bool]] = {
    # approvals, digest in force -> counted, signers, ignored, approved
    "two root keys": (
        [policy_approval("a", NEW, "ann", key_owner="r1"), policy_approval("b", NEW, "ben", key_owner="r2")], OLD,
        ("ann", "ben"), tuple(sorted((fp("r1"), fp("r2")))), (), True),
    "one root key of two": (
        [policy_approval("a", NEW, "ann", key_owner="r1")], OLD, ("ann",), (fp("r1"),), (), False),
    "the first adoption needs the quorum too": (
        [policy_approval("a", NEW, "ann", key_owner="r1")], None, ("ann",), (fp("r1"),), (), False),
    "the same key twice counts once": (
        [policy_approval("a", NEW, "ann", key_owner="r1"), policy_approval("b", NEW, "ben", key_owner="r1")], OLD,
        ("ann",), (fp("r1"),), (), False),
    "one signer with two root keys: two keys, both named": (
        [policy_approval("a", NEW, "ann", key_owner="r1"), policy_approval("b", NEW, "ann", key_owner="r2")], OLD,
        tuple(f"ann ({f})" for f in sorted((fp("r1"), fp("r2")))), tuple(sorted((fp("r1"), fp("r2")))), (), True),
    "a key outside the root": (
        [policy_approval("a", NEW, "admin")], OLD, (), (),
        (f"admin: key {fp('admin')} is not a key of the trust root",), False),
    "a root key's signature over another digest": (
        [policy_approval("a", NEW, "ann", key_owner="r1", signed_digest=OLD)], OLD, (), (),
        ("ann: signature does not match policy fedcba987654",), False),
    "an approval of another version is not looked at": (
        [policy_approval("a", OLD, "ann", key_owner="r1")], OLD, (), (), (), False),
}


@pytest.mark.parametrize(("approvals", "force_digest", "counted", "signers", "ignored", "approved"), ROOTS.values(),
                         ids=ROOTS.keys())
def test_check_policy_root(approvals: Sequence[PolicyApproval], force_digest: str | None, counted: tuple[str, ...],
                           signers: tuple[str, ...], ignored: tuple[str, ...], approved: bool) -> None:
    check = check_policy_root(proposed(*approvals), NEW, ROOT, force_digest, Signatures())
    assert check == PolicyCheck(NEW, force_digest, 2, (), counted, ignored, DESCRIBED, signers)
    assert check.approved is approved


def test_with_a_root_even_the_unchanged_policy_needs_its_signatures() -> None:
    check = check_policy_root(proposed(), OLD, ROOT, OLD, Signatures())
    assert check.unchanged and not check.approved


SUMMARIES: dict[str, tuple[PolicyCheck, str]] = {
    "bootstrap": (PolicyCheck(NEW, None, 0, ()),
                  "no policy adopted yet: this run adopts policy fedcba987654 (first run of the ledger; no trust root "
                  "is pinned, so it is trusted on first use: set JITPOL_TRUST_ROOT)"),
    "in force": (PolicyCheck(OLD, OLD, 1, ADMINS), "policy 0123456789ab is in force"),
    "change adopted": (PolicyCheck(NEW, OLD, 1, ADMINS, counted=("admin",)),
                       "policy change 0123456789ab -> fedcba987654: 1 of 1 admin approval(s) from team:admins; "
                       "adopted by this run"),
    "change waiting": (PolicyCheck(NEW, OLD, 1, ADMINS, ignored=("bob: not an admin of the policy in force",)),
                       "policy change 0123456789ab -> fedcba987654: 0 of 1 admin approval(s) from team:admins; until "
                       "approved (`jitpol approve --policy`), grants are live only where both the approved and the "
                       "proposed policy allow them; ignored: bob: not an admin of the policy in force"),
    "root: in force": (PolicyCheck(OLD, OLD, 2, (), ("ann", "ben"), root=DESCRIBED),
                       f"policy 0123456789ab is in force (signed by 2 key(s) of the {DESCRIBED})"),
    "root: nothing in force yet": (PolicyCheck(NEW, None, 2, (), ("ann",), root=DESCRIBED),
                                   f"no policy in force yet; policy fedcba987654: 1 of 2 approval(s) by keys of the "
                                   f"{DESCRIBED}; until approved (`jitpol approve --policy` with a root key), nothing "
                                   "is granted (revocations go on)"),
}


@pytest.mark.parametrize(("check", "text"), SUMMARIES.values(), ids=SUMMARIES.keys())
def test_summary(check: PolicyCheck, text: str) -> None:
    assert check.summary() == text


# -- combine: each grant under both policies ---------------------------------------------------

WAITING = PolicyCheck(NEW, OLD, 1, ADMINS)
NOW = T0 + H  # Monday 11:00
SUFFIX = " (under the approved policy; policy change fedcba987654 waits for admin approval)"
OFFICE = Schedule("UTC", (ScheduleWindow(("mon",), time(9), time(17)),))
Change = Callable[[PolicySet], PolicySet]


def wf(**kw: Any) -> Change:
    return lambda ps: replace(ps, workflows={"prod": workflow(**kw)})


def people(*changed: str, disabled: bool = False) -> Change:
    return lambda ps: replace(ps, people={**ps.people, **{n: person(n, disabled=disabled) for n in changed}})


def team(name: str, *members: str) -> Change:
    return lambda ps: replace(ps, teams={**ps.teams, name: replace(ps.teams[name], members=members)})


def same(ps: PolicySet) -> PolicySet:
    return ps


# approved policy, proposed policy (each a change to the default one) -> grant g's state and reason
BOTH: dict[str, tuple[Change, Change, str, str]] = {
    "both allow": (same, same, "active", "live until 1999-03-01T12:00:00Z"),
    "restriction bites: maxDuration shortened": (
        same, wf(max_duration=H), "rejected", "window is 2h, workflow prod allows at most 1h"),
    "relaxation waits: maxDuration lengthened": (
        wf(max_duration=H), same, "rejected", "window is 2h, workflow prod allows at most 1h" + SUFFIX),
    "restriction bites: requester disabled": (
        same, people("alice", disabled=True), "rejected",
        "person alice is disabled (kill switch in people/alice.yaml)"),
    "relaxation waits: requester enabled": (
        people("alice", disabled=True), same, "rejected",
        "person alice is disabled (kill switch in people/alice.yaml)" + SUFFIX),
    "restriction bites: requester leaves the team": (
        same, team("eng", "bob"), "rejected", "alice may not request through workflow prod (requesters: team:eng)"),
    "relaxation waits: requester joins the team": (
        team("eng", "bob"), same, "rejected",
        "alice may not request through workflow prod (requesters: team:eng)" + SUFFIX),
    "restriction bites: a second approval required": (
        same, wf(approvals_required=2), "pending", "needs 1 more approval(s) from team:leads (have 1)"),
    "relaxation waits: fewer approvals required": (
        wf(approvals_required=2), wf(approvals_required=1), "pending",
        "needs 1 more approval(s) from team:leads (have 1)" + SUFFIX),
    "restriction bites: the approver leaves the approvers": (
        same, team("leads", "lead2"), "pending",
        "needs 1 more approval(s) from team:leads (have 0); ignored: lead: not an approver of workflow prod"),
    "restriction bites: a schedule added": (
        same, wf(schedule=OFFICE), "rejected", "window lies entirely outside the workflow's schedule"),
    "relaxation waits: a schedule removed": (
        wf(schedule=OFFICE), same, "rejected", "window lies entirely outside the workflow's schedule" + SUFFIX),
}

LATE = grant("g", start=T0 + 6 * H - 30 * M)  # Monday 15:30 - 17:30, checked at 16:00 below


def both(approved: PolicySet, prop: PolicySet, now: datetime = NOW) -> Evaluation:
    """As a run judges grants while a change waits: under the approved policy with the proposed
    policy's restrictions applied (policy.effective), and under the proposed one."""
    effective = effective_policy(prop, approved, approved=False).policy
    return combine(evaluate(effective, now, History(), Signatures()), evaluate(prop, now, History(), Signatures()),
                   WAITING)


@pytest.mark.parametrize(("approved", "prop", "state", "reason"), BOTH.values(), ids=BOTH.keys())
def test_the_less_permissive_state_wins(approved: Change, prop: Change, state: str, reason: str) -> None:
    g = grant("g", start=T0 + 8 * H) if "schedule" in reason else grant("g")  # Monday 18:00: after office hours
    base = policy(g)
    got = both(approved(base), prop(base)).by_name()["g"]
    assert (got.state, got.reason, got.digest) == (state, reason, g.digest)


def test_both_active_live_until_the_earlier_end() -> None:
    base = policy(LATE)
    ev = both(wf(schedule=OFFICE)(base), base, T0 + 6 * H)
    (st,) = ev.statuses
    assert (st.state, st.live_until, st.next_change) == ("active", T0 + 7 * H, T0 + 7 * H)
    (want,) = ev.desired.values()
    assert (want.until, want.assignment.expires, want.grants) == (T0 + 7 * H, T0 + 7 * H, ("g",))


# combine on hand-built evaluations: state ranks and the desired assignments both require
A = ("db", "role-membership", "alice", "app_read")
B = ("db", "role-membership", "alice", "app_write")


def status(name: str, state: State, until: int = 2) -> GrantStatus:
    return GrantStatus(name, state, f"{state} by", "alice", "db-prod", "read", T0, T0 + until * H,
                       live_until=T0 + until * H if state == "active" else None, digest=f"d-{name}")


def evaluation(statuses: Sequence[GrantStatus],
               *keys: tuple[tuple[str, str, str, str], tuple[str, ...], int]) -> Evaluation:
    return Evaluation(tuple(statuses), {
        k: Desired(Assignment(*k, expires=T0 + h * H), "db-prod", grants, T0 + h * H) for k, grants, h in keys})


RANKS: list[tuple[State, State, State]] = [
    ("active", "active", "active"), ("active", "scheduled", "scheduled"), ("scheduled", "active", "scheduled"),
    ("active", "pending", "pending"), ("pending", "active", "pending"), ("rejected", "active", "rejected"),
    ("expired", "active", "expired"), ("revoked", "scheduled", "revoked"), ("active", "rejected", "rejected"),
    ("pending", "scheduled", "pending"), ("rejected", "pending", "rejected"),
]


@pytest.mark.parametrize(("approved", "prop", "state"), RANKS, ids=[f"{a} + {p}" for a, p, _ in RANKS])
def test_state_ranks(approved: State, prop: State, state: State) -> None:
    (got,) = combine(evaluation([status("g", approved)]), evaluation([status("g", prop)]), WAITING).statuses
    assert got.state == state
    assert got.digest == "d-g"  # always the proposed grant's
    assert got.reason == (f"{approved} by" + SUFFIX if state != prop else f"{prop} by")


def test_a_grant_only_the_proposed_evaluation_knows_keeps_its_status() -> None:
    mine = status("new", "active")
    assert combine(evaluation([]), evaluation([mine]), WAITING).statuses == (mine,)


def test_desired_only_where_both_require_it_and_a_grant_stays_active() -> None:
    approved = evaluation([status("g", "active", 3), status("h", "active")], (A, ("g", "h"), 3), (B, ("g",), 3))
    prop = evaluation([status("g", "active", 2), status("h", "rejected")], (A, ("g", "h"), 2), (B, ("g",), 2),
                      (("db", "role-membership", "alice", "extra"), ("g",), 2))
    got = combine(approved, prop, WAITING)
    assert {k: (d.grants, d.until, d.assignment.expires) for k, d in got.desired.items()} == {
        A: (("g",), T0 + 2 * H, T0 + 2 * H),  # h is rejected under the proposed policy
        B: (("g",), T0 + 2 * H, T0 + 2 * H),
    }
    assert got.by_name()["g"].live_until == T0 + 2 * H
