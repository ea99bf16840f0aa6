"""plan.diff and jitpol's ownership marker (Assignment.owned) and the end a target enforces
(issue 12): table-driven, pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jitpol.model.assignment import Action, Assignment
from jitpol.plan.diff import END_SLACK, diff
from jitpol.policy.evaluate import Desired
from jitpol.policy.history import History, replay

NOW = datetime(1999, 6, 1, 12, 0, tzinfo=UTC)  # far from any real now
KEY = ("db", "role-membership", "alice", "app_read")


def history(*, jitpol_granted: bool) -> History:
    """A ledger that says jitpol granted KEY (an open interval), or an empty one."""
    if not jitpol_granted:
        return History()
    return replay([{"seq": 1, "event": "grant.activated", "time": NOW.isoformat(), "grant": "g1",
                    "digest": "0" * 64, "until": (NOW + timedelta(hours=4)).isoformat(),
                    "assignments": [dict(zip(("target", "model", "principal", "privilege"), KEY, strict=True))]}])


def observed(owned: bool | None, expires: datetime | None = None) -> dict[str, frozenset[Assignment] | None]:
    return {"db": frozenset({Assignment(*KEY, expires=expires, owned=owned)})}


def wanted(until: datetime) -> dict[tuple[str, str, str, str], Desired]:
    return {KEY: Desired(Assignment(*KEY), "db-prod", ("g1",), until)}


def ops(actions: tuple[Action, ...]) -> list[tuple[str, bool]]:
    return [(a.op, a.drift) for a in actions]


@pytest.mark.parametrize(("owned", "in_ledger", "revoked"), [
    (True, False, True),    # marked, nothing backs it: jitpol gave it (a lost ledger), it goes
    (False, False, False),  # unmarked where the target can mark: standing, never touched
    (None, False, False),   # cannot be marked, the ledger does not name it: unknown, left alone
    (False, True, True),    # the ledger says jitpol granted it (before markers existed): it goes
    (None, True, True),
])
def test_what_no_grant_backs(owned: bool | None, in_ledger: bool, revoked: bool) -> None:
    # the ledger's interval is over by the time of this run unless kept: no `keep`
    actions = diff({}, observed(owned), history(jitpol_granted=in_ledger), {})
    assert ops(actions) == ([("revoke", owned is True and not in_ledger)] if revoked else [])


def test_a_marked_assignment_the_ledger_still_covers_is_kept() -> None:
    assert diff({}, observed(True), History(), {}, keep=[KEY], additions=False) == ()


def test_marked_access_is_never_standing_drift_on_an_exclusive_resource() -> None:
    actions = diff({}, observed(True), History(), {("db", "role-membership", "app_read"): "db-prod"})
    assert len(actions) == 1 and "ownership marker" in actions[0].reason


@pytest.mark.parametrize(("hours", "verb"), [(6, "extend"), (2, "shorten")])
def test_the_enforced_end_follows_the_grant_both_ways(hours: int, verb: str) -> None:
    until = NOW + timedelta(hours=4)
    (action,) = diff(wanted(until), observed(True, NOW + timedelta(hours=8 - hours)), History(), {})
    assert action.op == "grant" and action.until == until and action.detail("mode") == "extend"
    assert action.reason.startswith(verb), action.reason


def test_an_end_within_the_slack_is_left_alone() -> None:
    until = NOW + timedelta(hours=4)
    assert diff(wanted(until), observed(True, until + END_SLACK), History(), {}) == ()
    assert diff(wanted(until), observed(True, until - END_SLACK), History(), {}) == ()


@pytest.mark.parametrize(("owned", "in_ledger", "moved"), [
    (True, False, True),
    (None, True, True),
    (False, True, True),
    (False, False, False),  # someone else's standing access with its own end (another PAM tool)
    (None, False, False),
])
def test_only_jitpols_own_end_is_moved(owned: bool | None, in_ledger: bool, moved: bool) -> None:
    until = NOW + timedelta(hours=4)
    actions = diff(wanted(until), observed(owned, NOW + timedelta(hours=1)), history(jitpol_granted=in_ledger), {})
    assert [a.detail("mode") for a in actions] == (["extend"] if moved else [])
