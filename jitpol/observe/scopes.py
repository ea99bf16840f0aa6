"""What a run observes (pure): per (target, model), the privileges to read on the target."""

from __future__ import annotations

from jitpol.model.assignment import Scope
from jitpol.model.documents import PolicySet
from jitpol.policy.history import History


def scopes(policy: PolicySet | None, history: History) -> dict[tuple[str, str], Scope]:
    """What to observe per (target, model): every privilege a resource names, plus every privilege
    jitpol still manages (so removing a resource from the policy cannot orphan its grants)."""
    privs: dict[tuple[str, str], set[str]] = {}
    if policy is not None and policy.config is not None:
        for res in policy.resources.values():
            if res.target in policy.config.targets:
                bucket = privs.setdefault((res.target, res.model), set())
                for role in res.roles.values():
                    bucket.update(role.grants)
    for key in history.managed():
        privs.setdefault((key[0], key[1]), set()).add(key[3])
    return {k: Scope(k[0], k[1], frozenset(v)) for k, v in privs.items()}
