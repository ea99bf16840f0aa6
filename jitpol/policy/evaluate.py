"""Every grant's state at `now`, and the assignments that active grants require.

Pure: takes the policy, the time, the ledger's history and a signature verifier; returns values.
Order of checks per grant: ended for good (revoked, single-use name) -> window over -> rules of
the workflow -> approvals -> schedule -> break-glass limits per person -> exclusive checkout
across grants.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from jitpol.model.assignment import PRIVILEGED_OPT_IN, Assignment, AssignmentKey
from jitpol.model.canonical import canonical_json
from jitpol.model.documents import Grant, PolicySet, Resource, Workflow
from jitpol.model.duration import format_duration
from jitpol.model.times import shifted, utc_text
from jitpol.policy.approvals import ApprovalCheck, Reviews, Verifier, check_approvals
from jitpol.policy.history import Activation, History
from jitpol.policy.people import Resolver
from jitpol.policy.windows import live_intervals, position

State = Literal["pending", "scheduled", "active", "expired", "revoked", "rejected"]
STATES: tuple[State, ...] = ("pending", "scheduled", "active", "expired", "revoked", "rejected")


@dataclass(frozen=True, slots=True)
class GrantStatus:
    name: str
    state: State
    reason: str
    requester: str
    resource: str
    role: str
    start: datetime
    end: datetime
    live_until: datetime | None = None  # active: end of the current live interval
    next_change: datetime | None = None  # when this grant's state changes next, if known
    approvals: tuple[str, ...] = ()  # people whose approvals counted
    digest: str = ""
    awaiting: str = ""  # a second factor the run must ask for before activation ("okta-push")


@dataclass(frozen=True, slots=True)
class Desired:
    """One assignment active grants require, merged across overlapping grants."""

    assignment: Assignment
    resource: str
    grants: tuple[str, ...]
    until: datetime  # the latest live end among the grants behind it
    details: tuple[tuple[str, str], ...] = ()  # see Action.details


def ephemeral_name(person: str, grant: str) -> str:
    """The account name an ephemeral-account grant gets: short, collision-free per grant, and
    valid as a PostgreSQL role, an LDAP uid and a Linux user name (<= 32 characters)."""
    suffix = hashlib.sha256(grant.encode()).hexdigest()[:8]
    return f"jit-{person[:18].rstrip('-')}-{suffix}"


@dataclass(frozen=True, slots=True)
class Evaluation:
    statuses: tuple[GrantStatus, ...]
    desired: Mapping[AssignmentKey, Desired]

    def by_name(self) -> dict[str, GrantStatus]:
        return {s.name: s for s in self.statuses}


def principal_text(value: object) -> str:
    """A person's account value as the principal string connectors receive."""
    return value if isinstance(value, str) else canonical_json(value)


def _rule_problem(grant: Grant, policy: PolicySet, who: Resolver) -> str | None:
    """Why the workflow's rules refuse this grant outright, or None."""
    resource = policy.resources.get(grant.resource)
    if resource is None:
        return f"resource {grant.resource} does not exist"
    workflow = policy.workflows.get(resource.workflow)
    if workflow is None:
        return f"workflow {resource.workflow} of resource {resource.name} does not exist"
    person = policy.people.get(grant.requester)
    if person is None:
        return f"requester {grant.requester} is not a person in people/"
    if person.disabled:
        return f"person {person.name} is disabled (kill switch in people/{person.name}.yaml)"
    if resource.roles and grant.role not in resource.roles:
        return f"resource {resource.name} has no role {grant.role!r} (has: {', '.join(sorted(resource.roles))})"
    if grant.end <= grant.start:
        return "window ends before it starts"
    length = grant.end - grant.start
    if length > workflow.max_duration:
        return (
            f"window is {format_duration(length)}, workflow {workflow.name} allows at most "
            f"{format_duration(workflow.max_duration)}"
        )
    if grant.requester not in who(workflow.requesters):
        allowed = ", ".join(str(r) for r in workflow.requesters)
        return f"{grant.requester} may not request through workflow {workflow.name} (requesters: {allowed})"
    if workflow.justification_required and not grant.justification.strip():
        return f"workflow {workflow.name} requires a justification"
    if workflow.justification_pattern and not re.match(workflow.justification_pattern, grant.justification):
        return f"justification must match {workflow.justification_pattern!r} (workflow {workflow.name})"
    if policy.config is not None:
        target = policy.config.targets.get(resource.target)
        if target is None:
            return f"target {resource.target} is not configured in jitpol.yaml"
        if resource.model in ("role-membership", "sudo-rule", "idp-elevation") and (
            person.account_for(target) is None
        ):
            return (
                f"{person.name} has no account for target {target.name} "
                f"(add accounts.{target.type} to people/{person.name}.yaml)"
            )
    return None


