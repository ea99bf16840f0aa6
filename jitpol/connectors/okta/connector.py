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
    max_wait_s      optional seconds, default 300: the most one request waits for Okta's rate
                    limits (its turn, plus the X-Rate-Limit-Reset of a 429); past it the action
                    fails as TargetUnavailable and the next run applies it

Every request is paced to Okta's documented limits (session.py). apply_batch (base.BatchApply)
applies a batch's actions concurrently, at most MAX_IN_FLIGHT at a time, within those limits,
reading each group's type once per batch; one entry per action, each its own result.

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
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from jitpol.connectors.kit import check_apply, check_model
from jitpol.connectors.okta.names import GROUP_ID, MODEL, OPS, check_group, check_user, q
from jitpol.connectors.okta.push import PushResult, push_and_wait
from jitpol.connectors.okta.session import MAX_IN_FLIGHT, RATES, Answer, OktaSession
from jitpol.connectors.pacing import Pacer, Pacing, max_wait_setting
from jitpol.errors import InvalidInput, PermanentTargetError
from jitpol.model.assignment import Action, Assignment, Capabilities, Outcome, Scope

DEFAULT_PAGE_SIZE = 200  # Okta's recommended `limit` for listing group members
_MANAGEABLE_GROUP_TYPE = "OKTA_GROUP"  # APP_GROUP/BUILT_IN memberships are not Okta's to change


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

    def __init__(
        self, name: str, settings: Mapping[str, Any], env: Mapping[str, str], *, pacing: Pacing | None = None
    ) -> None:
        """`pacing`: a hook for tests and benchmarks (other rates, clock or in-flight cap than
        Okta's documented limits)."""
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
        self._okta: OktaSession | None = None
        self._pacer: Pacer = (pacing or Pacing()).pacer(
            f"target {name}", RATES, max_in_flight=MAX_IN_FLIGHT, max_wait_s=max_wait_setting(name, settings),
            provider="Okta",
        )

    # -- Connector protocol -----------------------------------------------------------------

    def observe(self, scope: Scope) -> frozenset[Assignment]:
        """The direct members of every group in scope.privileges, as user ids. A group that does
        not exist — or cannot, its id not being an Okta group id — has none. expires is None.
        Read-only."""
        check_model(self.name, scope.model, OPS)
        groups = sorted(g for g in scope.privileges if GROUP_ID.fullmatch(g))
        if not groups:
            return frozenset()
        okta = self._client()

        async def work() -> set[Assignment]:
            found: set[Assignment] = set()
            for group in groups:
                status, users = await okta.pages(f"/api/v1/groups/{q(group)}/users", {"limit": str(self._page_size)})
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
        okta = self._client()
        return okta.run(lambda: self._apply(okta, action, check, {}))

    def apply_batch(self, actions: Sequence[Action]) -> list[Outcome | Exception]:
        """base.BatchApply: every action as `apply` does it, at most MAX_IN_FLIGHT at once
        (each request paced); one entry per action, in order: its Outcome or its exception."""
        if not actions:
            return []
        okta = self._client()
        groups: dict[str, asyncio.Future[Answer]] = {}  # group id -> GET /api/v1/groups/{id}, once per batch

        async def work() -> list[Outcome | Exception]:
            slots = asyncio.Semaphore(self._pacer.max_in_flight)

            async def one(action: Action) -> Outcome | Exception:
                async with slots:
                    try:
                        return await self._apply(okta, action, False, groups)
                    except Exception as exc:  # noqa: BLE001 - this action's own result
                        return exc

            return list(await asyncio.gather(*(one(a) for a in actions)))

        return okta.run(work)

    async def _apply(
        self, okta: OktaSession, action: Action, check: bool, groups_read: dict[str, asyncio.Future[Answer]]
    ) -> Outcome:
        a = action.assignment
        check_apply(self.name, a.model, action.op, OPS)
        try:
            check_user(a.principal)
            check_group(a.privilege)
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {self.name}: {exc}") from None
        grant = action.op == "grant"
        user, group = q(a.principal), q(a.privilege)
        membership = f"/api/v1/groups/{group}/users/{user}"
        sessions = f"/api/v1/users/{user}/sessions"
        status, groups = await okta.pages(f"/api/v1/users/{user}/groups", {})
        if status == 404:
            if grant:
                raise PermanentTargetError(f"target {self.name}: Okta user {a.principal} does not exist")
            return Outcome(changed=False, before=True, after=True)  # no user, no membership
        held = next((g for g in groups if isinstance(g, dict) and g.get("id") == a.privilege), None)
        if (held is not None) == grant:
            return Outcome(changed=False, before=True, after=True)
        if grant:
            reading = groups_read.get(a.privilege)
            if reading is None:  # the first action of the batch on this group reads it, the others wait
                reading = groups_read[a.privilege] = asyncio.ensure_future(okta.call("GET", f"/api/v1/groups/{group}"))
            answer = await reading
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

    def close(self) -> None:
        """Forget the SDK client (no connection outlives a call). Safe to call twice."""
        self._okta = None

    # -- base.MfaPush (mfa: okta-push) --------------------------------------------------------

    def push(self, user: str, timeout_s: float) -> PushResult:
        """An Okta Verify push to `user` (an Okta user id), answered within `timeout_s`: see
        send_push_and_wait. Raises PermanentTargetError when token_env is not set."""
        return push_and_wait(self._client(), user, timeout_s)

    # -- internals --------------------------------------------------------------------------

    def _client(self) -> OktaSession:
        if self._okta is None:
            token = self._env.get(self._token_env)
            if not token:
                raise PermanentTargetError(
                    f"target {self.name}: environment variable {self._token_env} (token_env) is not set"
                )
            self._okta = OktaSession(self._org_url, token, f"target {self.name}", self._pacer)
        return self._okta
