"""OktaConnector.apply_batch and its pacing with the real okta SDK against tests/doubles/okta.py
enforcing Okta's documented limits: exact requests and their order per action, exact per-action
results when some fail mid-batch, the concurrent cap, X-Rate-Limit-Reset honoured on an
injected clock, and the budget past which an action fails as TargetUnavailable."""

from __future__ import annotations

from collections import Counter

import pytest

from jitpol.connectors.base import BatchApply
from jitpol.connectors.okta.session import endpoint_family
from jitpol.connectors.pacing import FakePaceClock, Pacing, Rate
from jitpol.errors import PermanentTargetError, TargetUnavailable
from jitpol.model.assignment import Action, Assignment, Op, Outcome
from tests.doubles.okta import OktaDouble, family_of, okta_id
from tests.okta_fixtures import *  # noqa: F403 (the `okta` fixture)
from tests.okta_fixtures import OKTA_TARGET, OktaWorld

MODEL = "idp-elevation"
FAST = {family: Rate(10_000, 10_000) for family in ("group", "user", "other")}  # the double's limits decide


def act(op: Op, user: str, group: str) -> Action:
    return Action(op=op, assignment=Assignment(OKTA_TARGET, MODEL, user, group), resource="r", grants=("g",))


def outcomes(results: list[Outcome | Exception]) -> list[str]:
    return [("changed" if r.changed else "unchanged") if isinstance(r, Outcome) else type(r).__name__
            for r in results]


def sent(double: OktaDouble) -> list[str]:
    return [f"{r.method} {r.path}" for r in double.requests]


@pytest.mark.parametrize(("method", "path", "family"), [
    ("GET", "/api/v1/groups/00gabc", "group"),
    ("PUT", "/api/v1/groups/00gabc", "group"),
    ("PUT", "/api/v1/groups/00gabc/users/00uabc", "other"),
    ("GET", "/api/v1/groups/00gabc/users?limit=200", "other"),
    ("DELETE", "/api/v1/users/00uabc", "user"),
    ("GET", "/api/v1/users/00uabc", "other"),
    ("GET", "/api/v1/users/00uabc/groups", "other"),
    ("DELETE", "/api/v1/users/00uabc/sessions?oauthTokens=true", "other"),
])
def test_endpoint_families_follow_oktas_table(method: str, path: str, family: str) -> None:
    assert endpoint_family(method, path) == family == family_of(method, path)


def test_the_connector_offers_batches(okta: OktaWorld) -> None:
    assert isinstance(okta.connector(), BatchApply)


def test_a_batch_sends_each_actions_requests_in_order_and_reads_each_group_once(okta: OktaWorld) -> None:
    double = okta.double
    groups = [double.add_group("admins"), double.add_group("dba")]
    users = [double.add_user(f"u{i}@example.com") for i in range(8)]
    leaving = double.add_user("leaving@example.com")
    double.add_member(groups[0], leaving)
    batch = [act("grant", u, groups[i % 2]) for i, u in enumerate(users)]
    results = okta.connector().apply_batch(batch)
    assert outcomes(results) == ["changed"] * 8
    assert sorted(double.members(groups[0])) == sorted([leaving, *users[0::2]])
    assert sorted(double.members(groups[1])) == sorted(users[1::2])
    requests = sent(double)
    assert Counter(requests) == Counter(
        [f"GET /api/v1/users/{u}/groups" for u in users]
        + [f"GET /api/v1/groups/{g}" for g in groups]  # once per group, not once per action
        + [f"PUT /api/v1/groups/{groups[i % 2]}/users/{u}" for i, u in enumerate(users)]
    )
    for u in users:  # each action reads the user's groups before it writes
        mine = [r for r in requests if u in r]
        assert mine[0] == f"GET /api/v1/users/{u}/groups" and mine[-1].startswith("PUT ")

    double.clear_log()
    revoked = okta.connector().apply_batch([act("revoke", leaving, groups[0])])
    assert outcomes(revoked) == ["changed"]
    assert [r for r in sent(double) if not r.startswith("GET ")] == [
        f"DELETE /api/v1/users/{leaving}/sessions?oauthTokens=true",
        f"DELETE /api/v1/groups/{groups[0]}/users/{leaving}",
    ]


def test_one_failing_action_never_hides_the_others_results(okta: OktaWorld) -> None:
    double = okta.double
    group, app_group = double.add_group("admins"), double.add_group("app", kind="APP_GROUP")
    alice, bob, carol = (double.add_user(f"{n}@example.com") for n in ("alice", "bob", "carol"))
    double.add_member(group, carol)
    batch = [
        act("grant", alice, group),
        act("grant", okta_id("00u"), group),  # no such user
        act("grant", bob, app_group),  # a group Okta does not let us change
        act("grant", "not-an-id", group),  # refused before any request
        act("grant", carol, group),  # already true
        act("grant", bob, group),
    ]
    results = okta.connector().apply_batch(batch)
    assert outcomes(results) == ["changed", "PermanentTargetError", "PermanentTargetError", "PermanentTargetError",
                                 "unchanged", "changed"]
    assert "does not exist" in str(results[1])
    assert "APP_GROUP" in str(results[2])
    assert sorted(double.members(group)) == sorted([alice, bob, carol])
    assert double.members(app_group) == []
    assert not any("not-an-id" in r for r in sent(double))