def evaluate(policy: PolicySet, now: datetime, history: History, verifier: Verifier,
             reviews: Mapping[str, Reviews] | None = None) -> Evaluation:
    """States of all grants at `now` and the merged assignments the active ones need. `reviews`:
    approvals proven by pull-request reviews, for workflows with approvals.via github-review."""
    statuses: dict[str, GrantStatus] = {}
    needs_approval: list[tuple[Grant, Workflow]] = []
    who = Resolver(policy)

    def settled(grant: Grant, state: State, reason: str) -> GrantStatus:
        # one constructor call: with 100,000 grants, building a pending status and replacing two
        # fields of it (dataclasses.replace) was a fifth of evaluate
        return GrantStatus(grant.name, state, reason, grant.requester, grant.resource, grant.role,
                           grant.start, grant.end, digest=grant.digest)

    for grant in policy.grants.values():
        ended = history.ended.get(grant.name)
        used_digest = history.activated.get(grant.name)
        if grant.revoke:
            statuses[grant.name] = settled(grant, "revoked", "revoked in its file (revoke: true)")
        elif ended is not None:
            if now >= grant.end:
                statuses[grant.name] = settled(grant, "expired", f"window ended {utc_text(grant.end)}")
            else:
                statuses[grant.name] = settled(
                    grant, "revoked", f"already ended ({ended}); grant names are single-use — request a new grant")
        elif used_digest is not None and used_digest != grant.digest:
            statuses[grant.name] = settled(
                grant, "rejected", "grant name was already used for different content; grant names are single-use")
        elif now >= grant.end:
            reason = f"window ended {utc_text(grant.end)}"
            if grant.name not in history.activated:
                reason += " (never activated)"
            statuses[grant.name] = settled(grant, "expired", reason)
        else:
            problem = _rule_problem(grant, policy, who)
            if problem is not None:
                statuses[grant.name] = settled(grant, "rejected", problem)
            else:
                workflow = policy.workflows[policy.resources[grant.resource].workflow]
                needs_approval.append((grant, workflow))

    checks = check_approvals(needs_approval, policy, verifier, reviews)
    for grant, workflow in needs_approval:
        statuses[grant.name] = _timed_status(grant, workflow, now, checks[grant.name], history)

    _breakglass_limits(statuses, policy, history)
    _exclusive_checkout(statuses, policy, history)
    ordered = tuple(statuses[name] for name in sorted(statuses))
    return Evaluation(ordered, _desired(ordered, policy))


