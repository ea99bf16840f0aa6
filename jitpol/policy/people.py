"""Resolving person:/team: references to people."""

from __future__ import annotations

from collections.abc import Iterable

from jitpol.model.documents import PolicySet
from jitpol.model.refs import Ref


def resolve(refs: Iterable[Ref], policy: PolicySet) -> frozenset[str]:
    """The names of the people the references denote (unknown names resolve to nobody)."""
    out: set[str] = set()
    for ref in refs:
        if ref.kind == "person":
            if ref.name in policy.people:
                out.add(ref.name)
        else:
            team = policy.teams.get(ref.name)
            if team is not None:
                out.update(m for m in team.members if m in policy.people)
    return frozenset(out)


class Resolver:
    """resolve() with a cache per reference list, for one evaluation of one policy (workflows
    name the same teams for thousands of grants)."""

    def __init__(self, policy: PolicySet) -> None:
        self._policy = policy
        self._cache: dict[tuple[Ref, ...], frozenset[str]] = {}

    def __call__(self, refs: tuple[Ref, ...]) -> frozenset[str]:
        found = self._cache.get(refs)
        if found is None:
            found = self._cache[refs] = resolve(refs, self._policy)
        return found
