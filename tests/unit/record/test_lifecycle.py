"""record.lifecycle.lifecycle_events, called directly: the grant-level ledger events a run records
after executing its plan (activations once all of a grant's access is in place, ends once all of it
is gone, first-seen rejections), given hand-built Prepared, Observation and results."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from jitpol.evaluate.prepare import Prepared
from jitpol.execute.apply import Result
from jitpol.model.assignment import Action, Assignment, AssignmentKey, Op, Outcome
from jitpol.observe.targets import Observation
from jitpol.policy.approvals import Reviews
from jitpol.policy.history import History, replay
from jitpol.record.lifecycle import lifecycle_events
from jitpol.scope import Shard
from tests.helpers.policyset import T0, H, activated, fp, grant, policy, resource, workflow
from tests.helpers.prepared import observed, prepared, revocations_only, unobservable

NOW = T0 + H
READ: AssignmentKey = ("db", "role-membership", "alice", "app_read")
WRITE: AssignmentKey = ("db", "role-membership", "alice", "app_write")
SHARED: AssignmentKey = ("db", "credential-checkout", "svc_app", "checkout")
G = grant("g")
GW = grant("g", role="write")
OLD = grant("old", start=T0 - 3 * H)  # its window ended at T0 - 1h


def key(k: AssignmentKey) -> dict[str, str]:
    return dict(zip(("target", "model", "principal", "privilege"), k, strict=True))


def done(op: Op, k: AssignmentKey, *grants: str, error: str | None = None) -> Result:
    """A result of executing `op` on `k`: succeeded, or failed with `error`."""
    action = Action(op, Assignment(*k), "db-prod", grants)
    return Result(action, None if error else Outcome(True, False, True), error)


def activation(g: Any = G, *, assignments: Sequence[AssignmentKey] = (READ,), approvals: Sequence[Any] | None = None,
               **more: Any) -> dict[str, Any]:
    return {"event": "grant.activated", "grant": g.name, "digest": g.digest, "requester": g.requester,
            "resource": g.resource, "role": g.role, "start": "1999-03-01T10:00:00Z", "end": "1999-03-01T12:00:00Z",
            "until": "1999-03-01T12:00:00Z",
            "approvals": list(approvals) if approvals is not None else [{"by": "lead", "via": "signature",
                                                                         "key": fp("lead")}],
            "breakglass": False, "justification": "INC-1", "assignments": [key(k) for k in assignments], **more}


def ended(name: str, final: bool, reason: str, *keys: AssignmentKey) -> dict[str, Any]:
    return {"event": "grant.revoked", "grant": name, "final": final, "reason": reason,
            "assignments": [key(k) for k in keys]}


def gone(name: str, *keys: AssignmentKey, start: Any = T0 - 3 * H) -> History:
    return replay([activated(grant(name, start=start), *keys)])


@dataclass(frozen=True)
class Case:
    prep: Prepared
    obs: Observation
    results: Sequence[Result]
    events: Sequence[dict[str, Any]]


CASES: dict[str, Case] = {
    # -- activations --------------------------------------------------------------------------
    "activated once its access is in place": Case(
        prepared(policy(G), NOW), observed(), [done("grant", READ, "g")], [activation()]),
    "activated when its access was already there (jitpol's marker)": Case(
        prepared(policy(G), NOW), observed(Assignment(*READ, owned=True)), [], [activation()]),
    "not activated while an addition failed": Case(
        prepared(policy(GW), NOW), observed(), [done("grant", READ, "g"), done("grant", WRITE, "g", error="boom")],
        []),
    "not activated while part of its access is missing": Case(
        prepared(policy(GW), NOW), observed(), [done("grant", READ, "g")], []),
    "not activated on a target nobody could observe": Case(
        prepared(policy(G), NOW), unobservable(), [], []),
    "not activated twice": Case(
        prepared(policy(G), NOW, replay([activated(G, READ)])), observed(Assignment(*READ)), [], []),
    "activated after a run that died between adding and recording": Case(
        prepared(policy(G), NOW, replay([{"event": "action.started", "grant": "g", "grants": ["g"], **key(READ)}])),
        observed(Assignment(*READ)), [], [activation()]),
    "standing access it repeats is not jitpol's": Case(
        prepared(policy(GW), NOW), observed(Assignment(*READ)), [done("grant", WRITE, "g")],
        [activation(GW, assignments=[WRITE], standing=[key(READ)])]),
    "access this run granted is jitpol's, though it was observed before": Case(
        prepared(policy(G), NOW), observed(Assignment(*READ)), [done("grant", READ, "g")], [activation()]),
    "pull-request reviews are its approvals": Case(
        prepared(policy(grant("g", approvers=()), workflows=[workflow(approvals_via="github-review")]), NOW,
                 reviews={"g": Reviews(("lead",), evidence=(("lead", "lead-gh", 7, 99),))}),
        observed(), [done("grant", READ, "g")],
        [activation(grant("g", approvers=()), approvals=[
            {"by": "lead", "via": "github-review", "login": "lead-gh", "pull": 7, "review": 99}])]),
    "a checkout is held once the secret's holders include it": Case(
        prepared(policy(grant("g", resource="db-shared"),
                        resources=[resource("db-shared", model="credential-checkout", account="svc_app")]), NOW),
        observed(), [Result(Action("rotate", Assignment("db", "credential-checkout", "svc_app", '["g"]'), "db-shared",
                                   ("g",)), Outcome(True, False, True), None)],
        [activation(grant("g", resource="db-shared"), assignments=[SHARED])]),
    "a checkout whose rotation failed is not held": Case(
        prepared(policy(grant("g", resource="db-shared"),
                        resources=[resource("db-shared", model="credential-checkout", account="svc_app")]), NOW),
        observed(), [Result(Action("rotate", Assignment("db", "credential-checkout", "svc_app", '["g"]'), "db-shared",
                                   ("g",)), None, "refused")], []),
    # -- ends ---------------------------------------------------------------------------------
    "ended once its access is gone": Case(
        prepared(policy(OLD), NOW, gone("old", READ)), observed(Assignment(*READ)), [done("revoke", READ, "old")],
        [ended("old", True, "expired: window ended 1999-03-01T09:00:00Z", READ)]),
    "ended when its access was already gone": Case(
        prepared(policy(OLD), NOW, gone("old", READ)), observed(), [],
        [ended("old", True, "expired: window ended 1999-03-01T09:00:00Z", READ)]),
    "not ended while a revocation failed": Case(
        prepared(policy(OLD), NOW, gone("old", READ)), observed(Assignment(*READ)),
        [done("revoke", READ, "old", error="timeout")], []),
    "not ended on a target nobody could observe": Case(
        prepared(policy(OLD), NOW, gone("old", READ)), unobservable(), [], []),
    "its file deleted": Case(
        prepared(policy(), NOW, gone("old", READ)), observed(), [], [ended("old", True, "grant file deleted", READ)]),
    "not final while the grant may come back (pending again)": Case(
        prepared(policy(grant("g", approvers=())), NOW, gone("g", READ, start=T0)), observed(), [],
        [ended("g", False, "pending: needs 1 more approval(s) from team:leads (have 0)", READ)]),
    "an active grant is not ended": Case(
        prepared(policy(G), NOW, replay([activated(G, READ)])), observed(Assignment(*READ)), [], []),
    # -- rejections ---------------------------------------------------------------------------
    "a rejection is recorded once": Case(
        prepared(policy(grant("long", hours=5)), NOW), observed(), [],
        [{"event": "grant.rejected", "grant": "long", "reason": "window is 5h, workflow prod allows at most 4h",
          "digest": grant("long", hours=5).digest}]),
    "a rejection already on record": Case(
        prepared(policy(grant("long", hours=5)), NOW, replay([
            {"event": "grant.rejected", "grant": "long", "reason": "window is 5h, workflow prod allows at most 4h"}])),
        observed(), [], []),
    "a shard that does not record rejections": Case(
        prepared(policy(grant("long", hours=5)), NOW, shard=Shard(2, 2)), observed(), [], []),
    # -- revocations-only runs ----------------------------------------------------------------
    "invalid: the live interval ended and the access is gone": Case(
        revocations_only(policy(), NOW, gone("old", READ)), observed(), [done("revoke", READ, "old")],
        [ended("old", True, "live interval ended", READ)]),
    "invalid: still inside the recorded interval": Case(
        revocations_only(policy(), T0 - 2 * H, gone("old", READ)), observed(Assignment(*READ)), [], []),
    "invalid: a restriction ended it": Case(
        revocations_only(policy(), T0 - 2 * H, gone("old", READ), ended={"old": "revoke: true"}), observed(),
        [done("revoke", READ, "old")], [ended("old", True, "revoke: true", READ)]),
    "invalid: the kill switch does not end the name": Case(
        revocations_only(policy(), T0 - 2 * H, gone("old", READ), ended={"old": "alice is disabled (kill switch)"}),
        observed(), [done("revoke", READ, "old")], [ended("old", False, "alice is disabled (kill switch)", READ)]),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_lifecycle_events(case: Case) -> None:
    assert lifecycle_events(case.prep, case.obs, case.results) == list(case.events)


def test_activations_come_before_ends_and_rejections() -> None:
    prep = prepared(policy(G, grant("long", hours=5)), NOW, gone("old", WRITE))
    events = lifecycle_events(prep, observed(), [done("grant", READ, "g")])
    assert [(e["event"], e["grant"]) for e in events] == [
        ("grant.activated", "g"), ("grant.revoked", "old"), ("grant.rejected", "long")]
