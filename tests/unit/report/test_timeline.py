"""The report model (pure) and its HTML rendering: intervals from the ledger, the present and the
future from grant statuses, ordering, bounds, and escaping of attacker-controlled text."""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from jitpol.model.documents import (
    Config,
    Grant,
    Person,
    PolicySet,
    Resource,
    Role,
    Schedule,
    ScheduleWindow,
    Source,
    Target,
    Workflow,
)
from jitpol.model.refs import Ref
from jitpol.policy.evaluate import GrantStatus, State
from jitpol.report import render
from jitpol.report.timeline import Inputs, Interval, LedgerFile, Report, build, held_intervals, make_axis

NOW = datetime(1998, 12, 1, 13, 30, tzinfo=UTC)  # a Tuesday
SRC = Source("x.yaml")
HOSTILE = "<script>alert(1)</script>"


def t(hhmm: str, day: int = 1) -> datetime:
    h, m = hhmm.split(":")
    return datetime(1998, 12, day, int(h), int(m), tzinfo=UTC)


def iso(x: datetime) -> str:
    return x.strftime("%Y-%m-%dT%H:%M:%SZ")


def activated(name: str, at: datetime, until: datetime, requester: str = "alice", resource: str = "db-prod",
              role: str = "read") -> dict[str, Any]:
    return {"event": "grant.activated", "grant": name, "time": iso(at), "requester": requester,
            "resource": resource, "role": role, "until": iso(until), "digest": "d1"}


def revoked(name: str, at: datetime, reason: str = "expired: window ended", final: bool = True) -> dict[str, Any]:
    return {"event": "grant.revoked", "grant": name, "time": iso(at), "reason": reason, "final": final}


def workflow(name: str = "prod", schedule: Schedule | None = None) -> Workflow:
    return Workflow(name, (Ref("team", "eng"),), 1, (Ref("team", "leads"),), "signature", "none",
                    timedelta(days=1), schedule, "shared", False, None, SRC)


def resource(name: str = "db-prod", wf: str = "prod", description: str = "") -> Resource:
    settings = {"description": description} if description else {}
    return Resource(name, "db", wf, "role-membership", {"read": Role("read", ("app_read",), SRC)}, False, None,
                    settings, SRC)


def grant(name: str, start: datetime, end: datetime, justification: str = "INC-1", requester: str = "alice",
          res: str = "db-prod") -> Grant:
    return Grant(name, requester, res, "read", start, end, justification, (), False, "d1", SRC)


def policy(grants: list[Grant] = [], resources: list[Resource] | None = None,  # noqa: B006 - never mutated
           workflows: list[Workflow] | None = None) -> PolicySet:
    config = Config("acme", (Ref("team", "admins"),), "UTC", {"db": Target("db", "fake", {}, SRC)}, None, SRC)
    people = {p: Person(p, f"{p}@example.com", (), {"fake": p}, SRC) for p in ("alice", "bob")}
    return PolicySet(config, people, {}, {w.name: w for w in workflows or [workflow()]},
                     {r.name: r for r in resources or [resource()]}, {g.name: g for g in grants})


def status(name: str, state: State, start: datetime, end: datetime, reason: str = "", requester: str = "alice",
           res: str = "db-prod", live_until: datetime | None = None, next_change: datetime | None = None,
           approvals: tuple[str, ...] = ()) -> GrantStatus:
    return GrantStatus(name, state, reason, requester, res, "read", start, end,
                       live_until=live_until, next_change=next_change, approvals=approvals)


def inputs(events: Sequence[Mapping[str, Any]] | None = None, statuses: list[GrantStatus] | None = None,
           pol: PolicySet | None = None, name: str = "acme", **kw: Any) -> Inputs:
    return Inputs(name, NOW, pol or policy(), tuple(statuses) if statuses is not None else None,
                  (LedgerFile("ledger.jsonl", events or []),), **kw)


