"""Times and durations the loader accepts: every instant a grant gives lies, after its offset is
applied, between 1970-01-01T00:00:00Z and 9000-12-31T23:59:59Z, and every duration is at most
36500d, so nothing computed from them can leave Python's datetime range. Anything outside is a
diagnostic naming file, line, column and field — never an OverflowError — and the run goes on
revoking what is due."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from jitpol.cli.main import cli
from jitpol.load.repository import load_repository, load_snapshot
from jitpol.model.times import EARLIEST, LATEST, MAX_DURATION
from tests.helpers.repo import RepoBuilder, doc

T0 = "1998-12-01T10:00:00Z"
AFTER = "1998-12-01T13:00:00Z"  # the good grant (T0 + 2h) has ended: its revocation is due


@pytest.fixture
def rb(tmp_path: Path) -> RepoBuilder:
    return RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()


def run(rb: RepoBuilder, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--repo", str(rb.root)], catch_exceptions=False)


def write_grant(rb: RepoBuilder, name: str, window: dict[str, Any]) -> Path:
    """A grant whose window is written key by key on its own lines (so marks are checkable)."""
    lines = [
        "apiVersion: jitpol/v1", "kind: Grant", f"metadata: {{name: {name}}}", "spec:",
        "  requester: alice", "  resource: db-prod", "  role: read", "  window:",
        *(f"    {key}: {json.dumps(value)}" for key, value in window.items()),
        '  justification: "INC-1 testing"',
    ]
    path = rb.root / "grants" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def messages(rb: RepoBuilder) -> list[str]:
    return [str(d) for d in load_repository(rb.root).diagnostics]


# the windows the issue reported, and their neighbours: (window, the field at fault)
OVERFLOWING = [
    pytest.param({"start": "9999-12-30T00:00:00Z", "duration": "36500d"}, "start", id="year-9999-long-duration"),
    pytest.param({"start": "0001-01-01T00:00:00+05:00", "duration": "2h"}, "start", id="year-1-positive-offset"),
    pytest.param({"start": "9999-12-31T20:00:00Z", "end": "9999-12-31T23:00:00-05:00"}, "start",
                 id="end-past-9999-negative-offset"),
    pytest.param({"start": "2090-01-01T00:00:00Z", "end": "9999-12-31T23:00:00-05:00"}, "end",
                 id="only-end-past-9999"),
    pytest.param({"start": "2090-01-01T00:00:00Z", "end": "9999-12-31T00:00:00Z"}, "end", id="ends-9999-12-31"),
    pytest.param({"start": "0001-01-01T00:00:00Z", "end": "2090-01-01T00:00:00Z"}, "start", id="year-1"),
    pytest.param({"start": "1969-12-31T23:59:59Z", "duration": "1h"}, "start", id="before-1970"),
    pytest.param({"start": "1970-01-01T00:00:00+00:01", "duration": "1h"}, "start", id="1970-with-offset-is-1969"),
    pytest.param({"start": "9001-01-01T00:00:00Z", "duration": "1h"}, "start", id="after-9000"),
    pytest.param({"start": "9000-12-31T23:00:00Z", "duration": "2h"}, "duration", id="duration-carries-past-9000"),
    pytest.param({"start": "2090-01-01T00:00:00Z", "duration": "999999d23h59m59s"}, "duration",
                 id="duration-too-long"),
]


@pytest.mark.parametrize(("window", "field"), OVERFLOWING)
def test_out_of_range_windows_are_diagnostics_naming_the_field(rb: RepoBuilder, window: dict[str, Any],
                                                               field: str) -> None:
    write_grant(rb, "evil", window)
    found = messages(rb)
    line = 9 + list(window).index(field)  # the window's keys start on line 9
    assert len(found) == 1, found
    assert found[0].startswith(f"grants/evil.yaml:{line}:"), found
    assert f"spec.window.{field}: " in found[0]
    assert "1970-01-01T00:00:00Z" in found[0] or "36500d" in found[0] or "9000-12-31T23:59:59Z" in found[0]


@pytest.mark.parametrize(("window", "field"), OVERFLOWING)
def test_no_command_crashes_and_due_revocations_happen(rb: RepoBuilder, window: dict[str, Any],
                                                       field: str) -> None:
    rb.grant("alice-read", "alice", T0, "2h", approvers=("lead",))
    assert run(rb, "apply", "--at", "1998-12-01T10:30:00Z", "--no-commit").exit_code == 0
    assert rb.members("app_read") == ["alice"]
    write_grant(rb, "evil", window)
    for args in (["validate"], ["status", "--at", AFTER], ["plan", "--at", AFTER]):
        res = run(rb, *args)
        assert "internal error" not in res.output, res.output
        assert res.exit_code in (0, 1), res.output
    res = run(rb, "validate")
    assert res.exit_code == 1 and f"spec.window.{field}" in res.output
    res = run(rb, "apply", "--at", AFTER, "--no-commit")
    assert "internal error" not in res.output and res.exit_code == 1, res.output
    assert "repository is invalid" in res.output
    assert rb.members("app_read") == []


def test_ends_of_the_range_are_accepted(rb: RepoBuilder) -> None:
    rb.workflow("prod", maxDuration="36500d")
    write_grant(rb, "first", {"start": "1970-01-01T00:00:00Z", "duration": "1h"})
    write_grant(rb, "first-offset", {"start": "1970-01-01T05:00:00+05:00", "end": "1970-01-01T06:00:00Z"})
    write_grant(rb, "last", {"start": "9000-12-31T22:59:59Z", "duration": "1h"})
    write_grant(rb, "last-offset", {"start": "9000-12-31T10:00:00Z", "end": "9000-12-31T18:59:59-05:00"})
    write_grant(rb, "long", {"start": "2090-01-01T00:00:00Z", "duration": "36500d"})
    loaded = load_repository(rb.root)
    assert loaded.ok, loaded.diagnostics
    grants = loaded.policy.grants
    assert grants["first"].start == EARLIEST
    assert grants["first-offset"].start == EARLIEST
    assert grants["last"].end == LATEST
    assert grants["last-offset"].end == LATEST
    assert grants["long"].end - grants["long"].start == MAX_DURATION


def test_extreme_but_valid_grants_evaluate(rb: RepoBuilder) -> None:
    """Windows at both ends of the range, through a scheduled workflow, in status and plan."""
    rb.workflow("prod", maxDuration="36500d", approvals={"required": 0},
                schedule={"timezone": "Pacific/Kiritimati", "windows": [{"days": ["mon", "sun"], "start": "22:00",
                                                                          "end": "06:00"}]})
    write_grant(rb, "last", {"start": "9000-12-20T00:00:00Z", "end": "9000-12-31T23:59:59Z"})
    write_grant(rb, "long", {"start": "2090-01-01T00:00:00Z", "duration": "36500d"})
    write_grant(rb, "first", {"start": "1970-01-01T00:00:00Z", "duration": "36500d"})
    assert run(rb, "validate").exit_code == 0
    for at in ("1970-01-05T12:00:00Z", "2100-01-01T00:00:00Z", "9000-12-25T10:00:00Z", "9999-12-31T23:59:59Z"):
        res = run(rb, "status", "--at", at, "--format", "json")
        assert res.exit_code == 0, res.output
        states = {g["name"]: g["state"] for g in json.loads(res.stdout)["grants"]}
        assert set(states) == {"first", "last", "long"}
        res = run(rb, "plan", "--at", at)
        assert res.exit_code == 0 and "internal error" not in res.output, res.output


@pytest.mark.parametrize(("field", "settings"), [
    ("maxDuration", {"maxDuration": "36501d"}),
    ("approvals.timeout", {"approvals": {"required": 1, "approvers": ["team:leads"], "timeout": "999999d"}}),
    ("breakglass.deadline", {"breakglass": {"allowed": True, "deadline": "999999d23h"}}),
    ("breakglass.per", {"breakglass": {"allowed": True, "deadline": "1h", "per": "36500d1s"}}),
    ("breakglass.cooldown", {"breakglass": {"allowed": True, "deadline": "1h", "cooldown": "999999d"}}),
])
def test_durations_beyond_the_limit_are_diagnostics(rb: RepoBuilder, field: str, settings: dict[str, Any]) -> None:
    rb.workflow("prod", **settings)
    found = [m for m in messages(rb) if f"spec.{field}: " in m]
    assert len(found) == 1 and found[0].startswith("workflows/prod.yaml:"), messages(rb)
    assert "at most 36500d (100 years)" in found[0]
    assert ":1:1:" not in found[0]  # points at the field, not the file


def test_largest_durations_are_accepted(rb: RepoBuilder) -> None:
    rb.workflow("prod", maxDuration="36500d",
                approvals={"required": 1, "approvers": ["team:leads"], "timeout": "36500d"},
                breakglass={"allowed": True, "deadline": "1h", "per": "36500d", "cooldown": "36500d"})
    loaded = load_repository(rb.root)
    assert loaded.ok, loaded.diagnostics
    wf = loaded.policy.workflows["prod"]
    assert wf.max_duration == wf.approval_timeout == wf.breakglass_per == timedelta(days=36500)


@pytest.mark.parametrize("pattern", ["(" * 500 + ")" * 500, "x{4294967295}", "(?P<a>x)(?P<a>y)"])
def test_justification_patterns_python_cannot_compile_are_diagnostics(rb: RepoBuilder, pattern: str) -> None:
    (rb.root / "workflows" / "prod.yaml").write_text(json.dumps(doc("Workflow", "prod", {
        "requesters": ["team:eng"], "approvals": {"required": 1, "approvers": ["team:leads"]},
        "maxDuration": "4h", "justification": {"required": True, "pattern": pattern}})))
    found = messages(rb)
    assert len(found) == 1 and "justification.pattern is not a valid regular expression" in found[0], found


def test_window_arithmetic_stays_inside_datetime() -> None:
    """The limits leave room for every sum jitpol forms: an instant plus or minus two durations,
    in any time zone, a day either side."""
    for t in (EARLIEST, LATEST):
        for sign in (-2, 2):
            moved = t + sign * MAX_DURATION + timedelta(days=sign)
            assert datetime(1, 1, 2, tzinfo=UTC) < moved < datetime(9999, 12, 30, tzinfo=UTC)


def test_a_damaged_snapshot_is_refused_entry_by_entry_without_crashing() -> None:
    workflow = doc("Workflow", "w", {"requesters": ["team:eng"], "approvals": {"required": 0},
                                     "maxDuration": "999999d"})
    config = doc("Config", "c", {"admins": ["team:admins"], "targets": {"db": {"type": "fake", "state_file": "x"}},
                                 "newField": True})  # a field a later version might add: still built
    entries: list[Any] = [1, {"data": 5}, {"path": "x", "data": {"kind": "Foo"}},
                          {"path": "m", "data": {"kind": "Team", "metadata": {"name": 7}, "spec": {}}},
                          {"path": "w", "data": workflow}, {"path": "c", "data": config}]
    loaded = load_snapshot(entries)
    assert not loaded.ok
    assert "w" not in loaded.policy.workflows and not loaded.policy.teams
    assert any("spec.maxDuration: '999999d' is longer than jitpol accepts" in d.message for d in loaded.diagnostics)
    assert loaded.policy.config is not None and set(loaded.policy.config.targets) == {"db"}


def test_a_pattern_that_can_backtrack_exponentially_is_refused() -> None:
    from jitpol.load.repository import backtracking_risk

    for bad in ("(a+)+$", "(a|a)*", r"(\w*x?)*", "^(INC-[0-9]+)*$"):
        assert backtracking_risk(bad) is not None, bad
    for good in ("^(INC|CHG)-[0-9]+", r"^[A-Z]+-[0-9]{1,6}$", "(ab)+", "x{2,5}", "^CHG-[0-9]+( .*)?$"):
        assert backtracking_risk(good) is None, good


def test_an_at_outside_the_accepted_times_is_a_clear_error() -> None:
    import click
    import pytest

    from jitpol.cli.common import parse_time

    for text in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00", "1969-12-31T23:59:59Z"):
        with pytest.raises(click.BadParameter, match="outside the times jitpol accepts"):
            parse_time(text)
