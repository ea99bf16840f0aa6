"""The Okta Verify push that `mfa: okta-push` workflows use: verify the user's active push
factor and poll the transaction until Okta answers or the time is up (base.MfaPush, reached
through the registry's mfa_factors; also send_push_and_wait for embedding)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, Literal

from jitpol.connectors.okta.names import FACTOR_ID, check_user, q
from jitpol.connectors.okta.session import OktaSession, same_origin
from jitpol.errors import PermanentTargetError, TargetError

PushResult = Literal["SUCCESS", "REJECTED", "TIMEOUT"]


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
    return push_and_wait(OktaSession(org_url.rstrip("/"), token, "okta push"), user_id, timeout_s, poll_interval_s)


def push_and_wait(okta: OktaSession, user_id: str, timeout_s: float, poll_interval_s: float = 2.0) -> PushResult:
    """send_push_and_wait through an OktaSession already made (a connector's own, so its token
    stays inside it)."""
    check_user(user_id)

    async def work() -> PushResult:
        status, factors = await okta.pages(f"/api/v1/users/{q(user_id)}/factors", {})
        if status == 404:
            raise PermanentTargetError(f"okta push: Okta user {user_id} does not exist")
        factor = next(
            (
                f for f in factors
                if isinstance(f, dict) and f.get("factorType") == "push" and f.get("status") == "ACTIVE"
                and isinstance(f.get("id"), str) and FACTOR_ID.fullmatch(f["id"])
            ),
            None,
        )
        if factor is None:
            raise PermanentTargetError(f"okta push: user {user_id} has no active Okta Verify push factor")
        deadline = time.monotonic() + timeout_s
        answer = await okta.call("POST", f"/api/v1/users/{q(user_id)}/factors/{factor['id']}/verify")
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
            if poll is None or not same_origin(poll, okta.org_url):
                raise PermanentTargetError("okta push: Okta's answer has no usable poll link")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                cancel = _link(body, "cancel")
                if cancel is not None and same_origin(cancel, okta.org_url):
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