def bars(report: Report, lane: str, by: str = "resource") -> list[tuple[str, str, datetime, datetime]]:
    timeline = report.by_resource if by == "resource" else report.by_person
    found = next(ln for ln in timeline.lanes if ln.name == lane)
    return sorted(((b.kind, b.grant, b.start, b.end) for row in found.rows for b in row), key=lambda b: (b[2], b[3]))


# -- intervals from the ledger ------------------------------------------------------------------

def test_activation_and_revocation_make_one_interval_and_open_ones_stay_open() -> None:
    events = [
        {"event": "policy.adopted", "grant": None, "time": iso(t("09:00")), "digest": "p1"},
        activated("a", t("10:00"), t("12:00")),
        activated("b", t("11:00"), t("15:00"), requester="bob"),
        revoked("a", t("12:05"), "expired: window ended 1998-12-01T12:00:00Z"),
    ]
    got = held_intervals([LedgerFile("ledger.jsonl", events)])
    assert got == (
        Interval("a", "alice", "db-prod", "read", t("10:00"), t("12:05"), t("12:00"),
                 "expired: window ended 1998-12-01T12:00:00Z"),
        Interval("b", "bob", "db-prod", "read", t("11:00"), None, t("15:00")),
    )


def test_reactivation_while_open_moves_the_end_and_a_schedule_gap_makes_two_intervals() -> None:
    events = [
        activated("a", t("08:00"), t("10:00")),
        activated("a", t("09:00"), t("11:00")),  # edited/extended while held: same interval
        revoked("a", t("11:00"), "expired", final=False),  # end of a live interval, not of the grant
        activated("a", t("08:00", day=2), t("17:00", day=2)),
    ]
    got = held_intervals([LedgerFile("ledger.jsonl", events)])
    assert [(i.start, i.end, i.until) for i in got] == [
        (t("08:00"), t("11:00"), t("11:00")),
        (t("08:00", day=2), None, t("17:00", day=2)),
    ]


def test_revocation_without_activation_and_malformed_events_are_ignored() -> None:
    events: list[Mapping[str, Any]] = [
        revoked("ghost", t("10:00")),
        {"event": "grant.activated", "grant": "x", "time": "not a time"},
        {"event": "grant.activated", "grant": None, "time": iso(t("10:00"))},
        {"event": "grant.activated", "grant": "naive", "time": "1998-12-01T10:00:00"},  # no offset
    ]
    assert held_intervals([LedgerFile("ledger.jsonl", events)]) == ()


def test_intervals_from_several_ledger_files_are_merged_per_grant() -> None:
    shard1 = [activated("a", t("10:00"), t("12:00")), revoked("a", t("12:00"))]
    shard2 = [activated("a", t("10:01"), t("12:00"))]  # this shard still holds part of the access
    other = [activated("b", t("09:00"), t("10:00")), revoked("b", t("10:00"))]
    got = held_intervals([LedgerFile("ledger-1-of-2.jsonl", shard1), LedgerFile("ledger-2-of-2.jsonl", shard2),
                          LedgerFile("ledger.jsonl", other)])
    assert [(i.grant, i.start, i.end) for i in got] == [("b", t("09:00"), t("10:00")), ("a", t("10:00"), None)]


# -- bars, lanes, axis ----------------------------------------------------------------------------

