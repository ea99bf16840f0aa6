"""policy.evaluate.evaluate, called directly: each grant state and each reason a grant is
pending, rejected, expired or revoked (table-driven), then the assignments active grants need."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from typing import Any

import pytest

from jitpol.model.assignment import PRIVILEGED_OPT_IN, Assignment
from jitpol.model.canonical import canonical_json
from jitpol.model.documents import Grant, Person, Resource, Schedule, ScheduleWindow
from jitpol.policy.approvals import Reviews
from jitpol.policy.evaluate import Evaluation, GrantStatus, ephemeral_name, evaluate
from jitpol.policy.history import History, replay
from tests.helpers.policyset import (
    T0,
    H,
    M,
    Signatures,
    activated,
    approval,
    grant,
    key_line,
    person,
    policy,
    resource,
    with_approvals,
    workflow,
)

END = T0 + 2 * H  # the default grant's end
SAT = T0 + timedelta(days=5)  # Saturday 1999-03-06 10:00
OFFICE = Schedule("UTC", (ScheduleWindow(("mon", "tue", "wed", "thu", "fri"), time(9), time(17)),))
SK = "sk-ssh-ed25519@openssh.com"


@dataclass(frozen=True)
class Case:
    grants: Sequence[Grant]
    now: datetime
    state: str
    reason: str
    wf: Mapping[str, Any] = field(default_factory=dict)
    people: Sequence[Person] | None = None
    resources: Sequence[Resource] | None = None
    events: Sequence[Mapping[str, Any]] = ()
    reviews: Mapping[str, Reviews] | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)  # more GrantStatus fields of grant g, exactly


def folks(*changed: Person) -> list[Person]:
    by = {p.name: p for p in (person(n) for n in ("alice", "bob", "lead", "lead2", "admin"))}
    by.update({p.name: p for p in changed})
    return list(by.values())


G = grant("g")
SK_G = with_approvals(grant("g", approvers=()), approval(G.digest, "alice", kind=SK),
                      approval(G.digest, "lead", kind=SK))

CASES: dict[str, Case] = {
    # -- the window and the ledger ------------------------------------------------------------
    "scheduled before its start": Case(
        [G], T0 - H, "scheduled", "starts 1999-03-01T10:00:00Z", fields={"next_change": T0, "approvals": ("lead",)}),
    "active inside its window": Case(
        [G], T0 + H, "active", "live until 1999-03-01T12:00:00Z", fields={"live_until": END, "next_change": END}),
    "expired, never activated": Case(
        [G], END, "expired", "window ended 1999-03-01T12:00:00Z (never activated)"),
    "expired after activation": Case(
        [G], END + H, "expired", "window ended 1999-03-01T12:00:00Z", events=[activated(G)]),
    "revoked in its file": Case(
        [grant("g", revoke=True)], T0 + H, "revoked", "revoked in its file (revoke: true)"),
    "ended for good in the ledger": Case(
        [G], T0 + H, "revoked", "already ended (grant file deleted); grant names are single-use — request a new grant",
        events=[activated(G), {"event": "grant.revoked", "grant": "g", "final": True, "reason": "grant file deleted"}]),
    "a final end after the window is just expired": Case(
        [G], END, "expired", "window ended 1999-03-01T12:00:00Z",
        events=[activated(G), {"event": "grant.revoked", "grant": "g", "final": True, "reason": "expired"}]),
    "a non-final end does not end the name": Case(
        [G], T0 + H, "active", "live until 1999-03-01T12:00:00Z",
        events=[activated(G), {"event": "grant.revoked", "grant": "g", "final": False, "reason": "kill switch"}]),
    "name reused for other content": Case(
        [G], T0 + H, "rejected", "grant name was already used for different content; grant names are single-use",
        events=[activated(grant("g", justification="INC-2"))]),
    # -- the workflow's rules -----------------------------------------------------------------
    "requester not allowed": Case(
        [grant("g", "lead", approvers=("lead2",))], T0 + H, "rejected",
        "lead may not request through workflow prod (requesters: team:eng)"),
    "requester is no person": Case(
        [grant("g", "carol")], T0 + H, "rejected", "requester carol is not a person in people/"),
    "disabled person": Case(
        [G], T0 + H, "rejected", "person alice is disabled (kill switch in people/alice.yaml)",
        people=folks(person("alice", disabled=True))),
    "duration over max": Case(
        [grant("g", hours=5)], T0 + H, "rejected", "window is 5h, workflow prod allows at most 4h"),
    "window ends before it starts": Case(
        [grant("g", hours=0)], T0 - H, "rejected", "window ends before it starts"),
    "justification pattern": Case(
        [grant("g", justification="because")], T0 + H, "rejected",
        "justification must match 'INC-[0-9]+' (workflow prod)", wf={"justification_pattern": "INC-[0-9]+"}),
    "justification required": Case(
        [grant("g", justification="  ")], T0 + H, "rejected", "workflow prod requires a justification",
        wf={"justification_required": True}),
    "no such resource": Case(
        [grant("g", resource="nope")], T0 + H, "rejected", "resource nope does not exist"),
    "no such role": Case(
        [grant("g", role="admin")], T0 + H, "rejected", "resource db-prod has no role 'admin' (has: read, write)"),
    "no account on the target": Case(
        [G], T0 + H, "rejected", "alice has no account for target db (add accounts.fake to people/alice.yaml)",
        people=folks(person("alice", accounts={}))),
    "target not configured": Case(
        [G], T0 + H, "rejected", "target elsewhere is not configured in jitpol.yaml",
        resources=[resource(target="elsewhere")]),
    # -- approvals ----------------------------------------------------------------------------
    "pending without approvals": Case(
        [grant("g", approvers=())], T0 + H, "pending", "needs 1 more approval(s) from team:leads (have 0)",
        fields={"next_change": END, "approvals": ()}),
    "self-approval does not count": Case(
        [grant("g", approvers=("alice",))], T0 + H, "pending",
        "needs 1 more approval(s) from team:leads (have 0); ignored: alice: the requester cannot approve their own "
        "grant"),
    "quorum not met": Case(
        [G], T0 + H, "pending", "needs 1 more approval(s) from team:leads (have 1)", wf={"approvals_required": 2},
        fields={"approvals": ("lead",)}),
    "the same approver twice counts once": Case(
        [grant("g", approvers=("lead", "lead"))], T0 + H, "pending",
        "needs 1 more approval(s) from team:leads (have 1)", wf={"approvals_required": 2}),
    "quorum met": Case(
        [grant("g", approvers=("lead", "lead2"))], T0 + H, "active", "live until 1999-03-01T12:00:00Z",
        wf={"approvals_required": 2}, fields={"approvals": ("lead", "lead2")}),
    "approval timeout passed": Case(
        [grant("g", approvers=())], T0 + 40 * M, "expired",
        "not approved and activated within 30m of its start; request again", wf={"approval_timeout": 30 * M}),
    "approval timeout passed although approved since": Case(
        [G], T0 + 40 * M, "expired", "not approved and activated within 30m of its start; request again",
        wf={"approval_timeout": 30 * M}),
    "approval timeout does not end an activated grant": Case(
        [G], T0 + 40 * M, "active", "live until 1999-03-01T12:00:00Z", wf={"approval_timeout": 30 * M},
        events=[activated(G)]),
    "review approvals: no information": Case(
        [grant("g", approvers=())], T0 + H, "pending",
        "needs 1 more approval(s) from team:leads (have 0); ignored: no pull-request review information (git host "
        "not configured or unreachable)", wf={"approvals_via": "github-review"}),
    "review approvals: approved by a lead": Case(
        [grant("g", approvers=())], T0 + H, "active", "live until 1999-03-01T12:00:00Z",
        wf={"approvals_via": "github-review"}, reviews={"g": Reviews(("lead",))}),
    # -- schedule -----------------------------------------------------------------------------
    "schedule: window entirely outside": Case(
        [grant("g", start=SAT)], T0, "rejected", "window lies entirely outside the workflow's schedule",
        wf={"schedule": OFFICE}),
    "schedule: outside now, live again later": Case(
        [grant("g", start=T0 + 6 * H, hours=18)], T0 + 8 * H, "scheduled",
        "outside schedule; next live 1999-03-02T09:00:00Z", wf={"schedule": OFFICE, "max_duration": 24 * H},
        fields={"next_change": T0 + 23 * H}),
    "schedule: live inside the office hours": Case(
        [grant("g", start=T0 + 6 * H)], T0 + 6 * H + M, "active", "live until 1999-03-01T17:00:00Z",
        wf={"schedule": OFFICE}, fields={"live_until": T0 + 7 * H}),
    "schedule: no window left": Case(
        [grant("g", start=T0 + 6 * H)], T0 + 7 * H + M, "expired", "no schedule window left before "
        "1999-03-01T18:00:00Z", wf={"schedule": OFFICE}),
    # -- second factors -----------------------------------------------------------------------
    "security key: requester has not signed": Case(
        [G], T0 + H, "pending", "workflow prod requires the requester's security-key signature (jitpol request "
        "--sign, or jitpol approve g --as alice with an sk- key); ignored: lead: workflow prod requires a security key "
        "(sk-) signature", wf={"mfa": "security-key"}),
    "security key: requester and approver signed with sk keys": Case(
        [SK_G], T0 + H, "active", "live until 1999-03-01T12:00:00Z", wf={"mfa": "security-key"},
        people=folks(person("alice", keys=[key_line("alice", SK)]), person("lead", keys=[key_line("lead", SK)])),
        fields={"approvals": ("lead",)}),
    "okta push: waiting for the answer": Case(
        [G], T0 + H, "pending", "approved; waiting for the requester to accept an Okta Verify push (sent by the next "
        "apply)", wf={"mfa": "okta-push"}, fields={"awaiting": "okta-push"}),
    "okta push: rejected": Case(
        [G], T0 + H, "rejected", "the requester rejected the Okta Verify push", wf={"mfa": "okta-push"},
        events=[{"event": "mfa.checked", "grant": "g", "digest": G.digest, "result": "REJECTED"}]),
    "okta push: accepted": Case(
        [G], T0 + H, "active", "live until 1999-03-01T12:00:00Z", wf={"mfa": "okta-push"},
        events=[{"event": "mfa.checked", "grant": "g", "digest": G.digest, "result": "SUCCESS"}]),
    # -- break-glass --------------------------------------------------------------------------
    "break-glass live until its deadline": Case(
        [grant("g", approvers=(), breakglass=True)], T0 + 10 * M, "active",
        "BREAK-GLASS, unapproved: revoked at 1999-03-01T10:30:00Z unless approved; live until 1999-03-01T10:30:00Z",
        wf={"breakglass_deadline": 30 * M}, fields={"live_until": T0 + 30 * M}),
    "break-glass deadline passed": Case(
        [grant("g", approvers=(), breakglass=True)], T0 + 40 * M, "pending",
        "BREAK-GLASS deadline 1999-03-01T10:30:00Z passed without approval; needs 1 more approval(s) from "
        "team:leads (have 0)", wf={"breakglass_deadline": 30 * M}),
    "break-glass not allowed by the workflow": Case(
        [grant("g", approvers=(), breakglass=True)], T0 + 10 * M, "rejected", "workflow prod does not allow "
        "break-glass"),
    "break-glass approved is an ordinary grant": Case(
        [grant("g", breakglass=True)], T0 + 40 * M, "active", "live until 1999-03-01T12:00:00Z",
        wf={"breakglass_deadline": 30 * M}),
    "break-glass over the per-person cap": Case(
        [grant("first", approvers=(), breakglass=True), grant("g", start=T0 + H, approvers=(), breakglass=True)],
        T0 + H + M, "rejected",
        "break-glass limit: workflow prod allows each person 1 break-glass grant(s) per 1d (breakglass.maxUses, "
        "breakglass.per); alice already has first (from 1999-03-01T10:00:00Z); get this grant approved, or start a "
        "break-glass grant from 1999-03-02T10:00:00Z", wf={"breakglass_deadline": 2 * H},
        fields={"live_until": None, "next_change": None}),
    # -- exclusive checkout -------------------------------------------------------------------
    "exclusive: the later overlapping grant of another person": Case(
        [grant("first"), grant("g", "bob", start=T0 + H)], T0 + 90 * M, "rejected",
        "exclusive checkout: alice holds db-prod under grant first until 1999-03-01T12:00:00Z",
        wf={"checkout": "exclusive"}, fields={"live_until": None, "next_change": None}),
    "exclusive: the holder on record keeps it, though it started later": Case(
        [grant("first"), grant("g", "bob", start=T0 + H)], T0 + 90 * M, "active", "live until 1999-03-01T13:00:00Z",
        wf={"checkout": "exclusive"}, events=[activated(grant("g", "bob", start=T0 + H))]),
    "exclusive: the same person may overlap": Case(
        [grant("first"), grant("g", start=T0 + H)], T0 + 90 * M, "active", "live until 1999-03-01T13:00:00Z",
        wf={"checkout": "exclusive"}),
    "shared: another person may overlap": Case(
        [grant("first"), grant("g", "bob", start=T0 + H)], T0 + 90 * M, "active", "live until 1999-03-01T13:00:00Z"),
}


def run(case: Case) -> Evaluation:
    ps = policy(*case.grants, people=case.people, workflows=[workflow(**case.wf)], resources=case.resources)
    return evaluate(ps, case.now, replay(case.events), Signatures(), case.reviews)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_grant_state_and_reason(case: Case) -> None:
    got = run(case).by_name()["g"]
    assert (got.state, got.reason) == (case.state, case.reason)
    assert {k: getattr(got, k) for k in case.fields} == dict(case.fields)


def test_the_status_carries_the_grant() -> None:
    (st,) = run(CASES["active inside its window"]).statuses
    assert st == GrantStatus("g", "active", "live until 1999-03-01T12:00:00Z", "alice", "db-prod", "read", T0, END,
                             live_until=END, next_change=END, approvals=("lead",), digest=G.digest)


def test_statuses_are_sorted_by_name() -> None:
    ev = evaluate(policy(grant("b"), grant("a"), grant("c")), T0 + H, History(), Signatures())
    assert [s.name for s in ev.statuses] == ["a", "b", "c"]


def test_one_batched_verification_per_evaluation() -> None:
    verifier = Signatures()
    evaluate(policy(grant("a"), grant("b", approvers=("lead", "lead2"))), T0 + H, History(), verifier)
    assert [len(b) for b in verifier.batches] == [3]


# -- the assignments active grants need ---------------------------------------------------------

def desired(*grants: Grant, now: datetime = T0 + H, **kw: Any) -> dict[tuple[str, str, str, str], tuple[Any, ...]]:
    ev = evaluate(policy(*grants, **kw), now, History(), Signatures())
    return {k: (d.assignment, d.resource, d.grants, d.until, dict(d.details)) for k, d in ev.desired.items()}


def details(g: Grant, who: str = "alice") -> dict[str, str]:
    return {"grant": g.name, "person": who, "ssh_keys": key_line(who), "start": "1999-03-01T10:00:00Z"}


def test_a_role_gives_one_assignment_per_privilege() -> None:
    g = grant("g", role="write")
    assert desired(g) == {
        ("db", "role-membership", "alice", p): (Assignment("db", "role-membership", "alice", p, END), "db-prod",
                                                ("g",), END, details(g))
        for p in ("app_read", "app_write")
    }


def test_only_active_grants_need_assignments() -> None:
    assert desired(grant("g", approvers=())) == {}
    assert desired(grant("g"), now=T0 - H) == {}


def test_overlapping_grants_merge_until_the_latest_end() -> None:
    first, second = grant("a"), grant("b", start=T0 + H)
    got = desired(first, second, now=T0 + 90 * M)
    key = ("db", "role-membership", "alice", "app_read")
    assert got == {key: (Assignment(*key, expires=T0 + 3 * H), "db-prod", ("a", "b"), T0 + 3 * H, details(first))}


@pytest.mark.parametrize(("model", "account", "principal", "privilege"), [
    ("role-membership", None, "alice", "app_read"),
    ("ephemeral-account", None, ephemeral_name("alice", "g"), canonical_json(["app_read"])),
    ("credential-checkout", "svc_app", "svc_app", "checkout"),
], ids=["membership: the person's account", "ephemeral: an account per grant", "checkout: the shared account"])
def test_the_principal_per_model(model: str, account: str | None, principal: str, privilege: str) -> None:
    (key,) = desired(G, resources=[resource(model=model, account=account)])
    assert key == ("db", model, principal, privilege)


def test_the_account_is_the_one_for_the_target() -> None:
    alice = person("alice", accounts={"fake": {"user": "alice", "tenant": 7}, "db": "alice_db"})
    assert list(desired(G, people=[alice, person("lead")])) == [("db", "role-membership", "alice_db", "app_read")]
    alice = person("alice", accounts={"fake": {"user": "alice", "tenant": 7}})
    assert list(desired(G, people=[alice, person("lead")])) == [
        ("db", "role-membership", '{"tenant":7,"user":"alice"}', "app_read")]


def test_a_privileged_opt_in_is_a_detail() -> None:
    (want,) = desired(G, resources=[resource(settings={"allowPrivileged": True})]).values()
    assert want[4][PRIVILEGED_OPT_IN[0]] == PRIVILEGED_OPT_IN[1]
    (want,) = desired(G, resources=[resource(settings={"allowPrivileged": "yes"})]).values()
    assert PRIVILEGED_OPT_IN[0] not in want[4]


def test_no_config_no_assignments() -> None:
    ps = replace(policy(G), config=None)
    ev = evaluate(ps, T0 + H, History(), Signatures())
    assert ev.by_name()["g"].state == "active" and ev.desired == {}


def test_ephemeral_names_are_short_and_per_grant() -> None:
    assert ephemeral_name("alice", "g") == "jit-alice-" + hashlib.sha256(b"g").hexdigest()[:8]
    long = ephemeral_name("a" * 40, "g")
    assert len(long) <= 32 and long.startswith("jit-" + "a" * 18 + "-")
    assert ephemeral_name("alice", "g1") != ephemeral_name("alice", "g2")

