"""GcpConnector.apply_batch and its pacing, through the real google-cloud-resource-manager SDK
(REST) against the Cloud Resource Manager double enforcing Google's documented quotas: one
read-modify-write per resource for all its changes (exact calls, in order), exact per-action
results when one action or one write is refused, a 409 redone whole, 429s waited out on an
injected clock, and the budget past which an action fails as TargetUnavailable."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

import pytest

from jitpol.connectors.base import BatchApply
from jitpol.connectors.gcp import GcpConnector
from jitpol.connectors.pacing import FakePaceClock, Pacing, Rate
from jitpol.errors import PermanentTargetError, TargetUnavailable
from jitpol.model.assignment import Action, Assignment, Op, Outcome
from jitpol.model.canonical import canonical_json
from tests.doubles.gcp_crm import FakeCrm
from tests.gcp_fixtures import *  # noqa: F403 - the fixtures
from tests.gcp_fixtures import PROJECT, TARGET, UNRELATED_BINDINGS, GcpConnect, anonymous
from tests.helpers.clock import HoursFromNow, Now

MODEL = "idp-elevation"
FOLDER = "folders/123456789"
ADMIN, VIEWER = "roles/cloudsql.admin", "roles/cloudsql.viewer"

in_hours = HoursFromNow()


@pytest.fixture(autouse=True)
def _read_the_clock_once(now: Now) -> None:
    in_hours.now = now


def act(op: Op, member: str, resource: str = PROJECT, role: str = ADMIN, *, until: datetime | None = None,
        drift: bool = False) -> Action:
    privilege = canonical_json({"resource": resource, "role": role})
    return Action(op=op, assignment=Assignment(TARGET, MODEL, member, privilege), resource="orders",
                  grants=("g",), until=until if op == "grant" else None, drift=drift)


def members_of(crm: FakeCrm, resource: str, role: str) -> set[str]:
    return {m for b in crm.policy(resource)["bindings"] if b["role"] == role for m in b["members"]}


def outcomes(results: list[Outcome | Exception]) -> list[str]:
    """Each result in one word: changed, unchanged, or the error's class."""
    return [("changed" if r.changed else "unchanged") if isinstance(r, Outcome) else type(r).__name__
            for r in results]


def test_the_connector_offers_batches(gcp_connect: GcpConnect) -> None:
    assert isinstance(gcp_connect(), BatchApply)


def test_one_read_and_one_write_per_resource_for_all_its_changes(fake_crm: FakeCrm, gcp_connect: GcpConnect) -> None:
    fake_crm.add_resource(FOLDER, [])
    until = in_hours(2)
    batch = [act("grant", f"user:p{i}@example.com", PROJECT, ADMIN if i % 2 else VIEWER, until=until)
             for i in range(20)]
    batch += [act("grant", f"user:f{i}@example.com", FOLDER, VIEWER, until=until) for i in range(5)]
    results = gcp_connect().apply_batch(batch)
    assert outcomes(results) == ["changed"] * 25
    assert fake_crm.calls == {(PROJECT, "getIamPolicy"): 1, (PROJECT, "setIamPolicy"): 1,
                              (FOLDER, "getIamPolicy"): 1, (FOLDER, "setIamPolicy"): 1}
    # per resource the read comes before the write (resources go concurrently)
    for resource in (PROJECT, FOLDER):
        assert [m for r, m, _ in fake_crm.log if r == resource] == ["getIamPolicy", "setIamPolicy"]
    assert {f"user:p{i}@example.com" for i in range(1, 20, 2)} <= members_of(fake_crm, PROJECT, ADMIN)
    assert {f"user:p{i}@example.com" for i in range(0, 20, 2)} <= members_of(fake_crm, PROJECT, VIEWER)
    assert members_of(fake_crm, FOLDER, VIEWER) == {f"user:f{i}@example.com" for i in range(5)}
    # each action's operations name its own change, in the one write
    first = results[0]
    assert isinstance(first, Outcome) and len(first.operations) == 1
    assert "setIamPolicy" in first.operations[0] and "add user:p0@example.com" in first.operations[0]
    # the policy's unrelated bindings are all still there
    kept = fake_crm.policy(PROJECT)["bindings"]
    assert all(any(b["role"] == u["role"] and set(u["members"]) <= set(b["members"]) for b in kept)
               for u in UNRELATED_BINDINGS)


