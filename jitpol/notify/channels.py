"""Where notifications go: a Slack-compatible incoming webhook, or a comment on the grant's pull
request on GitHub. Each channel delivers one rendered message per call.

`deliver` returns where the message went ("pull request #12"), None when the channel has nowhere
to put this message (a grant file no pull request brought: skipped, not an error), and raises
TargetUnavailable (temporary: unreachable, timeout, 5xx, rate limit) or PermanentTargetError
(refused: 4xx, bad configuration). The caller records a message as sent only after `deliver`
returned a place, so a failed message is retried by the next run.

Secrets: the webhook URL (Slack's carries its credential in the path) and the GitHub token are
never put into a message or exception; server answers are shown shortened with both scrubbed.
Redirects are refused, since urllib would forward the request (and the token) to another host.
GitHub is reached through jitpol.vcs.githubapi.GitHubApi, the client review approvals use too
(pages, rate limits, error messages); the webhook through its `exchange`.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping
from email.message import Message as Headers
from pathlib import Path
from typing import Any, Protocol

from jitpol.connectors.kit import status_error, temporary_status
from jitpol.errors import PermanentTargetError, TargetError, TargetUnavailable
from jitpol.notify.messages import Message
from jitpol.notify.render import Format, slack_payload
from jitpol.vcs.githubapi import GitHubApi, error_detail, exchange, no_redirects, rate_limited
from jitpol.vcs.gitrun import git_output

MAX_RESPONSE_BYTES = 1024 * 1024
_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
_RETRIED = (408,)  # besides 429 and 5xx: a webhook host's own request timeout


class Channel(Protocol):
    @property
    def name(self) -> str:
        """Recorded in `notification.sent` events: "webhook" | "github"."""
        ...

    @property
    def fmt(self) -> Format:
        """How messages for this channel are rendered."""
        ...

    def deliver(self, message: Message, text: str) -> str | None:
        """Send one message; where it went, or None when there is nowhere to send it."""
        ...


class Webhook:
    """POSTs `{"text", "blocks"}` (Slack incoming-webhook JSON) to a URL kept secret.

    `source` names where the URL came from ("$SLACK_WEBHOOK") for messages; the URL itself never
    appears in one. Raises PermanentTargetError for a URL that is not http(s), or plain http to
    anything but this machine (the URL is a credential and would travel in clear)."""

    name = "webhook"
    fmt: Format = "slack"

    def __init__(self, url: str, *, source: str = "the webhook URL", timeout: float = 10.0) -> None:
        self._source = source
        try:
            parts = urllib.parse.urlsplit(url.strip())
            host = parts.hostname
            _ = parts.port  # raises ValueError for a bad port
        except ValueError:
            raise PermanentTargetError(f"{source} is not a valid URL") from None
        if parts.scheme not in ("http", "https") or not host:
            raise PermanentTargetError(f"{source} is not an http(s) URL")
        if parts.scheme == "http" and host not in _LOOPBACK:
            raise PermanentTargetError(f"{source} is plain http: the webhook URL is a secret; use https")
        self._url = url.strip()
        self._secrets = tuple(s for s in {self._url, parts.path, parts.query} if len(s) > 1)
        self._timeout = timeout
        self._opener = no_redirects()

    def deliver(self, message: Message, text: str) -> str | None:
        body = json.dumps(slack_payload(text), ensure_ascii=False).encode("utf-8")
        what = f"webhook ({self._source})"
        status, raw, headers = exchange(self._opener, "POST", self._url, body, {"Content-Type": "application/json"},
                                        self._timeout, what, self._scrub, MAX_RESPONSE_BYTES)
        if not 200 <= status < 300:
            raise _webhook_error(status, headers, error_detail(raw, self._scrub, 120, plain=True), what) from None
        return "webhook"

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


class PullRequestComments:
    """Comments on the pull request that brought each grant file's current content
    (`POST /repos/{owner}/{repo}/issues/{number}/comments`).

    The pull request is found as jitpol.vcs.github finds it for review approvals: the commit that
    last changed the file on the checked-out branch following first parents, then the pull
    requests GitHub associates with it, preferring the one whose merge made that commit, then
    merged ones, then the newest. The constructor does no I/O; lookups are cached for the run."""

    name = "github"
    fmt: Format = "github"

    def __init__(self, api_url: str, repository: str, token: str, repo_dir: Path, *, timeout: float = 10.0) -> None:
        self._api = GitHubApi(api_url, repository, token, timeout=timeout,
                              needs="read access to pull requests and permission to comment on them")
        if not token:
            raise PermanentTargetError("posting pull-request comments needs a token (spec.git.token_env)")
        self._repo_dir = repo_dir
        self._pulls: dict[str, int | None] = {}

    def deliver(self, message: Message, text: str) -> str | None:
        if not message.path:
            return None  # the grant file is gone from the repository: no pull request to find
        number = self.pull_for(message.path)
        if number is None:
            return None
        self._api.post(f"/issues/{number}/comments", {"body": text}, f"comment on pull request #{number}")
        return f"pull request #{number}"

    def pull_for(self, path: str) -> int | None:
        """The pull request that brought `path` (relative to the repository directory), or None."""
        if path in self._pulls:
            return self._pulls[path]
        commit = git_output("rev-list", "-1", "--first-parent", "HEAD", "--", path, cwd=self._repo_dir).strip()
        number: int | None = None
        if _SHA.fullmatch(commit):
            # 422: GitHub does not have the commit (not pushed)
            pulls = self._api.pages(f"/commits/{commit}/pulls", f"pull requests of commit {commit[:12]}",
                                    absent=(422,))
            number = _choose_pull(pulls, commit) if pulls is not None else None
        self._pulls[path] = number
        return number


def _choose_pull(items: list[Mapping[str, Any]], commit: str) -> int | None:
    best: tuple[bool, bool, int] | None = None
    for item in items:
        number = item.get("number")
        if not isinstance(number, int) or isinstance(number, bool):
            continue
        rank = (item.get("merge_commit_sha") == commit, item.get("merged_at") is not None, number)
        if best is None or rank > best:
            best = rank
    return best[2] if best is not None else None


def _webhook_error(status: int, headers: Headers, detail: str, what: str) -> TargetError:
    """The error for a webhook's failed answer: the kit's status mapping (429, 5xx and 408 are
    worth a retry by the next run), with a 403 that says the rate limit is spent counted as a
    429, and what to do said for redirects and refusals."""
    where = f"{what}: HTTP {status}" + (f" {detail}" if detail else "")
    if rate_limited(status, headers):
        return TargetUnavailable(f"{where} (rate limited; retried next run)")
    if 300 <= status < 400:
        return PermanentTargetError(f"{where}: redirected; jitpol does not follow redirects")
    if temporary_status(status, also=_RETRIED):
        where += " (retried next run)"
    elif status in (401, 403):
        where += " (check the webhook URL)"
    return status_error(status, where, also=_RETRIED)