def _timed_status(grant: Grant, workflow: Workflow, now: datetime, check: ApprovalCheck,
                  history: History) -> GrantStatus:
    def status(state: State = "pending", reason: str = "", live_until: datetime | None = None,
               next_change: datetime | None = None, awaiting: str = "") -> GrantStatus:
        # one constructor call per grant (dataclasses.replace of a pending status cost a third of
        # evaluate)
        return GrantStatus(grant.name, state, reason, grant.requester, grant.resource, grant.role, grant.start,
                           grant.end, live_until, next_change, check.counted, grant.digest, awaiting)

    need = workflow.approvals_required
    approved = len(check.counted) >= need
    intervals = live_intervals(grant.start, grant.end, workflow.schedule)
    prefix = ""
    timeout = workflow.approval_timeout
    if timeout is not None and now >= grant.start + timeout and grant.name not in history.activated:
        # level-triggered: a request still not live this long after its start has expired, even if
        # approvals arrived since (the ledger shows no activation in time)
        return status("expired", f"not approved and activated within {format_duration(timeout)} of its start; "
                                 "request again")
    if workflow.mfa == "security-key" and not check.requester_signed:
        reason = (f"workflow {workflow.name} requires the requester's security-key signature "
                  f"(jitpol request --sign, or jitpol approve {grant.name} --as {grant.requester} with an sk- key)")
        if check.ignored:
            reason += "; ignored: " + "; ".join(check.ignored)
        return status(reason=reason, next_change=grant.end)
    if workflow.mfa == "okta-push" and approved and grant.name not in history.activated:
        answer = history.mfa.get((grant.name, grant.digest))
        if answer == "REJECTED":
            return status(state="rejected", reason="the requester rejected the Okta Verify push")
        if answer != "SUCCESS" and position(intervals, now)[0] is not None:
            return status(reason="approved; waiting for the requester to accept an Okta Verify push "
                                 "(sent by the next apply)", next_change=grant.end, awaiting="okta-push")
    if not approved:
        who = ", ".join(str(r) for r in workflow.approvers) or "nobody"
        reason = f"needs {need - len(check.counted)} more approval(s) from {who} (have {len(check.counted)})"
        if check.ignored:
            reason += "; ignored: " + "; ".join(check.ignored)
        if not grant.breakglass:
            return status(reason=reason, next_change=grant.end)
        if workflow.breakglass_deadline is None:
            return status(state="rejected", reason=f"workflow {workflow.name} does not allow break-glass")
        deadline = grant.start + workflow.breakglass_deadline
        intervals = [(lo, min(hi, deadline)) for lo, hi in intervals if lo < deadline]
        if now >= deadline:
            return status(reason=f"BREAK-GLASS deadline {utc_text(deadline)} passed without approval; {reason}",
                          next_change=grant.end)
        prefix = f"BREAK-GLASS, unapproved: revoked at {utc_text(deadline)} unless approved; "
    current, upcoming = position(intervals, now)
    if current is not None:
        return status(
            state="active", reason=f"{prefix}live until {utc_text(current[1])}",
            live_until=current[1], next_change=current[1],
        )
    if upcoming is not None:
        why = "starts" if now < grant.start else "outside schedule; next live"
        return status(state="scheduled", reason=f"{prefix}{why} {utc_text(upcoming)}", next_change=upcoming)
    if now < grant.start:
        return status(state="rejected", reason="window lies entirely outside the workflow's schedule")
    return status(state="expired", reason=f"no schedule window left before {utc_text(grant.end)}",
                  next_change=grant.end)


@dataclass(frozen=True, slots=True)
class _GlassUse:
    """One break-glass grant of a person, from the repository or the ledger."""

    name: str
    start: datetime
    end: datetime
    candidate: bool  # live or scheduled on break-glass alone: the limits decide whether it may be
    happened: bool  # the ledger shows it activated: it counts against later ones whatever it is now


