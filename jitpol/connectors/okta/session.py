"""How the Okta connector talks to Okta: HTTP through the official SDK's request executor (which
keeps the SDK's authentication header, user agent, proxy settings and rate-limit retries while
giving one answer shape for every call), pagination by Link rel="next" kept on the org, answers
mapped to TargetUnavailable / PermanentTargetError, and a fresh event loop per public call
(asyncio.run, so the connector can be used from plain threads). Every HTTP request goes through
OktaSession.call: the place for anything that shapes them (timeouts), and through the pacer
(connectors.pacing), paced to Okta's documented limits:

    Management rate limits (https://developer.okta.com/docs/reference/rl-global-mgmt/), per
    minute, the Enterprise column: "/api/v1/groups/{id} only" 600, POST/PUT/DELETE
    "/api/v1/users/{id}" 600, "most other API actions /api/v1" 600 (group members, a user's
    groups, sessions, factors). One bucket per family (`endpoint_family`), refilled at
    (limit - 2 x burst) per minute with that burst, so no minute sees more than the limit, even
    with requests that leave late.
    Concurrent requests (https://developer.okta.com/docs/reference/rl-additional-limits/): 75
    per org for API traffic, shared with every other client of the org: jitpol keeps at most
    MAX_IN_FLIGHT in flight.
    A 429 carries X-Rate-Limit-Reset, the UTC epoch second the limit resets
    (https://developer.okta.com/docs/reference/rl-best-practices/): the pacer waits until then
    (counted from the answer's Date, plus a second, as Okta's SDKs do) and sends it again, within
    the target's max_wait_s. The SDK's own rate-limit retries are off (they sleep unseen and
    outside the budget). An org with lower limits (a developer org) meets 429s, which are waited
    out the same way.

The SDK, which takes seconds to import, is imported on first use."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from jitpol.connectors.kit import redacted, temporary_status
from jitpol.connectors.pacing import DEFAULT_MAX_WAIT_S, Pacer, Rate, Throttled, okta_reset
from jitpol.errors import PermanentTargetError, TargetUnavailable

if TYPE_CHECKING:
    import aiohttp

REQUEST_TIMEOUT_S = 30
PER_MINUTE = 600  # each endpoint family's documented limit (Enterprise)
BURST = 10
MAX_IN_FLIGHT = 25  # of the org's 75 concurrent API requests
# refilled at (limit - 2 x burst) a minute: no minute sees more than the limit even when some
# requests leave late and bunch up with the next ones
RATES = {family: Rate.per_minute(PER_MINUTE - 2 * BURST, burst=BURST) for family in ("group", "user", "other")}


def endpoint_family(method: str, path: str) -> str:
    """Okta's rate-limit bucket of a request: "group" for /api/v1/groups/{id} itself, "user" for
    POST/PUT/DELETE /api/v1/users/{id} itself, "other" for the rest of /api/v1."""
    parts = urllib.parse.urlsplit(path).path.strip("/").split("/")
    if len(parts) == 4 and parts[:3] == ["api", "v1", "groups"]:
        return "group"
    if len(parts) == 4 and parts[:3] == ["api", "v1", "users"] and method != "GET":
        return "user"
    return "other"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Any  # parsed JSON, or None for an empty body
    next_url: str | None = None  # Link rel="next", already checked to be on the org


class OktaSession:
    """One org, one token: requests through an okta.client.Client's request executor. The token
    is kept for the SDK only; every message this class makes leaves it out."""

    def __init__(self, org_url: str, token: str, what: str, pacer: Pacer | None = None) -> None:
        self.org_url = org_url
        self._token = token
        self.what = what  # "target NAME" or "okta push", to start messages
        self._executor: Any = None
        self.pacer = pacer or Pacer(what, RATES, max_in_flight=MAX_IN_FLIGHT, max_wait_s=DEFAULT_MAX_WAIT_S,
                                    provider="Okta")

    def __repr__(self) -> str:  # never the token
        return f"OktaSession({self.org_url!r})"

    def executor(self) -> Any:
        if self._executor is None:
            from okta.client import Client

            config = {
                "orgUrl": self.org_url,
                "token": self._token,
                "authorizationMode": "SSWS",
                "requestTimeout": REQUEST_TIMEOUT_S,
                "rateLimit": {"maxRetries": 0},  # 429s are the pacer's: waited out within max_wait_s
                "cache": {"enabled": False},  # a reconciler must read what is there now
            }
            try:
                client: Any = Client(config)  # the SDK's executor methods carry no annotations
            except ValueError as exc:  # the SDK's configuration checks (https, placeholders, ...)
                reason = redacted(str(exc), [self._token])
                raise PermanentTargetError(f"{self.what}: the Okta SDK refuses the settings: {reason}") from None
            self._executor = client.get_request_executor()
        return self._executor

    async def call(self, method: str, path: str, query: Mapping[str, str] | None = None) -> Answer:
        """One request, paced; `path` is "/api/v1/..." (quoted already) or a full URL on the org.
        Raises TargetUnavailable/PermanentTargetError for transport errors and non-2xx answers,
        except 404, which callers decide about (Answer.status == 404)."""
        url = path + ("?" + urllib.parse.urlencode(query) if query else "")
        return await self.pacer.acall(
            endpoint_family(method, path), lambda: self._send(method, url, path), what=f"{method} {path}"
        )

    async def _send(self, method: str, url: str, path: str) -> Answer:
        executor = self.executor()
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
            reason = redacted(str(error), [self._token], limit=200)
            raise TargetUnavailable(f"{self.what}: cannot reach Okta ({type(error).__name__}: {reason})")
        body = _json_or_none(text)
        if response.status == 429:
            error = body if isinstance(body, dict) else {}
            raise Throttled(okta_reset(response.headers), f"429 {error.get('errorCode') or ''}".strip())
        if response.status == 404 or 200 <= response.status < 300:
            return Answer(response.status, body, self._next_url(response))
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
        if not same_origin(target, self.org_url):
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


def same_origin(url: str, org_url: str) -> bool:
    """Is `url` on the org (scheme, host and port)? Only such links may carry the token."""
    a, b = urllib.parse.urlsplit(url), urllib.parse.urlsplit(org_url)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def _error_of(error: object) -> dict[str, Any]:
    return {"errorCode": getattr(error, "error_code", ""), "errorSummary": getattr(error, "error_summary", "")}


def _json_or_none(text: object) -> Any:
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None
