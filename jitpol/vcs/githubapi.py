"""The one GitHub REST client: review approvals (jitpol.vcs.github) and pull-request comments
(jitpol.notify.channels) both talk to GitHub through GitHubApi.

- Only to `api_url`'s origin: redirects are refused (urllib would forward the Authorization
  header to whatever host a Location names) and pagination links to another origin rejected.
- The token is sent only as `Authorization: Bearer` and appears in no message: whatever a server
  or proxy echoes back is scrubbed of it before anything is cut or shown.
- Lists are read whole, page by page (`Link: rel="next"`), at most MAX_PAGES pages.
- Answers larger than MAX_RESPONSE_BYTES are refused.
- Errors: no answer (unreachable, timeout, reset), 5xx, 408, and a rate limit (429, or 403 with
  the limit spent; the message says when it resets) raise TargetUnavailable: the next run
  retries. An untrusted TLS certificate, a redirect, 401, 403, 404 and the other 4xx raise
  PermanentTargetError with what to check. A status the caller declares `absent` ("no such
  object") is an answer of None instead.

`exchange` (one HTTP request, no redirects) also serves the webhook channel.
"""

from __future__ import annotations

import http.client
import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message as Headers
from typing import Any

from jitpol.errors import PermanentTargetError, TargetUnavailable

API_VERSION = "2022-11-28"
PER_PAGE = 100
# A pagination loop (or a hostile server) must not keep a run busy forever: 50 pages are 5,000
# reviews, far more than any real pull request carries.
MAX_PAGES = 50
# Responses larger than this are not GitHub answering the endpoints jitpol uses.
MAX_RESPONSE_BYTES = 20 * 1024 * 1024
# How much of an error answer is read (for its message).
MAX_ERROR_BYTES = 64 * 1024

_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="?([^";]*)"?')


@dataclass(frozen=True, slots=True)
class Response:
    """A successful (2xx) answer: its status, parsed JSON body (None when empty or not read) and
    headers."""

    status: int
    body: Any
    headers: Headers