def test_bars_for_held_open_planned_due_scheduled_and_pending() -> None:
    events = [
        activated("past", t("09:00"), t("10:00")), revoked("past", t("10:00")),
        activated("now", t("12:00"), t("15:00")),
    ]
    office = Schedule("UTC", (ScheduleWindow(("mon", "tue", "wed", "thu", "fri"), time(8), time(18)),))
    pol = policy(
        [grant(n, t("12:00"), t("12:00", day=3)) for n in ("now", "due", "later", "ask")],
        [resource(), resource("office", "office-hours")], [workflow(), workflow("office-hours", office)],
    )
    statuses = [
        status("past", "expired", t("09:00"), t("10:00")),
        status("now", "active", t("12:00"), t("15:00"), live_until=t("15:00")),
        status("due", "active", t("13:00"), t("14:00"), live_until=t("14:00")),  # not in the ledger yet
        status("later", "scheduled", t("20:00"), t("12:00", day=3), res="office", next_change=t("08:00", day=2)),
        status("ask", "pending", t("16:00"), t("17:00"), reason="needs 1 more approval(s)", requester="bob"),
    ]
    report = build(inputs(events, statuses, pol))
    assert bars(report, "db-prod") == [
        ("held", "past", t("09:00"), t("10:00")),
        ("open", "now", t("12:00"), NOW),
        ("due", "due", t("13:00"), t("14:00")),
        ("planned", "now", NOW, t("15:00")),
        ("pending", "ask", t("16:00"), t("17:00")),
    ]
    # the schedule decides when a scheduled grant is live: two office days, nothing on the first evening
    assert bars(report, "office") == [
        ("scheduled", "later", t("08:00", day=2), t("18:00", day=2)),
        ("scheduled", "later", t("08:00", day=3), t("12:00", day=3)),
    ]
    assert [b[1] for b in bars(report, "bob", "person")] == ["ask"]
    office_lane = next(ln for ln in report.by_resource.lanes if ln.name == "office")
    assert len(office_lane.rows) == 1  # one grant's bars share a row


def test_lanes_are_ordered_by_name_and_overlapping_grants_get_their_own_rows() -> None:
    events = [
        activated("z1", t("10:00"), t("11:00"), resource="zeta"), revoked("z1", t("11:00")),
        activated("a1", t("10:00"), t("12:00")), revoked("a1", t("12:00")),
        activated("a2", t("11:00"), t("13:00"), requester="bob"), revoked("a2", t("13:00")),
        activated("a3", t("12:30"), t("13:00"), requester="bob"), revoked("a3", t("13:00")),
    ]
    report = build(inputs(events, []))
    assert [ln.name for ln in report.by_resource.lanes] == ["db-prod", "zeta"]
    assert [ln.name for ln in report.by_person.lanes] == ["alice", "bob"]
    db = report.by_resource.lanes[0]
    assert [[b.grant for b in row] for row in db.rows] == [["a1", "a3"], ["a2"]]
    for row in db.rows:
        for left, right in itertools.pairwise(row):
            assert left.left + left.width <= right.left  # never drawn on top of each other


def test_positions_are_percentages_of_the_axis() -> None:
    axis = make_axis(NOW, [(t("10:00"), t("12:00"))], days=30)
    assert axis.start < t("10:00") and axis.end > NOW
    assert axis.pos(axis.start) == 0 and axis.pos(axis.end) == 100
    assert axis.pos(axis.start - timedelta(days=9)) == 0 and axis.pos(axis.end + timedelta(days=9)) == 100
    assert axis.now is not None and 0 < axis.now < 100
    assert [tk.left for tk in axis.ticks] == sorted(tk.left for tk in axis.ticks)
    assert 2 <= len(axis.ticks) <= 11


def test_timeline_is_bounded_by_days_and_events_before_the_range_are_counted_not_shown() -> None:
    old = NOW - timedelta(days=40)
    events = [
        activated("old", old, old + timedelta(hours=1)), revoked("old", old + timedelta(hours=1)),
        {"event": "drift.corrected", "grant": None, "time": iso(old), "op": "revoke", "target": "db",
         "principal": "legacy", "privilege": "app_read", "resource": "db-prod"},
        {"event": "drift.corrected", "grant": None, "time": iso(t("10:00")), "op": "revoke", "target": "db",
         "principal": "legacy2", "privilege": "app_read", "resource": "db-prod"},
        activated("new", t("10:00"), t("11:00")), revoked("new", t("11:00")),
    ]
    far = NOW + timedelta(days=45)
    statuses = [status("far", "scheduled", far, far + timedelta(hours=1), next_change=far)]
    report = build(inputs(events, statuses, policy([grant("far", far, far + timedelta(hours=1))])), days=30)
    assert [b[1] for b in bars(report, "db-prod")] == ["new"]
    assert report.axis.start >= NOW - timedelta(days=31) and report.axis.end <= NOW + timedelta(days=31)
    drift = next(e for e in report.events if e.key == "drift.corrected")
    assert drift.total == 1 and drift.earlier == 1 and "legacy2" in drift.rows[0]
    assert report.upcoming.total == 0 and report.upcoming.later == 1
    html = render(report)
    assert "1 more start more than 30 days from now." in html and "1 earlier (more than 30 days ago)" in html
    wide = build(inputs(events, statuses, policy([grant("far", far, far + timedelta(hours=1))])), days=60)
    assert [b[1] for b in bars(wide, "db-prod")] == ["old", "new", "far"]


