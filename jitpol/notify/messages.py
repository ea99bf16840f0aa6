"""Which lifecycle notifications are due: a pure function of (grant statuses, policy, ledger, now).

Kinds and who receives them:

    pending     approvals are missing (a request, or a live break-glass grant)
                                                        -> the workflow's approvers, minus the requester
    scheduled   approved, its window has not started    -> the requester
    activated   the ledger records its access in place  -> the requester
    breakglass  the ledger records a break-glass grant's activation (every use is announced)
                                                        -> the workflow's approvers and the admins, minus the requester
    expiring    active, and its live interval ends within `expiring_within` -> the requester
    expired     its access ended with its window (final `grant.revoked`)     -> the requester
    revoked     its access was ended early (final `grant.revoked`)           -> the requester
    rejected    refused, with the reason                -> the requester

Every notification has a stable `key` naming exactly what it is about: a new version of the grant
(another digest), another live interval or another rejection reason is a new notification; the
same facts seen by a later run are the same key. A notification is sent once per channel: keys
already sent are those of the ledger's `notification.sent` events. Keys never use ledger `seq`
numbers, because a push race re-chains events and renumbers them.

Ledger facts (`activated`, `expired`, `revoked`) older than `max_age`, or later than `now` (a
preview `--at` in the past), are not news and are never due; so turning notifications on for a
repository with a long history does not replay it. State facts (`pending`, `scheduled`,
`expiring`, `rejected`) come from the current evaluation and are due while they hold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from jitpol.ledger.events import NotificationSent
from jitpol.model.documents import PolicySet
from jitpol.model.times import utc_text
from jitpol.policy.evaluate import GrantStatus
from jitpol.policy.people import resolve

Kind = Literal["pending", "scheduled", "activated", "breakglass", "expiring", "expired", "revoked", "rejected"]
KINDS: tuple[Kind, ...] = ("pending", "scheduled", "activated", "breakglass", "expiring", "expired", "revoked",
                           "rejected")
SENT_EVENT = "notification.sent"


@dataclass(frozen=True, slots=True)
class Message:
    """One notification about one grant. `to` are person names (resolved to mentions by the
    renderer); the remaining fields are what templates show. Times are aware datetimes."""

    kind: Kind
    grant: str
    key: str
    to: tuple[str, ...]
    requester: str
    resource: str
    role: str
    start: datetime | None = None
    end: datetime | None = None
    until: datetime | None = None  # activated/expiring: when the current live interval ends
    justification: str = ""
    reason: str = ""
    approvers: tuple[str, ...] = ()  # pending: who may approve (the requester excluded)
    approvals: tuple[str, ...] = ()  # people whose approvals counted
    required: int = 0  # approvals the workflow requires
    via: str = "signature"  # signature | github-review
    path: str | None = None  # the grant file, relative to the repository root, when known
    at: datetime | None = None  # when the fact happened (ledger facts) or was seen (state facts)
    breakglass: bool = False  # a break-glass grant: live before its approvals


@dataclass(frozen=True, slots=True)
class Sent:
    """A notification already delivered on a channel, from a `notification.sent` event."""

    key: str
    channel: str


def sent_keys(events: Iterable[Mapping[str, Any]]) -> frozenset[Sent]:
    """Everything the ledger says was sent."""
    return frozenset(
        Sent(str(e.get("key")), str(e.get("channel"))) for e in events if e.get("event") == SENT_EVENT
    )


def unsent(messages: Iterable[Message], sent: frozenset[Sent], channel: str) -> list[Message]:
    """The messages not yet delivered on `channel`, in the given order."""
    return [m for m in messages if Sent(m.key, channel) not in sent]


def sent_event(message: Message, channel: str, now: datetime) -> dict[str, Any]:
    """The ledger body recording that `message` went out on `channel` (time: the evaluation time)."""
    sent = NotificationSent(event=SENT_EVENT, grant=message.grant, kind=message.kind, key=message.key,
                            channel=channel, to=list(message.to))
    return {"time": utc_text(now), **sent}


def due(
    statuses: Iterable[GrantStatus] | None,
    policy: PolicySet,
    events: Sequence[Mapping[str, Any]],
    now: datetime,
    *,
    expiring_within: timedelta,
    max_age: timedelta,
) -> list[Message]:
    """Every notification the current facts call for, whether sent already or not (filter with
    `unsent`). `statuses` is None when the repository is invalid: then only ledger facts are
    due, since an invalid repository's evaluation is not to be trusted. `events` are the ledger
    events of every ledger file, each file in order. Ordered by grant, then kind."""
    out: list[Message] = []
    activated_digest: dict[str, str] = {}
    for e in events:
        if e.get("event") == "grant.activated" and e.get("grant") and _time(e.get("time"), now) is not None:
            activated_digest[str(e["grant"])] = str(e.get("digest"))
    out += _ledger_facts(policy, events, now, max_age)
    out += _breakglass_facts(policy, events, now, max_age)
    if statuses is not None:
        for st in statuses:
            out += _state_facts(st, policy, now, expiring_within, activated_digest)
    order = {k: i for i, k in enumerate(KINDS)}
    # one message per key (several ledger files may record the same fact)
    unique = {m.key: m for m in out}
    return sorted(unique.values(), key=lambda m: (m.grant, order[m.kind], m.key))


def _state_facts(st: GrantStatus, policy: PolicySet, now: datetime, expiring_within: timedelta,
                 activated: Mapping[str, str]) -> list[Message]:
    grant = policy.grants.get(st.name)
    resource = policy.resources.get(st.resource)
    workflow = policy.workflows.get(resource.workflow) if resource is not None else None
    base = Message(
        kind="pending", grant=st.name, key="", to=(st.requester,), requester=st.requester,
        resource=st.resource, role=st.role, start=st.start, end=st.end,
        justification=grant.justification if grant is not None else "", reason=st.reason,
        approvals=tuple(sorted(st.approvals)),
        required=workflow.approvals_required if workflow is not None else 0,
        via=workflow.approvals_via if workflow is not None else "signature",
        path=grant.source.path if grant is not None and grant.source.path else None, at=now,
        breakglass=grant.breakglass if grant is not None else False,
    )
    version = st.digest[:16]
    out: list[Message] = []
    approved = workflow is not None and len(st.approvals) >= workflow.approvals_required
    # Approvers have something to do while approvals are missing: for a request that waits, and
    # for a break-glass grant that is live (or scheduled) without them. Not for a grant that has
    # its approvals and waits for something else (the requester's second factor or signature).
    if workflow is not None and not approved and not st.awaiting and st.state in ("pending", "scheduled", "active"):
        approvers = tuple(sorted(resolve(workflow.approvers, policy) - {st.requester}))
        out.append(replace(base, kind="pending", key=f"pending:{st.name}:{version}", to=approvers,
                           approvers=approvers))
    if st.state == "scheduled" and approved and st.name not in activated:
        # (a grant activated before is between schedule windows: not news)
        out.append(replace(base, kind="scheduled", key=f"scheduled:{st.name}:{version}"))
    elif st.state == "active":
        until = st.live_until
        if until is not None and activated.get(st.name) == st.digest and now < until <= now + expiring_within:
            out.append(replace(base, kind="expiring", key=f"expiring:{st.name}:{version}:{utc_text(until)}",
                               until=until))
    elif st.state == "rejected":
        why = hashlib.sha256(st.reason.encode()).hexdigest()[:12]
        out.append(replace(base, kind="rejected", key=f"rejected:{st.name}:{version}:{why}"))
    return out


def _ledger_facts(policy: PolicySet, events: Sequence[Mapping[str, Any]], now: datetime,
                  max_age: timedelta) -> list[Message]:
    """Activations still in force and final ends, from the ledger, within [now - max_age, now]."""
    out: list[Message] = []
    latest_activation: dict[str, Mapping[str, Any]] = {}
    requesters: dict[str, Mapping[str, Any]] = {}
    for e in events:
        when = _time(e.get("time"), now)
        name = e.get("grant")
        if when is None or not isinstance(name, str) or not name:
            continue  # after `now`: not yet known at the time being evaluated
        kind = e.get("event")
        if kind == "grant.activated":
            latest_activation[name] = e
            requesters[name] = e
        elif kind == "grant.revoked":
            # access gone: an activation before it is no longer news
            latest_activation.pop(name, None)
            if e.get("final", True) and now - when <= max_age:
                out.append(_ended(name, e, requesters.get(name), policy, when))
    for name, e in latest_activation.items():
        when = _time(e.get("time"), now)
        if when is None or now - when > max_age:
            continue
        grant = policy.grants.get(name)
        requester = str(e.get("requester") or (grant.requester if grant else ""))
        until = _time(e.get("until"), None)
        out.append(Message(
            kind="activated", grant=name,
            key=f"activated:{name}:{str(e.get('digest'))[:16]}:{utc_text(until) if until else ''}",
            to=(requester,) if requester else (), requester=requester,
            resource=str(e.get("resource") or ""), role=str(e.get("role") or ""),
            start=_time(e.get("start"), None), end=_time(e.get("end"), None), until=until,
            justification=grant.justification if grant is not None else "",
            approvals=tuple(sorted(str(a.get("by")) for a in e.get("approvals") or () if isinstance(a, Mapping))),
            path=grant.source.path if grant is not None and grant.source.path else None, at=when,
        ))
    return out


def _breakglass_facts(policy: PolicySet, events: Sequence[Mapping[str, Any]], now: datetime,
                      max_age: timedelta) -> list[Message]:
    """One announcement per activation of a break-glass grant (per grant version) within
    [now - max_age, now], even if its access has ended since: every use is news to the approvers
    and the admins. A grant is break-glass if its activation says so or its file does."""
    out: list[Message] = []
    seen: set[str] = set()
    for e in events:
        when = _time(e.get("time"), now)
        name = e.get("grant")
        if e.get("event") != "grant.activated" or when is None or not isinstance(name, str) or not name:
            continue
        grant = policy.grants.get(name)
        resource_name = str(e.get("resource") or (grant.resource if grant else ""))
        resource = policy.resources.get(resource_name)
        workflow = policy.workflows.get(resource.workflow) if resource is not None else None
        recorded = e.get("approvals")
        if "breakglass" in e:
            glass = bool(e["breakglass"])
        elif grant is not None and grant.digest == e.get("digest"):
            glass = grant.breakglass
        else:  # an older ledger: only break-glass goes live with fewer approvals than required
            glass = (workflow is not None and workflow.approvals_via == "signature" and isinstance(recorded, list)
                     and len(recorded) < workflow.approvals_required)
        key = f"breakglass:{name}:{str(e.get('digest'))[:16]}"
        if not glass:
            continue
        if key in seen or now - when > max_age:
            seen.add(key)
            continue
        seen.add(key)
        requester = str(e.get("requester") or (grant.requester if grant else ""))
        to: set[str] = set()
        if workflow is not None:
            to |= resolve(workflow.approvers, policy)
        if policy.config is not None:
            to |= resolve(policy.config.admins, policy)
        start = _time(e.get("start"), None) or (grant.start if grant else None)
        approvals = tuple(sorted(str(a.get("by")) for a in e.get("approvals") or () if isinstance(a, Mapping)))
        required = workflow.approvals_required if workflow is not None else 0
        reason = ""
        if workflow is not None and workflow.breakglass_deadline is not None and start is not None \
                and len(approvals) < required:
            reason = f"live without approval; revoked at {utc_text(start + workflow.breakglass_deadline)} " \
                     f"unless approved"
        out.append(Message(
            kind="breakglass", grant=name, key=key, to=tuple(sorted(to - {requester})), requester=requester,
            resource=resource_name, role=str(e.get("role") or (grant.role if grant else "")),
            start=start, end=_time(e.get("end"), None) or (grant.end if grant else None),
            until=_time(e.get("until"), None),
            justification=grant.justification if grant is not None else str(e.get("justification") or ""),
            reason=reason, approvers=tuple(sorted(resolve(workflow.approvers, policy) - {requester}))
            if workflow is not None else (), approvals=approvals, required=required,
            via=workflow.approvals_via if workflow is not None else "signature",
            path=grant.source.path if grant is not None and grant.source.path else None, at=when, breakglass=True,
        ))
    return out


def _ended(name: str, e: Mapping[str, Any], activation: Mapping[str, Any] | None, policy: PolicySet,
           when: datetime) -> Message:
    grant = policy.grants.get(name)
    reason = str(e.get("reason") or "ended")
    kind: Kind = "expired" if reason.startswith("expired") else "revoked"
    act = activation or {}
    requester = str(act.get("requester") or (grant.requester if grant else ""))
    return Message(
        kind=kind, grant=name, key=f"ended:{name}", to=(requester,) if requester else (), requester=requester,
        resource=str(act.get("resource") or (grant.resource if grant else "")),
        role=str(act.get("role") or (grant.role if grant else "")),
        start=_time(act.get("start"), None) or (grant.start if grant else None),
        end=_time(act.get("end"), None) or (grant.end if grant else None),
        justification=grant.justification if grant is not None else "", reason=reason,
        path=grant.source.path if grant is not None and grant.source.path else None, at=when,
    )


def _time(text: Any, not_after: datetime | None) -> datetime | None:
    """An ISO time from the ledger; None when absent, unreadable, naive, or after `not_after`."""
    if not isinstance(text, str) or not text:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    if t.tzinfo is None or (not_after is not None and t > not_after):
        return None
    return t

