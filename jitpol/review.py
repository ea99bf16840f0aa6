"""`jitpol check --base REF`: what a pull request would do, who must approve it, and whether it
can be approved as it is. Reads the repository and git only; never a target.

The check sees what the reconciler will see after the merge, in every layout (the policy at the
git root or in a directory of it, `--repo policies`): every path is relative to the policy root,
and the base side is that same directory of the base ref.

- It decides with the effective policy (policy/effective.py): what merging grants now is what the
  reconciler grants without further admin approval (the policy in force with the change's
  restrictions applied); what it would grant once the admins approve the policy change is shown
  apart. Approvers are listed as they are under the effective policy: someone who only counts
  under the proposed policy (say, added to an approvers team by this very change) is not.
- It evaluates against the ledger of the base ref, never against the pull request's audit/: the
  reconciler writes audit/ itself, on the default branch, so a pull request that touches it is
  forging history, and its edits must not colour the report.
- Guarded paths (GUARDED): audit/, .gitattributes anywhere in the git tree, symbolic links that
  leave the policy root, and the trust root's inputs (TRUST_ROOT_INPUTS). A change to any of them
  is "not approvable without admin review": the check exits 1 whatever else it says.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from jitpol.errors import InvalidInput
from jitpol.evaluate.prepare import Prepared, normalized
from jitpol.model.assignment import AssignmentKey
from jitpol.model.documents import PolicySet
from jitpol.policy.approvals import Verifier
from jitpol.policy.evaluate import Evaluation, GrantStatus, evaluate
from jitpol.policy.people import resolve
from jitpol.policy.trust import PolicyCheck
from jitpol.run import prepare_run
from jitpol.vcs.git import Repo

AUDIT_DIR = "audit"
# Where policy lives (besides any file either side loads as a policy document): what the admins of
# the policy in force approve. grants/ holds requests, approvals/ admin sign-offs, audit/ history.
POLICY_PATHS = ("jitpol.yaml", "people", "teams", "workflows", "resources", "notifications")

# The trust root's inputs that live in the repository, the same in every environment. An entry
# `DIR/` is every file under that directory of the policy root; `FILE#a.b` is the value at key
# path a.b of the YAML document FILE. Who may approve policy, and how many must, is decided here:
# a pull request changing any of them is not approvable without admin review.
TRUST_ROOT_INPUTS: tuple[str, ...] = (
    "trust/",
    "jitpol.yaml#spec.admins",
    "jitpol.yaml#spec.policyApprovals",
    "jitpol.yaml#spec.ledger",
)

# Files outside the policy document set that decide how the reconciler runs (warned about, since
# the pinned trust root and the reconciler's flags live there; owned by your CI, not by jitpol).
CI_FILES = (".github/workflows/", ".github/actions/", ".gitlab-ci.yml", ".pre-commit-config.yaml")

NOT_APPROVABLE = "not approvable without admin review"
ADMIN_FIRST = "the policy change needs admin approval first"
CHANGE_WORDS = {"A": "added", "M": "modified", "D": "deleted", "T": "type changed"}


@dataclass(frozen=True, slots=True)
class GrantReview:
    name: str
    path: str
    change: str  # added | modified | deleted
    state: str
    reason: str
    requester: str = ""
    resource: str = ""
    role: str = ""
    start: datetime | None = None
    end: datetime | None = None
    approvers: tuple[str, ...] = ()  # people who may still approve it, under the effective policy
    depends_on_policy: bool = False
    # people who may approve it, or whose approval on it counts, only once the admins approve the
    # policy change: not sufficient now
    approvers_after_policy: tuple[str, ...] = ()
    state_after_policy: str = ""  # its state under the proposed policy, when that differs


@dataclass(frozen=True, slots=True)
class Guarded:
    """A change to something a pull request may not touch without admin review."""

    path: str  # relative to the policy root, or to the git root when in_policy_root is False
    change: str  # added | modified | deleted | type changed
    why: str
    in_policy_root: bool = True



@dataclass(frozen=True, slots=True)
class CheckReport:
    base: str
    at: datetime
    diagnostics: tuple[str, ...]
    policy_files: tuple[str, ...]
    policy: PolicyCheck | None
    grants: tuple[GrantReview, ...]
    adds: tuple[AssignmentKey, ...]  # what merging would grant now (effective policy)
    removes: tuple[AssignmentKey, ...]  # what merging would revoke now (effective policy)
    problems: tuple[str, ...] = field(default=())
    guarded: tuple[Guarded, ...] = ()
    # once the admins approve the policy change (only when one waits for them)
    adds_after_policy: tuple[AssignmentKey, ...] = ()
    removes_after_policy: tuple[AssignmentKey, ...] = ()
    admins: tuple[str, ...] = ()  # the admins of the policy in force, as people
    warnings: tuple[str, ...] = ()
    layout: str = ""  # the policy root relative to the git root ("" at the git root)

    @property
    def approvable(self) -> bool:
        return not self.problems and not self.guarded

    @property
    def policy_pending(self) -> bool:
        """A policy change waits for the admins of the policy in force."""
        return self.policy is not None and not self.policy.approved


def _grant_paths(prep: Prepared) -> dict[str, str]:
    return {g.source.path: g.name for g in prep.loaded.policy.grants.values()}


def _under(path: str, directory: str) -> bool:
    directory = directory.strip("/")
    return path == directory or path.startswith(directory + "/")


def check(root: Path, base: str, now: datetime, verifier: Verifier) -> CheckReport:
    git = Repo.find(root)
    if git is None:
        raise InvalidInput(f"{root} is not a git repository; check compares against --base")
    tree = git.tree_changes(base)
    changes = [(s, rel) for s, p in tree if (rel := git.policy_path(p)) is not None]
    with tempfile.TemporaryDirectory(prefix="jitpol-check-") as tmp:
        base_dir, head_dir = Path(tmp) / "base", Path(tmp) / "head"
        base_dir.mkdir()
        git.export_tree(base, base_dir)
        _head_view(git, head_dir, base_dir)
        before = prepare_run(base_dir, now, verifier=verifier)
        after = prepare_run(head_dir, now, verifier=verifier)
    guarded = _guarded(git, tree, changes, before, after)
    return _report(base, now, git.prefix, changes, tree, before, after, guarded, verifier)


def _head_view(git: Repo, dest: Path, base_dir: Path) -> None:
    """The policy root as the pull request leaves it (what git sees in the work tree: tracked and
    untracked files, ignored ones not), with the base ref's audit/ in place of its own: the
    reconciler's ledger is the one on the base branch."""
    src = git.base
    dest.mkdir()
    for rel in git.work_files():
        if _under(rel, AUDIT_DIR):
            continue
        path = src / rel
        target = dest / rel
        if path.is_symlink():
            if _link_escapes(src, path):
                continue  # guarded (see _guarded); never followed out of the policy root
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.readlink(path), target)  # kept a link: the loader refuses links
        elif path.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target, follow_symlinks=False)
    if (base_dir / AUDIT_DIR).is_dir():
        shutil.copytree(base_dir / AUDIT_DIR, dest / AUDIT_DIR, symlinks=True)


