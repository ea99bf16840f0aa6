"""The diff at the heart of a run (pure).

- add what active grants need and the target lacks;
- revoke what jitpol manages (the ledger says it granted it, or the target carries jitpol's
  ownership marker) and no active grant backs;
- on resources marked `exclusive: true`, also revoke standing holders no grant backs (drift);
- touch nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from jitpol.model.assignment import Action, Assignment, AssignmentKey, Op
from jitpol.model.canonical import canonical_json
from jitpol.model.documents import PolicySet
from jitpol.policy.evaluate import Desired, GrantStatus
from jitpol.policy.history import History

# models whose assignments can exist on a target before and besides jitpol (memberships, sudo
# rules, cloud roles); ephemeral accounts and checkouts are always jitpol's own
STANDING_MODELS = frozenset({"role-membership", "sudo-rule", "idp-elevation"})

ADD_OP: dict[str, Op] = {"ephemeral-account": "create-account", "credential-checkout": "rotate"}
REMOVE_OP: dict[str, Op] = {"ephemeral-account": "delete-account", "credential-checkout": "rotate"}
# models whose live state is what the ledger recorded, not what a target can show (who knows a
# shared account's current secret): planned by checkout_actions, not by diff
LEDGER_TRACKED: frozenset[str] = frozenset({"credential-checkout"})
# how far the end a target enforces may sit from the grant's live end before a run sets it again
# (both ways: a schedule or a restriction that cuts the window shortens it): targets round ends
# (to the second, a cloud API to its own granularity), and a run must not rewrite them forever
END_SLACK = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Plan:
    actions: tuple[Action, ...]  # every revoking action before any addition
    rejected: tuple[GrantStatus, ...] = ()
    notes: tuple[str, ...] = ()  # e.g. a target that could not be observed
    valid: bool = True  # False: the repository is invalid and only due revocations are planned
    at: datetime | None = None  # the instant it was planned for (its renderings say it)

    @property
    def revocations(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.revoking)

    @property
    def additions(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if not a.revoking)


def exclusive_privileges(policy: PolicySet) -> dict[tuple[str, str, str], str]:
    """(target, model, privilege) -> resource name, for resources with `exclusive: true`."""
    out: dict[tuple[str, str, str], str] = {}
    for res in policy.resources.values():
        if res.exclusive:
            for role in res.roles.values():
                for p in role.grants:
                    out[(res.target, res.model, p)] = res.name
    return out


def covered_by_history(history: History, now: datetime,
                       ended: Mapping[str, str] | None = None) -> set[AssignmentKey]:
    """Assignments that ledger-recorded live intervals still cover at `now` — all that an
    invalid repository may keep — less those of grants a restriction `ended` (grant -> why)."""
    return {
        key
        for og in history.open.values()
        if og.until is not None and og.until > now and og.name not in (ended or {})
        for key in og.keys
    }


def diff(
    desired: Mapping[AssignmentKey, Desired],
    observed: Mapping[str, frozenset[Assignment] | None],
    history: History,
    exclusive: Mapping[tuple[str, str, str], str],
    *,
    keep: Iterable[AssignmentKey] | None = None,
    additions: bool = True,
) -> tuple[Action, ...]:
    """Actions that make targets match `desired`.

    observed[target] is None when the target could not be observed: no additions are planned for
    it, and revocations of what jitpol manages there are planned anyway (they are idempotent).
    `keep`: assignments to leave in place although not desired (invalid repository mode).
    """
    live = _Live.of(desired, observed, keep)
    managed = history.managed()
    revoking, deleting = _unbacked(desired, live, managed)
    actions = [
        *revoking,
        *_orphan_accounts(live, managed, deleting),
        *_unbacked_marked(desired, live, managed),
        *_exclusive_drift(desired, live, managed, exclusive),
        *(_additions(desired, live, managed) if additions else ()),
    ]
    return tuple(sorted(actions, key=lambda a: (not a.revoking, a.target, a.principal, a.assignment.privilege)))


@dataclass(frozen=True, slots=True)
class _Live:
    """What the observed targets hold, as the diff reads it."""

    keep: set[AssignmentKey]
    present: dict[str, set[AssignmentKey]]  # per observed target (unobserved targets absent)
    wanted_accounts: set[tuple[str, str]]  # (target, account) an ephemeral account must exist for
    accounts: dict[tuple[str, str], AssignmentKey]  # ephemeral accounts found, by (target, account)
    owned: set[AssignmentKey]  # carrying jitpol's ownership marker
    ends: dict[AssignmentKey, datetime | None]  # the end each target enforces

    @classmethod
    def of(cls, desired: Mapping[AssignmentKey, Desired], observed: Mapping[str, frozenset[Assignment] | None],
           keep: Iterable[AssignmentKey] | None) -> _Live:
        keep_set = set(keep or ())
        present = {t: {a.key for a in obs} for t, obs in observed.items() if obs is not None}
        found = [a for obs in observed.values() if obs is not None for a in obs]
        return cls(
            keep_set, present,
            # an ephemeral account is one object, whatever its groups drifted to: matched by name
            wanted_accounts={(k[0], k[2]) for k in (*desired, *keep_set) if k[1] == "ephemeral-account"},
            accounts={(k[0], k[2]): k for keys in present.values() for k in keys if k[1] == "ephemeral-account"},
            owned={a.key for a in found if a.owned},
            ends={a.key: a.expires for a in found},
        )


def _unbacked(desired: Mapping[AssignmentKey, Desired], live: _Live,
              managed: Mapping[AssignmentKey, set[str]]) -> tuple[list[Action], set[tuple[str, str]]]:
    """Revocations of what the ledger says jitpol manages and no active grant backs; and the
    ephemeral accounts (target, account) they delete."""
    actions: list[Action] = []
    deleting: set[tuple[str, str]] = set()
    for key, backers in sorted(managed.items()):
        if key in desired or key in live.keep or key[1] in LEDGER_TRACKED:
            continue
        target, model, principal, _privilege = key
        if model == "ephemeral-account":
            if (target, principal) in live.wanted_accounts or (target, principal) in deleting:
                continue
            if target in live.present:
                if (target, principal) not in live.accounts:
                    continue  # already gone
                key = live.accounts[(target, principal)]
            deleting.add((target, principal))
        else:
            seen = live.present.get(target)
            if seen is not None and key not in seen:
                continue  # already gone; the run records the grant's end
        actions.append(Action(
            REMOVE_OP.get(model, "revoke"), Assignment(*key), resource="", grants=tuple(sorted(backers)),
            reason=f"no active grant backs it (was: {', '.join(sorted(backers))})",
        ))
    return actions, deleting


def _orphan_accounts(live: _Live, managed: Mapping[AssignmentKey, set[str]],
                     deleting: set[tuple[str, str]]) -> list[Action]:
    """The connector reports only accounts carrying jitpol's marker: one no grant and no ledger
    entry backs (a lost ledger, a copied repository) is an orphan, removed."""
    actions: list[Action] = []
    for (target, principal), key in sorted(live.accounts.items()):
        if (target, principal) in live.wanted_accounts or (target, principal) in deleting or key in managed:
            continue
        if any(k[0] == target and k[1] == "ephemeral-account" and k[2] == principal for k in managed):
            continue
        actions.append(Action(
            "delete-account", Assignment(*key), resource="", grants=(),
            reason="an account marked as jitpol's that no grant or ledger entry backs", drift=True,
        ))
    return actions


def _unbacked_marked(desired: Mapping[AssignmentKey, Desired], live: _Live,
                     managed: Mapping[AssignmentKey, set[str]]) -> list[Action]:
    """Memberships, rules and cloud grants carrying jitpol's marker (Assignment.owned) that no
    grant and no ledger entry backs: jitpol gave them (a lost or untrusted ledger, a run killed
    before it recorded), so jitpol takes them away; unmarked standing access is never touched."""
    return [
        Action(REMOVE_OP.get(key[1], "revoke"), Assignment(*key), resource="", grants=(),
               reason="carries jitpol's ownership marker but no grant or ledger entry backs it", drift=True)
        for key in sorted(live.owned)
        if not (key in desired or key in managed or key in live.keep or key[1] == "ephemeral-account"
                or key[1] in LEDGER_TRACKED)
    ]


def _exclusive_drift(desired: Mapping[AssignmentKey, Desired], live: _Live, managed: Mapping[AssignmentKey, set[str]],
                     exclusive: Mapping[tuple[str, str, str], str]) -> list[Action]:
    """Standing access no grant backs on a resource marked `exclusive: true`: drift, revoked."""
    actions: list[Action] = []
    for _target, keys in sorted(live.present.items()):
        for key in sorted(keys):
            if (key in desired or key in managed or key in live.keep or key in live.owned
                    or key[1] == "ephemeral-account"):
                continue
            res = exclusive.get((key[0], key[1], key[3]))
            if res is None:
                continue
            actions.append(Action(
                REMOVE_OP.get(key[1], "revoke"), Assignment(*key), resource=res, grants=(),
                reason=f"standing access on exclusive resource {res} that no grant backs", drift=True,
            ))
    return actions


def _additions(desired: Mapping[AssignmentKey, Desired], live: _Live,
               managed: Mapping[AssignmentKey, set[str]]) -> list[Action]:
    """What active grants need and observed targets lack, and jitpol's own ends the target
    enforces that sit off the grant's live end (moved either way)."""
    actions: list[Action] = []
    for key, want in sorted(desired.items()):
        seen = live.present.get(key[0])
        if seen is None or key[1] in LEDGER_TRACKED:
            continue
        if key in seen:
            enforced = live.ends.get(key)
            if enforced is None or abs(enforced - want.until) <= END_SLACK:
                continue
            if key not in live.owned and key not in managed:
                continue  # standing access someone else gave (another PAM tool's TTL): its end is theirs
            verb = "extend" if enforced < want.until else "shorten"
            reason = f"{verb} the end the target enforces to {want.until:%Y-%m-%dT%H:%M:%SZ}"
        else:
            reason = f"grant {', '.join(want.grants)} is active"
        extending = key in seen  # "extend": the end moves (either way), nothing else changes
        actions.append(Action(
            ADD_OP.get(key[1], "grant"), want.assignment, resource=want.resource, grants=want.grants,
            until=want.until, reason=reason,
            # an extension keeps the account's delivered secret: no new one is issued
            details=tuple(sorted({**dict(want.details), "mode": "extend"}.items())) if extending
            else want.details,
        ))
    return actions


