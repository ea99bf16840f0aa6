"""Okta connector: the `idp-elevation` model as Okta group membership, and the Okta Verify push
check that `mfa: okta-push` workflows use (send_push_and_wait).

    privilege  an Okta group id, e.g. "00g1abcdEFGH2345ijk7" (a resource role's `grants` entry)
    principal  an Okta user id, e.g. "00ub0oNGTSWTBKOLGLNR" (the person's `accounts.okta`)

Settings (the target's entry in jitpol.yaml):
    org_url         required; https://<your org>.okta.com
    token_env       required; NAME of the environment variable holding an API token (SSWS)
    clear_sessions  optional bool, default true: on revoke also end the user's Okta sessions and
                    revoke the OAuth tokens Okta issued to them
                    (DELETE /api/v1/users/{id}/sessions?oauthTokens=true)
    page_size       optional int 1..1000, default 200: `limit` for listing group members

Okta enforces no end on a group membership (NATIVE_EXPIRY is False): the reconciler removes it.

The official SDK (`okta`, async) is imported lazily — it takes seconds — and used through its
request executor: that keeps the SDK's authentication header, user agent, proxy settings and
rate-limit retries, while giving one answer shape for every call. (The generated methods of
okta 3.x return tuples of different lengths per call and raise AttributeError when the server
cannot be reached.) Each public call runs its coroutines in a fresh event loop (asyncio.run),
so the connector can be used from plain threads. Plain-HTTP org URLs are refused by the SDK
unless OKTA_TESTING_TESTINGDISABLEHTTPSCHECK=true is set in the process environment (tests only).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NoReturn, TypeVar

from jitpol.connectors.kit import check_apply, check_model, redacted, shown, temporary_status
from jitpol.errors import InvalidInput, PermanentTargetError, TargetError, TargetUnavailable
from jitpol.model.assignment import Action, Assignment, Capabilities, Outcome, Scope

if TYPE_CHECKING:
    import aiohttp

MODEL = "idp-elevation"
NATIVE_EXPIRY = False  # Okta has no expiring group memberships: the reconciler must run
DEFAULT_PAGE_SIZE = 200  # Okta's recommended `limit` for listing group members
REQUEST_TIMEOUT_S = 30

PushResult = Literal["SUCCESS", "REJECTED", "TIMEOUT"]

# Okta object ids: a type prefix (00u user, 00g group) and letters/digits, 20 characters in practice
_USER_ID = re.compile(r"00u[A-Za-z0-9]{1,61}")
_GROUP_ID = re.compile(r"00g[A-Za-z0-9]{1,61}")
_FACTOR_ID = re.compile(r"[A-Za-z0-9]{1,64}")
_MANAGEABLE_GROUP_TYPE = "OKTA_GROUP"  # APP_GROUP/BUILT_IN memberships are not Okta's to change

_OPS = {MODEL: ("grant", "revoke")}

T = TypeVar("T")


def check_name(value: object, what: str) -> None:
    """The policy loader's hook: `what` is "principal" for a person's `accounts.okta` (an Okta
    user id), anything else for a resource's grants entry (an Okta group id). Raises InvalidInput
    that says what is allowed. Needs no SDK."""
    if what == "principal":
        _check(value, _USER_ID, "an Okta user id (00u + letters/digits, e.g. 00ub0oNGTSWTBKOLGLNR), not a login")
    else:
        _check(value, _GROUP_ID, "an Okta group id (00g + letters/digits, e.g. 00g1abcdEFGH2345ijk7), not a name")


def _check(value: object, pattern: re.Pattern[str], allowed: str) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidInput(f"{shown(value)} is not valid: use {allowed}")


# -- HTTP through the SDK's request executor ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: Any  # parsed JSON, or None for an empty body
    next_url: str | None = None  # Link rel="next", already checked to be on the org


class _Okta:
    """One org, one token: requests through an okta.client.Client's request executor. The token
    is kept for the SDK only; every message this class makes leaves it out."""

    def __init__(self, org_url: str, token: str, what: str) -> None:
        self.org_url = org_url
        self._token = token
        self.what = what  # "target NAME" or "okta push", to start messages
        self._executor: Any = None

    def __repr__(self) -> str:  # never the token
        return f"_Okta({self.org_url!r})"

    def executor(self) -> Any:
        if self._executor is None:
            from okta.client import Client

            config = {
                "orgUrl": self.org_url,
                "token": self._token,
                "authorizationMode": "SSWS",
                "requestTimeout": REQUEST_TIMEOUT_S,
                "rateLimit": {"maxRetries": 2},
                "cache": {"enabled": False},  # a reconciler must read what is there now
            }
            try:
                client: Any = Client(config)  # the SDK's executor methods carry no annotations
            except ValueError as exc:  # the SDK's configuration checks (https, placeholders, ...)
                reason = redacted(str(exc), [self._token])
                raise PermanentTargetError(f"{self.what}: the Okta SDK refuses the settings: {reason}") from None
            self._executor = client.get_request_executor()
        return self._executor

    async def call(self, method: str, path: str, query: Mapping[str, str] | None = None) -> _Answer:
        """One request; `path` is "/api/v1/..." (quoted already) or a full URL on the org.
        Raises TargetUnavailable/PermanentTargetError for transport errors and non-2xx answers,
        except 404, which callers decide about (_Answer.status == 404)."""
        executor = self.executor()
        url = path + ("?" + urllib.parse.urlencode(query) if query else "")
        request, error = await executor.create_request(method, url, None, {})
        if error is not None:
            raise PermanentTargetError(f"{self.what}: cannot build the Okta request {method} {path}")
        response, text, error = await executor.execute(request)
        if response is None:
            status = getattr(error, "status", None)
            if isinstance(status, int):  # an HTTP answer the executor turned into an error only
                self._raise_for(status, _error_of(error), method, path)
            # transport errors (refused, reset, timeout) and the SDK's own give-ups on 429/503
            # ("Request Timeout exceeded", missing rate-limit headers) are all worth a retry
            raise TargetUnavailable(f"{self.what}: cannot reach Okta ({type(error).__name__}: {_clean(error)})")
        body = _json_or_none(text)
        if response.status == 404 or 200 <= response.status < 300:
            return _Answer(response.status, body, self._next_url(response))
        self._raise_for(response.status, body if isinstance(body, dict) else {}, method, path)

    def _raise_for(self, status: int, error: Mapping[str, Any], method: str, path: str) -> NoReturn:
        code = str(error.get("errorCode") or "")
        summary = str(error.get("errorSummary") or "")
        detail = " ".join(f"{code} {summary}".split()) or f"HTTP {status}"
        if status == 401:
            raise PermanentTargetError(f"{self.what}: Okta rejected the API token ({detail})")
        if status == 403:
            raise PermanentTargetError(f"{self.what}: the API token may not {method} {path} ({detail})")
        if temporary_status(status):
            raise TargetUnavailable(f"{self.what}: Okta answered {status} to {method} {path} ({detail})")
        raise PermanentTargetError(f"{self.what}: Okta refused {method} {path}: {status} {detail}")

    def _next_url(self, response: aiohttp.ClientResponse) -> str | None:
        link = response.links.get("next")
        if not link:
            return None
        target = str(link.get("url", ""))
        if not _same_origin(target, self.org_url):
            # following it would send the API token to another host
            raise PermanentTargetError(f"{self.what}: Okta's next-page link leaves the org: {target[:100]}")
        return target

    async def pages(self, path: str, query: Mapping[str, str]) -> tuple[int, list[Any]]:
        """(404 or 200, every item of every page), following Link rel="next"."""
        answer = await self.call("GET", path, query)
        items: list[Any] = []
        seen: set[str | None] = set()
        while True:
            if answer.status == 404:  # also when the object vanishes between two pages
                return 404, []
            if not isinstance(answer.body, list):
                raise PermanentTargetError(f"{self.what}: Okta answered GET {path} with something other than a list")
            items.extend(answer.body)
            if answer.next_url is None:
                return 200, items
            if answer.next_url in seen:  # a server repeating a cursor would loop for ever
                raise PermanentTargetError(f"{self.what}: Okta repeated a pagination cursor on {path}")
            seen.add(answer.next_url)
            answer = await self.call("GET", answer.next_url)

    def run(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work` in a fresh event loop with one pooled HTTP session for all its requests."""
        return asyncio.run(self._with_session(work))

    async def _with_session(self, work: Callable[[], Awaitable[T]]) -> T:
        import aiohttp

        executor = self.executor()
        async with aiohttp.ClientSession() as session:
            executor.set_session(session)
            try:
                return await work()
            finally:
                executor.set_session(None)  # the session dies with this loop


