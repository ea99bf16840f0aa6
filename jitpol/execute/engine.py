"""One reconcile run: load -> evaluate -> observe -> plan -> execute -> ledger.

Level-triggered: every run recomputes everything from (repository, now, live state, ledger), so a
run that died half-way is finished by the next one. Revocations never wait for anything: an
invalid repository, an unreachable target or a failed addition only stops additions.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from jitpol.clock import Clock
from jitpol.connectors import registry
from jitpol.connectors.base import Connector
from jitpol.errors import InvalidInput, JitpolError, TargetError
from jitpol.execute.ledgerauth import LedgerAuth, authenticate, ledger_public_key
from jitpol.execute.reviews import review_approvals
from jitpol.execute.trustroot import ROOT_ENV, TOFU_ENV, load_trust_root, tofu_allowed
from jitpol.ledger.events import (
    AccountCreated,
    AccountDeleted,
    ActionFailed,
    ActionStarted,
    CredentialRotated,
    DriftCorrected,
    GrantActivated,
    GrantRejected,
    GrantRevoked,
    PolicyAdopted,
    PolicyApproval,
    TrustRootRef,
    assignment_ref,
)
from jitpol.ledger.snapshots import read_snapshot, write_snapshot
from jitpol.ledger.store import Ledger, ledger_files
from jitpol.load.repository import (
    CONFIG_FILE,
    LAYOUT,
    TEMPLATE_DIR,
    Diagnostic,
    LoadResult,
    load_repository,
    load_snapshot,
    snapshot_entries,
)
from jitpol.load.yamlstrict import load_yaml_file
from jitpol.model.assignment import Action, Assignment, AssignmentKey, Outcome
from jitpol.model.documents import Grant, PolicySet, Target
from jitpol.model.times import utc_text
from jitpol.plan.diff import (
    Plan,
    checkout_actions,
    covered_by_history,
    diff,
    exclusive_privileges,
    restrictions,
    scopes,
)
from jitpol.policy.approvals import Reviews, Verifier
from jitpol.policy.effective import effective_policy
from jitpol.policy.evaluate import Desired, Evaluation, GrantStatus, evaluate
from jitpol.policy.history import History, merge, replay, restricted
from jitpol.policy.root import ROOT_DIR, TrustRoot
from jitpol.policy.trust import PolicyCheck, check_policy, check_policy_root, combine
from jitpol.vcs.git import Repo

AUDIT_DIR = Path("audit")
LEDGER_PATH = AUDIT_DIR / "ledger.jsonl"
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Shard:
    """Part K of N of the targets, chosen by a stable hash of the target name, so N CI jobs can
    reconcile in parallel; each appends to its own ledger file."""

    k: int
    n: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        k, sep, n = text.partition("/")
        if not sep or not k.isdigit() or not n.isdigit() or not 1 <= int(k) <= int(n) <= 256:
            raise InvalidInput(f"--shard {text!r}: write K/N with 1 <= K <= N <= 256, e.g. 2/4")
        return cls(int(k), int(n))

    def owns(self, target: Target) -> bool:
        return (target.type not in PULL_TYPES
                and int(hashlib.sha256(target.name.encode()).hexdigest(), 16) % self.n == self.k - 1)

    @property
    def ledger(self) -> Path:
        return AUDIT_DIR / f"ledger-{self.k}-of-{self.n}.jsonl"

    @property
    def lock_scope(self) -> str:
        return f"{self.k}-of-{self.n}"

    @property
    def records_rejections(self) -> bool:
        return self.k == 1  # one shard records them, so N jobs do not record each N times


# target types applied by `jitpol agent` on the endpoint itself, never by a central run
PULL_TYPES: frozenset[str] = frozenset({"local"})


@dataclass(frozen=True, slots=True)
class HostScope:
    """The targets an endpoint's own agent applies: `local` targets naming this host."""

    host: str

    def owns(self, target: Target) -> bool:
        return target.type in PULL_TYPES and str(target.settings.get("hostname", "")).lower() == self.host.lower()

    @property
    def ledger(self) -> Path:
        return AUDIT_DIR / f"agent-{self.host}.jsonl"

    @property
    def lock_scope(self) -> str:
        return f"agent-{self.host}"

    @property
    def records_rejections(self) -> bool:
        return False


class Part(Protocol):
    """Which targets a run applies and where it records: a shard, an agent's host."""

    def owns(self, target: Target) -> bool: ...

    @property
    def ledger(self) -> Path: ...

    @property
    def lock_scope(self) -> str: ...

    @property
    def records_rejections(self) -> bool: ...