def test_requests_in_flight_stay_within_the_cap(okta: OktaWorld) -> None:
    double = okta.double
    double.state.latency_s = 0.02  # requests overlap as on the network
    group = double.add_group("admins")
    users = [double.add_user(f"u{i}@example.com") for i in range(24)]
    results = okta.connector(pacing=Pacing(rates=FAST, max_in_flight=4)).apply_batch(
        [act("grant", u, group) for u in users])
    assert outcomes(results) == ["changed"] * 24
    assert 1 < double.state.peak_in_flight <= 4
    assert double.state.throttled == 0


def test_a_429_for_the_orgs_concurrent_limit_is_waited_out_by_its_reset(okta: OktaWorld) -> None:
    """Past Okta's concurrent limit the reset is "only an estimate", a second ahead: waited
    Reset - Date + 1 = 2 s each time, until the budget is spent."""
    clock = FakePaceClock()
    okta.double.state.max_concurrent = 0  # every request finds the org full
    group, user = okta.double.add_group("admins"), okta.double.add_user("alice@example.com")
    connector = okta.connector(pacing=Pacing(rates=FAST, clock=clock, max_in_flight=1), max_wait_s=5)
    results = connector.apply_batch([act("grant", user, group)])
    assert outcomes(results) == ["TargetUnavailable"]
    assert "asks to wait 2.0 s" in str(results[0]) and "max_wait_s 5 s" in str(results[0])
    assert [s for s in clock.slept if s >= 0.01] == [2.0, 2.0]
    assert okta.double.state.throttled == 3
    assert sent(okta.double) == [f"GET /api/v1/users/{user}/groups"] * 3


@pytest.fixture
def limited(okta: OktaWorld) -> tuple[OktaWorld, FakePaceClock]:
    """Two "other" requests per 60-second window, on a fake clock shared with the connector."""
    clock = FakePaceClock()
    okta.double.state.limits = {"group": 600, "user": 600, "other": 2}
    okta.double.state.clock = clock.monotonic
    return okta, clock


def test_x_rate_limit_reset_is_honoured_exactly(limited: tuple[OktaWorld, FakePaceClock]) -> None:
    okta, clock = limited
    double = okta.double
    group = double.add_group("admins")
    alice, bob = double.add_user("alice@example.com"), double.add_user("bob@example.com")
    connector = okta.connector(pacing=Pacing(rates=FAST, max_in_flight=1, clock=clock))
    results = connector.apply_batch([act("grant", alice, group), act("grant", bob, group)])
    assert outcomes(results) == ["changed", "changed"]
    # alice: GET groups (1), GET group (group family), PUT (2); bob's GET is the third: 429 with
    # Reset = Date + 60 s, waited 60 + 1 s, then sent again in the next window (the bucket then
    # starts empty: the next turn is 1/10,000 s later)
    assert clock.slept == [61.0, pytest.approx(0.0001)]
    assert double.state.throttled == 1
    assert sent(double) == [
        f"GET /api/v1/users/{alice}/groups", f"GET /api/v1/groups/{group}", f"PUT /api/v1/groups/{group}/users/{alice}",
        f"GET /api/v1/users/{bob}/groups", f"GET /api/v1/users/{bob}/groups",
        f"PUT /api/v1/groups/{group}/users/{bob}",
    ]


def test_a_reset_past_max_wait_s_fails_that_action_as_target_unavailable(
    limited: tuple[OktaWorld, FakePaceClock]
) -> None:
    okta, clock = limited
    double = okta.double
    group = double.add_group("admins")
    alice, bob = double.add_user("alice@example.com"), double.add_user("bob@example.com")
    connector = okta.connector(pacing=Pacing(rates=FAST, max_in_flight=1, clock=clock), max_wait_s=30)
    results = connector.apply_batch([act("grant", alice, group), act("grant", bob, group)])
    assert outcomes(results) == ["changed", "TargetUnavailable"]
    assert isinstance(results[1], TargetUnavailable)
    message = str(results[1])
    assert f"GET /api/v1/users/{bob}/groups" in message and "asks to wait 61.0 s" in message
    assert "max_wait_s 30 s" in message and "next run applies it" in message
    assert clock.slept == []
    assert double.members(group) == [alice]


def test_bad_max_wait_s_is_refused(okta: OktaWorld) -> None:
    with pytest.raises(PermanentTargetError, match="max_wait_s"):
        okta.connector(max_wait_s=-1)
