"""Record: the ledger events a run writes besides each action's own: a policy's adoption (its
snapshot written under audit/policies first) and the grants' lifecycle (activated, revoked,
rejected).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jitpol.evaluate.prepare import Prepared
from jitpol.execute.apply import Result
from jitpol.ledger.events import (
    GrantActivated,
    GrantRejected,
    GrantRevoked,
    PolicyAdopted,
    PolicyApproval,
    TrustRootRef,
    assignment_ref,
)
from jitpol.ledger.snapshots import write_snapshot
from jitpol.load.repository import (
    snapshot_entries,
)
from jitpol.model.assignment import AssignmentKey
from jitpol.model.documents import Grant
from jitpol.model.times import utc_text
from jitpol.observe.targets import Observation
from jitpol.plan.diff import STANDING_MODELS, covered_by_history
from jitpol.policy.approvals import Reviews
from jitpol.policy.evaluate import GrantStatus
from jitpol.scope import AUDIT_DIR


def adopt_policy(prep: Prepared) -> list[Mapping[str, Any]]:
    """Put a new policy in force: write its snapshot under audit/policies, and return the
    `policy.adopted` event to record ([] when this run adopts nothing)."""
    check = prep.policy
    if check is None or check.unchanged or not check.approved:
        return []
    write_snapshot(prep.root / AUDIT_DIR, check.digest, snapshot_entries(prep.loaded))
    approvals = [
        PolicyApproval(by=a.by, key=a.key) for a in prep.loaded.policy.policy_approvals.values()
        if a.digest == check.digest and ((a.key in check.signers) if check.root else (a.by in check.counted))
    ]
    # who could approve: the root in force, by version and digest (None: trusted on first use /
    # by the admins of the policy in force)
    root = (TrustRootRef(version=prep.trust.version, digest=prep.trust.digest, signers=list(check.signers))
            if prep.trust is not None else None)
    return [PolicyAdopted(event="policy.adopted", grant=None, digest=check.digest, previous=check.in_force,
                          bootstrap=check.in_force is None, approvals=approvals, summary=check.summary(),
                          trust_root=root)]




def counted_approvals(grant: Grant, status: GrantStatus, reviews: Reviews | None) -> list[dict[str, Any]]:
    """The approvals that let `grant` activate, for the record: each signature by its signer
    and key fingerprint, each pull-request review by person, login, pull request and review id."""
    out: list[dict[str, Any]] = []
    signed: set[str] = set()
    for a in grant.approvals:
        if a.by in status.approvals and a.by not in signed:
            out.append({"by": a.by, "via": "signature", "key": a.key})
            signed.add(a.by)
    for person, login, pull, review in (reviews.evidence if reviews is not None else ()):
        if person in status.approvals and person not in signed:
            out.append({"by": person, "via": "github-review", "login": login, "pull": pull, "review": review})
            signed.add(person)
    return out


def lifecycle_events(prep: Prepared, obs: Observation,
                     results: Iterable[Result]) -> list[Mapping[str, Any]]:
    """Grant-level ledger events after execution: activations of grants whose access is now all
    in place, ends of grants whose access is now all gone, and first-seen rejections."""
    after = _After.of(prep, obs, list(results))
    return [*_activations(prep, after), *_ends(prep, after), *_rejections(prep)]


@dataclass(frozen=True, slots=True)
class _After:
    """What the targets hold once this run's actions ran: what was observed, changed by what
    succeeded; unknown (None) where an action failed or a target could not be observed."""

    present: Mapping[str, set[AssignmentKey]]
    failed: set[AssignmentKey]
    holders: Mapping[tuple[str, str], tuple[str, ...]]  # (target, shared account) -> holding grants
    seen_before: Mapping[str, set[AssignmentKey]]  # what observe found, before this run acted
    marked: set[AssignmentKey]  # carrying jitpol's ownership marker when observed
    managed_before: set[AssignmentKey]
    added_now: set[AssignmentKey]

    @classmethod
    def of(cls, prep: Prepared, obs: Observation, results: list[Result]) -> _After:
        present = {t: {a.key for a in found} for t, found in obs.assignments.items() if found is not None}
        failed: set[AssignmentKey] = set()
        holders = dict(prep.history.holders)
        for r in results:
            key = r.action.assignment.key
            if not r.ok:
                failed.add(key)
                continue
            bucket = present.setdefault(key[0], set())
            if r.action.revoking:
                bucket.discard(key)
            else:
                bucket.add(key)
            if r.action.op == "rotate":
                holders[(r.action.target, r.action.principal)] = r.action.grants
        return cls(
            present, failed, holders,
            seen_before={t: {a.key for a in found} for t, found in obs.assignments.items() if found is not None},
            marked={a.key for found in obs.assignments.values() if found is not None for a in found if a.owned},
            managed_before=set(prep.history.managed()),
            added_now={r.action.assignment.key for r in results if r.ok and not r.action.revoking},
        )

    def is_present(self, key: AssignmentKey) -> bool | None:
        if key in self.failed:
            return None
        if key[0] in self.present:
            return key in self.present[key[0]]
        return None  # unknown: the target was not observed and nothing ran there

    def held(self, key: AssignmentKey, grant: str) -> bool | None:
        if key[1] == "credential-checkout":  # held when this grant is among the secret's holders
            return grant in self.holders.get((key[0], key[2]), ())
        return self.is_present(key)

    def standing(self, key: AssignmentKey) -> bool:
        """Access a person held before jitpol granted anything: a grant that repeats it does not
        make it jitpol's, so the grant's end never takes it away (SPEC section 6). jitpol's own
        marker on it (a run killed before it recorded) makes it jitpol's, not standing."""
        return (key[1] in STANDING_MODELS and key in self.seen_before.get(key[0], set())
                and key not in self.managed_before and key not in self.added_now and key not in self.marked)