def ledger_path(shard: Part | None) -> Path:
    return shard.ledger if shard is not None else LEDGER_PATH


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


def key_dict(key: AssignmentKey) -> dict[str, str]:
    return {"target": key[0], "model": key[1], "principal": key[2], "privilege": key[3]}


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


def policy_events(prep: Prepared) -> list[Mapping[str, Any]]:
    """`policy.adopted` when this run puts a new policy in force (and stores its snapshot)."""
    check = prep.policy
    if check is None or check.unchanged or not check.approved:
        return []
    write_snapshot(prep.root / AUDIT_DIR, check.digest, snapshot_entries(prep.loaded))
    approvals = [
        PolicyApproval(by=a.by, key=a.key) for a in prep.loaded.policy.policy_approvals.values()
        if a.digest == check.digest and ((a.key in check.signers) if check.root else (a.by in check.counted))
    ]
    # who could approve: the root in force, by version and digest (None: trusted on first use /
    # by the admins of the policy in force)
    root = (TrustRootRef(version=prep.trust.version, digest=prep.trust.digest, signers=list(check.signers))
            if prep.trust is not None else None)
    return [PolicyAdopted(event="policy.adopted", grant=None, digest=check.digest, previous=check.in_force,
                          bootstrap=check.in_force is None, approvals=approvals, summary=check.summary(),
                          trust_root=root)]


@dataclass(slots=True)
class Connections:
    """Connectors opened lazily, one per target, closed together."""

    targets: Mapping[str, Target]
    env: Mapping[str, str]
    # the run's time (`--at`), for the connectors that read a time of their own (Azure PIM
    # schedules); None: they read the system clock
    clock: Clock | None = None
    _open: dict[str, Connector] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, name: str) -> Connector:
        with self._lock:
            if name not in self._open:
                target = self.targets.get(name)
                if target is None:
                    raise TargetError(f"target {name} is not configured in jitpol.yaml")
                self._open[name] = registry.create(name, target.type, target.settings, self.env,
                                                   clock=self.clock)
            return self._open[name]

    def close(self) -> None:
        for c in self._open.values():
            c.close()
        self._open.clear()


@dataclass(frozen=True, slots=True)
class Observation:
    assignments: Mapping[str, frozenset[Assignment] | None]  # None: could not observe
    errors: Mapping[str, str]


def observe(prep: Prepared, conns: Connections, progress: Progress | None = None) -> Observation:
    """Read live state of every target the policy or the ledger involves, targets in parallel."""
    # an invalid or untrusted run observes too what a trusted policy names (read-only): marked
    # access on those privileges is found even where the ledger does not name it
    policy = prep.effective if prep.valid or prep.effective is not None else prep.approved
    by_target: dict[str, list[Any]] = {}
    for (target, _model), scope in scopes(policy, prep.history).items():
        if target in prep.targets:  # not another shard's, nor a target only an unapproved change adds
            by_target.setdefault(target, []).append(scope)

    def one(target: str) -> tuple[str, frozenset[Assignment] | None, str | None]:
        try:
            found: set[Assignment] = set()
            conn = conns.get(target)
            for scope in by_target[target]:
                found |= conn.observe(scope)
            return target, frozenset(found), None
        except JitpolError as exc:
            return target, None, str(exc)

    results: dict[str, frozenset[Assignment] | None] = {}
    errors: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(by_target)))) as pool:
        for target, found, err in pool.map(one, sorted(by_target)):
            results[target] = found
            if err is not None:
                errors[target] = err
            if progress:
                progress(f"observed {target}" + (f": {err}" if err else f" ({len(found or ())} holders)"))
    return Observation(results, errors)