def test_ledger_events_after_now_are_not_known_yet() -> None:
    events = [activated("a", t("10:00"), t("15:00")), revoked("a", t("15:00"))]  # NOW is 13:30
    report = build(inputs(events, []))
    assert [b[0] for b in bars(report, "db-prod")] == ["open", "planned"]
    assert report.ledger_events == 1 and report.held_now == 1


def test_limit_caps_lanes_and_rows_and_keeps_the_totals() -> None:
    events: list[Mapping[str, Any]] = []
    statuses = []
    for i in range(5):
        events += [activated(f"g{i}", t("10:00"), t("12:00"), resource=f"r{i}"), revoked(f"g{i}", t("12:00"))]
        statuses.append(status(f"p{i}", "pending", t("15:00"), t("16:00")))
    report = build(inputs(events, statuses), limit=2)
    # lanes by name: the pending grants' db-prod first, then r0; r1..r4 are left out but counted
    assert [ln.name for ln in report.by_resource.lanes] == ["db-prod", "r0"] and report.by_resource.total == 6
    assert len(report.pending.rows) == 2 and report.pending.total == 5
    assert report.notes


# -- tables ---------------------------------------------------------------------------------------

def test_tables_counts_and_ordering() -> None:
    events: list[Mapping[str, Any]] = [
        {"event": "policy.adopted", "grant": None, "time": iso(t("08:00")), "digest": "p1", "bootstrap": True,
         "approvals": []},
        {"event": "policy.adopted", "grant": None, "time": iso(t("09:00")), "digest": "p2", "previous": "p1",
         "bootstrap": False, "approvals": [{"by": "admin", "key": "SHA256:abc"}]},
        activated("b", t("12:00"), t("14:00")),
        {"event": "credential.rotated", "grant": "c", "time": iso(t("10:00")), "target": "db",
         "account": "app_admin", "holders": [], "fingerprint": "sha256:0123"},
        {"event": "action.failed", "grant": "b", "time": iso(t("11:00")), "op": "grant", "target": "db",
         "principal": "bob", "privilege": "app_read", "error": "permission denied"},
    ]
    statuses = [
        status("b", "active", t("12:00"), t("14:00"), live_until=t("14:00"), approvals=("lead",)),
        status("a", "active", t("13:00"), t("13:45"), live_until=t("13:45")),
        status("s2", "scheduled", t("18:00"), t("19:00"), next_change=t("18:00")),
        status("s1", "scheduled", t("16:00"), t("19:00"), next_change=t("16:00")),
        status("r", "rejected", t("15:00"), t("23:00"), reason="window is 8h, workflow prod allows at most 4h"),
        status("e", "expired", t("08:00"), t("09:00")),
    ]
    report = build(inputs(events, statuses, policy([grant("b", t("12:00"), t("14:00"), "INC-7 fix")]),
                          policy_in_force="p2"))
    assert dict(report.counts) == {"pending": 0, "scheduled": 2, "active": 2, "expired": 1, "revoked": 0,
                                   "rejected": 1}
    assert [r.name for r in report.active.rows] == ["a", "b"]  # ends soonest first
    b = report.active.rows[1]
    assert b.applied and b.since == t("12:00") and b.justification == "INC-7 fix" and b.approvals == ("lead",)
    assert not report.active.rows[0].applied  # due, not in the ledger yet
    assert [r.name for r in report.upcoming.rows] == ["s1", "s2"]
    assert report.rejected.rows[0].reason.startswith("window is 8h")
    assert report.policy_adopted_at == t("09:00")
    tables = {e.key: e for e in report.events}
    assert [row[1] for row in tables["policy.adopted"].rows] == ["p2", "p1"]  # newest first
    assert tables["policy.adopted"].rows[0][4] == "admin (SHA256:abc)"
    assert tables["credential.rotated"].rows == (("1998-12-01 10:00Z", "db", "app_admin", "nobody", "sha256:0123"),)
    assert tables["action.failed"].rows[0][-1] == "permission denied"