class GitHubApi:
    """GitHub's REST API for one repository. The constructor does no I/O.

    `needs` says what the token must be allowed, for the message of a 403. Raises
    PermanentTargetError for an `api_url` that is not http(s), carries credentials, a query or a
    fragment, or is plain http to anything but this machine while there is a token; and for a
    `repository` that is not OWNER/NAME."""

    def __init__(self, api_url: str, repository: str, token: str | None, *, timeout: float = 10.0,
                 needs: str = "read access to pull requests and contents") -> None:
        parsed = urllib.parse.urlsplit(api_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise PermanentTargetError(f"git host api_url {api_url!r} is not an http(s) URL")
        if parsed.username or parsed.password or parsed.query or parsed.fragment:
            raise PermanentTargetError("git host api_url must not carry credentials, a query or a fragment")
        if parsed.scheme == "http" and token and parsed.hostname not in _LOOPBACK:
            raise PermanentTargetError(
                f"git host api_url {api_url!r} is plain http: the token would travel unencrypted; use https")
        owner, sep, name = repository.partition("/")
        if not sep or not owner or not name or "/" in name or {owner, name} & {".", ".."}:
            raise PermanentTargetError(f"git repository {repository!r} is not OWNER/NAME")
        self.repository = repository
        self.host = parsed.netloc.lower()
        self._base = api_url.rstrip("/")
        self._origin = (parsed.scheme, self.host)
        self._repo_url = f"{self._base}/repos/{quote(owner)}/{quote(name)}"
        self._token = token or None
        self._timeout = timeout
        self._needs = needs
        self._opener = no_redirects()

    def get(self, path: str, what: str, *, absent: tuple[int, ...] = ()) -> Response | None:
        """GET `path` (below the repository: "/contents/x?ref=y"); None for a status in `absent`."""
        return self._call("GET", self._repo_url + path, None, what, absent)

    def post(self, path: str, payload: Any, what: str) -> Response:
        """POST `payload` as JSON to `path` (below the repository). The answer's body is not read
        as JSON (its `body` is None): once GitHub said 2xx, the object exists, whatever follows."""
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        response = self._call("POST", self._repo_url + path, body, what, (), parse=False)
        assert response is not None  # no status was declared absent
        return response

    def pages(self, path: str, what: str, *, absent: tuple[int, ...] = ()) -> list[Mapping[str, Any]] | None:
        """Every item of the list endpoint `path` (below the repository), all pages; None when the
        first page answers with a status in `absent`."""
        url: str | None = f"{self._repo_url}{path}?per_page={PER_PAGE}"
        seen: set[str] = set()
        items: list[Mapping[str, Any]] = []
        while url is not None:
            if url in seen or len(seen) >= MAX_PAGES:
                raise PermanentTargetError(f"git host: {what}: pagination does not end")
            response = self._call("GET", url, None, what, () if seen else absent)
            if response is None:
                return None
            seen.add(url)
            body = response.body
            if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
                raise PermanentTargetError(f"git host: {what}: expected a list of objects")
            items.extend(body)
            url = self._next_link(response.headers.get("Link"), what)
        return items

    def scrub(self, text: str) -> str:
        """`text` without the token, should a server or proxy echo it back."""
        return text.replace(self._token, "***") if self._token else text

    def _call(self, method: str, url: str, body: bytes | None, what: str, absent: tuple[int, ...], *,
              parse: bool = True) -> Response | None:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        if body is not None:
            headers["Content-Type"] = "application/json"
        where = f"git host {self.host}: {what}"
        status, raw, answer = exchange(self._opener, method, url, body, headers, self._timeout, where, self.scrub,
                                       MAX_RESPONSE_BYTES)
        if not 200 <= status < 300:
            if status in absent:
                return None
            raise self._error(status, answer, error_detail(raw, self.scrub, 200), where) from None
        if not parse:
            return Response(status, None, answer)
        if len(raw) > MAX_RESPONSE_BYTES:
            raise PermanentTargetError(f"{where}: response too large")
        try:
            return Response(status, json.loads(raw) if raw.strip() else None, answer)
        except ValueError:
            raise PermanentTargetError(
                f"{where}: the response is not JSON; is api_url the REST API root?") from None

    def _error(self, status: int, headers: Headers, detail: str, where: str) -> Exception:
        said = f"{where}: HTTP {status}" + (f" {detail}" if detail else "")
        if status == 404:
            return PermanentTargetError(
                f"{said} (wrong spec.git.repository or api_url, or the token cannot read the repository)")
        if status == 401:
            return PermanentTargetError(f"{said} (check the token in spec.git.token_env)")
        if rate_limited(status, headers):
            return TargetUnavailable(f"{where}: HTTP {status} rate limited{_reset_note(headers)}")
        if status == 403:
            return PermanentTargetError(f"{said} (the token needs {self._needs})")
        if 300 <= status < 400:
            return PermanentTargetError(
                f"{where}: HTTP {status}: redirected to {self.scrub(headers.get('Location', ''))!r}; jitpol does "
                "not follow redirects (renamed repository? update spec.git.repository / api_url)")
        if status >= 500 or status == 408:
            return TargetUnavailable(said)
        return PermanentTargetError(said)

    def _next_link(self, header: str | None, what: str) -> str | None:
        if not header:
            return None
        for target, rels in _LINK.findall(header):
            if "next" in rels.split():
                # Follow GitHub's URL as given (it switches to /repositories/{id}/...), but never
                # let a link carry the token to another origin.
                absolute = urllib.parse.urljoin(self._base + "/", str(target))
                parts = urllib.parse.urlsplit(absolute)
                if (parts.scheme, parts.netloc.lower()) != self._origin:
                    raise PermanentTargetError(f"git host: {what}: a pagination link leads to another host")
                return absolute
        return None


def exchange(opener: urllib.request.OpenerDirector, method: str, url: str, body: bytes | None,
             headers: Mapping[str, str], timeout: float, what: str, scrub: Callable[[str], str],
             limit: int) -> tuple[int, bytes, Headers]:
    """One HTTP request: (status, body, headers) for any HTTP answer, the body of a success read
    up to `limit` + 1 bytes (so the caller can tell it was too large). When no answer came:
    TargetUnavailable, or PermanentTargetError for a TLS certificate that is not trusted (no
    retry fixes it). `scrub` removes secrets from whatever text ends up in an exception."""
    # S310: callers checked the scheme is http(s) (and pagination links keep the origin)
    request = urllib.request.Request(url, data=body, method=method,  # noqa: S310
                                     headers={"User-Agent": "jitpol", **headers})
    try:
        with opener.open(request, timeout=timeout) as response:
            return int(response.status), response.read(limit + 1), response.headers
    except urllib.error.HTTPError as exc:
        try:
            raw = exc.read(MAX_ERROR_BYTES)
        finally:
            exc.close()
        return exc.code, raw, exc.headers
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLCertVerificationError):
            raise PermanentTargetError(f"{what}: TLS certificate not trusted ({scrub(str(exc.reason))})") from None
        raise TargetUnavailable(f"{what}: unreachable: {scrub(str(exc.reason))}") from None
    except (OSError, http.client.HTTPException) as exc:  # timeouts, resets, truncated answers
        raise TargetUnavailable(f"{what}: {type(exc).__name__}: {scrub(str(exc))}") from None


def error_detail(raw: bytes, scrub: Callable[[str], str], limit: int, *, plain: bool = False) -> str:
    """A short, printable version of an error answer: its JSON `message` (GitHub's), or with
    `plain` the text itself (Slack's); else "" (a proxy's page is noise). Secrets are scrubbed
    before anything is cut, so no part of one survives."""
    text = scrub(raw.decode("utf-8", errors="replace"))
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        text = body["message"]
    elif not plain:
        return ""
    text = re.sub(r"[^\x20-\x7e]+", " ", text).strip()
    return text[:limit]


def rate_limited(status: int, headers: Mapping[str, str] | Headers) -> bool:
    """A 429, or a 403 that says the rate limit is spent."""
    spent = headers.get("x-ratelimit-remaining") == "0" or headers.get("retry-after") is not None
    return status == 429 or (status == 403 and spent)


def no_redirects() -> urllib.request.OpenerDirector:
    """An opener that turns every redirect into an HTTPError."""
    return urllib.request.build_opener(_RefuseRedirects())


def quote(text: str, safe: str = "") -> str:
    return urllib.parse.quote(text, safe=safe)


def _reset_note(headers: Headers) -> str:
    reset = headers.get("x-ratelimit-reset")
    if reset is not None and reset.isdigit():
        when = datetime.fromtimestamp(int(reset), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"; the limit resets at {when}"
    retry = headers.get("retry-after")
    if retry is not None and retry.isdigit():
        return f"; retry after {retry} s"
    return ""


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Every redirect becomes an HTTPError: urllib would forward the request, with its
    Authorization header, to whatever host a Location names."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Headers,
                         newurl: str) -> urllib.request.Request | None:
        return None
