"""Which approvals on a grant count (SPEC section 2).

An approval counts when its signer is a person, is not the requester, is one of the workflow's
approvers, signed with one of their own keys (matched by fingerprint), and the signature verifies
over this exact grant content. Each person counts once.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def check_approvals(
    grants: Sequence[tuple[Grant, Workflow]], policy: PolicySet, verifier: Verifier
) -> dict[str, ApprovalCheck]:
    """Check the approvals of many grants with one batched verification call."""
    pending: list[_Pending] = []
    ignored: dict[str, list[str]] = {}
    who = Resolver(policy)
    for grant, workflow in grants:
        todo, bad = _prefilter(grant, workflow, policy, who)
        pending.extend(todo)
        ignored[grant.name] = bad
    results = verifier.verify_many([p.item for p in pending]) if pending else []
    counted: dict[str, list[str]] = {g.name: [] for g, _ in grants}
    signed: set[str] = set()
    for p, ok in zip(pending, results, strict=True):
        if not ok:
            ignored[p.grant].append(f"{p.by}: signature does not match this grant (edited after approval?)")
        elif p.own:
            signed.add(p.grant)
        elif p.by not in counted[p.grant]:
            counted[p.grant].append(p.by)
    return {
        name: ApprovalCheck(tuple(sorted(counted[name])), tuple(ignored[name]), name in signed)
        for name in counted
    }
