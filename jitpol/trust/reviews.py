"""Approvals proven by pull-request reviews on the git host (approvals.via: github-review)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from jitpol.errors import TargetError
from jitpol.model.documents import PolicySet
from jitpol.policy.approvals import Reviews


def review_approvals(root: Path, policy: PolicySet, now: datetime, env: Mapping[str, str]) -> dict[str, Reviews]:
    """For every current grant whose workflow takes approvals from reviews: the people whose
    review of the exact merged content counts. Empty when no workflow uses reviews. A git host
    that cannot be reached leaves those grants without approvals (pending), never approved."""
    wanted: dict[str, str] = {}  # relative path -> grant
    for grant in policy.grants.values():
        res = policy.resources.get(grant.resource)
        wf = policy.workflows.get(res.workflow) if res else None
        if wf is not None and wf.approvals_via == "github-review" and grant.end > now:
            wanted[grant.source.path] = grant.name
    if not wanted:
        return {}
    git = (policy.config.git if policy.config is not None else None) or {}
    if not git.get("repository"):
        return {name: Reviews((), "jitpol.yaml has no spec.git to check reviews with") for name in wanted.values()}
    from jitpol.vcs.github import GitHubReviews

    token_env = git.get("token_env")
    token = env.get(str(token_env)) if token_env else None
    logins = {str(p.accounts["github"]).lower(): p.name for p in policy.people.values() if "github" in p.accounts}
    client = GitHubReviews(str(git.get("api_url", "https://api.github.com")), str(git["repository"]), token, root)
    try:
        verdicts = client.verdicts(sorted(wanted))
    except TargetError as exc:
        return {name: Reviews((), f"could not check pull-request reviews: {exc}") for name in wanted.values()}
    out: dict[str, Reviews] = {}
    for path, name in wanted.items():
        v = verdicts.get(path)
        if v is None:
            out[name] = Reviews((), "no review verdict")
            continue
        people = tuple(sorted({logins[login] for login in v.approvers if login in logins}))
        ids = dict(v.review_ids)
        evidence = tuple((logins[login], login, v.pull, ids.get(login)) for login in v.approvers if login in logins)
        unknown = [login for login in v.approvers if login not in logins]
        notes = [] if people else [v.reason]
        if v.excluded:
            notes.append("excluded reviews: " + "; ".join(v.excluded))
        if unknown:
            notes.append(f"reviewers with no people/ entry (accounts.github): {', '.join(unknown)}")
        out[name] = Reviews(people, "; ".join(n for n in notes if n), evidence)
    return out
