"""Execute: apply a plan's actions through the connectors, revocations before additions, each
addition's intent recorded before it is applied.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from jitpol.errors import JitpolError
from jitpol.ledger.events import (
    AccountCreated,
    AccountDeleted,
    ActionFailed,
    ActionStarted,
    CredentialRotated,
    DriftCorrected,
    assignment_ref,
)
from jitpol.model.assignment import Action, Outcome
from jitpol.model.times import utc_text
from jitpol.observe.targets import Connections, Progress
from jitpol.plan.diff import (
    Plan,
)


@dataclass(frozen=True, slots=True)
class Result:
    action: Action
    outcome: Outcome | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


Append = Callable[[Mapping[str, Any]], Any]


class Issuer(Protocol):
    """Makes and hands out the secrets of ephemeral accounts and shared-account checkouts."""

    def issue(self, action: Action) -> tuple[Action, dict[str, Any]]:
        """The action with a fresh secret in its details (delivered to its holders first) and the
        ledger facts about it (fingerprint, delivered); (action, {}) when it needs no secret."""
        ...

    def retire(self, action: Action) -> dict[str, Any]:
        """After the target accepted the action: drop deliveries nobody should use any more,
        escrow the new secret where the resource asks for it; more ledger facts. Raises when
        escrow fails (the action counts as failed and the next run rotates again)."""
        ...


def execute(plan: Plan, conns: Connections, append: Append, base: Mapping[str, Any],
            progress: Progress | None = None, issuer: Issuer | None = None) -> list[Result]:
    """Apply every action: all revocations on all targets first, then additions. Each action is
    isolated; a failure is recorded and the rest go on. Targets run in parallel, one thread each;
    actions on one target run in order."""
    results: list[Result] = []
    lock = threading.Lock()

    def record(body: Mapping[str, Any]) -> None:
        with lock:
            append({**base, **body})

    def run_target(actions: list[Action]) -> list[Result]:
        out: list[Result] = []
        for action in actions:
            key = action.assignment.key
            if not action.revoking:
                record(ActionStarted(event="action.started", grant=action.grants[0] if action.grants else None,
                                     op=action.op, **assignment_ref(key), grants=list(action.grants)))
            facts: dict[str, Any] = {}
            try:
                if issuer is not None:
                    action, facts = issuer.issue(action)
                outcome = conns.get(action.target).apply(action)
                if issuer is not None:
                    facts.update(issuer.retire(action))
            except Exception as exc:  # noqa: BLE001 - per-action isolation: one failure must not stop the rest
                message = str(exc) if isinstance(exc, JitpolError) else f"{type(exc).__name__}: {exc}"
                secret = action.detail("password")
                if secret:  # defence in depth: connectors redact, but no message may ever carry it
                    message = message.replace(secret, "***")
                record(ActionFailed(event="action.failed", grant=action.grants[0] if action.grants else None,
                                    op=action.op, **assignment_ref(key), grants=list(action.grants), error=message))
                out.append(Result(action, None, message))
            else:
                if action.drift:
                    record(DriftCorrected(event="drift.corrected", grant=None, op=action.op, **assignment_ref(key),
                                          resource=action.resource, changed=outcome.changed))
                first = action.grants[0] if action.grants else None
                if action.op == "rotate":
                    rotated = CredentialRotated(event="credential.rotated", grant=first, target=action.target,
                                                account=action.principal, holders=list(action.grants),
                                                until=utc_text(action.until) if action.until else None)
                    record({**rotated, **facts})  # facts: the Delivery fields
                elif action.op == "create-account":
                    created = AccountCreated(event="account.created", grant=first, target=action.target,
                                             account=action.principal, groups=action.assignment.privilege,
                                             until=utc_text(action.until) if action.until else None)
                    record({**created, **facts})  # facts: the Delivery fields
                elif action.op == "delete-account" and outcome.changed:
                    record(AccountDeleted(event="account.deleted", grant=first, target=action.target,
                                          account=action.principal))
                out.append(Result(action, outcome, None))
            if progress:
                progress(f"{'ok  ' if out[-1].ok else 'FAIL'} {action.op} {action.assignment.privilege} "
                         f"{'from' if action.revoking else 'to'} {action.principal} on {action.target}")
        return out

    for phase in (plan.revocations, plan.additions):
        by_target: dict[str, list[Action]] = {}
        for action in phase:
            by_target.setdefault(action.target, []).append(action)
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(by_target)))) as pool:
            for chunk in pool.map(run_target, [by_target[t] for t in sorted(by_target)]):
                results.extend(chunk)
    return results
