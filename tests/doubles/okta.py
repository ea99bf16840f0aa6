"""A local HTTP double of the Okta management API (stdlib only), for the real `okta` SDK.

    with OktaDouble(token="t0ken") as okta:       # serves http://127.0.0.1:PORT in a thread
        alice = okta.add_user("alice@example.com")
        admins = okta.add_group("admins")
        okta.url                                   # the org URL to configure

The SDK refuses plain-HTTP org URLs unless OKTA_TESTING_TESTINGDISABLEHTTPSCHECK=true is set in
the process environment (the fixtures in tests/okta_fixtures.py do that).

What it reproduces of the documented service:
- Authorization `SSWS <token>` (the SDK 3.x sends it without the space; both are accepted);
  anything else -> 401 {"errorCode": "E0000011", "errorSummary": "Invalid token provided"}.
- GET /api/v1/groups/{g}; GET /api/v1/groups/{g}/users with `limit` and the `after` cursor,
  answering with `Link: <…>; rel="self"` and `Link: <…>; rel="next"` headers like Okta.
- PUT /api/v1/groups/{g}/users/{u} -> 204 even if already a member; DELETE -> 204 even if not a
  member (both idempotent at Okta). Only OKTA_GROUP memberships change; for an APP_GROUP the
  double answers 400 E0000001 (Okta documents the rule, not the error code; the connector
  refuses such groups before asking). Unknown group or user -> 404 E0000007 with Okta's body.
- GET /api/v1/users/{u}/groups; DELETE /api/v1/users/{u}/sessions[?oauthTokens=true] -> 204.
- Factors: GET /api/v1/users/{u}/factors; POST …/factors/{f}/verify for a push -> 201
  {"factorResult": "WAITING", "_links": {"poll", "cancel"}}; GET …/transactions/{t} polls;
  DELETE …/transactions/{t} cancels. How the push is answered is set per user with
  set_push(user, answer, after_polls): "accept" -> SUCCESS, "reject" -> REJECTED, "expire" ->
  TIMEOUT (Okta's own expiry), "ignore" -> WAITING for ever.
- link_origin: when set, Link headers point to that origin instead (a hostile or broken server).
- fail_next: status codes to answer the next requests with (403 E0000006, 429 E0000047 without
  rate-limit headers, 5xx E0000009), first in first out, for outage tests.

Every request is logged (method, path with query, Authorization header) in `requests`, also
the ones answered 429.

Rate limits, as Okta documents them and enforces them per org:
- per endpoint family and minute (https://developer.okta.com/docs/reference/rl-global-mgmt/,
  Enterprise column): "/api/v1/groups/{id}" itself 600, POST/PUT/DELETE "/api/v1/users/{id}"
  itself 600, the rest of /api/v1 600 (`limits`), counted in fixed windows of `window_s`
  (default 60 s); every answer carries X-Rate-Limit-Limit / -Remaining / -Reset (UTC epoch
  seconds the window ends, counted from the answer's own Date header) for its family; past the
  limit 429 E0000047 with those headers.
- concurrent requests: at most `max_concurrent` (default 75) in flight; the next one gets 429
  with the concurrent values (Remaining 0, Reset a second ahead, "only an estimate").
- `latency_s` (default 0): how long each request takes, so that requests overlap as on the
  network. `clock` (monotonic seconds) is injectable. `throttled` counts 429s for limits,
  `peak_in_flight` the most requests seen at once, `families` the requests answered per family.
"""

from __future__ import annotations

import email.utils
import json
import math
import secrets
import string
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any, Literal

from tests.doubles.server import LocalServer, QuietHandler

PushAnswer = Literal["accept", "reject", "expire", "ignore"]
_ALNUM = string.ascii_letters + string.digits


def okta_id(prefix: str) -> str:
    """An id shaped like Okta's: a 3-character type prefix and 17 letters/digits."""
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(17))


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    method: str
    path: str  # with the query string
    authorization: str | None


@dataclass
class _Push:
    answer: PushAnswer = "accept"
    after_polls: int = 0  # WAITING answers before the result shows


@dataclass
class _Transaction:
    user: str
    factor: str
    answer: PushAnswer
    polls_left: int
    cancelled: bool = False


