"""Second factors the reconciler asks for before activating a grant (mfa: okta-push)."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from jitpol.clock import FixedClock
from jitpol.connectors import registry
from jitpol.connectors.base import MfaPush
from jitpol.errors import JitpolError
from jitpol.evaluate.prepare import Prepared

PUSH_TIMEOUT_S = 60.0
FACTOR = "okta-push"


def okta_pushes(prep: Prepared, env: Mapping[str, str], timeout_s: float = PUSH_TIMEOUT_S) -> list[dict[str, Any]]:
    """Send an Okta Verify push to the requester of every approved grant that waits for one, and
    return `mfa.checked` ledger events with the answers (SUCCESS, REJECTED, TIMEOUT or ERROR).
    The Okta org is the repository's one target whose type answers okta-push (the registry's
    mfa_factors; its connector is a base.MfaPush); the requester's Okta user id comes from their
    person file (accounts.okta or accounts.<target name>)."""
    if prep.evaluation is None:
        return []
    waiting = [s for s in prep.evaluation.statuses if s.awaiting == FACTOR]
    if not waiting:
        return []
    policy = prep.decided  # an unapproved change must not redirect the push (accounts.okta)
    types = registry.mfa_types(FACTOR)
    pushers = [t for t in prep.targets.values() if t.type in types]

    def one(name: str, digest: str, requester: str) -> dict[str, Any]:
        event: dict[str, Any] = {"event": "mfa.checked", "grant": name, "digest": digest, "factor": FACTOR}
        if len(pushers) != 1:
            return {**event, "result": "ERROR", "error": "okta-push needs exactly one okta target in jitpol.yaml"}
        target = pushers[0]
        person = policy.people.get(requester)
        user_id = person.account_for(target) if person is not None else None
        token = env.get(str(target.settings.get("token_env", "")))
        if not isinstance(user_id, str) or not token:
            return {**event, "result": "ERROR",
                    "error": f"no Okta user id for {requester} or no token in ${target.settings.get('token_env')}"}
        try:
            connector = registry.create(target.name, target.type, target.settings, env, clock=FixedClock(prep.now))
            try:
                if not isinstance(connector, MfaPush):
                    return {**event, "result": "ERROR", "error": f"target {target.name} cannot send {FACTOR}"}
                result = connector.push(user_id, timeout_s)
            finally:
                connector.close()
        except JitpolError as exc:
            return {**event, "result": "ERROR", "error": str(exc)}
        return {**event, "result": str(result)}

    with ThreadPoolExecutor(max_workers=min(8, len(waiting))) as pool:
        return list(pool.map(lambda s: one(s.name, s.digest, s.requester), waiting))
