"""Restrictions that bite whatever else is wrong (pure): a deleted grant file, `revoke: true`, a
disabled requester (the kill switch) end a recorded interval now, even in an invalid repository."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from jitpol.model.documents import PolicySet
from jitpol.policy.history import History


def restrictions(history: History, partial: PolicySet, named: Mapping[str, str | None],
                 now: datetime) -> dict[str, str]:
    """Grants whose recorded live interval must end now although the repository is invalid:
    the restrictions that bite whatever else is wrong (SPEC section 6). `partial` holds the
    documents that are valid on their own; `named` maps every name a file under grants/ gives
    (valid or not) to its requester when it can be read (None when it cannot).

    - the grant's file is gone (no file under grants/ names it): deleted;
    - its valid file says `revoke: true`;
    - its requester (from its valid file, else its file, else the ledger) is `disabled: true` in
      a valid person file (the kill switch)."""
    out: dict[str, str] = {}
    for name, og in sorted(history.open.items()):
        if og.until is None or og.until <= now:
            continue
        grant = partial.grants.get(name)
        if name not in named and grant is None:
            out[name] = "grant file deleted"
            continue
        if grant is not None and grant.revoke:
            out[name] = "revoke: true"
            continue
        act = history.activations.get(name)
        requester = grant.requester if grant is not None else (named.get(name) or (act.requester if act else None))
        person = partial.people.get(requester) if requester else None
        if person is not None and person.disabled:
            out[name] = f"{requester} is disabled (kill switch)"
    return out
