"""The first three stages of a run, in order: load the repository (jitpol.load), decide what can be
trusted (jitpol.trust: the trust root, the ledger's authentication, the policy in force, the
effective policy) and evaluate the grants under it: the `Prepared` value every later stage reads.
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
from jitpol.ledger.snapshots import read_snapshot
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
from jitpol.policy.approvals import Reviews, Verifier
from jitpol.policy.evaluate import Desired, Evaluation, evaluate
from jitpol.policy.history import History, restricted
from jitpol.policy.restrictions import restrictions
from jitpol.policy.root import ROOT_DIR, TrustRoot
from jitpol.policy.trust import PolicyCheck, combine
from jitpol.scope import AUDIT_DIR, PULL_TYPES, Part
from jitpol.trust.decide import authenticate_run, decide_policy, root_required, untrusted_ledger
from jitpol.trust.history import read_history_safely
from jitpol.trust.ledger import LedgerAuth
from jitpol.trust.reviews import review_approvals
from jitpol.vcs.git import Repo


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
    loaded = load_repository(root)  # stage 1, load
    repo = Repo.find(root)
    commit = repo.head_commit() if repo is not None else None
    digest = loaded.policy_digest if loaded.ok else None  # hashes every document: once per run
    in_force: PolicySet | None = None
    if history.adopted_digest is not None:
        try:
            entries = read_snapshot(root / AUDIT_DIR, history.adopted_digest)  # verified against its digest
            if digest == history.adopted_digest:
                # the repository holds exactly the documents the snapshot holds (the digest covers
                # every one): the policy just loaded is the policy in force, no second build
                in_force = loaded.policy
            else:
                in_force = load_snapshot(entries).policy
        except JitpolError as exc:
            damaged = (*damaged, str(exc))
    in_force_targets = dict(in_force.config.targets) if in_force is not None and in_force.config is not None else {}

    def revocations_only(targets: Mapping[str, Target], *notes: str, effective: PolicySet | None,
                         **more: Any) -> Prepared:
        return Prepared(root, now, loaded, history, None, commit, targets, effective=effective, notes=notes,
                        ended=_restrictions(root, loaded, history, now), **more)

    # stage 2, trust: a problem with the trust root or the ledger adopts and adds nothing, and
    # revocations go on
    auth = authenticate_run(root, env, verifier, damaged)
    if not auth.ledger.trusted:
        lost = untrusted_ledger(root, loaded, auth, verifier, in_force_targets)
        return revocations_only(lost.targets, *lost.notes, effective=None, ledger=auth.ledger, trust=auth.trust,
                                backed=_backed(root, lost.approved, lost.signed, now, verifier, env, lost.targets),
                                keeping=lost.signed, approved=lost.approved)
    uncommitted = _uncommitted(repo) if committed_only else []
    if uncommitted:
        shown = ", ".join(uncommitted[:5]) + (f" and {len(uncommitted) - 5} more" if len(uncommitted) > 5 else "")
        return revocations_only(in_force_targets, (
            f"uncommitted changes to {shown}: the reconciler acts on committed content only (its events name "
            "the commit); commit or discard them: nothing is added until then, revocations go on"),
            effective=in_force, ledger=auth.ledger, trust=auth.trust)
    if not loaded.ok:
        # revocations only; they connect where the policy in force says (an invalid change
        # redirects nothing), or, with nothing in force, where the repository says
        config = in_force.config if in_force is not None else loaded.policy.config
        return revocations_only(dict(config.targets) if config is not None else {}, effective=in_force,
                                ledger=auth.ledger, trust=auth.trust)
    refused = root_required(auth.trust, require_root, env)
    if refused is not None:
        return revocations_only(in_force_targets, refused, effective=in_force, ledger=auth.ledger)
    decision = decide_policy(loaded, history, in_force, auth.trust, verifier, digest)
    notes = (*auth.notes, *decision.notes)
    if decision.effective is None:
        return Prepared(root, now, loaded, history, None, commit, {}, decision.check, notes=notes,
                        trust=auth.trust, ledger=auth.ledger, ended=_restrictions(root, loaded, history, now))
    # stage 3, evaluate: the grants under the effective policy (combined with the proposed one's
    # own evaluation, most restrictive wins, unless the proposed policy is the one in force)
    policy = decision.effective.policy
    targets = dict(policy.config.targets) if policy.config is not None else {}
    # the git host, its token variable and the login -> person mapping: the effective policy's
    reviews = review_approvals(root, policy, now, env)
    proposed = evaluate(loaded.policy, now, history, verifier, reviews)
    if decision.effective.proposed_in_force:
        evaluation = proposed
    else:
        evaluation = combine(evaluate(policy, now, history, verifier, reviews), proposed, decision.check)
    return Prepared(root, now, loaded, history, normalized(evaluation, targets), commit, targets, decision.check,
                    effective=policy, notes=notes, trust=auth.trust, ledger=auth.ledger, reviews=reviews)


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
    """policy.restrictions for this repository: the names every file under grants/ gives,
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
