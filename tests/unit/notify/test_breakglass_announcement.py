"""Every break-glass use is announced: a `breakglass` message for each activation of a break-glass
grant, to the workflow's approvers and the admins, even once its access has ended or its file is gone."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jitpol.model.documents import Config, Grant, Person, PolicySet, Resource, Role, Source, Team, Workflow
from jitpol.model.refs import Ref
from jitpol.notify.messages import KINDS, Message, due
from jitpol.notify.render import FORMATS, Format, Renderer

T0 = datetime(1998, 12, 1, 10, 0, tzinfo=UTC)
H = timedelta(hours=1)
SRC = Source("x.yaml")


def policy(grants: dict[str, Grant]) -> PolicySet:
    people = {n: Person(n, f"{n}@example.com", (), {"fake": n}, SRC) for n in ("alice", "bob", "lead", "sec")}
    wf = Workflow("prod", (Ref("team", "eng"),), 1, (Ref("team", "leads"),), "signature", "none", 4 * H, None,
                  "shared", False, None, SRC, breakglass_deadline=timedelta(minutes=30))
    res = Resource("db-prod", "db", "prod", "role-membership", {"read": Role("read", ("app_read",), SRC)}, False,
                   None, {}, SRC)
    teams = {"eng": Team("eng", ("alice", "bob"), SRC), "leads": Team("leads", ("lead", "bob"), SRC)}
    return PolicySet(Config("t", (Ref("person", "sec"),), "UTC", {}, None, SRC), people, teams, {"prod": wf},
                     {"db-prod": res}, grants)


def grant(name: str, breakglass: bool = True) -> Grant:
    return Grant(name, "bob", "db-prod", "read", T0, T0 + 2 * H, "INC-9 outage", (), False, f"digest-{name}-0123456789",
                 Source(f"grants/{name}.yaml"), breakglass=breakglass)


def activated(name: str, **kw: Any) -> dict[str, Any]:
    return {"time": "1998-12-01T10:01:00Z", "event": "grant.activated", "grant": name,
            "digest": f"digest-{name}-0123456789", "requester": "bob", "resource": "db-prod", "role": "read",
            "start": "1998-12-01T10:00:00Z", "end": "1998-12-01T12:00:00Z", "until": "1998-12-01T10:30:00Z",
            "approvals": [], "assignments": [], **kw}


def announcements(events: list[dict[str, Any]], grants: dict[str, Grant], now: datetime = T0 + H) -> list[Message]:
    msgs = due(None, policy(grants), events, now, expiring_within=timedelta(minutes=5), max_age=24 * H)
    return [m for m in msgs if m.kind == "breakglass"]


def test_breakglass_is_a_message_kind() -> None:
    assert "breakglass" in KINDS


def test_activation_of_a_breakglass_grant_is_announced_to_approvers_and_admins() -> None:
    (m,) = announcements([activated("bg")], {"bg": grant("bg")})
    # bob is an approver too, but the requester; sec is an admin
    assert (m.kind, m.grant, m.to, m.requester) == ("breakglass", "bg", ("lead", "sec"), "bob")
    assert m.key == "breakglass:bg:digest-bg-012345" and m.breakglass
    assert m.reason == "live without approval; revoked at 1998-12-01T10:30:00Z unless approved"
    assert m.justification == "INC-9 outage" and m.path == "grants/bg.yaml"


def test_announced_from_the_ledger_alone_when_the_file_is_gone_and_after_the_access_ended() -> None:
    events = [activated("gone", breakglass=True),
              {"time": "1998-12-01T10:30:00Z", "event": "grant.revoked", "grant": "gone", "final": True,
               "reason": "grant file deleted", "assignments": []}]
    (m,) = announcements(events, {})
    assert m.grant == "gone" and m.to == ("lead", "sec") and m.path is None


def test_older_ledger_without_the_flag_an_activation_short_of_approvals_is_breakglass() -> None:
    (m,) = announcements([activated("gone")], {})  # no `breakglass` recorded, no approvals counted
    assert m.grant == "gone"
    assert announcements([activated("gone", approvals=[{"by": "lead", "key": "SHA256:x"}])], {}) == []
    # a file edited since the activation does not decide: the record does
    edited = replace(grant("bg", breakglass=False), digest="digest-other")
    assert len(announcements([activated("bg")], {"bg": edited})) == 1


def test_one_announcement_per_grant_version_and_none_for_ordinary_grants() -> None:
    again = activated("bg", time="1998-12-01T10:20:00Z")
    assert len(announcements([activated("bg"), again], {"bg": grant("bg")})) == 1
    assert announcements([activated("plain")], {"plain": grant("plain", breakglass=False)}) == []
    assert announcements([activated("plain", breakglass=False)], {}) == []
    # old news is not sent when notifications are switched on later
    assert announcements([activated("bg")], {"bg": grant("bg")}, now=T0 + 48 * H) == []
    # nor before it happened (a preview with --at in the past)
    assert announcements([activated("bg")], {"bg": grant("bg")}, now=T0) == []


def test_approved_breakglass_grant_is_still_announced_without_the_deadline() -> None:
    (m,) = announcements([activated("bg", approvals=[{"by": "lead", "key": "SHA256:x"}])], {"bg": grant("bg")})
    assert m.reason == "" and m.approvals == ("lead",)


@pytest.mark.parametrize("fmt", FORMATS)
def test_builtin_template_renders(fmt: Format) -> None:
    people = policy({}).people
    (m,) = announcements([activated("bg")], {"bg": grant("bg")})
    text = Renderer(None, people).render(m, fmt).text
    assert "BREAK-GLASS" in text and "bob" in text and "without approval" in text
    assert "jitpol approve bg --as YOU --key YOUR_KEY" in text and "revoke: true" in text
    approved = replace(m, approvals=("lead",), reason="", path=None)
    text = Renderer(None, people).render(approved, fmt).text
    assert "without approval" not in text and "jitpol approve" not in text