@dataclass
class OktaState:
    token: str
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    members: dict[str, list[str]] = field(default_factory=dict)  # group id -> user ids, in order
    sessions: dict[str, int] = field(default_factory=dict)  # user id -> open Okta sessions
    oauth_tokens: dict[str, int] = field(default_factory=dict)  # user id -> live OAuth tokens
    factors: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    pushes: dict[str, _Push] = field(default_factory=dict)
    transactions: dict[str, _Transaction] = field(default_factory=dict)
    fail_next: list[int] = field(default_factory=list)
    link_origin: str | None = None  # e.g. "http://evil.example": Link headers point elsewhere
    requests: list[LoggedRequest] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    # rate limits (module docstring)
    limits: dict[str, int] = field(default_factory=lambda: {"group": 600, "user": 600, "other": 600})
    window_s: float = 60.0
    max_concurrent: int = 75
    latency_s: float = 0.0
    clock: Callable[[], float] = time.monotonic
    epoch: float | None = None  # the clock at the first request: windows count from there
    used: Counter[tuple[str, int]] = field(default_factory=Counter)  # (family, window) -> requests
    in_flight: int = 0
    peak_in_flight: int = 0
    throttled: int = 0
    families: Counter[str] = field(default_factory=Counter)


def family_of(method: str, path: str) -> str:
    """Okta's documented rate-limit family of a request (module docstring)."""
    parts = urllib.parse.urlsplit(path).path.strip("/").split("/")
    if len(parts) == 4 and parts[:3] == ["api", "v1", "groups"]:
        return "group"
    if len(parts) == 4 and parts[:3] == ["api", "v1", "users"] and method != "GET":
        return "user"
    return "other"


class OktaDouble:
    """The server and its state; see the module docstring. All helpers are thread-safe."""

    def __init__(self, token: str, **limits: Any) -> None:
        """`limits`: OktaState's rate-limit fields (limits, window_s, max_concurrent, latency_s,
        clock)."""
        self.state = OktaState(token=token, **limits)
        self._server: LocalServer | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        server = LocalServer(_handler(self.state))
        server.start()
        self._server = server

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def __enter__(self) -> OktaDouble:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return self._server.url

    # -- arranging state ------------------------------------------------------------------------

    def add_user(self, login: str, *, push: bool = True) -> str:
        """A new ACTIVE user with one open session and one OAuth token; `push`: an active Okta
        Verify push factor (and a TOTP one, which must be ignored)."""
        uid = okta_id("00u")
        with self.state.lock:
            self.state.users[uid] = {
                "id": uid,
                "status": "ACTIVE",
                "created": "1998-01-01T00:00:00.000Z",
                "lastUpdated": "1998-01-01T00:00:00.000Z",
                "profile": {"login": login, "email": login, "firstName": login.split("@")[0], "lastName": "Test"},
                "credentials": {"provider": {"type": "OKTA", "name": "OKTA"}},
                "_links": {},
            }
            self.state.sessions[uid] = 1
            self.state.oauth_tokens[uid] = 1
            factors = [_factor("token:software:totp", "GOOGLE")]
            if push:
                factors.insert(0, _factor("push", "OKTA"))
            self.state.factors[uid] = factors
        return uid

    def add_group(self, name: str, *, kind: str = "OKTA_GROUP") -> str:
        gid = okta_id("00g")
        with self.state.lock:
            self.state.groups[gid] = {
                "id": gid,
                "type": kind,
                "created": "1998-01-01T00:00:00.000Z",
                "profile": {"name": name, "description": ""},
                "_links": {},
            }
            self.state.members[gid] = []
        return gid

    def add_member(self, group: str, user: str) -> None:
        """Membership made behind jitpol's back (e.g. standing access, drift)."""
        with self.state.lock:
            if user not in self.state.members[group]:
                self.state.members[group].append(user)

    def members(self, group: str) -> list[str]:
        with self.state.lock:
            return list(self.state.members[group])

    def set_push(self, user: str, answer: PushAnswer, after_polls: int = 0) -> None:
        with self.state.lock:
            self.state.pushes[user] = _Push(answer, after_polls)

    def cancelled_transactions(self) -> int:
        with self.state.lock:
            return sum(1 for t in self.state.transactions.values() if t.cancelled)

    def fail_next(self, *statuses: int) -> None:
        with self.state.lock:
            self.state.fail_next.extend(statuses)

    @property
    def requests(self) -> list[LoggedRequest]:
        with self.state.lock:
            return list(self.state.requests)

    def clear_log(self) -> None:
        with self.state.lock:
            self.state.requests.clear()