# -- guarded paths -------------------------------------------------------------------------------


def _guarded(git: Repo, tree: list[tuple[str, str]], changes: list[tuple[str, str]], before: Prepared,
             after: Prepared) -> tuple[Guarded, ...]:
    out: list[Guarded] = []
    for status, path in changes:
        change = CHANGE_WORDS.get(status, status)
        if _under(path, AUDIT_DIR):
            out.append(Guarded(path, change, "audit/ (ledger, snapshots, checkpoints, delivered credentials) is "
                                             "written only by the reconciler, on the default branch; a pull "
                                             "request never touches it"))
            continue
        for entry in TRUST_ROOT_INPUTS:
            if entry.endswith("/") and _under(path, entry):
                out.append(Guarded(path, change, f"a trust-root input ({entry}): it decides who may approve "
                                                 "policy"))
        link = git.base / path
        if status != "D" and link.is_symlink():
            where = _link_escapes(git.base, link)
            if where:
                out.append(Guarded(path, change, f"a symbolic link {where}; the reconciler never follows it, "
                                                 "and no policy file may be one"))
    for status, path in tree:
        if PurePosixPath(path).name == ".gitattributes":
            rel = git.policy_path(path)
            out.append(Guarded(rel if rel is not None else path, CHANGE_WORDS.get(status, status),
                               ".gitattributes can transform what git checks out (the ledger included): "
                               "line endings, encodings, filters", rel is not None))
    changed = {path for _, path in changes}
    for entry in TRUST_ROOT_INPUTS:
        file, sep, keys = entry.partition("#")
        if not sep or file not in changed:
            continue
        old, new = _document(before, file), _document(after, file)
        if old is None and new is None:
            continue
        a, b = _at(old, keys), _at(new, keys)
        if a != b:
            out.append(Guarded(file, "modified", f"a trust-root input ({file} {keys}): it decides who may "
                                                 "approve policy, how many must, and where the ledger is"))
    seen: set[tuple[str, str]] = set()
    unique = []
    for g in out:
        if (g.path, g.why) not in seen:
            seen.add((g.path, g.why))
            unique.append(g)
    return tuple(unique)


