"""Policy changes take effect only when the admins of the policy in force approve them (SPEC 2).

Until a proposed policy is approved, a grant is live only where BOTH the approved policy and the
proposed one allow it: restrictions (a person removed, a key revoked, a shorter maxDuration) bite
at once, relaxations wait for the admins. Pure: the caller loads both policies.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from jitpol.model.canonical import policy_message
from jitpol.model.documents import PolicySet
from jitpol.model.refs import Ref
from jitpol.model.sshkey import fingerprint
from jitpol.policy.approvals import Verifier
from jitpol.policy.evaluate import Desired, Evaluation, GrantStatus
from jitpol.policy.people import resolve
from jitpol.policy.root import TrustRoot


@dataclass(frozen=True, slots=True)
class PolicyCheck:
    """Whether the proposed policy (by digest) is approved by the admins of the policy in force."""

    digest: str
    in_force: str | None  # digest of the approved policy; None: no policy adopted yet (bootstrap)
    required: int
    admins: tuple[Ref, ...]
    counted: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    root: str | None = None  # the pinned trust root (describe()); None: trust on first use
    signers: tuple[str, ...] = ()  # fingerprints of the keys whose approvals counted

    @property
    def unchanged(self) -> bool:
        return self.in_force == self.digest

    @property
    def approved(self) -> bool:
        if self.root is not None:  # every adoption, the first included, needs the root's quorum; and
            # so does staying in force: a forged ledger entry can make any digest "unchanged"
            return len(self.counted) >= self.required
        return self.in_force is None or self.unchanged or len(self.counted) >= self.required

    def summary(self) -> str:
        if self.root is not None and self.unchanged and self.approved:
            return f"policy {self.digest[:12]} is in force (signed by {len(self.counted)} key(s) of the {self.root})"
        if self.root is not None:
            head = (f"policy change {self.in_force[:12]} -> {self.digest[:12]}" if self.in_force is not None
                    else f"no policy in force yet; policy {self.digest[:12]}")
            text = f"{head}: {len(self.counted)} of {self.required} approval(s) by keys of the {self.root}"
            if self.approved:
                return text + "; adopted by this run"
            text += ("; until approved (`jitpol approve --policy` with a root key), "
                     + ("grants are live only where both the approved and the proposed policy allow them"
                        if self.in_force is not None else "nothing is granted (revocations go on)"))
            if self.ignored:
                text += "; ignored: " + "; ".join(self.ignored)
            return text
        if self.in_force is None:
            return (f"no policy adopted yet: this run adopts policy {self.digest[:12]} (first run of the ledger; "
                    "no trust root is pinned, so it is trusted on first use: set JITPOL_TRUST_ROOT)")
        if self.unchanged:
            return f"policy {self.digest[:12]} is in force"
        who = ", ".join(str(a) for a in self.admins)
        text = (f"policy change {self.in_force[:12]} -> {self.digest[:12]}: "
                f"{len(self.counted)} of {self.required} admin approval(s) from {who}")
        if self.approved:
            return text + "; adopted by this run"
        text += ("; until approved (`jitpol approve --policy`), grants are live only where both the approved "
                 "and the proposed policy allow them")
        if self.ignored:
            text += "; ignored: " + "; ".join(self.ignored)
        return text


def check_policy(proposed: PolicySet, digest: str, in_force: PolicySet | None, in_force_digest: str | None,
                 verifier: Verifier) -> PolicyCheck:
    """Count the approvals in `proposed.policy_approvals` for `digest` that the admins of
    `in_force` made with their own keys (as the policy in force lists them)."""
    if in_force is None or in_force.config is None or in_force_digest is None:
        return PolicyCheck(digest, None, 0, ())
    cfg = in_force.config
    admins = resolve(cfg.admins, in_force)
    base = PolicyCheck(digest, in_force_digest, cfg.policy_approvals_required, cfg.admins)
    if digest == in_force_digest:
        return base
    ignored: list[str] = []
    todo: list[tuple[str, tuple[bytes, str, str]]] = []
    for ap in sorted(proposed.policy_approvals.values(), key=lambda a: a.name):
        if ap.digest != digest:
            continue  # an approval of another version of the policy
        person = in_force.people.get(ap.by)
        if ap.by not in admins or person is None:
            ignored.append(f"{ap.by}: not an admin of the policy in force")
            continue
        key = next((k for k in person.keys if _fp(k) == ap.key), None)
        if key is None:
            ignored.append(f"{ap.by}: key {ap.key} is not theirs in the policy in force")
            continue
        todo.append((ap.by, (policy_message(digest), ap.signature, key)))
    counted: list[str] = []
    results = verifier.verify_many([t[1] for t in todo]) if todo else []
    for (by, _), ok in zip(todo, results, strict=True):
        if not ok:
            ignored.append(f"{by}: signature does not match policy {digest[:12]}")
        elif by not in counted:
            counted.append(by)
    return replace(base, counted=tuple(sorted(counted)), ignored=tuple(ignored))


def check_policy_root(proposed: PolicySet, digest: str, root: TrustRoot, in_force_digest: str | None,
                      verifier: Verifier) -> PolicyCheck:
    """Count the approvals in `proposed.policy_approvals` for `digest` made with distinct keys of
    the pinned trust `root` (whoever the files name as signer)."""
    base = PolicyCheck(digest, in_force_digest, root.threshold, (), root=root.describe())
    ignored: list[str] = []
    todo: list[tuple[str, str, tuple[bytes, str, str]]] = []
    for ap in sorted(proposed.policy_approvals.values(), key=lambda a: a.name):
        if ap.digest != digest:
            continue
        key = root.key_for(ap.key)
        if key is None:
            ignored.append(f"{ap.by}: key {ap.key} is not a key of the trust root")
            continue
        todo.append((ap.by, ap.key, (policy_message(digest), ap.signature, key)))
    results = verifier.verify_many([t[2] for t in todo]) if todo else []
    counted: dict[str, str] = {}  # fingerprint -> who
    for (by, fp, _), ok in zip(todo, results, strict=True):
        if not ok:
            ignored.append(f"{by}: signature does not match policy {digest[:12]}")
        else:
            counted.setdefault(fp, by)
    return replace(base, counted=tuple(sorted(set(counted.values()))) if len(counted) == len(set(counted.values()))
                   else tuple(f"{who} ({fp})" for fp, who in sorted(counted.items())),
                   signers=tuple(sorted(counted)), ignored=tuple(ignored))


def _fp(key: str) -> str:
    try:
        return fingerprint(key)
    except ValueError:
        return ""


_RANK = {"active": 3, "scheduled": 2, "pending": 1, "rejected": 0, "expired": 0, "revoked": 0}


def combine(approved: Evaluation, proposed: Evaluation, check: PolicyCheck) -> Evaluation:
    """Grants under both policies: each grant gets the less permissive state; assignments are those
    both policies require, until the earlier of the two ends."""
    by_approved = approved.by_name()
    statuses: list[GrantStatus] = []
    for st in proposed.statuses:
        other = by_approved.get(st.name)
        if other is None:
            statuses.append(st)
        elif st.state == "active" and other.state == "active":
            until = min(st.live_until or st.end, other.live_until or other.end)
            statuses.append(replace(st, live_until=until, next_change=until))
        elif _RANK[other.state] < _RANK[st.state]:
            statuses.append(replace(
                other, digest=st.digest,
                reason=f"{other.reason} (under the approved policy; policy change {check.digest[:12]} waits "
                       f"for admin approval)",
            ))
        else:
            statuses.append(st)
    active = {s.name for s in statuses if s.state == "active"}
    desired: dict[tuple[str, str, str, str], Desired] = {}
    for key, want in proposed.desired.items():
        theirs = approved.desired.get(key)
        grants = tuple(g for g in want.grants if g in active)
        if theirs is None or not grants:
            continue
        until = min(want.until, theirs.until)
        # details (delivery and login keys, the privileged opt-in) come from the effective
        # policy's evaluation; an opt-in holds only when both policies give it
        details = tuple(d for d in theirs.details if d[0] != "privileged" or d in want.details)
        desired[key] = replace(want, grants=grants, until=until, details=details,
                               assignment=replace(want.assignment, expires=until))
    return Evaluation(tuple(statuses), desired)
