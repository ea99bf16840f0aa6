"""`jitpol check --base REF`: what a pull request would do, who must approve it, and whether it
can be approved as it is. Reads the repository and git only; never a target."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from jitpol.errors import InvalidInput
from jitpol.execute.engine import Prepared, prepare
from jitpol.model.assignment import AssignmentKey
from jitpol.policy.approvals import Verifier
from jitpol.policy.evaluate import GrantStatus, evaluate
from jitpol.policy.people import resolve
from jitpol.policy.trust import PolicyCheck
from jitpol.vcs.git import Repo

POLICY_DIRS = ("people/", "teams/", "workflows/", "resources/")


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
    approvers: tuple[str, ...] = ()  # people who may still approve it
    depends_on_policy: bool = False


@dataclass(frozen=True, slots=True)
class CheckReport:
    base: str
    at: datetime
    diagnostics: tuple[str, ...]
    policy_files: tuple[str, ...]
    policy: PolicyCheck | None
    grants: tuple[GrantReview, ...]
    adds: tuple[AssignmentKey, ...]  # what merging would grant now
    removes: tuple[AssignmentKey, ...]  # what merging would revoke now
    problems: tuple[str, ...] = field(default=())

    @property
    def approvable(self) -> bool:
        return not self.problems


def _grant_paths(prep: Prepared) -> dict[str, str]:
    return {g.source.path: g.name for g in prep.loaded.policy.grants.values()}


def check(root: Path, base: str, now: datetime, verifier: Verifier) -> CheckReport:
    git = Repo.find(root)
    if git is None:
        raise InvalidInput(f"{root} is not a git repository; check compares against --base")
    changes = git.changed_files(base)
    with tempfile.TemporaryDirectory(prefix="jitpol-base-") as tmp:
        git.export_tree(base, Path(tmp))
        before = prepare(Path(tmp), now, verifier)
        after = prepare(root, now, verifier)
    problems: list[str] = []
    diagnostics = tuple(str(d) for d in after.diagnostics)
    if diagnostics:
        problems.append(f"the change leaves the repository invalid ({len(diagnostics)} problem(s))")
    if any(p.startswith("audit/") for _, p in changes):
        problems.append("the change edits audit/, which only jitpol writes")
    policy_files = tuple(sorted(p for _, p in changes if p == "jitpol.yaml" or p.startswith(POLICY_DIRS)))

    proposed_only = (evaluate(after.loaded.policy, now, after.history, verifier).by_name()
                     if after.valid else {})
    statuses = after.evaluation.by_name() if after.evaluation is not None else {}
    head_paths = _grant_paths(after)
    base_paths = _grant_paths(before)
    reviews: list[GrantReview] = []
    policy = after.loaded.policy
    for status_letter, path in sorted(changes, key=lambda c: c[1]):
        if not path.startswith("grants/"):
            continue
        if status_letter == "D" or path not in head_paths:
            name = base_paths.get(path)
            if name is None:
                continue
            was = before.evaluation.by_name().get(name) if before.evaluation else None
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
        res = policy.resources.get(st.resource)
        wf = policy.workflows.get(res.workflow) if res else None
        if wf is not None and st.state == "pending":
            approvers = tuple(sorted(p for p in resolve(wf.approvers, policy)
                                     if p != st.requester and p not in st.approvals))
        reviews.append(GrantReview(name, path, "added" if status_letter == "A" else "modified", st.state,
                                   st.reason, st.requester, st.resource, st.role, st.start, st.end, approvers,
                                   depends))
        if depends:
            problems.append(f"grant {name} is allowed only by the unapproved policy change in this pull request: "
                            "split the policy change into its own pull request for the admins")
        elif st.state in ("rejected", "expired"):
            problems.append(f"grant {name} cannot become active: {st.reason}")
    before_keys = set(before.evaluation.desired) if before.evaluation else set()
    after_keys = set(after.evaluation.desired) if after.evaluation else set()
    return CheckReport(base, now, diagnostics, policy_files, after.policy, tuple(reviews),
                       tuple(sorted(after_keys - before_keys)), tuple(sorted(before_keys - after_keys)),
                       tuple(problems))
