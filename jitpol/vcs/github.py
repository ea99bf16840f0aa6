"""Approvals from pull-request reviews on GitHub, re-proved through its REST API at apply time.

A workflow with `approvals.via: github-review` keeps no signatures in its grant files: the
approvals are the pull-request reviews that brought each file's current content. Nothing the
repository says about them is trusted; `GitHubReviews.verdicts` re-derives them on every run:

1. The commit that last changed the file on the checked-out branch, following FIRST parents
   only (`git rev-list -1 --first-parent HEAD -- PATH`): the squash, merge or rebased commit by
   which the branch itself gained the current content. Following first parents matters: a plain
   `git log -- PATH` would trace a merge that takes an old, once-approved version of the file
   from a side branch back to that old approval.
2. The pull requests GitHub associates with that commit (`GET commits/{sha}/pulls`); only those
   merged (`merged_at` set) into the branch being reconciled count. None: no approvals.
3. The file at the pull request's head commit (`GET contents/{path}?ref={head}`) must be byte for
   byte the file in the work tree: what was reviewed is exactly what is about to be applied.
4. Reviews (`GET pulls/{n}/reviews`, every page): per reviewer only the latest review that
   takes a position counts (APPROVED, CHANGES_REQUESTED, DISMISSED; as on GitHub, COMMENTED and
   PENDING reviews do not change a reviewer's position). It must be APPROVED and made on the head
   commit: approving an earlier push approves other content.
5. Excluded: the pull request's author, everyone who authored or committed a commit of it
   (`GET pulls/{n}/commits`), and bots. Logins compare case-insensitively.

The caller maps logins to people (`accounts.github`) and applies the workflow's approver rules,
including that a requester never approves their own grant.

Errors: network failures, timeouts, 5xx and rate limits raise TargetUnavailable (the grants stay
pending and the next run retries); bad credentials, missing permissions, a wrong repository or
API URL, an unusable clone raise PermanentTargetError. Whatever cannot be proved for one file
(direct push, content changed after review, shallow history) is a verdict without approvers,
never an error. The token is sent only as `Authorization: Bearer`, only to `api_url`'s origin
(redirects are refused and pagination links to other origins rejected) and appears in no message:
the REST calls go through jitpol.vcs.githubapi.GitHubApi, the local git commands through
jitpol.vcs.gitrun.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from jitpol.errors import PermanentTargetError
from jitpol.vcs.githubapi import GitHubApi, quote
from jitpol.vcs.gitrun import git_output

# GitHub's "list commits on a pull request" returns at most 250 commits. A longer pull request
# cannot be checked for reviewers who pushed to it, so it yields no approvals.
PULL_COMMITS_LIMIT = 250

NO_PULL = "no merged pull request brought this content (unreviewed direct push or admin bypass merge)"
CONTENT_DIFFERS = "merged content differs from what was reviewed"

_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_STATEFUL = frozenset({"APPROVED", "CHANGES_REQUESTED", "DISMISSED"})


@dataclass(frozen=True, slots=True)
class ReviewVerdict:
    """Who approved one grant file's current content through pull-request reviews."""

    path: str  # the grant file, relative to the repository root
    pull: int | None  # the pull request that brought the file's current content, if any
    approvers: tuple[str, ...]  # GitHub logins whose approval counts (lower-cased), sorted
    excluded: tuple[str, ...]  # "login: why" for reviews that do not count
    reason: str  # human summary
    review_ids: tuple[tuple[str, int], ...] = ()  # (login, review id) of each approval that counts


@dataclass(frozen=True, slots=True)
class _Pull:
    number: int
    author: str | None  # lower-cased login; None when GitHub names nobody
    head_sha: str
    base_ref: str
    merged: bool
    merge_commit_sha: str | None


@dataclass(frozen=True, slots=True)
class _Reviews:
    """The outcome of one pull request's reviews, independent of any file."""

    approvers: tuple[str, ...]
    excluded: tuple[str, ...]
    refused: str | None  # why no approval of this pull request can count at all
    review_ids: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class _Clone:
    branch: str
    prefix: str  # the repo_dir's path inside the repository ("" or "policies/")
    shallow: frozenset[str]  # boundary commits of a shallow clone (their diffs are not real)