def _activations(prep: Prepared, after: _After) -> list[Mapping[str, Any]]:
    """grant.activated for each active grant whose access is all in place and not yet recorded
    with this digest."""
    ev = prep.evaluation
    if ev is None:
        return []
    policy = prep.loaded.policy  # the grants (requests) themselves, for their approvals
    keys_of: dict[str, list[AssignmentKey]] = {}
    for k, d in ev.desired.items():
        for g in d.grants:
            keys_of.setdefault(g, []).append(k)
    events: list[Mapping[str, Any]] = []
    for st in ev.by_name().values():
        if st.state != "active":
            continue
        keys = keys_of.get(st.name, [])
        og = prep.history.open.get(st.name)
        if og is not None and og.digest == st.digest:
            continue
        if keys and all(after.held(k, st.name) for k in keys):
            grant = policy.grants[st.name]
            activated = GrantActivated(
                event="grant.activated", grant=st.name, digest=st.digest,
                requester=st.requester, resource=st.resource, role=st.role,
                start=utc_text(st.start), end=utc_text(st.end), until=utc_text(st.live_until or st.end),
                approvals=counted_approvals(grant, st, prep.reviews.get(st.name)),
                breakglass=grant.breakglass, justification=grant.justification,
                assignments=[assignment_ref(k) for k in sorted(keys) if not after.standing(k)],
            )
            if any(after.standing(k) for k in keys):
                activated["standing"] = [assignment_ref(k) for k in sorted(keys) if after.standing(k)]
            events.append(activated)
    return events


def _ends(prep: Prepared, after: _After) -> list[Mapping[str, Any]]:
    """grant.revoked for each recorded grant that is no longer active and whose access is all
    gone (final unless only a kill switch ended it)."""
    ev = prep.evaluation
    statuses = ev.by_name() if ev is not None else {}
    keep = covered_by_history(prep.history, prep.now, prep.ended) if ev is None else set(ev.desired)
    events: list[Mapping[str, Any]] = []
    for name, og in sorted(prep.history.open.items()):
        now_st = statuses.get(name)
        if now_st is not None and now_st.state == "active":
            continue
        if ev is None and og.until is not None and og.until > prep.now and name not in prep.ended:
            continue
        if all(after.held(k, name) is False if k[1] == "credential-checkout"
               else (k in keep or after.is_present(k) is False) for k in og.keys):
            if now_st is None and name in prep.ended:  # a restriction under an invalid repository
                final, reason = "kill switch" not in prep.ended[name], prep.ended[name]
            elif now_st is None:
                final, reason = True, ("grant file deleted" if ev is not None else "live interval ended")
            else:
                final = now_st.state in ("expired", "revoked", "rejected")
                reason = f"{now_st.state}: {now_st.reason}"
            events.append(GrantRevoked(event="grant.revoked", grant=name, final=final, reason=reason,
                                       assignments=[assignment_ref(k) for k in sorted(og.keys)]))
    return events


def _rejections(prep: Prepared) -> list[Mapping[str, Any]]:
    """grant.rejected once per (grant, reason); a shard that does not record rejections: none."""
    if prep.evaluation is None or (prep.shard is not None and not prep.shard.records_rejections):
        return []
    return [GrantRejected(event="grant.rejected", grant=st.name, reason=st.reason, digest=st.digest)
            for st in prep.evaluation.by_name().values()
            if st.state == "rejected" and (st.name, st.reason) not in prep.history.rejected]
