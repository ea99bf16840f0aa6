"""What the ledger says jitpol did: a pure replay of ledger events.

Event bodies this module reads (written by jitpol.execute):
  action.started   {op, target, model, principal, privilege, grants}   intent, before an addition
  grant.activated  {grant, digest, until, assignments: [{target, model, principal, privilege}],
                    requester, resource, start, end, approvals, breakglass}  (these: see Activation)
  grant.revoked    {grant, final, reason, assignments}                   the grant's access is gone
  drift.corrected  {target, model, principal, privilege}
  policy.adopted   {digest, approvals, bootstrap}                        the policy now in force
  mfa.checked      {grant, digest, factor, result}                       an Okta Verify push answered
  credential.rotated {target, account, holders, fingerprint, until}      a shared account's new secret
  account.created  {grant, target, account, delivered, fingerprint}      an ephemeral account (re)issued
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from jitpol.model.assignment import AssignmentKey


@dataclass(slots=True)
class OpenGrant:
    """A grant whose access jitpol put (or may have put) on targets and has not taken away."""

    name: str
    digest: str | None = None  # set once activated
    until: datetime | None = None  # end of the live interval recorded at activation
    keys: set[AssignmentKey] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Activation:
    """A grant's first activation as the ledger recorded it: who, which window, and whether it was a
    break-glass grant. Kept after the grant file is deleted, so per-person limits still count it."""

    name: str
    requester: str
    start: datetime | None
    end: datetime | None
    breakglass: bool | None = None  # None: the event does not say (an older ledger)
    at: str = ""  # time of the first activation
    resource: str = ""
    digest: str = ""
    approvals: int | None = None  # how many approvals counted at activation; None: not recorded


@dataclass(slots=True)
class History:
    open: dict[str, OpenGrant] = field(default_factory=dict)
    activated: dict[str, str] = field(default_factory=dict)  # grant -> digest it activated with
    first_activated: dict[str, str] = field(default_factory=dict)  # grant -> time of first activation
    activations: dict[str, Activation] = field(default_factory=dict)  # grant -> its first activation
    ended: dict[str, str] = field(default_factory=dict)  # grant -> reason of its final end
    rejected: set[tuple[str, str]] = field(default_factory=set)  # (grant, reason) already recorded
    mfa: dict[tuple[str, str], str] = field(default_factory=dict)  # (grant, digest) -> SUCCESS | REJECTED
    # (target, shared account) -> grants holding its current secret ((): rotated to nobody)
    holders: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    # (target, shared account) -> the end its current secret was set to expire (None: not recorded)
    holders_until: dict[tuple[str, str], datetime | None] = field(default_factory=dict)
    delivered: set[str] = field(default_factory=set)  # grants whose ephemeral account secret was delivered
    adopted_digest: str | None = None  # the policy in force: the last `policy.adopted`
    adopted_commit: str | None = None
    adopted_at: str = ""
    last_seq: int = 0
    # (seq, why) of lines whose chain verifies but whose body is not what jitpol writes: ignored
    # (a run never stops on them), and reported so the ledger is treated as damaged
    ignored: list[tuple[int, str]] = field(default_factory=list)

    def managed(self) -> dict[AssignmentKey, set[str]]:
        """Every assignment jitpol holds (or may hold) on a target, with the grants behind it."""
        out: dict[AssignmentKey, set[str]] = {}
        for grant in self.open.values():
            for key in grant.keys:
                out.setdefault(key, set()).add(grant.name)
        return out


def _key(entry: Any) -> AssignmentKey:
    """An assignment as a ledger event names it. Raises ValueError unless it is exactly four strings."""
    if not isinstance(entry, Mapping):
        raise ValueError(f"an assignment is not an object: {entry!r:.60}")
    target, model, principal, privilege = parts = (
        entry.get("target"), entry.get("model"), entry.get("principal"), entry.get("privilege"))
    if (type(target) is str and type(model) is str and type(principal) is str and type(privilege) is str
            and target and model and principal and privilege):  # as JSON gives them: no conversion
        return target, model, principal, privilege
    if not all(isinstance(p, str) and p for p in parts):
        raise ValueError(f"an assignment lacks target, model, principal or privilege: {entry!r:.80}")
    return (str(parts[0]), str(parts[1]), str(parts[2]), str(parts[3]))


def _keys(value: Any) -> set[AssignmentKey]:
    if value is None:
        return set()
    if not isinstance(value, list):
        raise ValueError("assignments is not a list")
    return {_key(a) for a in value}


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"not a list of names: {value!r:.60}")
    return tuple(value)


def _time(text: Any) -> datetime | None:
    """A recorded instant (with its offset); None when absent. Raises ValueError for anything
    else: text that is no ISO 8601 instant, or one without an offset (it could not be compared)."""
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        raise ValueError(f"not a time: {text!r:.40}")
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise ValueError(f"a time without its UTC offset: {text!r:.40}")
    return when


def _when(text: Any) -> datetime | None:
    """A recorded time; None when absent or unreadable (an older ledger)."""
    try:
        return _time(text)
    except ValueError:
        return None


def _activation(name: str, ev: Mapping[str, Any], earlier: Activation | None) -> Activation:
    """The first activation's facts; `breakglass` becomes true once any activation says so (a
    truthy `breakglass` field: true, or a mapping with its details)."""
    glass = bool(ev.get("breakglass")) if "breakglass" in ev else None
    if earlier is not None:
        return replace(earlier, breakglass=_either(earlier.breakglass, glass))
    start = _when(ev.get("start")) or _when(ev.get("time"))
    approvals = ev.get("approvals")
    return Activation(name, str(ev.get("requester") or ""), start, _when(ev.get("end")) or _when(ev.get("until")),
                      glass, str(ev.get("time") or ""), str(ev.get("resource") or ""), str(ev.get("digest") or ""),
                      len(approvals) if isinstance(approvals, list) else None)


def _either(a: bool | None, b: bool | None) -> bool | None:
    """True if either says so; None only if neither says anything."""
    return None if a is None and b is None else bool(a or b)


def replay(events: Iterable[Mapping[str, Any]]) -> History:
    """Fold ledger events (already chain-verified, in order) into History. An event whose body
    is not what jitpol writes (a hand-edited or forged line) is ignored whole and listed in
    History.ignored: it can neither crash a run nor half-apply."""
    h = History()
    for ev in events:
        seq = ev.get("seq")
        h.last_seq = max(h.last_seq, seq if isinstance(seq, int) and not isinstance(seq, bool) else 0)
        try:
            _fold(h, ev)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            h.ignored.append((seq if isinstance(seq, int) else 0, f"{ev.get('event')!r:.40}: {exc}"))
    return h


def _fold(h: History, ev: Mapping[str, Any]) -> None:
    """One event into `h`. Reads and checks everything the event says first, then changes `h`,
    so a bad event raises before anything is applied."""
    kind = ev.get("event")
    name = ev.get("grant")
    if name is not None and not isinstance(name, str):
        raise ValueError(f"grant is not a name: {name!r:.40}")
    if kind == "action.started":
        key = _key(ev)
        grants = _names(ev.get("grants")) if ev.get("grants") else ((name,) if name else ())
        for g in grants:
            if g:
                h.open.setdefault(g, OpenGrant(g)).keys.add(key)
    elif kind == "grant.activated" and name:
        until, keys = _time(ev.get("until")), _keys(ev.get("assignments", []))
        digest = str(ev.get("digest"))
        activation = _activation(name, ev, h.activations.get(name))
        og = h.open.setdefault(name, OpenGrant(name))
        og.digest, og.until = digest, until
        og.keys |= keys
        h.activated[name] = og.digest
        h.first_activated.setdefault(name, str(ev.get("time")))
        h.activations[name] = activation
    elif kind == "grant.revoked" and name:
        h.open.pop(name, None)
        if ev.get("final", True):
            h.ended[name] = str(ev.get("reason") or "ended")
    elif kind == "credential.rotated":
        where = (str(ev.get("target")), str(ev.get("account")))
        holders, until = _names(ev.get("holders") or []), _time(ev.get("until"))
        h.holders[where] = holders
        h.holders_until[where] = until
    elif kind == "account.created" and name and ev.get("delivered"):
        h.delivered.add(name)
    elif kind == "mfa.checked" and name:
        h.mfa[(name, str(ev.get("digest")))] = str(ev.get("result"))
    elif kind == "policy.adopted":
        adopted, commit = ev.get("digest"), ev.get("policy_commit")
        if not isinstance(adopted, str) or not (commit is None or isinstance(commit, str)):
            raise ValueError("policy.adopted without a digest")
        h.adopted_digest, h.adopted_commit, h.adopted_at = adopted, commit, str(ev.get("time"))
    elif kind == "grant.rejected" and name:
        h.rejected.add((name, str(ev.get("reason"))))


def merge(histories: list[History]) -> History:
    """One view of several ledger files (shards, agents): each file is replayed on its own, so a
    grant closed in one shard's file stays open where another shard still holds its access."""
    if len(histories) == 1:
        return histories[0]
    out = History()
    adopted_at = ""
    for h in histories:
        for name, og in h.open.items():
            mine = out.open.setdefault(name, OpenGrant(name))
            mine.keys |= og.keys
            mine.digest = mine.digest or og.digest
            if og.until is not None and (mine.until is None or og.until > mine.until):
                mine.until = og.until
        out.activated.update(h.activated)
        for name, when in h.first_activated.items():
            out.first_activated[name] = min(when, out.first_activated.get(name, when))
        for name, act in h.activations.items():
            prev = out.activations.get(name)
            if prev is None:
                out.activations[name] = act
            else:
                first, other = (act, prev) if act.at < prev.at else (prev, act)
                out.activations[name] = replace(first, breakglass=_either(first.breakglass, other.breakglass))
        out.ended.update(h.ended)
        out.rejected |= h.rejected
        out.mfa.update(h.mfa)
        out.holders.update(h.holders)
        out.holders_until.update(h.holders_until)
        out.delivered |= h.delivered
        if h.adopted_digest is not None and h.adopted_at >= adopted_at:
            out.adopted_digest, out.adopted_commit, adopted_at = h.adopted_digest, h.adopted_commit, h.adopted_at
        out.last_seq = max(out.last_seq, h.last_seq)
        out.ignored += h.ignored
    out.adopted_at = adopted_at
    return out


def restricted(history: History, targets: frozenset[str]) -> History:
    """The part of `history` about these targets (a shard's view); facts about grant names
    (activated, ended, rejected, MFA) and the policy stay whole."""
    out = replace(history, open={}, holders={k: v for k, v in history.holders.items() if k[0] in targets},
                  holders_until={k: v for k, v in history.holders_until.items() if k[0] in targets})
    for name, og in history.open.items():
        keys = {k for k in og.keys if k[0] in targets}
        if keys:
            out.open[name] = OpenGrant(name, og.digest, og.until, keys)
    return out