def _breakglass_limits(statuses: dict[str, GrantStatus], policy: PolicySet, history: History) -> None:
    """Each workflow's per-person break-glass cap (maxUses per rolling `per`) and cool-down.

    A person's break-glass grants are those in the repository that are live or scheduled or were
    activated, and every activation the ledger records as break-glass (so deleting a file does not
    reset the count), through any workflow. Deterministic: in order of start, then name, each grant
    that would be live on break-glass alone is checked against the ones before it that stand; one
    beyond the cap or inside the cool-down is rejected, naming the earlier grants. Grants with all
    their approvals are not limited (they need no break-glass) but count as uses.
    """
    uses: dict[str, dict[str, _GlassUse]] = {}  # requester -> grant name -> use
    recorded: dict[str, str] = {}  # grant name -> requester, for ledger records
    for name, act in sorted(history.activations.items()):
        if act.start is not None and _was_breakglass(act, policy):
            uses.setdefault(act.requester, {})[name] = _GlassUse(name, act.start, act.end or act.start, False, True)
            recorded[name] = act.requester
    for grant in policy.grants.values():
        st = statuses.get(grant.name)
        if not grant.breakglass or st is None:
            continue
        happened = grant.name in history.activated
        live = st.state in ("active", "scheduled")
        if not live and not happened:
            continue
        workflow = _workflow_of(grant.resource, policy)
        candidate = live and workflow is not None and len(st.approvals) < workflow.approvals_required
        if grant.name in recorded:
            if not candidate:
                continue  # the ledger's record stands
            uses[recorded[grant.name]].pop(grant.name, None)
        uses.setdefault(grant.requester, {})[grant.name] = _GlassUse(grant.name, grant.start, grant.end, candidate,
                                                                     happened)
    for requester, mine in sorted(uses.items()):
        standing: list[_GlassUse] = []
        for use in sorted(mine.values(), key=lambda u: (u.start, u.name)):
            st = statuses.get(use.name)
            workflow = _workflow_of(st.resource, policy) if st is not None else None
            problem = (_glass_problem(use, standing, workflow, requester)
                       if use.candidate and st is not None and workflow is not None else None)
            if problem is not None and st is not None:
                statuses[use.name] = replace(st, state="rejected", reason=problem, live_until=None, next_change=None)
                if not use.happened:
                    continue
            standing.append(use)


def _was_breakglass(act: Activation, policy: PolicySet) -> bool:
    """Whether a recorded activation was a break-glass use: as the ledger says, or, where an older
    ledger does not say, when fewer approvals counted than the workflow requires (only break-glass
    goes live so). Review-approved workflows record no approvals there, so nothing is inferred."""
    if act.breakglass is not None:
        return act.breakglass
    grant = policy.grants.get(act.name)
    if grant is not None and grant.digest == act.digest:
        return grant.breakglass  # the very grant that was activated (an edited one proves nothing)
    workflow = _workflow_of(act.resource, policy)
    return (workflow is not None and workflow.approvals_via == "signature" and act.approvals is not None
            and act.approvals < workflow.approvals_required)


def _workflow_of(resource_name: str, policy: PolicySet) -> Workflow | None:
    resource = policy.resources.get(resource_name)
    return policy.workflows.get(resource.workflow) if resource is not None else None


def _glass_problem(use: _GlassUse, before: list[_GlassUse], workflow: Workflow, requester: str) -> str | None:
    """Why `use` breaks the workflow's break-glass cap or cool-down, given the uses before it."""
    cap, per = workflow.breakglass_max_uses, workflow.breakglass_per
    recent = [u for u in before if u.start > shifted(use.start, -per)]  # ledger times may be extreme
    if len(recent) >= cap:
        earlier = ", ".join(f"{u.name} (from {utc_text(u.start)})" for u in recent)
        return (f"break-glass limit: workflow {workflow.name} allows each person {cap} break-glass grant(s) per "
                f"{format_duration(per)} (breakglass.maxUses, breakglass.per); {requester} already has {earlier}; "
                f"get this grant approved, or start a break-glass grant from "
                f"{utc_text(shifted(recent[-cap].start, per))}")
    cooldown = workflow.breakglass_cooldown
    if cooldown is not None:
        close = [u for u in before if use.start < shifted(u.end, cooldown)]
        if close:
            last = max(close, key=lambda u: (u.end, u.name))
            return (f"break-glass cool-down: workflow {workflow.name} requires {format_duration(cooldown)} between "
                    f"the end of one break-glass grant and the start of the next (breakglass.cooldown); "
                    f"{requester}'s grant {last.name} ends {utc_text(last.end)}, so the next may start at "
                    f"{utc_text(shifted(last.end, cooldown))}; or get this grant approved")
    return None


