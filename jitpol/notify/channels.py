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
"""

from __future__ import annotations

import http.client
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from email.message import Message as Headers
from pathlib import Path
from typing import Any, Protocol

from jitpol.errors import PermanentTargetError, TargetUnavailable
from jitpol.notify.messages import Message
from jitpol.notify.render import Format, slack_payload
from jitpol.vcs.gitrun import git_output

API_VERSION = "2022-11-28"
MAX_RESPONSE_BYTES = 1024 * 1024
_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")


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
        self._opener = urllib.request.build_opener(_RefuseRedirects())

    def deliver(self, message: Message, text: str) -> str | None:
        body = json.dumps(slack_payload(text), ensure_ascii=False).encode("utf-8")
        status, raw, headers = _request(self._opener, "POST", self._url, body,
                                        {"Content-Type": "application/json"}, self._timeout,
                                        f"webhook ({self._source})", self._scrub)
        if not 200 <= status < 300:
            raise _http_error(status, headers, _snippet(raw, self._scrub), f"webhook ({self._source})")
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
        parsed = urllib.parse.urlsplit(api_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise PermanentTargetError(f"git host api_url {api_url!r} is not an http(s) URL")
        if parsed.username or parsed.password or parsed.query or parsed.fragment:
            raise PermanentTargetError("git host api_url must not carry credentials, a query or a fragment")
        if parsed.scheme == "http" and parsed.hostname not in _LOOPBACK:
            raise PermanentTargetError(
                f"git host api_url {api_url!r} is plain http: the token would travel unencrypted; use https")
        owner, sep, name = repository.partition("/")
        if not sep or not owner or not name or "/" in name or {owner, name} & {".", ".."}:
            raise PermanentTargetError(f"git repository {repository!r} is not OWNER/NAME")
        if not token:
            raise PermanentTargetError("posting pull-request comments needs a token (spec.git.token_env)")
        self._base = api_url.rstrip("/")
        self._repo_path = f"/repos/{urllib.parse.quote(owner, safe='')}/{urllib.parse.quote(name, safe='')}"
        self._token = token
        self._repo_dir = repo_dir
        self._timeout = timeout
        self._opener = urllib.request.build_opener(_RefuseRedirects())
        self._pulls: dict[str, int | None] = {}

    def deliver(self, message: Message, text: str) -> str | None:
        if not message.path:
            return None  # the grant file is gone from the repository: no pull request to find
        number = self.pull_for(message.path)
        if number is None:
            return None
        body = json.dumps({"body": text}, ensure_ascii=False).encode("utf-8")
        url = f"{self._base}{self._repo_path}/issues/{number}/comments"
        status, raw, headers = self._call("POST", url, body, f"comment on pull request #{number}")
        if status != 201:
            raise _http_error(status, headers, _snippet(raw, self._scrub),
                              f"git host: comment on pull request #{number}")
        return f"pull request #{number}"

    def pull_for(self, path: str) -> int | None:
        """The pull request that brought `path` (relative to the repository directory), or None."""
        if path in self._pulls:
            return self._pulls[path]
        commit = git_output("rev-list", "-1", "--first-parent", "HEAD", "--", path, cwd=self._repo_dir).strip()
        number: int | None = None
        if _SHA.fullmatch(commit):
            url = f"{self._base}{self._repo_path}/commits/{commit}/pulls?per_page=100"
            status, raw, headers = self._call("GET", url, None, f"pull requests of commit {commit[:12]}")
            if status == 200:
                number = _choose_pull(_json_list(raw), commit)
            elif status != 422:  # 422: GitHub does not have the commit (not pushed)
                raise _http_error(status, headers, _snippet(raw, self._scrub),
                                  f"git host: pull requests of commit {commit[:12]}")
        self._pulls[path] = number
        return number

    def _call(self, method: str, url: str, body: bytes | None, what: str) -> tuple[int, bytes, Headers]:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION,
                   "Authorization": f"Bearer {self._token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        return _request(self._opener, method, url, body, headers, self._timeout, f"git host: {what}", self._scrub)

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***")

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


def _json_list(raw: bytes) -> list[Mapping[str, Any]]:
    try:
        body = json.loads(raw)
    except ValueError:
        raise PermanentTargetError("git host: the response is not JSON; is api_url the REST API root?") from None
    if not isinstance(body, list):
        raise PermanentTargetError("git host: unexpected response: expected a list of pull requests")
    return [item for item in body if isinstance(item, dict)]


def _request(opener: urllib.request.OpenerDirector, method: str, url: str, body: bytes | None,
             headers: Mapping[str, str], timeout: float, what: str,
             scrub: Callable[[str], str]) -> tuple[int, bytes, Headers]:
    """One HTTP exchange: (status, body, headers) for any HTTP answer; TargetUnavailable when no
    answer came. `scrub` removes secrets from whatever text ends up in an exception."""
    # S310: callers checked the scheme is http(s)
    request = urllib.request.Request(url, data=body, method=method,  # noqa: S310
                                     headers={"User-Agent": "jitpol", **headers})
    try:
        with opener.open(request, timeout=timeout) as response:
            return int(response.status), response.read(MAX_RESPONSE_BYTES), response.headers
    except urllib.error.HTTPError as exc:
        try:
            raw = exc.read(64 * 1024)
        finally:
            exc.close()
        return exc.code, raw, exc.headers
    except urllib.error.URLError as exc:
        raise TargetUnavailable(f"{what}: unreachable: {scrub(str(exc.reason))}") from None
    except (OSError, http.client.HTTPException) as exc:  # timeouts, resets, truncated answers
        raise TargetUnavailable(f"{what}: {type(exc).__name__}: {scrub(str(exc))}") from None


def _http_error(status: int, headers: Mapping[str, str] | Headers, detail: str, what: str) -> Exception:
    where = f"{what}: HTTP {status}" + (f" {detail}" if detail else "")
    limited = headers.get("x-ratelimit-remaining") == "0" or headers.get("retry-after") is not None
    if status == 429 or (status == 403 and limited):
        return TargetUnavailable(f"{where} (rate limited; retried next run)")
    if status >= 500 or status == 408:
        return TargetUnavailable(f"{where} (retried next run)")
    if 300 <= status < 400:
        return PermanentTargetError(f"{where}: redirected; jitpol does not follow redirects")
    if status in (401, 403):
        return PermanentTargetError(f"{where} (check the token and that it may write pull-request comments)")
    return PermanentTargetError(where)


def _snippet(raw: bytes, scrub: Callable[[str], str]) -> str:
    """A short, printable version of an error answer: GitHub's `message`, or Slack's plain text.
    Secrets are scrubbed before anything is cut, so no part of one survives."""
    text = scrub(raw.decode("utf-8", errors="replace"))
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        text = body["message"]
    text = re.sub(r"[^\x20-\x7e]+", " ", text).strip()
    return text[:120]


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Every redirect becomes an HTTPError: urllib would forward the request to any Location."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Headers,
                         newurl: str) -> urllib.request.Request | None:
        return None