def test_already_true_changes_cost_one_read_and_no_write(fake_crm: FakeCrm, gcp_connect: GcpConnect) -> None:
    connector = gcp_connect()
    until = in_hours(2)
    batch = [act("grant", f"user:p{i}@example.com", until=until) for i in range(3)]
    assert outcomes(connector.apply_batch(batch)) == ["changed"] * 3
    fake_crm.calls.clear()
    again = connector.apply_batch([*batch, act("revoke", "user:nobody@example.com")])
    assert outcomes(again) == ["unchanged"] * 4
    assert fake_crm.calls == {(PROJECT, "getIamPolicy"): 1}


def test_a_refused_action_fails_alone_and_the_rest_are_written_once(
    fake_crm: FakeCrm, gcp_connect: GcpConnect
) -> None:
    until = in_hours(2)
    batch = [
        act("grant", "user:a@example.com", until=until),
        # standing access jitpol did not create: a plain revoke may not take it
        act("revoke", "user:standing@example.org"),
        act("grant", "not a member", until=until),  # refused before anything is sent
        act("grant", "user:b@example.com", until=until),
        act("grant", "user:c@example.com"),  # no end: refused
    ]
    results = gcp_connect().apply_batch(batch)
    assert outcomes(results) == ["changed", "PermanentTargetError", "PermanentTargetError", "changed",
                                 "PermanentTargetError"]
    assert "still holds roles/cloudsql.admin" in str(results[1])
    assert "not valid" in str(results[2])
    assert "needs an end" in str(results[4])
    assert fake_crm.calls == {(PROJECT, "getIamPolicy"): 1, (PROJECT, "setIamPolicy"): 1}
    assert {"user:a@example.com", "user:b@example.com", "user:standing@example.org"} <= members_of(
        fake_crm, PROJECT, ADMIN)
    assert "user:c@example.com" not in members_of(fake_crm, PROJECT, ADMIN)


def test_a_refused_write_fails_exactly_the_actions_it_carried(fake_crm: FakeCrm, gcp_connect: GcpConnect) -> None:
    fake_crm.add_resource(FOLDER, [])
    fake_crm.deny.add(FOLDER)
    until = in_hours(2)
    batch = [act("grant", "user:a@example.com", FOLDER, until=until),
             act("grant", "user:b@example.com", PROJECT, until=until),
             act("grant", "user:c@example.com", FOLDER, until=until)]
    results = gcp_connect().apply_batch(batch)
    assert outcomes(results) == ["PermanentTargetError", "changed", "PermanentTargetError"]
    assert "403" in str(results[0]) and results[0] is results[2]
    assert "user:b@example.com" in members_of(fake_crm, PROJECT, ADMIN)


def test_a_conflict_rereads_and_reapplies_the_whole_set(fake_crm: FakeCrm, gcp_connect: GcpConnect) -> None:
    fake_crm.conflicts = 1
    until = in_hours(2)
    batch = [act("grant", f"user:p{i}@example.com", until=until) for i in range(3)]
    results = gcp_connect().apply_batch(batch)
    assert outcomes(results) == ["changed"] * 3
    assert [m for _, m, _ in fake_crm.log] == ["getIamPolicy", "setIamPolicy", "getIamPolicy", "setIamPolicy"]
    for r in results:
        assert isinstance(r, Outcome) and len(r.operations) == 2 and "409 ABORTED" in r.operations[0]
    assert {"user:concurrent1@example.org", "user:p0@example.com", "user:p2@example.com"} <= {
        m for b in fake_crm.policy(PROJECT)["bindings"] for m in b["members"]}


# -- quotas, on one fake clock shared by the double and the connector --------------------------


