"""The first stages of a run: load the repository, decide what can be trusted (the trust root, the
ledger's authentication, the policy in force, the effective policy) and evaluate the grants.
A problem with any of it adopts and adds nothing; revocations go on (revocations-only runs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from jitpol.connectors import registry
from jitpol.errors import JitpolError
from jitpol.execute.ledgerauth import LedgerAuth, authenticate, ledger_public_key
from jitpol.execute.reviews import review_approvals
from jitpol.execute.scope import AUDIT_DIR, PULL_TYPES, Part
from jitpol.execute.trustroot import ROOT_ENV, TOFU_ENV, load_trust_root, tofu_allowed
from jitpol.ledger.snapshots import read_snapshot
from jitpol.ledger.store import Ledger, ledger_files
from jitpol.load.repository import (
    CONFIG_FILE,
    LAYOUT,
    TEMPLATE_DIR,
    Diagnostic,
    LoadResult,
    load_repository,
    load_snapshot,
)
from jitpol.load.yamlstrict import load_yaml_file
from jitpol.model.assignment import AssignmentKey
from jitpol.model.documents import PolicySet, Target
from jitpol.plan.diff import (
    restrictions,
)
from jitpol.policy.approvals import Reviews, Verifier
from jitpol.policy.effective import effective_policy
from jitpol.policy.evaluate import Desired, Evaluation, evaluate
from jitpol.policy.history import History, merge, replay, restricted
from jitpol.policy.root import ROOT_DIR, TrustRoot
from jitpol.policy.trust import PolicyCheck, check_policy, check_policy_root, combine
from jitpol.vcs.git import Repo


def read_history(root: Path) -> History:
    """Every ledger file under audit/ (the main one, shards, agents), each chain verified.
    Raises LedgerBroken if one does not verify (see read_history_safely)."""
    files = ledger_files(root / AUDIT_DIR)
    return merge([replay(Ledger(f).events()) for f in files]) if files else History()


def read_history_safely(root: Path) -> tuple[History, tuple[str, ...]]:
    """Like read_history, but a damaged file never stops the run: what can still be read of it
    (Ledger.readable), and the problems, which make the run adopt and add nothing."""
    files = ledger_files(root / AUDIT_DIR)
    parts: list[History] = []
    problems: list[str] = []
    for f in files:
        events, problem = Ledger(f).readable()
        replayed = replay(events)
        parts.append(replayed)
        if problem is not None:
            problems.append(f"{AUDIT_DIR.as_posix()}/{f.name}:{problem.line}: {problem.message}")
        # a line jitpol would not write (the chain cannot tell): ignored, and the ledger damaged
        problems += [f"{AUDIT_DIR.as_posix()}/{f.name}:{seq}: not an event jitpol writes ({why}); ignored"
                     for seq, why in replayed.ignored]
    return (merge(parts) if parts else History()), tuple(problems)


@dataclass(frozen=True, slots=True)
class Prepared:
    """Everything a run knows before touching a target."""

    root: Path
    now: datetime
    loaded: LoadResult
    history: History  # restricted to this run's targets when sharded
    evaluation: Evaluation | None  # None when the repository is invalid
    policy_commit: str | None
    targets: Mapping[str, Target]  # targets the run may use (from the config, even if invalid)
    policy: PolicyCheck | None = None  # None when the repository is invalid
    shard: Part | None = None
    # the one policy every decision reads (policy.effective): the proposed policy only once the
    # admins approved it; None when the repository is invalid and nothing is in force
    effective: PolicySet | None = None
    notes: tuple[str, ...] = ()  # about trust: the root in force, rotations that did not chain
    trust: TrustRoot | None = None  # the pinned trust root in force; None: trust on first use
    ledger: LedgerAuth | None = None  # the ledger checked against the reconciler's checkpoints
    reviews: Mapping[str, Reviews] = field(default_factory=dict)  # grant -> approvals proven by reviews
    # revocations-only runs: grants whose recorded interval a restriction ends now (grant -> why)
    ended: Mapping[str, str] = field(default_factory=dict)
    # revocations-only runs on an untrusted or missing ledger: what the policy the trust root
    # approved (as committed, exactly this digest) gives now; kept, so losing the ledger takes
    # away only what no valid grant backs (markers find the rest)
    backed: frozenset[AssignmentKey] = frozenset()
    # ... and the history whose recorded intervals still keep access: only what the reconciler
    # signed (None: all of `history`), so lines appended without its key prolong nothing
    keeping: History | None = None
    # ... and the policy the trust root approved, whose resources say which privileges to observe
    # for jitpol's markers (the ledger that would name them is lost)
    approved: PolicySet | None = None

    @property
    def valid(self) -> bool:
        return self.evaluation is not None

    @property
    def diagnostics(self) -> tuple[Diagnostic, ...]:
        return self.loaded.diagnostics

    @property
    def decided(self) -> PolicySet:
        """The effective policy, or an empty one (an invalid repository with nothing in force):
        who may hold, approve, receive or be asked anything."""
        return self.effective if self.effective is not None else PolicySet.empty()


def prepare(root: Path, now: datetime, verifier: Verifier, env: Mapping[str, str] | None = None,
            shard: Part | None = None, *, require_root: bool = False, committed_only: bool = False) -> Prepared:
    """Load and evaluate under the policy in force; with `shard`, only that part of the targets.
    A central run (no shard) never applies pull-mode (`local`) targets: their agents do.
    Raises LedgerBroken if a ledger file (or the snapshot of the adopted policy) does not verify."""
    history, damaged = read_history_safely(root)
    prep = _prepare(root, now, verifier, env, history, require_root, damaged, committed_only)
    if shard is None:
        if not any(t.type in PULL_TYPES for t in prep.targets.values()):
            return prep
        mine = {name: t for name, t in prep.targets.items() if t.type not in PULL_TYPES}
    else:
        mine = {name: t for name, t in prep.targets.items() if shard.owns(t)}
    ev = prep.evaluation
    if ev is not None:
        ev = replace(ev, desired={k: d for k, d in ev.desired.items() if k[0] in mine})
    return replace(prep, targets=mine, evaluation=ev, history=restricted(prep.history, frozenset(mine)),
                   shard=shard)


def _prepare(root: Path, now: datetime, verifier: Verifier, env: Mapping[str, str] | None,
             history: History, require_root: bool = False, damaged: tuple[str, ...] = (),
             committed_only: bool = False) -> Prepared:
    env = env or {}
    loaded = load_repository(root)
    repo = Repo.find(root)
    commit = repo.head_commit() if repo is not None else None
    in_force: PolicySet | None = None
    if history.adopted_digest is not None:
        try:
            in_force = load_snapshot(read_snapshot(root / AUDIT_DIR, history.adopted_digest)).policy
        except JitpolError as exc:
            damaged = (*damaged, str(exc))
    in_force_targets = dict(in_force.config.targets) if in_force is not None and in_force.config is not None else {}

    def revocations_only(targets: Mapping[str, Target], *notes: str, effective: PolicySet | None,
                         **more: Any) -> Prepared:
        return Prepared(root, now, loaded, history, None, commit, targets, effective=effective, notes=notes,
                        ended=_restrictions(root, loaded, history, now), **more)

    # the trust root and the reconciler's signed checkpoints: a problem with either adopts and
    # adds nothing, and revocations go on
    trust: TrustRoot | None = None
    notes: list[str] = []
    try:
        trust, notes = load_trust_root(root, env, verifier)
        auth = authenticate(root, ledger_public_key(trust, env), verifier, env,
                            trust.agent_keys if trust is not None else None)
    except JitpolError as exc:  # a bad pin, a git failure: nothing can be trusted, revocations go on
        auth = LedgerAuth(None, (str(exc),), {})
    if damaged:
        auth = LedgerAuth(auth.public_key, (*damaged, *auth.problems), auth.checkpoints, auth.agent_keys)
    if not auth.trusted:
        # connect only where the policy the signed part of the ledger adopted says (an attacker's
        # ledger entries redirect nothing); deliver to nobody
        signed = _signed_history(root, auth)
        targets = in_force_targets
        if signed is not None and signed.adopted_digest is not None:
            try:
                trusted = load_snapshot(read_snapshot(root / AUDIT_DIR, signed.adopted_digest)).policy
                targets = dict(trusted.config.targets) if trusted.config is not None else targets
            except JitpolError:
                pass
        root_policy = _root_approved(loaded, trust, verifier)
        if not targets and root_policy is not None and root_policy.config is not None:
            targets = dict(root_policy.config.targets)  # the ledger is gone: where the root's policy says
        lost = () if targets else (
            "no policy the reconciler signed or the trust root approved says where the targets are: nothing is "
            "connected to until audit/ is restored from git history" + ("" if trust is not None else
                                                                        f" (pin a trust root, ${ROOT_ENV}, so a lost "
                                                                        "ledger cannot hold revocations back)"),)
        return revocations_only(targets, *auth.problems,
                                "the ledger or the trust root cannot be trusted: nothing is adopted or added until "
                                "this is repaired (restore audit/ from git history); revocations go on", *lost,
                                effective=None, ledger=auth, trust=trust,  # deliver to nobody
                                backed=_backed(root, root_policy, signed, now, verifier, env, targets),
                                keeping=signed, approved=root_policy)
    if auth.public_key is None:
        notes.append("the ledger is not authenticated: no ledger key is pinned (ledgerKey in the trust root, or "
                     "$JITPOL_LEDGER_PUBKEY)")
    uncommitted = _uncommitted(repo) if committed_only else []
    if uncommitted:
        shown = ", ".join(uncommitted[:5]) + (f" and {len(uncommitted) - 5} more" if len(uncommitted) > 5 else "")
        return revocations_only(in_force_targets, (
            f"uncommitted changes to {shown}: the reconciler acts on committed content only (its events name "
            "the commit); commit or discard them: nothing is added until then, revocations go on"),
            effective=in_force, ledger=auth, trust=trust)
    if not loaded.ok:
        # revocations only; they connect where the policy in force says (an invalid change
        # redirects nothing), or, with nothing in force, where the repository says
        config = in_force.config if in_force is not None else loaded.policy.config
        return revocations_only(dict(config.targets) if config is not None else {}, effective=in_force,
                                ledger=auth, trust=trust)
    digest = loaded.policy_digest
    if trust is None and require_root and not tofu_allowed(env):
        return revocations_only(in_force_targets, (
            f"no trust root is pinned (${ROOT_ENV}): a CI run adopts no policy and adds nothing without one; "
            f"set ${ROOT_ENV}, or ${TOFU_ENV}=1 to trust the repository's policy on first use; revocations go on"),
            effective=in_force, ledger=auth)
    if trust is not None:
        if in_force is not None:
            # the policy the ledger says is in force counts only with the root's signatures on it
            # (approvals/ keeps them): a forged ledger entry cannot put a policy in force
            prior = check_policy_root(loaded.policy, history.adopted_digest or "", trust, None, verifier)
            if not prior.approved:
                notes.append(f"the policy in force per the ledger ({(history.adopted_digest or '')[:12]}) carries "
                             f"no signatures of the {trust.describe()} in approvals/: it is not trusted")
                in_force = None
        check = check_policy_root(loaded.policy, digest, trust, history.adopted_digest, verifier)
        if not check.approved and in_force is None:  # nothing the root approved is in force yet
            return Prepared(root, now, loaded, history, None, commit, {}, check, notes=tuple(notes), trust=trust,
                            ledger=auth, ended=_restrictions(root, loaded, history, now))
    else:
        check = check_policy(loaded.policy, digest, in_force, history.adopted_digest, verifier)
    eff = effective_policy(loaded.policy, in_force, approved=check.approved)
    policy = eff.policy
    targets = dict(policy.config.targets) if policy.config is not None else {}
    # the git host, its token variable and the login -> person mapping: the effective policy's
    reviews = review_approvals(root, policy, now, env)
    proposed = evaluate(loaded.policy, now, history, verifier, reviews)
    if eff.proposed_in_force:
        return Prepared(root, now, loaded, history, normalized(proposed, targets), commit, targets, check,
                        effective=policy, notes=tuple(notes), trust=trust, ledger=auth, reviews=reviews)
    approved = evaluate(policy, now, history, verifier, reviews)
    both = combine(approved, proposed, check)
    return Prepared(root, now, loaded, history, normalized(both, targets), commit, targets, check,
                    effective=policy, notes=tuple(notes), trust=trust, ledger=auth, reviews=reviews)


READ_DIRS = frozenset({*LAYOUT, TEMPLATE_DIR, ROOT_DIR})  # the folders a run reads policy from


def _uncommitted(repo: Repo | None) -> list[str]:
    """Files a run reads (jitpol.yaml, the policy folders, templates, trust/) that differ from
    HEAD or that git does not track (ignored files aside); [] outside git."""
    if repo is None:
        return []
    try:
        return [path for _, path in repo.changed_paths([CONFIG_FILE, *sorted(READ_DIRS)])]
    except JitpolError as exc:  # git cannot say: treat everything as uncommitted (adds nothing)
        return [f"(git status failed: {exc})"]


def _restrictions(root: Path, loaded: LoadResult, history: History, now: datetime) -> dict[str, str]:
    """plan.diff.restrictions for this repository: the names every file under grants/ gives,
    read leniently from the files that are not valid (their requester too, when readable).
    Never raises: restrictions only end access early, and computing them must not stop the
    revocations that are due anyway."""
    try:
        return _restrictions_of(root, loaded, history, now)
    except Exception:  # noqa: BLE001 - see the docstring
        return {}


def _restrictions_of(root: Path, loaded: LoadResult, history: History, now: datetime) -> dict[str, str]:
    named: dict[str, str | None] = {name: g.requester for name, g in loaded.policy.grants.items()}
    bad = sorted({d.path for d in loaded.diagnostics if d.path.startswith("grants/")})
    for rel in bad:
        path = root / rel
        if path.is_symlink() or not path.is_file():
            continue
        try:
            data = load_yaml_file(path, display_path=rel).data
        except JitpolError:
            continue
        meta = data.get("metadata") if isinstance(data, dict) else None
        spec = data.get("spec") if isinstance(data, dict) else None
        name = meta.get("name") if isinstance(meta, dict) else None
        if isinstance(name, str):
            requester = spec.get("requester") if isinstance(spec, dict) else None
            named[name] = requester if isinstance(requester, str) else None
    if any(d.path.startswith("grants/") and not (root / d.path).is_file() for d in loaded.diagnostics):
        return {}  # a grants/ problem that is not a readable file: "deleted" cannot be told apart
    return restrictions(history, loaded.policy, named, now)


def _root_approved(loaded: LoadResult, trust: TrustRoot | None, verifier: Verifier) -> PolicySet | None:
    """The repository's policy when the pinned trust root approved exactly it (its signatures in
    approvals/), whatever the ledger says; else None. Never raises."""
    if trust is None or not loaded.ok:
        return None
    try:
        check = check_policy_root(loaded.policy, loaded.policy_digest, trust, None, verifier)
    except Exception:  # noqa: BLE001 - a policy that cannot be checked is not approved
        return None
    return loaded.policy if check.approved else None


def _backed(root: Path, approved: PolicySet | None, signed: History | None, now: datetime, verifier: Verifier,
            env: Mapping[str, str], targets: Mapping[str, Target]) -> frozenset[AssignmentKey]:
    """With the ledger untrusted: the assignments a valid grant backs now under the policy the
    trust root approved, evaluated against what the reconciler signed (an attacker's ledger lines
    count for nothing); nothing without such a policy. Never raises: this only keeps access, and
    must not stop a revocation."""
    if approved is None:
        return frozenset()
    try:
        history = signed if signed is not None else History()
        ev = evaluate(approved, now, history, verifier, review_approvals(root, approved, now, env))
        return frozenset(normalized(ev, targets).desired)
    except Exception:  # noqa: BLE001 - see the docstring
        return frozenset()


def _signed_history(root: Path, auth: LedgerAuth) -> History | None:
    """The history of only what the reconciler signed (each file's checkpointed prefix); None
    when no ledger key is pinned."""
    if auth.public_key is None:
        return None
    parts = []
    for name, cp in auth.checkpoints.items():
        try:
            # what still verifies of it (a damaged tail must not hide the signed prefix)
            parts.append(replay(Ledger(root / AUDIT_DIR / name).readable()[0][:cp.lines]))
        except JitpolError:
            continue
    return merge(parts) if parts else History()


def normalized(evaluation: Evaluation, targets: Mapping[str, Target]) -> Evaluation:
    """Desired assignments with principals in the form their target reports them (see
    registry.PRINCIPAL_FORMS), so desired and observed compare equal."""
    forms = {name: registry.principal_form(t.type) for name, t in targets.items()}
    if not any(forms.values()):
        return evaluation
    desired: dict[AssignmentKey, Desired] = {}
    for key, want in evaluation.desired.items():
        form = forms.get(key[0])
        if form is None:
            desired[key] = want
            continue
        try:
            principal = form(key[2], key[3])
        except JitpolError:
            principal = key[2]  # the connector reports the problem when it applies
        assignment = replace(want.assignment, principal=principal)
        desired[assignment.key] = replace(want, assignment=assignment)
    return replace(evaluation, desired=desired)