def _error_of(error: object) -> dict[str, Any]:
    return {"errorCode": getattr(error, "error_code", ""), "errorSummary": getattr(error, "error_summary", "")}


def _clean(error: object) -> str:
    return " ".join(str(error).split())[:200]


def _json_or_none(text: object) -> Any:
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _same_origin(url: str, org_url: str) -> bool:
    a, b = urllib.parse.urlsplit(url), urllib.parse.urlsplit(org_url)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def _q(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


# -- the connector ----------------------------------------------------------------------------


class OktaConnector:
    """Connector for one Okta org (see the module docstring).

    observe() lists the members of each group in scope (paginated); apply() adds or removes one
    user (PUT/DELETE /api/v1/groups/{g}/users/{u}) after reading the user's groups, and on
    revoke ends the user's sessions first. Errors: TargetUnavailable when Okta cannot be
    reached, throttles or fails on its side; PermanentTargetError for a rejected token, missing
    rights, a missing user or group, or a group whose members Okta does not manage (APP_GROUP).
    One instance serves one thread at a time (like the executor uses it: one per target).
    """

    type: ClassVar[str] = "okta"
    capabilities: ClassVar[Capabilities] = Capabilities(
        models=frozenset({MODEL}), native_expiry=frozenset(), ends_sessions=True
    )

    def __init__(self, name: str, settings: Mapping[str, Any], env: Mapping[str, str]) -> None:
        self.name = name
        org_url = settings.get("org_url")
        if not isinstance(org_url, str) or urllib.parse.urlsplit(org_url).scheme not in ("https", "http"):
            raise PermanentTargetError(f"target {name}: setting org_url (e.g. https://acme.okta.com) is required")
        token_env = settings.get("token_env")
        if not isinstance(token_env, str) or not token_env:
            raise PermanentTargetError(f"target {name}: setting token_env (an environment variable name) is required")
        clear_sessions = settings.get("clear_sessions", True)
        if not isinstance(clear_sessions, bool):
            raise PermanentTargetError(f"target {name}: setting clear_sessions must be true or false")
        page_size = settings.get("page_size", DEFAULT_PAGE_SIZE)
        if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= 1000:
            raise PermanentTargetError(f"target {name}: setting page_size must be an integer from 1 to 1000")
        self._org_url = org_url.rstrip("/")
        self._token_env = token_env
        self._clear_sessions = clear_sessions
        self._page_size = page_size
        self._env = env  # read on first use only
        self._okta: _Okta | None = None

    # -- Connector protocol -----------------------------------------------------------------

    def observe(self, scope: Scope) -> frozenset[Assignment]:
        """The direct members of every group in scope.privileges, as user ids. A group that does
        not exist — or cannot, its id not being an Okta group id — has none. expires is None.
        Read-only."""
        check_model(self.name, scope.model, _OPS)
        groups = sorted(g for g in scope.privileges if _GROUP_ID.fullmatch(g))
        if not groups:
            return frozenset()
        okta = self._client()

        async def work() -> set[Assignment]:
            found: set[Assignment] = set()
            for group in groups:
                status, users = await okta.pages(f"/api/v1/groups/{_q(group)}/users", {"limit": str(self._page_size)})
                if status == 404:
                    continue
                found.update(
                    Assignment(self.name, scope.model, str(u["id"]), group)
                    for u in users
                    if isinstance(u, dict) and isinstance(u.get("id"), str)
                )
            return found

        return frozenset(okta.run(work))

    def apply(self, action: Action, *, check: bool = False) -> Outcome:
        """Add or remove one membership; idempotent. A revoke ends the user's sessions (and
        OAuth tokens) before the removal, unless clear_sessions is false: if the run dies in
        between, the user is still a member and the next run does both again. check=True only
        reads, and lists the requests it would send."""
        a = action.assignment
        check_apply(self.name, a.model, action.op, _OPS)
        try:
            check_name(a.principal, "principal")
            check_name(a.privilege, "privilege")
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {self.name}: {exc}") from None
        grant = action.op == "grant"
        user, group = _q(a.principal), _q(a.privilege)
        membership = f"/api/v1/groups/{group}/users/{user}"
        sessions = f"/api/v1/users/{user}/sessions"
        okta = self._client()

        async def work() -> Outcome:
            status, groups = await okta.pages(f"/api/v1/users/{user}/groups", {})
            if status == 404:
                if grant:
                    raise PermanentTargetError(f"target {self.name}: Okta user {a.principal} does not exist")
                return Outcome(changed=False, before=True, after=True)  # no user, no membership
            held = next((g for g in groups if isinstance(g, dict) and g.get("id") == a.privilege), None)
            if (held is not None) == grant:
                return Outcome(changed=False, before=True, after=True)
            if grant:
                answer = await okta.call("GET", f"/api/v1/groups/{group}")
                if answer.status == 404:
                    raise PermanentTargetError(f"target {self.name}: Okta group {a.privilege} does not exist")
                held = answer.body
            kind = held.get("type") if isinstance(held, dict) else None
            if kind not in (None, _MANAGEABLE_GROUP_TYPE):
                raise PermanentTargetError(
                    f"target {self.name}: group {a.privilege} is of type {kind}; Okta only lets "
                    f"{_MANAGEABLE_GROUP_TYPE} memberships be changed (its source directory owns the others)"
                )
            requests: list[tuple[str, str, dict[str, str]]] = []
            if not grant and self._clear_sessions:
                requests.append(("DELETE", sessions, {"oauthTokens": "true"}))
            requests.append(("PUT" if grant else "DELETE", membership, {}))
            operations = tuple(
                f"{method} {path}" + ("?" + urllib.parse.urlencode(query) if query else "")
                for method, path, query in requests
            )
            if not check:
                for method, path, query in requests:
                    answer = await okta.call(method, path, query)
                    if answer.status == 404:  # deleted while we were working
                        raise PermanentTargetError(
                            f"target {self.name}: Okta answered 404 to {method} {path}: user or group is gone"
                        )
            return Outcome(changed=True, before=False, after=not check, operations=operations)

        return okta.run(work)

    def close(self) -> None:
        """Forget the SDK client (no connection outlives a call). Safe to call twice."""
        self._okta = None

    # -- base.MfaPush (mfa: okta-push) --------------------------------------------------------

    def push(self, user: str, timeout_s: float) -> PushResult:
        """An Okta Verify push to `user` (an Okta user id), answered within `timeout_s`: see
        send_push_and_wait. Raises PermanentTargetError when token_env is not set."""
        return _push_and_wait(self._client(), user, timeout_s)

    # -- internals --------------------------------------------------------------------------

    def _client(self) -> _Okta:
        if self._okta is None:
            token = self._env.get(self._token_env)
            if not token:
                raise PermanentTargetError(
                    f"target {self.name}: environment variable {self._token_env} (token_env) is not set"
                )
            self._okta = _Okta(self._org_url, token, f"target {self.name}")
        return self._okta


# -- Okta Verify push --------------------------------------------------------------------------


def send_push_and_wait(
    org_url: str,
    token: str,
    user_id: str,
    timeout_s: float,
    *,
    poll_interval_s: float = 2.0,
) -> PushResult:
    """Send an Okta Verify push to `user_id` and wait for the answer.

    Lists the user's factors, verifies the first ACTIVE `push` factor
    (POST /api/v1/users/{u}/factors/{f}/verify) and polls the transaction link every
    `poll_interval_s` until Okta reports SUCCESS, REJECTED or TIMEOUT (Okta's own expiry, about
    five minutes). If `timeout_s` passes first, the transaction is cancelled and "TIMEOUT"
    returned. Any other final result Okta may report counts as "REJECTED": only SUCCESS is
    success. Raises InvalidInput for a user id that is no Okta user id, PermanentTargetError when
    the user has no active push factor, the token is rejected or the user does not exist, and
    TargetUnavailable when Okta cannot be reached. The token never appears in a message.
    """
    return _push_and_wait(_Okta(org_url.rstrip("/"), token, "okta push"), user_id, timeout_s, poll_interval_s)


def _push_and_wait(okta: _Okta, user_id: str, timeout_s: float, poll_interval_s: float = 2.0) -> PushResult:
    """send_push_and_wait through an _Okta already made (a connector's own, so its token stays
    inside it)."""
    check_name(user_id, "principal")

    async def work() -> PushResult:
        status, factors = await okta.pages(f"/api/v1/users/{_q(user_id)}/factors", {})
        if status == 404:
            raise PermanentTargetError(f"okta push: Okta user {user_id} does not exist")
        factor = next(
            (
                f for f in factors
                if isinstance(f, dict) and f.get("factorType") == "push" and f.get("status") == "ACTIVE"
                and isinstance(f.get("id"), str) and _FACTOR_ID.fullmatch(f["id"])
            ),
            None,
        )
        if factor is None:
            raise PermanentTargetError(f"okta push: user {user_id} has no active Okta Verify push factor")
        deadline = time.monotonic() + timeout_s
        answer = await okta.call("POST", f"/api/v1/users/{_q(user_id)}/factors/{factor['id']}/verify")
        if answer.status == 404:
            raise PermanentTargetError(f"okta push: factor {factor['id']} of user {user_id} is gone")
        while True:
            body = answer.body if isinstance(answer.body, dict) else {}
            result = body.get("factorResult")
            if result == "SUCCESS":
                return "SUCCESS"
            if result == "TIMEOUT":
                return "TIMEOUT"
            if result != "WAITING":
                return "REJECTED"
            poll = _link(body, "poll")
            if poll is None or not _same_origin(poll, okta.org_url):
                raise PermanentTargetError("okta push: Okta's answer has no usable poll link")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                cancel = _link(body, "cancel")
                if cancel is not None and _same_origin(cancel, okta.org_url):
                    try:
                        await okta.call("DELETE", cancel)
                    except TargetError:
                        pass  # the push expires at Okta anyway; the answer is TIMEOUT either way
                return "TIMEOUT"
            await asyncio.sleep(min(poll_interval_s, remaining))
            answer = await okta.call("GET", poll)

    return okta.run(work)


def _link(body: Mapping[str, Any], rel: str) -> str | None:
    link = (body.get("_links") or {}).get(rel)
    href = link.get("href") if isinstance(link, dict) else None
    return href if isinstance(href, str) else None