def _link_escapes(top: Path, link: Path) -> str:
    """Why the symbolic link `link` is dangerous ("" when it stays inside the policy root)."""
    target = os.readlink(link)
    if os.path.isabs(target):
        return f"to the absolute path {target}"
    resolved = Path(os.path.normpath(link.parent / target))
    real_top = top.resolve()
    if not resolved.is_relative_to(top) or not link.resolve().is_relative_to(real_top):
        return f"pointing outside the policy root ({target})"
    if _under(resolved.relative_to(top).as_posix(), AUDIT_DIR):
        return f"pointing into audit/ ({target})"
    return ""


def _document(prep: Prepared, path: str) -> Mapping[str, Any] | None:
    for p, data in prep.loaded.policy_documents:
        if p == path:
            return data
    return None


def _at(data: Mapping[str, Any] | None, keys: str) -> object:
    value: object = data
    for key in keys.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


# -- the report ----------------------------------------------------------------------------------


def _report(base: str, now: datetime, prefix: str, changes: list[tuple[str, str]], tree: list[tuple[str, str]],
            before: Prepared, after: Prepared, guarded: tuple[Guarded, ...], verifier: Verifier) -> CheckReport:
    problems, warnings = _change_problems(changes, tree, guarded, after)
    diagnostics = tuple(str(d) for d in after.diagnostics)
    documents = {p for prep in (before, after) for p, _ in prep.loaded.policy_documents}
    policy_files = tuple(sorted(p for _, p in changes
                                if p in documents or any(_under(p, d) for d in POLICY_PATHS)))

    policy_check = after.policy
    pending = policy_check is not None and not policy_check.approved
    in_force = _in_force(before, after)
    admins = tuple(sorted(resolve(policy_check.admins, in_force))) if policy_check is not None else ()
    # under the proposed policy alone: what merging would do once the admins approve it
    proposed_eval: Evaluation | None = None
    # under the effective policy alone: whose approvals count now
    effective_eval: Evaluation | None = after.evaluation
    if after.valid and pending:
        proposed_eval = normalized(evaluate(after.loaded.policy, now, after.history, verifier), after.targets)
        effective_eval = evaluate(after.decided, now, after.history, verifier)
    if pending and policy_check is not None:
        admin_names = ", ".join(admins) or "nobody (the policy in force names no admin with a person file)"
        warnings.append(f"{ADMIN_FIRST}: {policy_check.required} of "
                        f"{', '.join(str(a) for a in policy_check.admins)} ({admin_names}) must run "
                        "`jitpol approve --policy`; until then only what both policies allow takes effect")
    reviews, grant_problems = _grant_reviews(changes, before, after, proposed_eval, effective_eval, pending)
    problems += grant_problems
    before_keys = set(before.evaluation.desired) if before.evaluation else set()
    after_keys = set(after.evaluation.desired) if after.evaluation else set()
    adds_later: tuple[AssignmentKey, ...] = ()
    removes_later: tuple[AssignmentKey, ...] = ()
    if proposed_eval is not None:
        later_keys = set(proposed_eval.desired)
        adds_later = tuple(sorted(later_keys - before_keys))
        removes_later = tuple(sorted(before_keys - later_keys))
    return CheckReport(base, now, diagnostics, policy_files, policy_check, tuple(reviews),
                       tuple(sorted(after_keys - before_keys)), tuple(sorted(before_keys - after_keys)),
                       tuple(problems), guarded, adds_later, removes_later, admins, tuple(warnings),
                       prefix.rstrip("/"))


def _change_problems(changes: list[tuple[str, str]], tree: list[tuple[str, str]], guarded: tuple[Guarded, ...],
                     after: Prepared) -> tuple[list[str], list[str]]:
    """What makes the change itself unmergeable (problems) or worth an admin's eye (warnings),
    whatever its grants say."""
    problems: list[str] = []
    warnings: list[str] = []
    if after.diagnostics:
        problems.append(f"the change leaves the repository invalid ({len(after.diagnostics)} problem(s))")
    if any(_under(p, AUDIT_DIR) for _, p in changes):
        problems.append(f"the change edits audit/, which only jitpol writes ({NOT_APPROVABLE}); this report "
                        "ignores those edits and reads the ledger of the base")
    if any(PurePosixPath(p).name == ".gitattributes" for _, p in tree):
        problems.append(f"the change edits .gitattributes, which can transform the ledger and policy files "
                        f"git checks out ({NOT_APPROVABLE})")
    if any("symbolic link" in g.why for g in guarded):
        problems.append(f"the change adds a symbolic link that leaves the policy root ({NOT_APPROVABLE})")
    if any("trust-root input" in g.why for g in guarded):
        problems.append(f"the change edits the trust root's inputs ({NOT_APPROVABLE})")
    ci = sorted({p for _, p in tree if any(p == c or p.startswith(c) for c in CI_FILES)})
    if ci:
        warnings.append("the change edits CI files that run the reconciler (" + ", ".join(ci) + "): "
                        "they decide its trust root and flags; have an admin review them")
    return problems, warnings