def make_plan(prep: Prepared, obs: Observation) -> Plan:
    """The plan for this run (pure given its inputs)."""
    notes = [*prep.notes, *(f"target {t} could not be observed: {e}" for t, e in sorted(obs.errors.items()))]
    if prep.policy is not None and not prep.policy.unchanged:
        notes.insert(0, prep.policy.summary())
    if prep.evaluation is None:
        keeping = prep.history if prep.keeping is None else prep.keeping
        covered = covered_by_history(keeping, prep.now, prep.ended) | prep.backed
        actions = diff({}, obs.assignments, prep.history, {}, keep=covered, additions=False)
        live = {g for g, og in prep.history.open.items()
                if og.until is not None and og.until > prep.now and g not in prep.ended}
        actions += checkout_actions({}, prep.history, keep=live)
        if not prep.loaded.ok:
            notes.insert(0, "repository is invalid: only revocations that are due are planned, nothing is added")
        else:
            notes.append("no approved policy is in force: only revocations that are due are planned, nothing is added")
        return Plan(_ordered(actions), (), tuple(notes), valid=False, at=prep.now)
    policy = prep.effective
    assert policy is not None  # a valid repository always has one
    desired = prep.evaluation.desired
    notes += _standing_notes(desired, obs, prep.history, exclusive_privileges(policy))
    actions = diff(desired, obs.assignments, prep.history, exclusive_privileges(policy))
    actions += checkout_actions(desired, prep.history)
    actions += _redeliveries(prep, obs)
    actions = tuple(_with_resource(a, policy) for a in _ordered(actions))
    rejected = tuple(s for s in prep.evaluation.statuses if s.state == "rejected")
    return Plan(actions, rejected, tuple(notes), at=prep.now)


def _standing_notes(desired: Mapping[AssignmentKey, Desired], obs: Observation, history: History,
                    exclusive: Mapping[tuple[str, str, str], str], limit: int = 20) -> list[str]:
    """Standing access on privileges jitpol manages that no grant backs and jitpol did not give:
    reported (it is drift), revoked only on exclusive resources (where diff plans it)."""
    managed = history.managed()
    privileges = {(k[0], k[1], k[3]) for k in (*managed, *desired)}
    found = sorted(
        a.key for assignments in obs.assignments.values() if assignments is not None for a in assignments
        if a.key[1] in STANDING_MODELS and (a.key[0], a.key[1], a.key[3]) in privileges and not a.owned
        and a.key not in desired and a.key not in managed and (a.key[0], a.key[1], a.key[3]) not in exclusive
    )
    out = [f"standing access jitpol did not grant: {k[2]} holds {k[3]} on {k[0]} (left alone; the resource is "
           "not exclusive)" for k in found[:limit]]
    if len(found) > limit:
        out.append(f"... and {len(found) - limit} more standing holder(s) of managed privileges")
    return out


def _ordered(actions: tuple[Action, ...]) -> tuple[Action, ...]:
    return tuple(sorted(actions, key=lambda a: (not a.revoking, a.target, a.principal, a.assignment.privilege)))


def _redeliveries(prep: Prepared, obs: Observation) -> tuple[Action, ...]:
    """Ephemeral accounts that exist but whose credential the ledger never recorded as delivered
    (a run died between creating and recording): set and deliver a new one."""
    assert prep.evaluation is not None
    out: list[Action] = []
    for key, want in sorted(prep.evaluation.desired.items()):
        target = prep.targets.get(key[0])
        found = obs.assignments.get(key[0])
        if (key[1] != "ephemeral-account" or target is None or found is None
                or (target.type, key[1]) not in registry.NEEDS_SECRET
                or key not in {a.key for a in found} or any(g in prep.history.delivered for g in want.grants)):
            continue
        out.append(Action("create-account", want.assignment, resource=want.resource, grants=want.grants,
                          until=want.until, reason="no delivered credential on record: set and deliver a new one",
                          details=want.details))
    return tuple(out)


def _with_resource(action: Action, policy: PolicySet) -> Action:
    if action.resource:
        return action
    for res in policy.resources.values():
        if (res.model == "credential-checkout" == action.assignment.model and res.target == action.target
                and res.account == action.principal):
            return replace(action, resource=res.name)
        if res.target == action.target and res.model == action.assignment.model and any(
            action.assignment.privilege in r.grants for r in res.roles.values()
        ):
            return replace(action, resource=res.name)
    return action


@dataclass(frozen=True, slots=True)
class Result:
    action: Action
    outcome: Outcome | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


Append = Callable[[Mapping[str, Any]], Any]


class Issuer(Protocol):
    """Makes and hands out the secrets of ephemeral accounts and shared-account checkouts."""

    def issue(self, action: Action) -> tuple[Action, dict[str, Any]]:
        """The action with a fresh secret in its details (delivered to its holders first) and the
        ledger facts about it (fingerprint, delivered); (action, {}) when it needs no secret."""
        ...

    def retire(self, action: Action) -> dict[str, Any]:
        """After the target accepted the action: drop deliveries nobody should use any more,
        escrow the new secret where the resource asks for it; more ledger facts. Raises when
        escrow fails (the action counts as failed and the next run rotates again)."""
        ...


