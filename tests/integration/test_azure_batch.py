"""AzureConnector.apply_batch and its pacing through the real azure-mgmt-authorization SDK against
the HTTPS ARM double enforcing ARM's documented token buckets: each scope listed once per batch,
exact requests, exact per-action results when some fail mid-batch, Retry-After honoured on an
injected clock, and the budget past which an action fails as TargetUnavailable."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from jitpol.connectors.base import BatchApply
from jitpol.connectors.pacing import FakePaceClock, Pacing, Rate
from jitpol.errors import PermanentTargetError, TargetUnavailable
from jitpol.model.assignment import Action, Assignment, Op, Outcome
from jitpol.model.canonical import canonical_json
from tests.azure_fixtures import *  # noqa: F403 - the fixtures
from tests.azure_fixtures import CONTRIBUTOR, READER, RG_SCOPE, SUB_SCOPE, TARGET, AzureConnect
from tests.doubles.arm import FakeArm

MODEL = "idp-elevation"
ASSIGNMENTS = "/providers/Microsoft.Authorization/roleAssignments"
FAST = {kind: Rate(10_000, 10_000) for kind in ("read", "write", "delete")}  # the double's buckets decide


def act(op: Op, principal: str, scope: str = RG_SCOPE, role: str = READER) -> Action:
    privilege = canonical_json({"scope": scope, "role": role})
    return Action(op=op, assignment=Assignment(TARGET, MODEL, principal, privilege), resource="orders",
                  grants=("g",), details=(("grant", "g"),))


def outcomes(results: list[Outcome | Exception]) -> list[str]:
    return [("changed" if r.changed else "unchanged") if isinstance(r, Outcome) else type(r).__name__
            for r in results]


def people(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def test_the_connector_offers_batches(azure_connect: AzureConnect) -> None:
    assert isinstance(azure_connect(), BatchApply)


def test_each_scope_is_listed_once_and_each_action_sends_its_one_write(
    fake_arm: FakeArm, azure_connect: AzureConnect
) -> None:
    fake_arm.page_size = 100
    leaving, staying = people(2)
    fake_arm.add_assignment(RG_SCOPE, READER, leaving, description="jitpol: grant=g")
    fake_arm.add_assignment(SUB_SCOPE, CONTRIBUTOR, staying)
    newcomers = people(8)
    batch = [act("grant", p, RG_SCOPE if i < 5 else SUB_SCOPE, READER if i % 2 else CONTRIBUTOR)
             for i, p in enumerate(newcomers)]
    batch += [act("revoke", leaving), act("grant", staying, SUB_SCOPE, CONTRIBUTOR)]
    results = azure_connect().apply_batch(batch)
    assert outcomes(results) == ["changed"] * 9 + ["unchanged"]
    calls = Counter((method, path.endswith(ASSIGNMENTS)) for method, path, _ in fake_arm.log)
    assert calls == {("GET", True): 2, ("PUT", False): 8, ("DELETE", False): 1}  # one listing per scope
    listed = [path for method, path, _ in fake_arm.log if method == "GET"]
    assert listed == [f"{RG_SCOPE}{ASSIGNMENTS}", f"{SUB_SCOPE}{ASSIGNMENTS}"]
    assert [m for m, _, _ in fake_arm.log[:2]] == ["GET", "GET"]  # both listings before any write
    for i, p in enumerate(newcomers):
        scope = RG_SCOPE if i < 5 else SUB_SCOPE
        assert p in fake_arm.holders(scope, READER if i % 2 else CONTRIBUTOR)
    assert leaving not in fake_arm.holders(RG_SCOPE, READER)


def test_one_failing_action_never_hides_the_others_results(fake_arm: FakeArm, azure_connect: AzureConnect) -> None:
    known = people(3)
    fake_arm.directory = set(known)
    stranger = str(uuid.uuid4())
    batch = [
        act("grant", known[0]),
        act("grant", stranger),  # ARM: no such principal
        act("grant", "not-a-guid"),  # refused before anything is sent
        act("grant", known[1], role="Nobody Role"),  # no such role definition
        act("grant", known[2]),
    ]
    results = azure_connect().apply_batch(batch)
    assert outcomes(results) == ["changed", "PermanentTargetError", "PermanentTargetError", "PermanentTargetError",
                                 "changed"]
    assert "PrincipalNotFound" in str(results[1])
    assert "no role definition named" in str(results[3])
    assert set(fake_arm.holders(RG_SCOPE, READER)) == {known[0], known[2]}


@pytest.fixture
def clock(fake_arm: FakeArm) -> FakePaceClock:
    """One fake clock for the double's buckets and the connector's pacing; writes: a bucket of 2
    refilled at one token per 10 s."""
    clock = FakePaceClock()
    fake_arm.clock = clock.monotonic
    fake_arm.buckets["write"] = (2, 0.1)
    return clock


def test_retry_after_is_honoured_exactly(fake_arm: FakeArm, azure_connect: AzureConnect, clock: FakePaceClock) -> None:
    connector = azure_connect(pacing=Pacing(rates=FAST, clock=clock, max_in_flight=1))
    batch = [act("grant", p) for p in people(3)]
    assert outcomes(connector.apply_batch(batch)) == ["changed"] * 3
    assert fake_arm.throttled == 1
    assert [s for s in clock.slept if s >= 0.01] == [10.0]  # Retry-After: 10
    assert [m for m, _, _ in fake_arm.log] == ["GET", "PUT", "PUT", "PUT", "PUT"]


def test_past_max_wait_s_the_action_fails_as_target_unavailable(
    fake_arm: FakeArm, azure_connect: AzureConnect, clock: FakePaceClock
) -> None:
    connector = azure_connect(pacing=Pacing(rates=FAST, clock=clock, max_in_flight=1), max_wait_s=5)
    batch = [act("grant", p) for p in people(3)]
    results = connector.apply_batch(batch)
    assert outcomes(results) == ["changed", "changed", "TargetUnavailable"]
    assert isinstance(results[2], TargetUnavailable)
    message = str(results[2])
    assert "Azure Resource Manager throttled it (HTTP 429) and asks to wait 10.0 s" in message
    assert "max_wait_s 5 s" in message and "next run applies it" in message
    assert clock.slept == []


def test_paced_to_the_bucket_the_connector_waits_its_turn_instead(
    fake_arm: FakeArm, azure_connect: AzureConnect, clock: FakePaceClock
) -> None:
    rates = {**FAST, "write": Rate(0.1, burst=2)}
    connector = azure_connect(pacing=Pacing(rates=rates, clock=clock, max_in_flight=1))
    assert outcomes(connector.apply_batch([act("grant", p) for p in people(4)])) == ["changed"] * 4
    assert fake_arm.throttled == 0
    assert clock.slept == pytest.approx([10.0, 10.0])


def test_bad_max_wait_s_is_refused(azure_connect: AzureConnect) -> None:
    with pytest.raises(PermanentTargetError, match="max_wait_s"):
        azure_connect(max_wait_s=True)