def checkout_actions(
    desired: Mapping[AssignmentKey, Desired], history: History, *, keep: Iterable[str] | None = None
) -> tuple[Action, ...]:
    """Rotations of shared accounts (credential-checkout) whose set of holders changes: a new
    secret for the new holders, or for nobody when the last holder's window ends; and for the
    same holders when their live end moved from the one the ledger recorded at the last rotation.
    `keep`: in invalid-repository mode, the grants that may go on holding (from the ledger)."""
    wanted: dict[tuple[str, str], Desired] = {}
    for key, entry in desired.items():
        if key[1] == "credential-checkout":
            wanted[(key[0], key[2])] = entry
    actions: list[Action] = []
    keep_set = set(keep) if keep is not None else None
    for target, account in sorted(set(wanted) | set(history.holders)):
        have = history.holders.get((target, account), ())
        want = wanted.get((target, account))
        if keep_set is not None:
            holders = tuple(g for g in have if g in keep_set)
        else:
            holders = tuple(sorted(want.grants)) if want is not None else ()
        until = want.until if want is not None and holders else None
        if holders == have:
            # the same holders, but their live end moved (a schedule or a restriction cut it, an
            # extension lengthened it): the target's end follows, with a new secret set to end
            # then (the only way every target type moves it); an end the ledger did not record
            # (older runs) moves nothing
            recorded = history.holders_until.get((target, account))
            if keep_set is not None or until is None or recorded is None or abs(recorded - until) <= END_SLACK:
                continue
            reason = (f"the checkout by {', '.join(holders)} now ends {until:%Y-%m-%dT%H:%M:%SZ} (was "
                      f"{recorded:%Y-%m-%dT%H:%M:%SZ}): new secret, the end the target enforces follows")
        else:
            reason = (f"new secret for {', '.join(holders)}" if holders
                      else f"checkout by {', '.join(have)} ended: rotate to a secret nobody holds")
        actions.append(Action(
            "rotate", Assignment(target, "credential-checkout", account, canonical_json(list(holders))),
            resource=want.resource if want is not None else "", grants=holders, until=until, reason=reason,
            details=want.details if want is not None and holders else (),
        ))
    return tuple(actions)