def _exclusive_checkout(statuses: dict[str, GrantStatus], policy: PolicySet, history: History) -> None:
    """One holder at a time on resources whose workflow says checkout: exclusive.

    Deterministic: grants the ledger shows as holding access keep it; then earlier start, then
    name, win. A grant that overlaps an accepted grant of another person is rejected.
    """
    by_resource: dict[str, list[GrantStatus]] = {}
    for st in statuses.values():
        if st.state not in ("active", "scheduled"):
            continue
        resource = policy.resources.get(st.resource)
        workflow = policy.workflows.get(resource.workflow) if resource else None
        if workflow is not None and workflow.checkout == "exclusive":
            by_resource.setdefault(st.resource, []).append(st)
    for candidates in by_resource.values():
        candidates.sort(key=lambda s: (s.name not in history.open, s.start, s.name))
        accepted: list[GrantStatus] = []
        for st in candidates:
            clash = next(
                (a for a in accepted
                 if a.requester != st.requester and a.start < st.end and st.start < a.end),
                None,
            )
            if clash is None:
                accepted.append(st)
            else:
                statuses[st.name] = replace(
                    st, state="rejected", live_until=None, next_change=None,
                    reason=(f"exclusive checkout: {clash.requester} holds {st.resource} under grant "
                            f"{clash.name} until {utc_text(clash.end)}"),
                )


def assignments_for(resource: Resource, role: str, principal: str, target: str) -> list[Assignment]:
    """The assignments a grant of `role` on `resource` gives `principal`. An ephemeral account is
    one assignment: the account with the sorted list of everything the role grants."""
    role_def = resource.roles.get(role)
    privileges = role_def.grants if role_def is not None else ()
    if resource.model == "credential-checkout":
        return [Assignment(target, resource.model, principal, "checkout")]
    if resource.model == "ephemeral-account":
        return [Assignment(target, resource.model, principal, canonical_json(sorted(privileges)))]
    return [Assignment(target, resource.model, principal, p) for p in privileges]


def _desired(statuses: tuple[GrantStatus, ...], policy: PolicySet) -> dict[AssignmentKey, Desired]:
    out: dict[AssignmentKey, Desired] = {}
    if policy.config is None:
        return out
    for st in statuses:
        if st.state != "active" or st.live_until is None:
            continue
        resource = policy.resources[st.resource]
        target = policy.config.targets[resource.target]
        person = policy.people[st.requester]
        if resource.model == "ephemeral-account":
            principal = ephemeral_name(person.name, st.name)
        elif resource.model == "credential-checkout":
            principal = resource.account or ""
        else:
            principal = principal_text(person.account_for(target))
        details: tuple[tuple[str, str], ...] = (
            ("grant", st.name), ("person", person.name), ("ssh_keys", "\n".join(person.keys)),
            ("start", utc_text(st.start)))
        if resource.settings.get("allowPrivileged") is True:  # the connectors refuse privileged grants without it
            details = tuple(sorted((*details, PRIVILEGED_OPT_IN)))
        for a in assignments_for(resource, st.role, principal, target.name):
            prev = out.get(a.key)
            if prev is None:
                out[a.key] = Desired(Assignment(a.target, a.model, a.principal, a.privilege, st.live_until),
                                     st.resource, (st.name,), st.live_until, details)
            else:
                until = max(prev.until, st.live_until)
                out[a.key] = Desired(Assignment(a.target, a.model, a.principal, a.privilege, until),
                                     prev.resource, (*prev.grants, st.name), until, prev.details)
    return out