def test_invalid_repository_shows_the_ledger_history_and_what_it_holds() -> None:
    events = [activated("a", t("10:00"), t("15:00")), activated("b", t("09:00"), t("10:00")),
              revoked("b", t("10:00"))]
    report = build(inputs(events, None, problems=("grants/x.yaml:3:1: unknown field 'rol'",)))
    assert not report.valid and report.counts == ()
    assert [(r.name, r.state) for r in report.active.rows] == [("a", "held")]
    assert [b[1] for b in bars(report, "db-prod")] == ["b", "a", "a"]
    html = render(report)
    assert "The repository is invalid" in html and "unknown field &#39;rol&#39;" in html


def test_days_and_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        build(inputs([], []), days=0)


# -- rendering --------------------------------------------------------------------------------------

def hostile_report() -> Report:
    evil = f'{HOSTILE}"><img src=x onerror=alert(2)>'
    events = [
        activated("a", t("10:00"), t("15:00"), requester=evil, resource=f"db{HOSTILE}"),
        {"event": "action.failed", "grant": "a", "time": iso(t("11:00")), "op": "grant", "target": "db",
         "principal": evil, "privilege": "app_read", "error": f"target said {HOSTILE}"},
        {"event": "credential.rotated", "grant": "c", "time": iso(t("11:00")), "target": "db",
         "account": "app_admin", "holders": [evil], "fingerprint": "sha256:0123",
         "password": "hunter2-must-not-show"},  # a forged field: only named fields are shown
        {"event": "drift.corrected", "grant": None, "time": iso(t("11:00")), "op": "revoke", "target": "db",
         "principal": "legacy", "privilege": "javascript:alert(3)", "resource": "db-prod"},
    ]
    pol = policy([grant("p", t("15:00"), t("16:00"), justification=f"INC-1 {HOSTILE}")],
                 [resource(description=f"Orders {HOSTILE}")])
    statuses = [status("p", "pending", t("15:00"), t("16:00"), reason=f"needs approval {HOSTILE}")]
    return build(inputs(events, statuses, pol, name=f"acme{HOSTILE}"))


def test_hostile_text_is_escaped_everywhere() -> None:
    html = render(hostile_report())
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower()  # neither ours (the page has no scripts) nor theirs
    assert "<img" not in html and "&lt;img src=x onerror=alert(2)&gt;" in html
    # an attribute cannot be closed early: the quote is escaped inside title="..."
    assert '"><img' not in html and "&#34;&gt;&lt;img" in html
    assert "Orders &lt;script&gt;" in html  # the resource description
    assert "INC-1 &lt;script&gt;" in html  # the justification
    assert "hunter2" not in html


def test_page_is_self_contained() -> None:
    html = render(hostile_report())
    assert re.search(r"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none';", html)
    for attr in re.findall(r"\b(?:src|href|action|srcset|poster|data)\s*=\s*\"([^\"]*)\"", html):
        assert attr.startswith(("#", "data:")), attr
    assert not re.search(r"https?://", html)
    assert "@import" not in html and "url(" not in html


def test_render_is_deterministic() -> None:
    assert render(hostile_report()) == render(hostile_report())
