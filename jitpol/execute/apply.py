"""Execute: apply a plan's actions through the connectors, revocations before additions, each
addition's intent recorded before it is applied.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from jitpol.connectors.base import BatchApply
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
# (bodies, durable): append several events in order, in one write; durable=True: on disk (fsync)
# before it returns
AppendMany = Callable[[Sequence[Mapping[str, Any]], bool], Any]


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


# ops that need no secret from the Issuer: a connector that implements BatchApply gets them in
# batches; the others (create-account, rotate, delete-account) go one by one
BATCHED_OPS = frozenset({"grant", "revoke"})
# at most this many actions in one call of apply_batch (and one fsync of their intents)
BATCH_MAX = 1000


def execute(plan: Plan, conns: Connections, append: Append, base: Mapping[str, Any],
            progress: Progress | None = None, issuer: Issuer | None = None, *,
            append_many: AppendMany | None = None) -> list[Result]:
    """Apply every action: all revocations on all targets first, then additions. Each action is
    isolated; a failure is recorded and the rest go on. Targets run in parallel, one thread each;
    actions on one target run in order.

    A target whose connector implements BatchApply gets runs of consecutive grant/revoke actions
    (at most BATCH_MAX) in one apply_batch call: the intents of a run's additions are appended
    and made durable (`append_many(bodies, True)`: one write, one fsync) before the call, and
    each action's own result events are appended after it, in one write. Without append_many,
    events go through `append` one by one."""
    run = _Executor(conns, append, append_many, base, progress, issuer)
    results: list[Result] = []
    for phase in (plan.revocations, plan.additions):
        by_target: dict[str, list[Action]] = {}
        for action in phase:
            by_target.setdefault(action.target, []).append(action)
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(by_target)))) as pool:
            for chunk in pool.map(run.target, [by_target[t] for t in sorted(by_target)]):
                results.extend(chunk)
    return results


@dataclass(slots=True)
class _Executor:
    """One run's execution: the targets' threads share it, and its lock keeps ledger appends whole."""

    conns: Connections
    append: Append
    append_many: AppendMany | None
    base: Mapping[str, Any]
    progress: Progress | None
    issuer: Issuer | None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, body: Mapping[str, Any]) -> None:
        with self.lock:
            self.append({**self.base, **body})

    def record_many(self, bodies: Sequence[Mapping[str, Any]], durable: bool = False) -> None:
        if not bodies:
            return
        with self.lock:
            full = [{**self.base, **body} for body in bodies]
            if self.append_many is not None:
                self.append_many(full, durable)
            else:
                for body in full:
                    self.append(body)

    def say(self, result: Result) -> None:
        if self.progress:
            action = result.action
            self.progress(f"{'ok  ' if result.ok else 'FAIL'} {action.op} {action.assignment.privilege} "
                          f"{'from' if action.revoking else 'to'} {action.principal} on {action.target}")

    def target(self, actions: list[Action]) -> list[Result]:
        """One target's actions in order: runs of grants/revokes in batches when its connector
        can, the rest one by one."""
        try:
            connector: Any = self.conns.get(actions[0].target)
        except Exception:  # noqa: BLE001 - one() records each action's failure to connect
            connector = None
        batching = isinstance(connector, BatchApply)
        out: list[Result] = []
        i = 0
        while i < len(actions):
            j = i
            while batching and j < len(actions) and j - i < BATCH_MAX and actions[j].op in BATCHED_OPS:
                j += 1
            if j > i:
                out.extend(self.batch(connector, actions[i:j]))
                i = j
            else:
                out.append(self.one(actions[i]))
                i += 1
        return out

    def one(self, action: Action) -> Result:
        if not action.revoking:
            self.record(_started(action))
        facts: dict[str, Any] = {}
        try:
            if self.issuer is not None:
                action, facts = self.issuer.issue(action)
            outcome = self.conns.get(action.target).apply(action)
            if self.issuer is not None:
                facts.update(self.issuer.retire(action))
        except Exception as exc:  # noqa: BLE001 - per-action isolation: one failure must not stop the rest
            result = Result(action, None, _message(action, exc))
        else:
            result = Result(action, outcome, None)
        self.record_many(_after(result, facts))
        self.say(result)
        return result

    def batch(self, connector: BatchApply, batch: list[Action]) -> list[Result]:
        # intent before effect, on disk: every addition's intent is durable before the call
        self.record_many([_started(a) for a in batch if not a.revoking], durable=True)
        got: list[Outcome | Exception]
        try:
            got = connector.apply_batch(batch)
            if len(got) != len(batch):
                raise RuntimeError(f"apply_batch returned {len(got)} results for {len(batch)} actions")
        except Exception as exc:  # noqa: BLE001 - the whole batch failed: every action records it
            got = [exc] * len(batch)
        out = [Result(a, None, _message(a, r)) if isinstance(r, Exception) else Result(a, r, None)
               for a, r in zip(batch, got, strict=True)]
        self.record_many([body for r in out for body in _after(r, {})])
        for r in out:
            self.say(r)
        return out


def _started(action: Action) -> dict[str, Any]:
    """The intent recorded before an addition is applied."""
    return dict(ActionStarted(event="action.started", grant=action.grants[0] if action.grants else None,
                              op=action.op, **assignment_ref(action.assignment.key), grants=list(action.grants)))


def _message(action: Action, exc: Exception) -> str:
    message = str(exc) if isinstance(exc, JitpolError) else f"{type(exc).__name__}: {exc}"
    secret = action.detail("password")
    if secret:  # defence in depth: connectors redact, but no message may ever carry it
        message = message.replace(secret, "***")
    return message


def _after(result: Result, facts: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The events one applied (or failed) action leaves, in order; `facts` are the Issuer's."""
    action, outcome = result.action, result.outcome
    key = action.assignment.key
    first = action.grants[0] if action.grants else None
    if outcome is None:
        return [dict(ActionFailed(event="action.failed", grant=first, op=action.op, **assignment_ref(key),
                                  grants=list(action.grants), error=result.error or ""))]
    events: list[dict[str, Any]] = []
    if action.drift:
        events.append(dict(DriftCorrected(event="drift.corrected", grant=None, op=action.op, **assignment_ref(key),
                                          resource=action.resource, changed=outcome.changed)))
    if action.op == "rotate":
        rotated = CredentialRotated(event="credential.rotated", grant=first, target=action.target,
                                    account=action.principal, holders=list(action.grants),
                                    until=utc_text(action.until) if action.until else None)
        events.append({**rotated, **facts})  # facts: the Delivery fields
    elif action.op == "create-account":
        created = AccountCreated(event="account.created", grant=first, target=action.target,
                                 account=action.principal, groups=action.assignment.privilege,
                                 until=utc_text(action.until) if action.until else None)
        events.append({**created, **facts})  # facts: the Delivery fields
    elif action.op == "delete-account" and outcome.changed:
        events.append(dict(AccountDeleted(event="account.deleted", grant=first, target=action.target,
                                          account=action.principal)))
    return events
