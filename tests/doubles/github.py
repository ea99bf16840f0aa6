"""A local HTTP double of the GitHub REST API endpoints jitpol reads for review-based approvals.

    GET /repos/{owner}/{repo}/commits/{sha}/pulls     pull requests associated with a commit
    GET /repos/{owner}/{repo}/contents/{path}?ref=R   a file at a commit (base64, 60-char lines)
    GET /repos/{owner}/{repo}/pulls/{n}/reviews       reviews, oldest first (paginated)
    GET /repos/{owner}/{repo}/pulls/{n}/commits       commits of a pull request (paginated, max 250)
    POST /repos/{owner}/{repo}/issues/{n}/comments    comment on a pull request (stored in state.comments)

Every list endpoint pages like GitHub: `per_page` (default 30, at most 100), `page`, and a `Link`
header whose URLs use GitHub's `/repositories/{id}/...` form, which the double also serves.
Errors use GitHub's bodies: 404 `{"message": "Not Found", "documentation_url": ...}` (also for a
private repository read without a token), 401 `Bad credentials`, 422 `No commit found for SHA`,
403 with `x-ratelimit-remaining: 0` when the rate limit is spent, 403 `Resource not accessible`
for a token without permission. Writing a comment needs a token (401 `Requires authentication`
without one), a JSON object with a string `body` (422 `Validation Failed` otherwise) and an
existing pull request (404). Tests fill a `GitHubState` and read its request log.

    with GitHubDouble(GitHubState(repository="org/access", token="t0k")) as gh:
        gh.state.add_pull(PullRequest(number=7, author="alice", head_sha=head, merge_commit_sha=m))
        gh.state.review(7, "bob", "APPROVED", head)
        ... GitHubReviews(gh.url, "org/access", "t0k", repo_dir) ...
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.doubles.server import LocalServer

DOCS = "https://docs.github.com/rest"
API_VERSION = "2022-11-28"


def user_id(login: str) -> int:
    """A stable numeric id for a login (GitHub ids never change when logins do)."""
    return int(hashlib.sha256(login.lower().encode()).hexdigest()[:8], 16)


@dataclass
class PullRequest:
    number: int
    author: str
    head_sha: str
    base_ref: str = "main"
    head_ref: str = "feature"
    merged_at: str | None = "1998-01-10T12:00:00Z"  # None: not merged
    merge_commit_sha: str | None = None
    state: str | None = None  # default: "closed" when merged, else "open"
    author_type: str = "User"
    author_missing: bool = False  # GitHub sends "user": null


@dataclass
class Review:
    login: str | None  # None: the reviewer's account is gone ("user": null)
    state: str  # APPROVED | CHANGES_REQUESTED | COMMENTED | DISMISSED | PENDING
    commit_id: str
    user_type: str = "User"
    id: int = 0  # assigned by GitHubState.review
    submitted_at: str = "1998-01-10T11:00:00Z"


@dataclass
class PullCommit:
    sha: str
    author: str | None  # GitHub login; None: the e-mail belongs to no account ("author": null)
    committer: str | None = None  # default: same as author; "web-flow" for web-UI commits


@dataclass
class IssueComment:
    id: int
    body: str
    login: str = "jitpol-bot"  # the token's user


@dataclass
class RequestRecord:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes = b""


@dataclass
class GitHubState:
    """What the double serves. Tests mutate it directly (under `lock` while the server runs)."""

    repository: str = "org/access"
    repository_id: int = 123456789
    token: str | None = None  # None: any request is accepted; else required as Bearer/token
    private: bool = True  # without a token a private repository answers 404
    pulls: dict[int, PullRequest] = field(default_factory=dict)
    reviews: dict[int, list[Review]] = field(default_factory=dict)
    pull_commits: dict[int, list[PullCommit]] = field(default_factory=dict)
    commit_pulls: dict[str, list[int]] = field(default_factory=dict)  # sha -> pull numbers
    commits: set[str] = field(default_factory=set)  # shas the host has (besides commit_pulls keys)
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (ref sha, path) -> bytes
    rate_limit: int = 5000
    rate_remaining: int = 5000
    rate_reset: int = 3_945_916_800  # epoch seconds: 2095-01-15T08:00:00Z
    forbidden: bool = False  # 403 "Resource not accessible by personal access token"
    fail_status: int | None = None  # answer every request with this status (e.g. 502)
    redirect_to: str | None = None  # 301 every request to this base URL
    link_base: str | None = None  # pagination links point here instead of at the double itself
    requests: list[RequestRecord] = field(default_factory=list)
    comments: dict[int, list[IssueComment]] = field(default_factory=dict)  # pull number -> comments, oldest first
    lock: threading.Lock = field(default_factory=threading.Lock)
    _next_review_id: int = 1000
    _next_comment_id: int = 5000

    # -- filling --------------------------------------------------------------------------------
    def add_pull(self, pull: PullRequest, commits: list[PullCommit] | None = None) -> PullRequest:
        self.pulls[pull.number] = pull
        self.reviews.setdefault(pull.number, [])
        if commits is not None:
            self.pull_commits[pull.number] = commits
        return pull

    def associate(self, sha: str, *numbers: int) -> None:
        """GitHub lists pull requests `numbers` for commit `sha` (none: a commit without one)."""
        self.commit_pulls.setdefault(sha, []).extend(numbers)

    def review(self, number: int, login: str | None, state: str, commit_id: str, *, user_type: str = "User") -> Review:
        self._next_review_id += 1
        review = Review(login=login, state=state, commit_id=commit_id, user_type=user_type, id=self._next_review_id)
        self.reviews.setdefault(number, []).append(review)
        return review

    def requests_to(self, fragment: str) -> list[RequestRecord]:
        return [r for r in self.requests if fragment in r.path]


class GitHubDouble:
    """The HTTP server on 127.0.0.1 (free port) in a thread; a context manager."""

    def __init__(self, state: GitHubState) -> None:
        self.state = state
        handler = type("Handler", (_Handler,), {"state": state})
        self._server = LocalServer(handler, name="github-double")

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> GitHubDouble:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> GitHubDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_REPO = r"/(?:repos/(?P<owner>[^/]+)/(?P<name>[^/]+)|repositories/(?P<id>\d+))"
_ROUTES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(_REPO + r"/commits/(?P<sha>[^/]+)/pulls$"), "commit_pulls"),
    (re.compile(_REPO + r"/contents/(?P<path>.+)$"), "contents"),
    (re.compile(_REPO + r"/pulls/(?P<number>\d+)/reviews$"), "reviews"),
    (re.compile(_REPO + r"/pulls/(?P<number>\d+)/commits$"), "pull_commits"),
]
_POST_ROUTES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(_REPO + r"/issues/(?P<number>\d+)/comments$"), "create_comment"),
]


class _Handler(BaseHTTPRequestHandler):
    state: GitHubState
    _body: bytes = b""  # the request body of a POST
    server_version = "GitHub.com"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log is state.requests

    def do_GET(self) -> None:
        split = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(split.path)
        query = urllib.parse.parse_qs(split.query)
        state = self.state
        with state.lock:
            state.requests.append(RequestRecord("GET", path, query, {k.lower(): v for k, v in self.headers.items()}))
            self._dispatch(state, split.path, query)

    def do_POST(self) -> None:
        split = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(split.path)
        query = urllib.parse.parse_qs(split.query)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        state = self.state
        with state.lock:
            headers = {k.lower(): v for k, v in self.headers.items()}
            state.requests.append(RequestRecord("POST", path, query, headers, body))
            self._body = body
            self._dispatch(state, split.path, query, _POST_ROUTES)

    def _dispatch(self, state: GitHubState, raw_path: str, query: dict[str, list[str]],
                  routes: list[tuple[re.Pattern[str], str]] = _ROUTES) -> None:
        if state.redirect_to is not None:
            self._send(301, {"message": "Moved Permanently", "url": state.redirect_to + self.path,
                             "documentation_url": DOCS}, {"Location": state.redirect_to + self.path})
            return
        if state.fail_status is not None:
            self._send(state.fail_status, {"message": "Server Error"})
            return
        auth = self.headers.get("Authorization")
        if auth is not None:
            scheme, _, given = auth.partition(" ")
            if state.token is not None and (scheme.lower() not in ("bearer", "token") or given != state.token):
                self._send(401, {"message": "Bad credentials", "documentation_url": DOCS, "status": "401"})
                return
        elif state.token is not None and state.private:
            self._not_found()
            return
        elif routes is _POST_ROUTES:
            self._send(401, {"message": "Requires authentication", "documentation_url": DOCS, "status": "401"})
            return
        if state.rate_remaining <= 0:
            self._send(403, {"message": "API rate limit exceeded for user ID 1. If you reach out to GitHub "
                             "Support for help, please include the request ID.",
                             "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"})
            return
        state.rate_remaining -= 1
        if state.forbidden:
            self._send(403, {"message": "Resource not accessible by personal access token",
                             "documentation_url": DOCS, "status": "403"})
            return
        for pattern, name in routes:
            match = pattern.match(urllib.parse.unquote(raw_path) if name != "contents" else raw_path)
            if match is None:
                continue
            groups = match.groupdict()
            if groups["id"] is not None:
                known = int(groups["id"]) == state.repository_id
            else:
                known = f"{groups['owner']}/{groups['name']}".lower() == state.repository.lower()
            if not known:
                self._not_found()
                return
            getattr(self, f"_{name}")(state, groups, query)
            return
        self._not_found()

    # -- endpoints --------------------------------------------------------------------------------
    def _commit_pulls(self, state: GitHubState, groups: dict[str, Any], query: dict[str, list[str]]) -> None:
        sha = groups["sha"]
        if sha not in state.commit_pulls and sha not in state.commits:
            self._send(422, {"message": f"No commit found for SHA: {sha}",
                             "documentation_url": "https://docs.github.com/rest/commits/commits"
                                                  "#list-pull-requests-associated-with-a-commit",
                             "status": "422"})
            return
        items = [self._pull_json(state, state.pulls[n]) for n in state.commit_pulls.get(sha, []) if n in state.pulls]
        self._paginate(state, f"commits/{sha}/pulls", items, query)

    def _contents(self, state: GitHubState, groups: dict[str, Any], query: dict[str, list[str]]) -> None:
        path = urllib.parse.unquote(groups["path"]).strip("/")
        ref = query.get("ref", ["main"])[0]
        known = {r for r, _ in state.files} | state.commits | set(state.commit_pulls)
        if ref not in known:
            self._send(404, {"message": f"No commit found for the ref {ref}",
                             "documentation_url": "https://docs.github.com/rest/repos/contents#get-repository-content",
                             "status": "404"})
            return
        data = state.files.get((ref, path))
        if data is not None:
            self._send(200, self._file_json(state, path, ref, data))
            return
        below = sorted(p for r, p in state.files if r == ref and p.startswith(path + "/"))
        if below:  # a directory: GitHub lists its entries
            names = sorted({p[len(path) + 1:].split("/")[0] for p in below})
            self._send(200, [{"type": "file" if (ref, f"{path}/{n}") in state.files else "dir",
                              "name": n, "path": f"{path}/{n}"} for n in names])
            return
        self._send(404, {"message": "Not Found",
                         "documentation_url": "https://docs.github.com/rest/repos/contents#get-repository-content",
                         "status": "404"})

    def _reviews(self, state: GitHubState, groups: dict[str, Any], query: dict[str, list[str]]) -> None:
        number = int(groups["number"])
        pull = state.pulls.get(number)
        if pull is None:
            self._not_found()
            return
        items = [self._review_json(state, number, r) for r in state.reviews.get(number, [])]
        self._paginate(state, f"pulls/{number}/reviews", items, query)

    def _pull_commits(self, state: GitHubState, groups: dict[str, Any], query: dict[str, list[str]]) -> None:
        number = int(groups["number"])
        if number not in state.pulls:
            self._not_found()
            return
        # GitHub lists at most 250 commits of a pull request
        items = [self._commit_json(c) for c in state.pull_commits.get(number, [])][:250]
        self._paginate(state, f"pulls/{number}/commits", items, query)

    def _create_comment(self, state: GitHubState, groups: dict[str, Any], query: dict[str, list[str]]) -> None:
        number = int(groups["number"])
        if number not in state.pulls:
            self._not_found()
            return
        try:
            payload = json.loads(self._body or b"null")
        except ValueError:
            self._send(400, {"message": "Problems parsing JSON", "documentation_url": DOCS, "status": "400"})
            return
        if not isinstance(payload, dict) or not isinstance(payload.get("body"), str):
            self._send(422, {"message": "Validation Failed", "errors": [
                {"resource": "IssueComment", "code": "missing_field", "field": "body"}],
                "documentation_url": DOCS, "status": "422"})
            return
        state._next_comment_id += 1
        comment = IssueComment(state._next_comment_id, payload["body"])
        state.comments.setdefault(number, []).append(comment)
        api = f"https://api.github.com/repos/{state.repository}"
        self._send(201, {
            "id": comment.id, "node_id": f"IC_{comment.id}", "url": f"{api}/issues/comments/{comment.id}",
            "html_url": f"https://github.com/{state.repository}/pull/{number}#issuecomment-{comment.id}",
            "body": comment.body, "user": self._user(comment.login, "Bot" if "[bot]" in comment.login else "User"),
            "created_at": "1998-01-10T12:00:00Z", "updated_at": "1998-01-10T12:00:00Z",
            "issue_url": f"{api}/issues/{number}", "author_association": "NONE",
        }, {"Location": f"{api}/issues/comments/{comment.id}"})

    # -- shapes -----------------------------------------------------------------------------------
    def _user(self, login: str, kind: str = "User") -> dict[str, Any]:
        if kind == "User" and login.endswith("[bot]"):
            kind = "Bot"
        return {"login": login, "id": user_id(login), "node_id": f"U_{user_id(login)}",
                "avatar_url": f"https://avatars.githubusercontent.com/u/{user_id(login)}",
                "url": f"https://api.github.com/users/{login}", "html_url": f"https://github.com/{login}",
                "type": kind, "site_admin": False}

    def _repo_json(self, state: GitHubState) -> dict[str, Any]:
        owner = state.repository.split("/")[0]
        return {"id": state.repository_id, "name": state.repository.split("/")[1], "full_name": state.repository,
                "private": state.private, "owner": self._user(owner, "Organization")}

    def _pull_json(self, state: GitHubState, pull: PullRequest) -> dict[str, Any]:
        api = f"https://api.github.com/repos/{state.repository}"
        user = None if pull.author_missing else self._user(pull.author, pull.author_type)
        state_name = pull.state or ("closed" if pull.merged_at else "open")
        return {
            "url": f"{api}/pulls/{pull.number}", "id": 900000 + pull.number, "node_id": f"PR_{pull.number}",
            "html_url": f"https://github.com/{state.repository}/pull/{pull.number}", "number": pull.number,
            "state": state_name, "locked": False, "title": f"Pull request {pull.number}", "user": user,
            "body": None, "created_at": "1998-01-10T10:00:00Z", "updated_at": "1998-01-10T12:00:00Z",
            "closed_at": pull.merged_at, "merged_at": pull.merged_at, "merge_commit_sha": pull.merge_commit_sha,
            "assignees": [], "requested_reviewers": [], "labels": [], "draft": False,
            "head": {"label": f"{state.repository.split('/')[0]}:{pull.head_ref}", "ref": pull.head_ref,
                     "sha": pull.head_sha, "user": user, "repo": self._repo_json(state)},
            "base": {"label": f"{state.repository.split('/')[0]}:{pull.base_ref}", "ref": pull.base_ref,
                     "sha": "0" * 40, "user": self._user(state.repository.split("/")[0], "Organization"),
                     "repo": self._repo_json(state)},
            "author_association": "MEMBER", "auto_merge": None, "active_lock_reason": None,
        }

    def _review_json(self, state: GitHubState, number: int, review: Review) -> dict[str, Any]:
        api = f"https://api.github.com/repos/{state.repository}"
        body: dict[str, Any] = {
            "id": review.id, "node_id": f"PRR_{review.id}",
            "user": None if review.login is None else self._user(review.login, review.user_type),
            "body": "", "state": review.state,
            "html_url": f"https://github.com/{state.repository}/pull/{number}#pullrequestreview-{review.id}",
            "pull_request_url": f"{api}/pulls/{number}", "author_association": "MEMBER",
            "_links": {"html": {"href": f"https://github.com/{state.repository}/pull/{number}"},
                       "pull_request": {"href": f"{api}/pulls/{number}"}},
            "commit_id": review.commit_id,
        }
        if review.state != "PENDING":  # a pending review has not been submitted
            body["submitted_at"] = review.submitted_at
        return body

    def _commit_json(self, commit: PullCommit) -> dict[str, Any]:
        committer = commit.committer if commit.committer is not None else commit.author
        person = {"name": "Someone", "email": "someone@example.com", "date": "1998-01-10T10:00:00Z"}
        return {
            "sha": commit.sha, "node_id": f"C_{commit.sha[:10]}",
            "commit": {"author": person, "committer": person, "message": "change", "tree": {"sha": "0" * 40},
                       "comment_count": 0, "verification": {"verified": False, "reason": "unsigned"}},
            "author": None if commit.author is None else self._user(commit.author),
            "committer": None if committer is None else self._user(committer),
            "parents": [],
        }

    def _file_json(self, state: GitHubState, path: str, ref: str, data: bytes) -> dict[str, Any]:
        encoded = base64.b64encode(data).decode()
        wrapped = "".join(encoded[i:i + 60] + "\n" for i in range(0, len(encoded), 60))
        blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 - git's object id
        api = f"https://api.github.com/repos/{state.repository}"
        return {
            "type": "file", "encoding": "base64", "size": len(data), "name": path.rsplit("/", 1)[-1],
            "path": path, "content": wrapped, "sha": blob,
            "url": f"{api}/contents/{path}?ref={ref}",
            "git_url": f"{api}/git/blobs/{blob}",
            "html_url": f"https://github.com/{state.repository}/blob/{ref}/{path}",
            "download_url": f"https://raw.githubusercontent.com/{state.repository}/{ref}/{path}",
            "_links": {"self": f"{api}/contents/{path}?ref={ref}", "git": f"{api}/git/blobs/{blob}",
                       "html": f"https://github.com/{state.repository}/blob/{ref}/{path}"},
        }

    # -- plumbing ---------------------------------------------------------------------------------
    def _paginate(self, state: GitHubState, tail: str, items: list[Any], query: dict[str, list[str]]) -> None:
        try:
            per_page = max(1, min(100, int(query.get("per_page", ["30"])[0])))
            page = max(1, int(query.get("page", ["1"])[0]))
        except ValueError:
            self._send(422, {"message": "Invalid request.", "documentation_url": DOCS})
            return
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        origin = state.link_base or f"http://{self.headers.get('Host', '127.0.0.1')}"
        # GitHub's links switch to the repository-id form of the URL
        base = f"{origin}/repositories/{state.repository_id}/{tail}"
        rels = []
        if page < last:
            rels += [f'<{base}?per_page={per_page}&page={page + 1}>; rel="next"',
                     f'<{base}?per_page={per_page}&page={last}>; rel="last"']
        if page > 1:
            rels = [f'<{base}?per_page={per_page}&page={page - 1}>; rel="prev"',
                    f'<{base}?per_page={per_page}&page=1>; rel="first"', *rels]
        self._send(200, chunk, {"Link": ", ".join(rels)} if rels else None)

    def _not_found(self) -> None:
        self._send(404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"})

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        state = self.state
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-GitHub-Api-Version-Selected", API_VERSION)
        self.send_header("x-ratelimit-limit", str(state.rate_limit))
        self.send_header("x-ratelimit-remaining", str(max(0, state.rate_remaining)))
        self.send_header("x-ratelimit-reset", str(state.rate_reset))
        self.send_header("x-ratelimit-used", str(state.rate_limit - max(0, state.rate_remaining)))
        self.send_header("x-ratelimit-resource", "core")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
