"""The effective policy: the one policy value a run decides with (SPEC section 2).

The proposed policy (the repository as it is) is untrusted input until the admins of the policy in
force approve it. While it is not approved, every decision that can give, widen, redirect or
reveal access reads the effective policy: the approved policy (the one in force) with each
restriction the proposed one makes already applied, field by field, most restrictive wins:

- a document (person, team, workflow, resource) exists only if it exists in both;
- a person keeps only the keys both list, only the account mappings (`accounts.<target>`) both
  give identically, and is disabled if either disables her; everything else (email, ...) is the
  approved one's;
- a team keeps only the members both list;
- a workflow, a resource (its scope, `exclusive`, settings, escrow, each role's privileges) and the
  whole configuration (targets and their settings, endpoints, token variables, the git host, admins)
  are the approved ones: a change there can only redirect or widen, so it waits; a resource keeps
  only the roles both define;
- grants are the proposed ones (a grant file is a request), judged under both policies by the
  caller (`trust.combine`); policy approvals are the proposed ones (they approve its digest).

Once the proposed policy is approved (or none was ever adopted, the trust-on-first-use case the
trust root closes), the effective policy is the proposed one. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from jitpol.model.documents import Person, PolicySet, Resource, Team
from jitpol.model.sshkey import fingerprint

__all__ = ["EffectivePolicy", "effective_policy", "meet"]


@dataclass(frozen=True, slots=True)
class EffectivePolicy:
    """The policy a run decides with, and whether it is the proposed one as written."""

    policy: PolicySet
    proposed_in_force: bool  # True: the proposed policy is approved (or bootstraps) and is used as is


def effective_policy(proposed: PolicySet, in_force: PolicySet | None, *, approved: bool) -> EffectivePolicy:
    """The proposed policy when it is approved or nothing is in force yet; otherwise meet()."""
    if in_force is None or approved:
        return EffectivePolicy(proposed, True)
    return EffectivePolicy(meet(in_force, proposed), False)


def meet(approved: PolicySet, proposed: PolicySet) -> PolicySet:
    """The approved policy with every restriction of the proposed one applied (module docstring)."""
    people = {n: _person(p, proposed.people[n]) for n, p in approved.people.items() if n in proposed.people}
    teams = {n: _team(t, proposed.teams[n]) for n, t in approved.teams.items() if n in proposed.teams}
    workflows = {n: w for n, w in approved.workflows.items() if n in proposed.workflows}
    resources = {n: _resource(r, proposed.resources[n]) for n, r in approved.resources.items()
                 if n in proposed.resources}
    return PolicySet(approved.config, people, teams, workflows, resources, proposed.grants,
                     proposed.policy_approvals)


def _fingerprints(keys: tuple[str, ...]) -> set[str]:
    out = set()
    for k in keys:
        try:
            out.add(fingerprint(k))
        except ValueError:
            continue
    return out


def _person(approved: Person, proposed: Person) -> Person:
    theirs = _fingerprints(proposed.keys)
    keys = tuple(k for k in approved.keys if _fingerprints((k,)) & theirs)
    accounts = _same(approved.accounts, proposed.accounts)
    return replace(approved, keys=keys, accounts=accounts, disabled=approved.disabled or proposed.disabled)


def _same(approved: Mapping[str, object], proposed: Mapping[str, object]) -> dict[str, object]:
    return {k: v for k, v in approved.items() if k in proposed and proposed[k] == v}


def _team(approved: Team, proposed: Team) -> Team:
    return replace(approved, members=tuple(m for m in approved.members if m in proposed.members))


def _resource(approved: Resource, proposed: Resource) -> Resource:
    roles = {n: r for n, r in approved.roles.items() if n in proposed.roles}
    return replace(approved, roles=roles)
