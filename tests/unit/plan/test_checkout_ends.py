"""plan.diff.checkout_actions: a shared account's secret is rotated when its holders change, and
also when the holders' live end moved from the one recorded at the last rotation, so the end the
target enforces (VALID UNTIL, pwdEndTime, account expiry) follows the grant both ways."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jitpol.model.assignment import Assignment
from jitpol.plan.diff import END_SLACK, checkout_actions
from jitpol.policy.evaluate import Desired
from jitpol.policy.history import replay

NOW = datetime(1999, 6, 1, 12, 0, tzinfo=UTC)  # far from any real now
KEY = ("db", "credential-checkout", "app_owner", "app_owner")


def rotated(until: datetime | None) -> list[dict[str, object]]:
    ev: dict[str, object] = {"seq": 1, "event": "credential.rotated", "time": NOW.isoformat(), "grant": "g1",
                             "target": "db", "account": "app_owner", "holders": ["g1"]}
    if until is not None:
        ev["until"] = until.strftime("%Y-%m-%dT%H:%M:%SZ")
    return [ev]


def wanted(until: datetime) -> dict[tuple[str, str, str, str], Desired]:
    return {KEY: Desired(Assignment(*KEY), "shared-db", ("g1",), until)}


@pytest.mark.parametrize("moved", [timedelta(hours=-2), timedelta(hours=3)])
def test_a_moved_end_rotates_for_the_same_holders(moved: timedelta) -> None:
    recorded = NOW + timedelta(hours=4)
    (action,) = checkout_actions(wanted(recorded + moved), replay(rotated(recorded)))
    assert action.op == "rotate" and action.grants == ("g1",) and action.until == recorded + moved
    assert "now ends" in action.reason


@pytest.mark.parametrize("moved", [timedelta(0), END_SLACK, -END_SLACK])
def test_an_end_within_the_slack_rotates_nothing(moved: timedelta) -> None:
    recorded = NOW + timedelta(hours=4)
    assert checkout_actions(wanted(recorded + moved), replay(rotated(recorded))) == ()


def test_an_end_no_run_recorded_rotates_nothing() -> None:
    assert checkout_actions(wanted(NOW + timedelta(hours=1)), replay(rotated(None))) == ()


def test_invalid_repository_mode_keeps_the_recorded_end() -> None:
    recorded = NOW + timedelta(hours=4)
    assert checkout_actions(wanted(NOW + timedelta(hours=1)), replay(rotated(recorded)), keep=["g1"]) == ()


def test_the_end_is_recorded_with_the_rotation() -> None:
    recorded = NOW + timedelta(hours=4)
    assert replay(rotated(recorded)).holders_until == {("db", "app_owner"): recorded}