def _factor(kind: str, provider: str) -> dict[str, Any]:
    return {
        "id": okta_id("opf" if kind == "push" else "ufs"),
        "factorType": kind,
        "provider": provider,
        "vendorName": provider,
        "status": "ACTIVE",
        "created": "1998-01-01T00:00:00.000Z",
        "profile": {},
        "_links": {},
    }


def _error(code: str, summary: str) -> dict[str, Any]:
    return {
        "errorCode": code,
        "errorSummary": summary,
        "errorLink": code,
        "errorId": okta_id("oae"),
        "errorCauses": [],
    }


_FAILURES = {
    403: _error("E0000006", "You do not have permission to perform the requested action"),
    429: _error("E0000047", "API call exceeded rate limit due to too many requests."),
    500: _error("E0000009", "Internal Server Error"),
}


def _not_found(what: str) -> tuple[int, Any]:
    return 404, _error("E0000007", f"Not found: Resource not found: {what}")


def _handler(st: OktaState) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):  # the state keeps its own request log
        rate: tuple[int, int, int] | None = None  # this answer's X-Rate-Limit-Limit, -Remaining, -Reset
        date: int | None = None  # this answer's Date (epoch seconds), what Reset counts from

        def date_time_string(self, timestamp: float | None = None) -> str:
            return email.utils.formatdate(self.date if timestamp is None else timestamp, usegmt=True)

        def _send(self, code: int, body: Any = None, links: list[tuple[str, str]] | None = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(code)
            if self.rate is not None:
                for name, value in zip(("Limit", "Remaining", "Reset"), self.rate, strict=True):
                    self.send_header(f"X-Rate-Limit-{name}", str(value))
            if body is not None:
                self.send_header("Content-Type", "application/json")
            for url, rel in links or []:  # Okta sends one Link header per relation
                self.send_header("Link", f'<{url}>; rel="{rel}"')
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _limited(self) -> bool:
            """Count this request against its family's window; True (and the 429's headers set)
            when it is past the limit. Sets this answer's rate-limit headers either way."""
            self.date = int(time.time())
            family = family_of(self.command, self.path)
            with st.lock:
                now = st.clock()
                if st.epoch is None:
                    st.epoch = now
                window = int((now - st.epoch) // st.window_s)
                left_s = st.epoch + (window + 1) * st.window_s - now
                limit, used = st.limits[family], st.used[(family, window)]
                reset = self.date + math.ceil(left_s)
                if used >= limit:
                    st.throttled += 1
                    self.rate = (limit, 0, reset)
                    return True
                st.used[(family, window)] = used + 1
                st.families[family] += 1
                self.rate = (limit, limit - used - 1, reset)
                return False

        def _route(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            with st.lock:
                st.requests.append(LoggedRequest(self.command, self.path, self.headers.get("Authorization")))
                st.in_flight += 1
                crowded = st.in_flight > st.max_concurrent
                st.peak_in_flight = max(st.peak_in_flight, st.in_flight)
            try:
                if st.latency_s:
                    time.sleep(st.latency_s)
                if crowded:  # Okta's concurrent limit: the values it reports are the concurrent ones
                    self.date = int(time.time())
                    self.rate = (st.max_concurrent, 0, self.date + 1)
                    with st.lock:
                        st.throttled += 1
                    return self._send(429, _FAILURES[429])
                if self._limited():
                    return self._send(429, _FAILURES[429])
                self._answer()
            finally:
                with st.lock:
                    st.in_flight -= 1

        def _answer(self) -> None:
            auth = self.headers.get("Authorization")
            with st.lock:
                failing = st.fail_next.pop(0) if st.fail_next else None
            if failing is not None:
                return self._send(failing, _FAILURES.get(failing, _FAILURES[500]))
            if (auth or "").replace("SSWS ", "SSWS", 1) != f"SSWS{st.token}":
                return self._send(401, _error("E0000011", "Invalid token provided"))
            split = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(split.query))
            parts = [urllib.parse.unquote(p) for p in split.path.strip("/").split("/")]
            if parts[:2] != ["api", "v1"]:
                return self._send(*_not_found(split.path))
            with st.lock:
                code, body, links = self._dispatch(self.command, parts[2:], query, split.path)
            self._send(code, body, links)

        def _dispatch(
            self, method: str, p: list[str], q: dict[str, str], path: str
        ) -> tuple[int, Any, list[tuple[str, str]]]:
            def answer(result: tuple[int, Any]) -> tuple[int, Any, list[tuple[str, str]]]:
                return result[0], result[1], []

            if p[0] == "groups" and len(p) >= 2:
                group = st.groups.get(p[1])
                if group is None:
                    return answer(_not_found(f"{p[1]} (UserGroup)"))
                if len(p) == 2 and method == "GET":
                    return 200, group, []
                if len(p) == 3 and p[2] == "users" and method == "GET":
                    return self._page(st.members[p[1]], q, path)
                if len(p) == 4 and p[2] == "users" and method in ("PUT", "DELETE"):
                    if p[3] not in st.users:
                        return answer(_not_found(f"{p[3]} (User)"))
                    if group["type"] != "OKTA_GROUP":
                        return answer((400, _error("E0000001", "Api validation failed: group type is not OKTA_GROUP")))
                    members = st.members[p[1]]
                    if method == "PUT" and p[3] not in members:
                        members.append(p[3])
                    elif method == "DELETE" and p[3] in members:
                        members.remove(p[3])
                    return 204, None, []
            if p[0] == "users" and len(p) >= 3:
                uid = p[1]
                if uid not in st.users:
                    return answer(_not_found(f"{uid} (User)"))
                if p[2:] == ["groups"] and method == "GET":
                    return 200, [st.groups[g] for g in st.groups if uid in st.members[g]], []
                if p[2:] == ["sessions"] and method == "DELETE":
                    st.sessions[uid] = 0
                    if q.get("oauthTokens") == "true":
                        st.oauth_tokens[uid] = 0
                    return 204, None, []
                if p[2] == "factors":
                    return answer(self._factors(method, uid, p[3:]))
            return answer(_not_found(path))

        def _page(self, ids: list[str], q: dict[str, str], path: str) -> tuple[int, Any, list[tuple[str, str]]]:
            limit = int(q.get("limit", "10000"))
            after = q.get("after")
            start = ids.index(after) + 1 if after in ids else 0
            page = ids[start : start + limit]
            base = f"{st.link_origin or 'http://' + self.headers['Host']}{path}"
            links = [(f"{base}?{urllib.parse.urlencode({'limit': limit})}", "self")]
            if start + limit < len(ids):
                links.append((f"{base}?{urllib.parse.urlencode({'after': page[-1], 'limit': limit})}", "next"))
            return 200, [st.users[u] for u in page], links

        def _factors(self, method: str, uid: str, rest: list[str]) -> tuple[int, Any]:
            factors = st.factors.get(uid, [])
            if not rest and method == "GET":
                return 200, factors
            factor = next((f for f in factors if f["id"] == rest[0]), None)
            if factor is None:
                return _not_found(f"{rest[0]} (UserFactor)")
            base = f"http://{self.headers['Host']}/api/v1/users/{uid}/factors/{factor['id']}"
            if rest[1:] == ["verify"] and method == "POST":
                if factor["factorType"] != "push":
                    return 400, _error("E0000001", "Api validation failed: passCode")
                push = st.pushes.get(uid, _Push())
                tid = okta_id("v2m")
                st.transactions[tid] = _Transaction(uid, factor["id"], push.answer, push.after_polls)
                return 201, _waiting(f"{base}/transactions/{tid}")
            if len(rest) == 3 and rest[1] == "transactions":
                t = st.transactions.get(rest[2])
                if t is None or t.factor != factor["id"]:
                    return _not_found(f"{rest[2]} (Transaction)")
                if method == "DELETE":
                    t.cancelled = True
                    return 204, None
                if method == "GET":
                    if t.cancelled:
                        return 200, {"factorResult": "CANCELLED"}
                    if t.answer == "ignore" or t.polls_left > 0:
                        t.polls_left -= 1
                        return 200, _waiting(f"{base}/transactions/{rest[2]}")
                    result = {"accept": "SUCCESS", "reject": "REJECTED", "expire": "TIMEOUT"}[t.answer]
                    links = {"verify": {"href": f"{base}/verify"}}
                    return 200, {"factorResult": result, "profile": {}, "_links": links}
            return _not_found(f"{method} {rest}")

        do_GET = do_PUT = do_DELETE = do_POST = _route

    return Handler


def _waiting(transaction: str) -> dict[str, Any]:
    return {
        "expiresAt": "1998-01-01T00:05:00.000Z",
        "factorResult": "WAITING",
        "profile": {"credentialId": "user@example.com"},
        "_links": {
            "poll": {"href": transaction, "hints": {"allow": ["GET"]}},
            "cancel": {"href": transaction, "hints": {"allow": ["DELETE"]}},
        },
    }