def _grant_reviews(changes: list[tuple[str, str]], before: Prepared, after: Prepared,
                   proposed_eval: Evaluation | None, effective_eval: Evaluation | None,
                   pending: bool) -> tuple[list[GrantReview], list[str]]:
    """One review per grant file the change adds, modifies or deletes: its state under the
    effective policy, who may approve it now and only later, whether it depends on the
    unapproved policy change; and the problems that block it."""
    decided = after.decided
    statuses = after.evaluation.by_name() if after.evaluation is not None else {}
    proposed_only = proposed_eval.by_name() if proposed_eval is not None else {}
    counted_now = effective_eval.by_name() if effective_eval is not None else {}
    head_paths = _grant_paths(after)
    base_paths = _grant_paths(before)
    was_states = before.evaluation.by_name() if before.evaluation is not None else {}
    reviews: list[GrantReview] = []
    problems: list[str] = []
    for status_letter, path in sorted(changes, key=lambda c: c[1]):
        if not _under(path, "grants"):
            continue
        if status_letter == "D" or path not in head_paths:
            name = base_paths.get(path)
            if name is None:
                continue
            was = was_states.get(name)
            reviews.append(GrantReview(name, path, "deleted", "revoked",
                                       f"file deleted (was {was.state if was else 'unknown'})"))
            continue
        name = head_paths[path]
        st: GrantStatus | None = statuses.get(name)
        if st is None:
            continue
        alone = proposed_only.get(name)
        depends = (alone is not None and alone.state in ("active", "scheduled")
                   and st.state not in ("active", "scheduled"))
        approvers: tuple[str, ...] = ()
        later: tuple[str, ...] = ()
        if st.state == "pending":
            eff_st = counted_now.get(name, st)
            approvers = _approvers(decided, st, eff_st.approvals)
            if pending:
                # who may approve, or whose approval counts, only under the proposed policy
                prop_st = alone or st
                proposed = {*_approvers(after.loaded.policy, st, ()), *prop_st.approvals}
                later = tuple(sorted(p for p in proposed if p not in approvers and p not in eff_st.approvals))
        after_state = alone.state if alone is not None and alone.state != st.state else ""
        reviews.append(GrantReview(name, path, "added" if status_letter == "A" else "modified", st.state,
                                   st.reason, st.requester, st.resource, st.role, st.start, st.end, approvers,
                                   depends, later, after_state))
        if depends:
            problems.append(f"grant {name} is allowed only by the unapproved policy change in this pull request: "
                            "split the policy change into its own pull request for the admins")
        elif st.state in ("rejected", "expired"):
            problems.append(f"grant {name} cannot become active: {st.reason}")
    return reviews, problems


def _approvers(policy: PolicySet, st: GrantStatus, counted: Iterable[str]) -> tuple[str, ...]:
    """Who may still approve grant `st` under `policy`: the workflow's approvers who are people
    there, not disabled, not the requester, able to approve the way the workflow asks (a key to
    sign with, or a git-host login), and whose approval does not count already."""
    res = policy.resources.get(st.resource)
    wf = policy.workflows.get(res.workflow) if res else None
    if wf is None:
        return ()
    done = set(counted)
    out = []
    for name in sorted(resolve(wf.approvers, policy)):
        person = policy.people[name]
        if name == st.requester or name in done or person.disabled:
            continue
        if wf.approvals_via == "github-review":
            if "github" not in person.accounts:
                continue
        elif not person.keys:
            continue
        out.append(name)
    return tuple(out)


def _in_force(before: Prepared, after: Prepared) -> PolicySet:
    """The policy in force, as far as the check can tell: the base's effective policy when the
    base's policy is the one in force, otherwise the effective policy of the change (whose people
    and teams are at most those in force)."""
    if (before.policy is not None and after.policy is not None and before.effective is not None
            and before.policy.digest == after.policy.in_force):
        return before.effective
    return after.decided