@pytest.fixture
def clock() -> FakePaceClock:
    return FakePaceClock()


@pytest.fixture
def quota_crm(fake_crm: FakeCrm, clock: FakePaceClock) -> Iterator[FakeCrm]:
    """A second double whose quota clock is the fake one: one write per 60-second window."""
    with FakeCrm(write_limit=1, clock=clock.monotonic) as crm:
        for i in range(3):
            crm.add_resource(f"projects/quota-proj-{i}", [])
        yield crm


Connect = Callable[..., GcpConnector]


@pytest.fixture
def connect(quota_crm: FakeCrm, clock: FakePaceClock) -> Iterator[Connect]:
    """connect(rate=..., **settings): a connector on quota_crm pacing writes at `rate` on the
    fake clock (default: generous, so that the double's quota is what is met)."""
    made: list[GcpConnector] = []

    def make(rate: Rate | None = None, **settings: object) -> GcpConnector:
        pacing = Pacing(clock=clock, rates={"write": rate or Rate(1000, 1000)}, max_in_flight=1)
        made.append(GcpConnector(TARGET, {"api_endpoint": quota_crm.url, **settings}, {}, credentials=anonymous(),
                                 timeout=5.0, pacing=pacing))
        return made[-1]

    yield make
    for connector in made:
        connector.close()


def test_quota_429s_are_waited_out_with_backoff_on_the_injected_clock(
    quota_crm: FakeCrm, clock: FakePaceClock, connect: Connect
) -> None:
    connector = connect()
    until = in_hours(2)
    batch = [act("grant", "user:a@example.com", "projects/quota-proj-0", until=until),
             act("grant", "user:b@example.com", "projects/quota-proj-1", until=until)]
    assert outcomes(connector.apply_batch(batch)) == ["changed", "changed"]
    # the second write met the quota: 1 + 2 + 4 + 8 + 16 + 30 = 61 s reach the next window
    assert clock.slept == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert quota_crm.throttled == 6
    assert quota_crm.calls[("projects/quota-proj-1", "setIamPolicy")] == 1


def test_past_max_wait_s_the_action_fails_as_target_unavailable(
    quota_crm: FakeCrm, clock: FakePaceClock, connect: Connect
) -> None:
    connector = connect(max_wait_s=10)
    until = in_hours(2)
    batch = [act("grant", "user:a@example.com", "projects/quota-proj-0", until=until),
             act("grant", "user:b@example.com", "projects/quota-proj-1", until=until)]
    results = connector.apply_batch(batch)
    assert outcomes(results) == ["changed", "TargetUnavailable"]
    assert isinstance(results[1], TargetUnavailable)
    assert "past this run's budget (max_wait_s 10 s" in str(results[1]) and "next run" in str(results[1])
    assert clock.slept == [1.0, 2.0, 4.0]  # 7 s; the next backoff (8 s) would pass 10 s
    assert "user:b@example.com" not in members_of(quota_crm, "projects/quota-proj-1", ADMIN)


def test_paced_to_the_quota_the_connector_waits_its_turn_instead_of_meeting_429s(
    quota_crm: FakeCrm, clock: FakePaceClock, connect: Connect
) -> None:
    """Pacing made to the double's quota (1 write per 60 s), the connector waits its turn."""
    connector = connect(Rate(1 / 60, 1))
    until = in_hours(2)
    batch = [act("grant", "user:a@example.com", f"projects/quota-proj-{i}", until=until) for i in range(3)]
    assert outcomes(connector.apply_batch(batch)) == ["changed"] * 3
    assert quota_crm.throttled == 0
    assert clock.slept == pytest.approx([60.0, 60.0])


def test_bad_max_wait_s_is_permanent() -> None:
    with pytest.raises(PermanentTargetError, match="max_wait_s must be a number"):
        GcpConnector(TARGET, {"max_wait_s": "soon"}, {})
    with pytest.raises(PermanentTargetError, match="max_wait_s must be a number"):
        GcpConnector(TARGET, {"max_wait_s": 99999}, {})
