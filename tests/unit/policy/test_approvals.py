"""policy.approvals.check_approvals, called directly: which approvals count, which are ignored
and why (signatures and pull-request reviews), table-driven."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from jitpol.model.canonical import approval_message
from jitpol.model.documents import Approval, Person
from jitpol.model.refs import Ref
from jitpol.policy.approvals import ApprovalCheck, Reviews, check_approvals
from tests.helpers.policyset import (
    SRC,
    Signatures,
    approval,
    fp,
    grant,
    key_line,
    person,
    policy,
    sign,
    with_approvals,
    workflow,
)

G = grant("g", approvers=())
D = G.digest
SK = "sk-ssh-ed25519@openssh.com"


@dataclass(frozen=True)
class Case:
    approvals: Sequence[Approval]
    counted: tuple[str, ...]
    ignored: tuple[str, ...] = ()
    requester_signed: bool = False
    wf: Mapping[str, Any] = field(default_factory=dict)
    people: Sequence[Person] = ()  # replaces the default person of that name


CASES: dict[str, Case] = {
    "valid": Case([approval(D, "lead")], ("lead",)),
    "two approvers": Case([approval(D, "lead2"), approval(D, "lead")], ("lead", "lead2")),
    "wrong key: another person's": Case(
        [approval(D, "lead", key_owner="lead2")], (), (f"lead: key {fp('lead2')} is not one of their keys in "
                                                       "people/lead.yaml",)),
    "wrong key: their fingerprint, another key's signature": Case(
        [Approval("lead", fp("lead"), sign(approval_message(D), key_line("lead2")), SRC)], (),
        ("lead: signature does not match this grant (edited after approval?)",)),
    "wrong digest: signed another version of the grant": Case(
        [approval(D, "lead", signed_digest="0" * 64)], (),
        ("lead: signature does not match this grant (edited after approval?)",)),
    "self-approval": Case(
        [approval(D, "alice")], (), ("alice: the requester cannot approve their own grant",)),
    "duplicate approver counted once": Case([approval(D, "lead"), approval(D, "lead")], ("lead",)),
    "duplicate approver, one bad signature": Case(
        [approval(D, "lead", signed_digest="0" * 64), approval(D, "lead")], ("lead",),
        ("lead: signature does not match this grant (edited after approval?)",)),
    "not an approver": Case(
        [approval(D, "bob")], (), ("bob: not an approver of workflow prod",)),
    "no such person": Case(
        [approval(D, "carol")], (), ("carol: no such person",)),
    "disabled approver": Case(
        [approval(D, "lead")], (), ("lead: person is disabled",), people=[person("lead", disabled=True)]),
    "an approver named as a person": Case(
        [approval(D, "bob")], ("bob",), wf={"approvers": (Ref("person", "bob"),)}),
    "security key required, plain key": Case(
        [approval(D, "lead")], (), ("lead: workflow prod requires a security key (sk-) signature",),
        wf={"mfa": "security-key"}),
    "security key: approver's sk key counts": Case(
        [approval(D, "lead", kind=SK)], ("lead",), wf={"mfa": "security-key"},
        people=[person("lead", keys=[key_line("lead", SK)])]),
    "security key: the requester's own sk signature proves presence, not approval": Case(
        [approval(D, "alice", kind=SK)], (), requester_signed=True, wf={"mfa": "security-key"},
        people=[person("alice", keys=[key_line("alice", SK)])]),
    "security key: the requester's plain key proves nothing": Case(
        [approval(D, "alice")], (),
        ("alice: the requester's signature must come from one of their security keys (sk-)",),
        wf={"mfa": "security-key"}),
    "security key: the requester's sk signature over another digest": Case(
        [approval(D, "alice", kind=SK, signed_digest="0" * 64)], (),
        ("alice: signature does not match this grant (edited after approval?)",), wf={"mfa": "security-key"},
        people=[person("alice", keys=[key_line("alice", SK)])]),
}


def run(case: Case) -> ApprovalCheck:
    g = with_approvals(G, *case.approvals)
    by = {p.name: p for p in (person(n) for n in ("alice", "bob", "lead", "lead2"))}
    by.update({p.name: p for p in case.people})
    wf = workflow(**case.wf)
    return check_approvals([(g, wf)], policy(g, people=by.values(), workflows=[wf]), Signatures())["g"]


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_which_approvals_count(case: Case) -> None:
    assert run(case) == ApprovalCheck(case.counted, case.ignored, case.requester_signed)


def test_many_grants_one_verification_call() -> None:
    a, b = grant("a"), grant("b", approvers=("lead", "lead2"))
    verifier = Signatures()
    wf = workflow()
    got = check_approvals([(a, wf), (b, wf)], policy(a, b), verifier)
    assert got == {"a": ApprovalCheck(("lead",), ()), "b": ApprovalCheck(("lead", "lead2"), ())}
    assert verifier.batches == [[
        (approval_message(a.digest), a.approvals[0].signature, key_line("lead")),
        (approval_message(b.digest), b.approvals[0].signature, key_line("lead")),
        (approval_message(b.digest), b.approvals[1].signature, key_line("lead2")),
    ]]


def test_nothing_to_verify_calls_no_verifier() -> None:
    verifier = Signatures()
    assert check_approvals([(G, workflow())], policy(G), verifier) == {"g": ApprovalCheck((), ())}
    assert verifier.batches == []


REVIEWS: dict[str, tuple[Reviews | None, ApprovalCheck]] = {
    "no review information": (
        None, ApprovalCheck((), ("no pull-request review information (git host not configured or unreachable)",))),
    "an approver's review": (Reviews(("lead",)), ApprovalCheck(("lead",), ())),
    "the note comes first": (
        Reviews(("lead",), note="pull request #7"), ApprovalCheck(("lead",), ("pull request #7",))),
    "the requester's review": (
        Reviews(("alice",)), ApprovalCheck((), ("alice: the requester cannot approve their own grant",))),
    "not a person": (Reviews(("carol",)), ApprovalCheck((), ("carol: not an active person",))),
    "not an approver": (Reviews(("bob",)), ApprovalCheck((), ("bob: not an approver of workflow prod",))),
    "duplicate review counted once, sorted": (
        Reviews(("lead2", "lead", "lead2")), ApprovalCheck(("lead", "lead2"), ())),
}


@pytest.mark.parametrize(("reviews", "expected"), REVIEWS.values(), ids=REVIEWS.keys())
def test_review_approvals(reviews: Reviews | None, expected: ApprovalCheck) -> None:
    wf = workflow(approvals_via="github-review")
    g = grant("g", approvers=("lead2",))  # signatures are not read for a review workflow
    given = {"g": reviews} if reviews is not None else None
    verifier = Signatures()
    assert check_approvals([(g, wf)], policy(g, workflows=[wf]), verifier, given) == {"g": expected}
    assert verifier.batches == []