class _NoReview(Exception):
    """No review covers a grant file: why, and the pull request it was looked for in."""

    def __init__(self, reason: str, pull: int | None = None, excluded: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.reason, self.pull, self.excluded = reason, pull, excluded

class GitHubReviews:
    """Approvals of grant files from GitHub pull-request reviews, for one run.

    The constructor does no I/O. Results of API calls are cached for the life of the instance,
    so one pull request that brought many grant files is fetched once; make a new instance per
    run (the reviews change between runs).
    """

    def __init__(
        self,
        api_url: str,
        repository: str,
        token: str | None,
        repo_dir: Path,
        *,
        timeout: float = 10.0,
        branch: str | None = None,
    ) -> None:
        """`branch` is the branch being reconciled; default: the checked-out branch (a detached
        HEAD then fails with PermanentTargetError). Raises PermanentTargetError for an unusable
        `api_url` or `repository`, including a token that would travel over plain http."""
        self._api = GitHubApi(api_url, repository, token, timeout=timeout,
                              needs="read access to pull requests and contents")
        self.repository = repository
        self._repo_dir = Path(repo_dir)
        self._branch = branch
        self._clone: _Clone | None = None
        self._pulls_of: dict[str, list[_Pull] | None] = {}
        self._contents: dict[tuple[str, str], bytes | None] = {}
        self._reviews: dict[int, _Reviews] = {}

    # -- public ------------------------------------------------------------------------------

    def verdicts(self, paths: Sequence[str]) -> dict[str, ReviewVerdict]:
        """The verdict for each grant file in `paths` (relative to `repo_dir`, POSIX separators).

        A file whose approval cannot be proved gets a verdict with no approvers and the reason;
        raises TargetUnavailable (temporary: network, 5xx, rate limit) or PermanentTargetError
        (credentials, permissions, configuration, git failures) when the proof cannot be attempted.
        Raises ValueError for a path that is absolute or climbs out with `..`.
        """
        for path in paths:
            _check_relative(path)
        if not paths:
            return {}
        clone = self._context()
        return {path: self._verdict(path, clone) for path in dict.fromkeys(paths)}

    # -- one file ------------------------------------------------------------------------------

    def _verdict(self, path: str, clone: _Clone) -> ReviewVerdict:
        try:
            content, commit = self._committed(path, clone)
            candidates = self._merged_pulls(commit, clone)
            pull, outcome = self._best_review(path, content, clone, candidates)
        except _NoReview as no:
            return ReviewVerdict(path=path, pull=no.pull, approvers=(), excluded=no.excluded, reason=no.reason)
        return ReviewVerdict(
            path=path,
            pull=pull.number,
            approvers=outcome.approvers,
            excluded=outcome.excluded,
            reason=f"approved in pull request #{pull.number} by {', '.join(outcome.approvers)}",
            review_ids=outcome.review_ids,
        )

    def _committed(self, path: str, clone: _Clone) -> tuple[bytes, str]:
        """The grant file's content in the work tree and the last first-parent commit that
        changed it; _NoReview when it is not a committed regular file of this branch."""
        local = self._repo_dir / path
        if local.is_symlink():
            raise _NoReview("the grant file is a symbolic link; only regular files can be reviewed")
        root = self._repo_dir.resolve()
        if not local.resolve().is_relative_to(root) or not local.is_file():
            raise _NoReview("the grant file is not a regular file inside the work tree")
        try:
            content = local.read_bytes()
        except OSError as exc:
            raise PermanentTargetError(f"cannot read {path}: {exc.strerror}") from None
        commit = self._git("rev-list", "-1", "--first-parent", "HEAD", "--", path).strip()
        if not commit:
            raise _NoReview("the grant file is not committed on this branch")
        if commit in clone.shallow:
            raise _NoReview(
                f"the clone is shallow: cannot tell which commit brought this content ({commit[:12]} is a "
                "shallow boundary); fetch the full history (actions/checkout: fetch-depth: 0)"
            )
        return content, commit

    def _merged_pulls(self, commit: str, clone: _Clone) -> list[_Pull]:
        """The pull requests merged into the branch that brought `commit`, newest first: the one
        whose merge produced exactly this commit when there is one (several remain only when a
        commit belongs to more than one, stacked branches)."""
        pulls = self._pulls_for_commit(commit)
        if pulls is None:
            raise _NoReview(f"commit {commit[:12]} is not on the git host (not pushed?), so no review can cover it")
        merged = [p for p in pulls if p.merged and p.base_ref == clone.branch]
        if not merged:
            if pulls:
                shown = ", ".join(f"#{p.number}" for p in sorted(pulls, key=lambda p: p.number))
                raise _NoReview(f"{NO_PULL}: pull request {shown} is not merged into {clone.branch}")
            raise _NoReview(NO_PULL)
        exact = [p for p in merged if p.merge_commit_sha == commit]
        return sorted(exact or merged, key=lambda p: p.number, reverse=True)

    def _best_review(self, path: str, content: bytes, clone: _Clone,
                     candidates: list[_Pull]) -> tuple[_Pull, _Reviews]:
        """The candidate whose head holds exactly this content, with the most approvals that
        count; each pull request is judged alone: approvals of two never add up."""
        best: tuple[_Pull, _Reviews] | None = None
        for pull in candidates:
            if self._content_at(clone.prefix + path, pull.head_sha) != content:
                continue
            outcome = self._pull_reviews(pull)
            if best is None or len(outcome.approvers) > len(best[1].approvers):
                best = (pull, outcome)
        if best is None:
            first = candidates[0]
            if self._work_tree_dirty(path):
                raise _NoReview(f"{CONTENT_DIFFERS}: the work-tree file has uncommitted changes", first.number)
            raise _NoReview(f"{CONTENT_DIFFERS} in pull request #{first.number} (head {first.head_sha[:12]})",
                            first.number)
        pull, outcome = best
        if outcome.refused is not None:
            raise _NoReview(f"pull request #{pull.number}: {outcome.refused}", pull.number, outcome.excluded)
        if not outcome.approvers:
            raise _NoReview(f"pull request #{pull.number} has no approval that counts", pull.number,
                            outcome.excluded)
        return best

    # -- one pull request -----------------------------------------------------------------------

    def _pull_reviews(self, pull: _Pull) -> _Reviews:
        cached = self._reviews.get(pull.number)
        if cached is not None:
            return cached
        prefix = f"/pulls/{pull.number}"
        commits = self._list(f"{prefix}/commits", f"pull request #{pull.number} commits")
        reviews = self._list(f"{prefix}/reviews", f"pull request #{pull.number} reviews")

        refused: str | None = None
        if pull.author is None:
            refused = "GitHub names no author for it, so self-approval cannot be ruled out"
        elif len(commits) >= PULL_COMMITS_LIMIT:
            refused = (f"it has {PULL_COMMITS_LIMIT} or more commits, more than GitHub lists, so reviewers who "
                       "pushed to it cannot be ruled out")
        pushers: set[str] = set()
        for item in commits:
            for role in ("author", "committer"):
                login = _login(_get(item, role, dict, optional=True))
                if login is not None and login != "web-flow":
                    pushers.add(login)

        # Latest position per reviewer: reviews come oldest first; ids only grow, so order by id.
        latest: dict[str, Mapping[str, Any]] = {}
        excluded: list[str] = []
        for review in sorted(reviews, key=lambda r: _get(r, "id", int)):
            state = _get(review, "state", str)
            if state not in _STATEFUL:
                continue
            user = _get(review, "user", dict, optional=True)
            login = _login(user)
            if login is None:
                excluded.append(f"<deleted account>: review {_get(review, 'id', int)} has no user")
                continue
            latest[login] = review

        approvers: list[str] = []
        ids: list[tuple[str, int]] = []
        for login, review in sorted(latest.items()):
            state = _get(review, "state", str)
            user = _get(review, "user", dict)
            commit_id = _get(review, "commit_id", str, optional=True)
            if state != "APPROVED":
                excluded.append(f"{login}: latest review is {state}")
            elif commit_id != pull.head_sha:
                shown = commit_id[:12] if commit_id else "an unknown commit"
                excluded.append(f"{login}: approved {shown}, not the merged head {pull.head_sha[:12]}")
            elif user.get("type") == "Bot" or login.endswith("[bot]"):
                excluded.append(f"{login}: a bot")
            elif login == pull.author:
                excluded.append(f"{login}: author of the pull request")
            elif login in pushers:
                excluded.append(f"{login}: authored or committed commits in the pull request")
            else:
                approvers.append(login)
                ids.append((login, _get(review, "id", int)))
        outcome = _Reviews(
            approvers=() if refused else tuple(approvers), excluded=tuple(excluded), refused=refused,
            review_ids=() if refused else tuple(ids),
        )
        self._reviews[pull.number] = outcome
        return outcome

    def _pulls_for_commit(self, sha: str) -> list[_Pull] | None:
        """Pull requests GitHub associates with commit `sha`; None when GitHub does not know it."""
        if sha in self._pulls_of:
            return self._pulls_of[sha]
        # 422 "No commit found for SHA" is GitHub's answer for a commit it does not have; a 404
        # here means the repository itself is missing or hidden from the token (an error).
        items = self._api.pages(f"/commits/{sha}/pulls", f"pull requests of commit {sha[:12]}", absent=(422,))
        if items is None:
            self._pulls_of[sha] = None
            return None
        pulls = [_pull(item) for item in items]
        self._pulls_of[sha] = pulls
        return pulls

    def _content_at(self, path: str, ref: str) -> bytes | None:
        """The bytes of file `path` (relative to the repository root) at commit `ref`; None when it
        is absent there or not a regular file."""
        key = (path, ref)
        if key in self._contents:
            return self._contents[key]
        query = urllib.parse.urlencode({"ref": ref})
        response = self._api.get(f"/contents/{quote(path, safe='/')}?{query}", f"{path} at {ref[:12]}", absent=(404,))
        body = response.body if response is not None else None
        data: bytes | None = None
        if isinstance(body, dict) and body.get("type") == "file" and body.get("encoding") == "base64":
            encoded = body.get("content")
            if not isinstance(encoded, str):
                raise PermanentTargetError(f"git host: unexpected contents response for {path}")
            try:
                data = base64.b64decode(encoded)  # GitHub wraps the base64 text in lines
            except ValueError as exc:
                raise PermanentTargetError(f"git host: undecodable contents for {path}") from exc
        # Anything else (a directory listing, a symlink, a submodule, a file too large for the
        # contents API) is not a file whose bytes can be compared: no match.
        self._contents[key] = data
        return data

    # -- HTTP ---------------------------------------------------------------------------------

    def _list(self, path: str, what: str) -> list[Mapping[str, Any]]:
        items = self._api.pages(path, what)
        if items is None:  # unreachable: no status was declared absent
            raise PermanentTargetError(f"git host: {what}: not found")
        return items

    # -- git -------------------------------------------------------------------------------

    def _context(self) -> _Clone:
        if self._clone is not None:
            return self._clone
        branch = self._branch
        if branch is None:
            branch = self._git("symbolic-ref", "--quiet", "--short", "HEAD", allow_fail=True).strip()
            if not branch:
                raise PermanentTargetError(
                    "HEAD is detached: cannot tell which branch the pull requests must be merged into; "
                    "check the branch out"
                )
        prefix = self._git("rev-parse", "--show-prefix").strip()
        shallow: frozenset[str] = frozenset()
        if self._git("rev-parse", "--is-shallow-repository").strip() == "true":
            marker = Path(self._git("rev-parse", "--git-path", "shallow").strip())
            marker = marker if marker.is_absolute() else self._repo_dir / marker
            try:
                shallow = frozenset(marker.read_text().split())
            except FileNotFoundError:
                shallow = frozenset()
        self._clone = _Clone(branch=branch, prefix=prefix, shallow=shallow)
        return self._clone

    def _work_tree_dirty(self, path: str) -> bool:
        return bool(self._git("status", "--porcelain", "--", path).strip())

    def _git(self, *args: str, allow_fail: bool = False) -> str:
        return git_output(*args, cwd=self._repo_dir, allow_fail=allow_fail)


def _pull(item: Mapping[str, Any]) -> _Pull:
    head = _get(item, "head", dict)
    base = _get(item, "base", dict)
    head_sha = _get(head, "sha", str)
    if not _SHA.match(head_sha):
        raise PermanentTargetError(f"git host: pull request has an invalid head sha {head_sha[:80]!r}")
    return _Pull(
        number=_get(item, "number", int),
        author=_login(_get(item, "user", dict, optional=True)),
        head_sha=head_sha,
        base_ref=_get(base, "ref", str),
        merged=_get(item, "merged_at", str, optional=True) is not None,
        merge_commit_sha=_get(item, "merge_commit_sha", str, optional=True),
    )


def _login(user: Mapping[str, Any] | None) -> str | None:
    if user is None:
        return None
    login = user.get("login")
    return login.lower() if isinstance(login, str) and login else None


def _get(obj: Mapping[str, Any], key: str, kind: type[Any], *, optional: bool = False) -> Any:
    """obj[key] checked to be of `kind` (None allowed when `optional`); a wrong shape means the
    server is not the GitHub API we know, which no retry fixes."""
    value = obj.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise PermanentTargetError(f"git host: unexpected response: {key!r} is not a {kind.__name__}")
    return value


def _check_relative(path: str) -> None:
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts:
        raise ValueError(f"{path!r} is not a path inside the repository")
