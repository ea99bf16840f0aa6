"""Plan: what this run does, from what was prepared and observed (pure). plan.diff decides;
this adds the run's context (notes, rejected grants, re-deliveries, order).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from jitpol.connectors import registry
from jitpol.evaluate.prepare import Prepared
from jitpol.model.assignment import Action, AssignmentKey
from jitpol.model.documents import PolicySet
from jitpol.observe.targets import Observation
from jitpol.plan.diff import (
    STANDING_MODELS,
    Plan,
    checkout_actions,
    covered_by_history,
    diff,
    exclusive_privileges,
)
from jitpol.policy.evaluate import Desired
from jitpol.policy.history import History


def make_plan(prep: Prepared, obs: Observation) -> Plan:
    """The plan for this run (pure given its inputs)."""
    notes = [*prep.notes, *(f"target {t} could not be observed: {e}" for t, e in sorted(obs.errors.items()))]
    if prep.policy is not None and not prep.policy.unchanged:
        notes.insert(0, prep.policy.summary())
    if prep.evaluation is None:
        keeping = prep.history if prep.keeping is None else prep.keeping
        covered = covered_by_history(keeping, prep.now, prep.ended) | prep.backed
        actions = diff({}, obs.assignments, prep.history, {}, keep=covered, additions=False)
        live = {g for g, og in prep.history.open.items()
                if og.until is not None and og.until > prep.now and g not in prep.ended}
        actions += checkout_actions({}, prep.history, keep=live)
        if not prep.loaded.ok:
            notes.insert(0, "repository is invalid: only revocations that are due are planned, nothing is added")
        else:
            notes.append("no approved policy is in force: only revocations that are due are planned, nothing is added")
        return Plan(_ordered(actions), (), tuple(notes), valid=False, at=prep.now)
    policy = prep.effective
    assert policy is not None  # a valid repository always has one
    desired = prep.evaluation.desired
    notes += _standing_notes(desired, obs, prep.history, exclusive_privileges(policy))
    actions = diff(desired, obs.assignments, prep.history, exclusive_privileges(policy))
    actions += checkout_actions(desired, prep.history)
    actions += _redeliveries(prep, obs)
    actions = tuple(map(_with_resource(policy), _ordered(actions)))
    rejected = tuple(s for s in prep.evaluation.statuses if s.state == "rejected")
    return Plan(actions, rejected, tuple(notes), at=prep.now)


def _standing_notes(desired: Mapping[AssignmentKey, Desired], obs: Observation, history: History,
                    exclusive: Mapping[tuple[str, str, str], str], limit: int = 20) -> list[str]:
    """Standing access on privileges jitpol manages that no grant backs and jitpol did not give:
    reported (it is drift), revoked only on exclusive resources (where diff plans it)."""
    managed = history.managed()
    privileges = {(k[0], k[1], k[3]) for k in (*managed, *desired)}
    found = sorted(
        a.key for assignments in obs.assignments.values() if assignments is not None for a in assignments
        if a.key[1] in STANDING_MODELS and (a.key[0], a.key[1], a.key[3]) in privileges and not a.owned
        and a.key not in desired and a.key not in managed and (a.key[0], a.key[1], a.key[3]) not in exclusive
    )
    out = [f"standing access jitpol did not grant: {k[2]} holds {k[3]} on {k[0]} (left alone; the resource is "
           "not exclusive)" for k in found[:limit]]
    if len(found) > limit:
        out.append(f"... and {len(found) - limit} more standing holder(s) of managed privileges")
    return out


def _ordered(actions: tuple[Action, ...]) -> tuple[Action, ...]:
    return tuple(sorted(actions, key=lambda a: (not a.revoking, a.target, a.principal, a.assignment.privilege)))


def _redeliveries(prep: Prepared, obs: Observation) -> tuple[Action, ...]:
    """Ephemeral accounts that exist but whose credential the ledger never recorded as delivered
    (a run died between creating and recording): set and deliver a new one."""
    assert prep.evaluation is not None
    out: list[Action] = []
    for key, want in sorted(prep.evaluation.desired.items()):
        target = prep.targets.get(key[0])
        found = obs.assignments.get(key[0])
        if (key[1] != "ephemeral-account" or target is None or found is None
                or (target.type, key[1]) not in registry.NEEDS_SECRET
                or key not in {a.key for a in found} or any(g in prep.history.delivered for g in want.grants)):
            continue
        out.append(Action("create-account", want.assignment, resource=want.resource, grants=want.grants,
                          until=want.until, reason="no delivered credential on record: set and deliver a new one",
                          details=want.details))
    return tuple(out)


def _with_resource(policy: PolicySet) -> Callable[[Action], Action]:
    """What gives each action without one its resource: the first resource (in the policy's
    order) that is the credential-checkout resource of its target and account, or whose roles
    grant its privilege on its target under its model. Indexed once, not searched per action."""
    first: dict[tuple[str, ...], tuple[int, str]] = {}
    for position, res in enumerate(policy.resources.values()):
        if res.model == "credential-checkout" and res.account is not None:
            first.setdefault(("account", res.target, res.account), (position, res.name))
        for role in res.roles.values():
            for privilege in role.grants:
                first.setdefault(("grants", res.target, res.model, privilege), (position, res.name))

    def give(action: Action) -> Action:
        if action.resource:
            return action
        a = action.assignment
        found = [hit for hit in (
            first.get(("account", a.target, a.principal)) if a.model == "credential-checkout" else None,
            first.get(("grants", a.target, a.model, a.privilege))) if hit is not None]
        return replace(action, resource=min(found)[1]) if found else action

    return give