def execute(plan: Plan, conns: Connections, append: Append, base: Mapping[str, Any],
            progress: Progress | None = None, issuer: Issuer | None = None) -> list[Result]:
    """Apply every action: all revocations on all targets first, then additions. Each action is
    isolated; a failure is recorded and the rest go on. Targets run in parallel, one thread each;
    actions on one target run in order."""
    results: list[Result] = []
    lock = threading.Lock()

    def record(body: Mapping[str, Any]) -> None:
        with lock:
            append({**base, **body})

    def run_target(actions: list[Action]) -> list[Result]:
        out: list[Result] = []
        for action in actions:
            key = action.assignment.key
            if not action.revoking:
                record(ActionStarted(event="action.started", grant=action.grants[0] if action.grants else None,
                                     op=action.op, **assignment_ref(key), grants=list(action.grants)))
            facts: dict[str, Any] = {}
            try:
                if issuer is not None:
                    action, facts = issuer.issue(action)
                outcome = conns.get(action.target).apply(action)
                if issuer is not None:
                    facts.update(issuer.retire(action))
            except Exception as exc:  # noqa: BLE001 - per-action isolation: one failure must not stop the rest
                message = str(exc) if isinstance(exc, JitpolError) else f"{type(exc).__name__}: {exc}"
                secret = action.detail("password")
                if secret:  # defence in depth: connectors redact, but no message may ever carry it
                    message = message.replace(secret, "***")
                record(ActionFailed(event="action.failed", grant=action.grants[0] if action.grants else None,
                                    op=action.op, **assignment_ref(key), grants=list(action.grants), error=message))
                out.append(Result(action, None, message))
            else:
                if action.drift:
                    record(DriftCorrected(event="drift.corrected", grant=None, op=action.op, **assignment_ref(key),
                                          resource=action.resource, changed=outcome.changed))
                first = action.grants[0] if action.grants else None
                if action.op == "rotate":
                    rotated = CredentialRotated(event="credential.rotated", grant=first, target=action.target,
                                                account=action.principal, holders=list(action.grants),
                                                until=utc_text(action.until) if action.until else None)
                    record({**rotated, **facts})  # facts: the Delivery fields
                elif action.op == "create-account":
                    created = AccountCreated(event="account.created", grant=first, target=action.target,
                                             account=action.principal, groups=action.assignment.privilege,
                                             until=utc_text(action.until) if action.until else None)
                    record({**created, **facts})  # facts: the Delivery fields
                elif action.op == "delete-account" and outcome.changed:
                    record(AccountDeleted(event="account.deleted", grant=first, target=action.target,
                                          account=action.principal))
                out.append(Result(action, outcome, None))
            if progress:
                progress(f"{'ok  ' if out[-1].ok else 'FAIL'} {action.op} {action.assignment.privilege} "
                         f"{'from' if action.revoking else 'to'} {action.principal} on {action.target}")
        return out

    for phase in (plan.revocations, plan.additions):
        by_target: dict[str, list[Action]] = {}
        for action in phase:
            by_target.setdefault(action.target, []).append(action)
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(by_target)))) as pool:
            for chunk in pool.map(run_target, [by_target[t] for t in sorted(by_target)]):
                results.extend(chunk)
    return results


# models whose assignments can exist on a target before and besides jitpol (memberships, sudo
# rules, cloud roles); ephemeral accounts and checkouts are always jitpol's own
STANDING_MODELS = frozenset({"role-membership", "sudo-rule", "idp-elevation"})


def counted_approvals(grant: Grant, status: GrantStatus, reviews: Reviews | None) -> list[dict[str, Any]]:
    """The approvals that let `grant` activate, for the record: each signature by its signer
    and key fingerprint, each pull-request review by person, login, pull request and review id."""
    out: list[dict[str, Any]] = []
    signed: set[str] = set()
    for a in grant.approvals:
        if a.by in status.approvals and a.by not in signed:
            out.append({"by": a.by, "via": "signature", "key": a.key})
            signed.add(a.by)
    for person, login, pull, review in (reviews.evidence if reviews is not None else ()):
        if person in status.approvals and person not in signed:
            out.append({"by": person, "via": "github-review", "login": login, "pull": pull, "review": review})
            signed.add(person)
    return out


