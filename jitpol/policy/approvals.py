"""Which approvals on a grant count (SPEC section 2).

An approval counts when its signer is a person, is not the requester, is one of the workflow's
approvers, signed with one of their own keys (matched by fingerprint), and the signature verifies
over this exact grant content. Each person counts once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from jitpol.model.canonical import approval_message
from jitpol.model.documents import Grant, PolicySet, Workflow
from jitpol.model.sshkey import fingerprint, is_hardware_backed
from jitpol.policy.people import Resolver

NAMESPACE = "jitpol-approval"


class Verifier(Protocol):
    def verify_many(
        self, items: Sequence[tuple[bytes, str, str]], *, namespace: str = NAMESPACE
    ) -> list[bool]:
        """For each (message, armored signature, public key line): does the signature verify?
        Never raises for a bad signature; returns False."""
        ...


@dataclass(frozen=True, slots=True)
class ApprovalCheck:
    counted: tuple[str, ...]  # people whose approval counts
    ignored: tuple[str, ...]  # "bob: reason" for each approval that does not
    requester_signed: bool = False  # the requester signed with a security key (mfa: security-key)


@dataclass(frozen=True, slots=True)
class Reviews:
    """Approvals a git host's pull-request reviews prove for one grant (approvals.via:
    github-review): the people (mapped from host logins) and a note on what was found."""

    people: tuple[str, ...]
    note: str = ""
    # who approved where, for the record: (person, host login, pull request, review id)
    evidence: tuple[tuple[str, str, int | None, int | None], ...] = ()


@dataclass(frozen=True, slots=True)
class _Pending:
    grant: str
    by: str
    item: tuple[bytes, str, str]
    own: bool = False  # the requester's own (MFA) signature: proves presence, never counts as approval


def _prefilter(grant: Grant, workflow: Workflow, policy: PolicySet,
               who: Resolver) -> tuple[list[_Pending], list[str]]:
    approvers = who(workflow.approvers)
    todo: list[_Pending] = []
    ignored: list[str] = []
    message = approval_message(grant.digest)
    for ap in grant.approvals:
        person = policy.people.get(ap.by)
        if person is None:
            ignored.append(f"{ap.by}: no such person")
            continue
        if ap.by == grant.requester:
            if workflow.mfa == "security-key":
                own = next((k for k in person.keys if _fp(k) == ap.key), None)
                if own is None or not is_hardware_backed(own):
                    ignored.append(f"{ap.by}: the requester's signature must come from one of their security "
                                   "keys (sk-)")
                else:
                    todo.append(_Pending(grant.name, ap.by, (message, ap.signature, own), own=True))
                continue
            ignored.append(f"{ap.by}: the requester cannot approve their own grant")
            continue
        if ap.by not in approvers:
            ignored.append(f"{ap.by}: not an approver of workflow {workflow.name}")
            continue
        if person.disabled:
            ignored.append(f"{ap.by}: person is disabled")
            continue
        key_line = next((k for k in person.keys if _fp(k) == ap.key), None)
        if key_line is None:
            ignored.append(f"{ap.by}: key {ap.key} is not one of their keys in people/{ap.by}.yaml")
            continue
        if workflow.mfa == "security-key" and not is_hardware_backed(key_line):
            ignored.append(f"{ap.by}: workflow {workflow.name} requires a security key (sk-) signature")
            continue
        todo.append(_Pending(grant.name, ap.by, (message, ap.signature, key_line)))
    return todo, ignored


def _fp(key_line: str) -> str:
    try:
        return fingerprint(key_line)
    except ValueError:
        return ""


def _from_reviews(grant: Grant, workflow: Workflow, policy: PolicySet, who: Resolver,
                  reviews: Reviews | None) -> ApprovalCheck:
    if reviews is None:
        return ApprovalCheck((), ("no pull-request review information (git host not configured or unreachable)",))
    approvers = who(workflow.approvers)
    counted: list[str] = []
    ignored: list[str] = [reviews.note] if reviews.note else []
    for person in reviews.people:
        found = policy.people.get(person)
        if person == grant.requester:
            ignored.append(f"{person}: the requester cannot approve their own grant")
        elif found is None or found.disabled:
            ignored.append(f"{person}: not an active person")
        elif person not in approvers:
            ignored.append(f"{person}: not an approver of workflow {workflow.name}")
        elif person not in counted:
            counted.append(person)
    return ApprovalCheck(tuple(sorted(counted)), tuple(ignored))


def check_approvals(
    grants: Sequence[tuple[Grant, Workflow]], policy: PolicySet, verifier: Verifier,
    reviews: Mapping[str, Reviews] | None = None,
) -> dict[str, ApprovalCheck]:
    """Check the approvals of many grants with one batched verification call. Workflows with
    approvals.via github-review take theirs from `reviews` (by grant name) instead."""
    pending: list[_Pending] = []
    ignored: dict[str, list[str]] = {}
    who = Resolver(policy)
    by_review: dict[str, ApprovalCheck] = {}
    for grant, workflow in grants:
        if workflow.approvals_via == "github-review":
            by_review[grant.name] = _from_reviews(grant, workflow, policy, who, (reviews or {}).get(grant.name))
            continue
        todo, bad = _prefilter(grant, workflow, policy, who)
        pending.extend(todo)
        ignored[grant.name] = bad
    results = verifier.verify_many([p.item for p in pending]) if pending else []
    counted: dict[str, list[str]] = {g.name: [] for g, _ in grants if g.name not in by_review}
    signed: set[str] = set()
    for p, ok in zip(pending, results, strict=True):
        if not ok:
            ignored[p.grant].append(f"{p.by}: signature does not match this grant (edited after approval?)")
        elif p.own:
            signed.add(p.grant)
        elif p.by not in counted[p.grant]:
            counted[p.grant].append(p.by)
    return {
        **{name: ApprovalCheck(tuple(sorted(counted[name])), tuple(ignored[name]), name in signed)
           for name in counted},
        **by_review,
    }
