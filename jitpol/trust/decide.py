"""Stage 2's decisions: may this run trust its ledger and trust root, and which policy decides.

`authenticate_run` pins the trust root and checks the ledger against the reconciler's signed
checkpoints; `untrusted_ledger` says, when either cannot be trusted, where a revocations-only run
connects (only where a policy the reconciler signed or the trust root approved says: an
attacker's ledger lines or an unapproved change redirect nothing); `decide_policy` gives the
policy in force, the proposed policy's check and the effective policy (most restrictive wins).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from jitpol.errors import JitpolError
from jitpol.ledger.snapshots import read_snapshot
from jitpol.load.repository import LoadResult, load_snapshot
from jitpol.model.documents import PolicySet, Target
from jitpol.policy.approvals import Verifier
from jitpol.policy.effective import EffectivePolicy, effective_policy
from jitpol.policy.history import History
from jitpol.policy.root import TrustRoot
from jitpol.policy.trust import PolicyCheck, check_policy, check_policy_root
from jitpol.scope import AUDIT_DIR
from jitpol.trust.history import signed_history
from jitpol.trust.ledger import LedgerAuth, authenticate, ledger_public_key
from jitpol.trust.pinned import ROOT_ENV, TOFU_ENV, load_trust_root, tofu_allowed


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The trust root in force (None: trust on first use) and the ledger's authentication."""

    trust: TrustRoot | None
    ledger: LedgerAuth
    notes: tuple[str, ...]  # the root in force, rotations that did not chain, no ledger key


def authenticate_run(root: Path, env: Mapping[str, str], verifier: Verifier,
                     damaged: tuple[str, ...]) -> Authenticated:
    """The trust root and the reconciler's signed checkpoints; `damaged` (ledger files that did
    not read whole) count as ledger problems. Never raises: a bad pin or a git failure makes the
    ledger untrusted, and revocations go on."""
    trust: TrustRoot | None = None
    notes: list[str] = []
    try:
        trust, notes = load_trust_root(root, env, verifier)
        auth = authenticate(root, ledger_public_key(trust, env), verifier, env,
                            trust.agent_keys if trust is not None else None)
    except JitpolError as exc:
        auth = LedgerAuth(None, (str(exc),), {})
    if damaged:
        auth = LedgerAuth(auth.public_key, (*damaged, *auth.problems), auth.checkpoints, auth.agent_keys)
    if auth.trusted and auth.public_key is None:
        notes.append("the ledger is not authenticated: no ledger key is pinned (ledgerKey in the trust root, or "
                     "$JITPOL_LEDGER_PUBKEY)")
    return Authenticated(trust, auth, tuple(notes))


@dataclass(frozen=True, slots=True)
class Untrusted:
    """A run whose ledger or trust root cannot be trusted: where it connects and why."""

    targets: Mapping[str, Target]
    notes: tuple[str, ...]
    signed: History | None  # only what the reconciler signed (None: no ledger key pinned)
    approved: PolicySet | None  # the repository's policy, if the trust root approved exactly it


def untrusted_ledger(root: Path, loaded: LoadResult, auth: Authenticated, verifier: Verifier,
                     in_force_targets: Mapping[str, Target]) -> Untrusted:
    """Connect only where the policy the signed part of the ledger adopted says, else where the
    policy the trust root approved says; deliver to nobody."""
    signed = signed_history(root, auth.ledger)
    targets = in_force_targets
    if signed is not None and signed.adopted_digest is not None:
        try:
            trusted = load_snapshot(read_snapshot(root / AUDIT_DIR, signed.adopted_digest)).policy
            targets = dict(trusted.config.targets) if trusted.config is not None else targets
        except JitpolError:
            pass
    approved = root_approved(loaded, auth.trust, verifier)
    if not targets and approved is not None and approved.config is not None:
        targets = dict(approved.config.targets)  # the ledger is gone: where the root's policy says
    lost = () if targets else (
        "no policy the reconciler signed or the trust root approved says where the targets are: nothing is "
        "connected to until audit/ is restored from git history" + (
            "" if auth.trust is not None else
            f" (pin a trust root, ${ROOT_ENV}, so a lost ledger cannot hold revocations back)"),)
    notes = (*auth.ledger.problems,
             "the ledger or the trust root cannot be trusted: nothing is adopted or added until this is repaired "
             "(restore audit/ from git history); revocations go on", *lost)
    return Untrusted(targets, notes, signed, approved)


def root_approved(loaded: LoadResult, trust: TrustRoot | None, verifier: Verifier) -> PolicySet | None:
    """The repository's policy when the pinned trust root approved exactly it (its signatures in
    approvals/), whatever the ledger says; else None. Never raises."""
    if trust is None or not loaded.ok:
        return None
    try:
        check = check_policy_root(loaded.policy, loaded.policy_digest, trust, None, verifier)
    except Exception:  # noqa: BLE001 - a policy that cannot be checked is not approved
        return None
    return loaded.policy if check.approved else None


def root_required(trust: TrustRoot | None, require_root: bool, env: Mapping[str, str]) -> str | None:
    """Why this run adopts and adds nothing for want of a trust root (a CI run without one and
    without trust on first use allowed), or None."""
    if trust is not None or not require_root or tofu_allowed(env):
        return None
    return (f"no trust root is pinned (${ROOT_ENV}): a CI run adopts no policy and adds nothing without one; "
            f"set ${ROOT_ENV}, or ${TOFU_ENV}=1 to trust the repository's policy on first use; revocations go on")


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """The proposed policy's check, the policy in force and the effective policy."""

    check: PolicyCheck
    in_force: PolicySet | None  # None when the trust root did not sign the one the ledger names
    notes: tuple[str, ...]
    effective: EffectivePolicy | None  # None: nothing the trust root approved is in force yet


def decide_policy(loaded: LoadResult, history: History, in_force: PolicySet | None, trust: TrustRoot | None,
                  verifier: Verifier, digest: str | None = None) -> PolicyDecision:
    """With a trust root, the policy in force per the ledger counts only with the root's
    signatures on it (approvals/ keeps them): a forged ledger entry cannot put a policy in force.
    Without one, the admins of the policy in force approve the proposed one. `digest`: the
    repository's policy digest when the caller already has it (it hashes every document)."""
    digest = digest if digest is not None else loaded.policy_digest
    notes: list[str] = []
    if trust is not None:
        if in_force is not None:
            prior = check_policy_root(loaded.policy, history.adopted_digest or "", trust, None, verifier)
            if not prior.approved:
                notes.append(f"the policy in force per the ledger ({(history.adopted_digest or '')[:12]}) carries "
                             f"no signatures of the {trust.describe()} in approvals/: it is not trusted")
                in_force = None
        check = check_policy_root(loaded.policy, digest, trust, history.adopted_digest, verifier)
        if not check.approved and in_force is None:  # nothing the root approved is in force yet
            return PolicyDecision(check, None, tuple(notes), None)
    else:
        check = check_policy(loaded.policy, digest, in_force, history.adopted_digest, verifier)
    return PolicyDecision(check, in_force, tuple(notes),
                          effective_policy(loaded.policy, in_force, approved=check.approved))