def lifecycle_events(prep: Prepared, obs: Observation,
                     results: Iterable[Result]) -> list[Mapping[str, Any]]:
    """Grant-level ledger events after execution: activations of grants whose access is now all
    in place, ends of grants whose access is now all gone, and first-seen rejections."""
    present: dict[str, set[AssignmentKey]] = {
        t: {a.key for a in found} for t, found in obs.assignments.items() if found is not None
    }
    failed: set[AssignmentKey] = set()
    for r in results:
        key = r.action.assignment.key
        if not r.ok:
            failed.add(key)
            continue
        bucket = present.setdefault(key[0], set())
        if r.action.revoking:
            bucket.discard(key)
        else:
            bucket.add(key)

    holders = dict(prep.history.holders)
    for r in results:
        if r.ok and r.action.op == "rotate":
            holders[(r.action.target, r.action.principal)] = r.action.grants

    def is_present(key: AssignmentKey) -> bool | None:
        if key in failed:
            return None
        if key[0] in present:
            return key in present[key[0]]
        return None  # unknown: the target was not observed and nothing ran there

    def held(key: AssignmentKey, grant: str) -> bool | None:
        if key[1] == "credential-checkout":  # held when this grant is among the secret's holders
            return grant in holders.get((key[0], key[2]), ())
        return is_present(key)

    events: list[Mapping[str, Any]] = []
    ev = prep.evaluation
    statuses = ev.by_name() if ev is not None else {}
    desired = ev.desired if ev is not None else {}
    policy = prep.loaded.policy  # the grants (requests) themselves, for their approvals
    keys_of: dict[str, list[AssignmentKey]] = {}
    for k, d in desired.items():
        for g in d.grants:
            keys_of.setdefault(g, []).append(k)
    # access a person held before jitpol granted anything (standing): a grant that repeats it
    # does not make it jitpol's, so the grant's end never takes it away (SPEC section 6)
    seen_before = {t: {a.key for a in found} for t, found in obs.assignments.items() if found is not None}
    marked = {a.key for found in obs.assignments.values() if found is not None for a in found if a.owned}
    managed_before = set(prep.history.managed())
    added_now = {r.action.assignment.key for r in results if r.ok and not r.action.revoking}

    def standing(key: AssignmentKey) -> bool:
        # jitpol's own marker on it (a run killed before it recorded): jitpol's, not standing
        return (key[1] in STANDING_MODELS and key in seen_before.get(key[0], set())
                and key not in managed_before and key not in added_now and key not in marked)
    for st in statuses.values():
        if st.state != "active":
            continue
        keys = keys_of.get(st.name, [])
        og = prep.history.open.get(st.name)
        if og is not None and og.digest == st.digest:
            continue
        if keys and all(held(k, st.name) for k in keys):
            grant = policy.grants[st.name]
            activated = GrantActivated(
                event="grant.activated", grant=st.name, digest=st.digest,
                requester=st.requester, resource=st.resource, role=st.role,
                start=utc_text(st.start), end=utc_text(st.end), until=utc_text(st.live_until or st.end),
                approvals=counted_approvals(grant, st, prep.reviews.get(st.name)),
                breakglass=grant.breakglass, justification=grant.justification,
                assignments=[assignment_ref(k) for k in sorted(keys) if not standing(k)],
            )
            if any(standing(k) for k in keys):
                activated["standing"] = [assignment_ref(k) for k in sorted(keys) if standing(k)]
            events.append(activated)
    keep = covered_by_history(prep.history, prep.now, prep.ended) if ev is None else set(desired)
    for name, og in sorted(prep.history.open.items()):
        now_st = statuses.get(name)
        if now_st is not None and now_st.state == "active":
            continue
        if ev is None and og.until is not None and og.until > prep.now and name not in prep.ended:
            continue
        if all(held(k, name) is False if k[1] == "credential-checkout" else (k in keep or is_present(k) is False)
               for k in og.keys):
            if now_st is None and name in prep.ended:  # a restriction under an invalid repository
                final, reason = "kill switch" not in prep.ended[name], prep.ended[name]
            elif now_st is None:
                final, reason = True, ("grant file deleted" if ev is not None else "live interval ended")
            else:
                final = now_st.state in ("expired", "revoked", "rejected")
                reason = f"{now_st.state}: {now_st.reason}"
            events.append(GrantRevoked(event="grant.revoked", grant=name, final=final, reason=reason,
                                       assignments=[assignment_ref(k) for k in sorted(og.keys)]))
    for st in statuses.values():
        if prep.shard is not None and not prep.shard.records_rejections:
            break
        if st.state == "rejected" and (st.name, st.reason) not in prep.history.rejected:
            events.append(GrantRejected(event="grant.rejected", grant=st.name, reason=st.reason, digest=st.digest))
    return events
