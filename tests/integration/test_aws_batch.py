"""AwsConnector.apply_batch and its pacing through boto3 against moto behind the shim, which
enforces IAM Identity Center's documented limits (20 TPS, 10 outstanding account assignment
requests): what a batch reads once, exact calls, exact per-action results when some fail
mid-batch, the outstanding cap, throttles waited out on an injected clock, and the budget past
which an action fails as TargetUnavailable."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from jitpol.connectors.base import BatchApply
from jitpol.connectors.pacing import FakePaceClock, Pacing, Rate
from jitpol.errors import PermanentTargetError, TargetUnavailable
from jitpol.model.assignment import Action, Assignment, Op, Outcome
from jitpol.model.canonical import canonical_json
from tests.aws_fixtures import *  # noqa: F403 (the fixtures: moto_server, aws_shim, aws)
from tests.aws_fixtures import AWS_TARGET, AwsWorld

MODEL = "idp-elevation"
FAST = {"identity-center": Rate(1000, 1000), "iam": Rate(1000, 1000)}  # the shim's limits decide


def act(op: Op, principal: dict[str, str], privilege: dict[str, str]) -> Action:
    return Action(op=op, assignment=Assignment(AWS_TARGET, MODEL, canonical_json(principal), canonical_json(privilege)),
                  resource="r", grants=("g",))


def outcomes(results: list[Outcome | Exception]) -> list[str]:
    return [("changed" if r.changed else "unchanged") if isinstance(r, Outcome) else type(r).__name__
            for r in results]


def test_the_connector_offers_batches(aws: AwsWorld) -> None:
    assert isinstance(aws.connector(), BatchApply)


def test_a_batch_reads_once_what_its_actions_share(aws: AwsWorld) -> None:
    ps = aws.permission_set()
    users = [aws.user() for _ in range(5)]
    leaving = aws.user()
    aws.assign(ps, "USER", leaving)
    privilege = {"account": aws.ACCOUNT, "permissionSet": ps}
    batch = [act("grant", {"userId": u}, privilege) for u in users] + [act("revoke", {"userId": leaving}, privilege)]
    aws.shim.log.clear()
    results = aws.connector().apply_batch(batch)
    assert outcomes(results) == ["changed"] * 6
    assert aws.holders(ps) == {("USER", u) for u in users}
    calls = Counter(aws.shim.log)
    assert calls["sso-admin ListAccountAssignments"] == 1  # once for the batch, not once per action
    assert calls["sso-admin DescribePermissionSet"] == 1
    assert calls["identitystore DescribeUser"] == 5  # each grant's user once
    assert calls["sso-admin CreateAccountAssignment"] == 5 and calls["sso-admin DeleteAccountAssignment"] == 1
    assert calls["sso-admin DescribeAccountAssignmentCreationStatus"] == 5
    assert calls["sso-admin DescribeAccountAssignmentDeletionStatus"] == 1
    log = aws.shim.log
    assert log.index("sso-admin ListAccountAssignments") < log.index("sso-admin CreateAccountAssignment")


def test_one_failing_action_never_hides_the_others_results(aws: AwsWorld) -> None:
    ps = aws.permission_set()
    alice, bob = aws.user(), aws.user()
    group, iam_user = aws.iam_group(), aws.iam_user()
    privilege = {"account": aws.ACCOUNT, "permissionSet": ps}
    batch = [
        act("grant", {"userId": alice}, privilege),
        act("grant", {"userId": "9067a1b2c3-0c5b7a8e-1111-2222-3333-444455556666"}, privilege),  # no such user
        act("grant", {"userId": bob}, {"account": aws.ACCOUNT, "permissionSet": aws.missing_permission_set()}),
        act("grant", {"iamUser": "nobody-at-all"}, {"iamGroup": group}),  # no such IAM user
        act("grant", {"iamUser": iam_user}, {"iamGroup": group}),
        act("grant", {"userId": bob}, privilege),
    ]
    results = aws.connector().apply_batch(batch)
    assert outcomes(results) == ["changed", "PermanentTargetError", "PermanentTargetError", "PermanentTargetError",
                                 "changed", "changed"]
    assert "has no user" in str(results[1])
    assert "does not exist" in str(results[2]) and "does not exist" in str(results[3])
    assert aws.holders(ps) == {("USER", alice), ("USER", bob)}
    assert aws.iam_members(group) == {iam_user}


def test_outstanding_requests_stay_within_the_cap(aws: AwsWorld) -> None:
    aws.shim.max_outstanding = 3
    aws.shim.pending_polls = 1  # each request stays in progress for one more poll
    ps = aws.permission_set()
    users = [aws.user() for _ in range(8)]
    privilege = {"account": aws.ACCOUNT, "permissionSet": ps}
    results = aws.connector(pacing=Pacing(max_in_flight=3)).apply_batch(
        [act("grant", {"userId": u}, privilege) for u in users])
    assert outcomes(results) == ["changed"] * 8
    assert aws.shim.throttled == 0
    assert 1 <= aws.shim.peak_outstanding <= 3


@pytest.fixture
def clock(aws: AwsWorld) -> FakePaceClock:
    """One fake clock for the shim's bucket (4 calls per second) and the connector's pacing."""
    clock = FakePaceClock()
    aws.shim.clock = clock.monotonic
    aws.shim.tps = 4
    return clock


def _known_instance(aws: AwsWorld) -> dict[str, Any]:
    """Settings naming the instance: no ListInstances call to count."""
    return {"instance_arn": aws.instance_arn, "identity_store_id": aws.store_id}


def _two_grants(aws: AwsWorld) -> tuple[list[Action], str, list[str]]:
    ps = aws.permission_set()
    users = [aws.user(), aws.user()]
    privilege = {"account": aws.ACCOUNT, "permissionSet": ps}
    return [act("grant", {"userId": u}, privilege) for u in users], ps, users


def test_throttles_are_waited_out_on_the_injected_clock(aws: AwsWorld, clock: FakePaceClock) -> None:
    batch, ps, users = _two_grants(aws)
    aws.shim.log.clear()
    connector = aws.connector(pacing=Pacing(rates=FAST, clock=clock, max_in_flight=1), **_known_instance(aws))
    results = connector.apply_batch(batch)
    assert outcomes(results) == ["changed", "changed"]
    assert aws.holders(ps) == {("USER", u) for u in users}
    # List, DescribePermissionSet, 2 x DescribeUser take the bucket's 4 tokens; the first Create
    # is throttled, the bucket shut for 1 s (backoff), then the rest go through; each request is
    # polled once after 0.1 s (the first answer says IN_PROGRESS)
    assert aws.shim.throttled == 1
    assert [s for s in clock.slept if s >= 0.01] == [1.0, 0.1, 0.1]
    assert aws.shim.log.count("sso-admin CreateAccountAssignment") == 3  # the throttled one sent again


def test_past_max_wait_s_the_actions_fail_as_target_unavailable(aws: AwsWorld, clock: FakePaceClock) -> None:
    batch, ps, _ = _two_grants(aws)
    connector = aws.connector(pacing=Pacing(rates=FAST, clock=clock, max_in_flight=1), max_wait_s=0.5,
                              **_known_instance(aws))
    results = connector.apply_batch(batch)
    assert outcomes(results) == ["TargetUnavailable", "TargetUnavailable"]
    assert isinstance(results[0], TargetUnavailable)
    message = str(results[0])
    assert "sso-admin CreateAccountAssignment: AWS throttled it (ThrottlingException: Rate exceeded)" in message
    assert "max_wait_s 0.5 s" in message and "next run applies it" in message
    assert clock.slept == []
    assert aws.holders(ps) == set()


def test_bad_max_wait_s_is_refused(aws: AwsWorld) -> None:
    with pytest.raises(PermanentTargetError, match="max_wait_s"):
        aws.connector(max_wait_s="forever")
