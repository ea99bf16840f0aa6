"""Which notifications are due: pure selection from statuses, policy and ledger events."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from jitpol.model.documents import Config, Grant, Person, PolicySet, Resource, Role, Source, Team, Workflow
from jitpol.model.refs import Ref
from jitpol.notify.messages import Message, Sent, due, sent_event, sent_keys, unsent
from jitpol.policy.evaluate import GrantStatus, State

T0 = datetime(1998, 12, 1, 10, 0, tzinfo=UTC)
H = timedelta(hours=1)
SRC = Source("x.yaml")
WITHIN = timedelta(minutes=30)
AGE = timedelta(hours=24)


def policy(grants: dict[str, Grant] | None = None, required: int = 1, via: str = "signature") -> PolicySet:
    people = {n: Person(n, f"{n}@example.com", (), {"fake": n, "slack": f"U{n.upper()}"}, SRC)
              for n in ("alice", "bob", "lead", "carol")}
    wf = Workflow("prod", (Ref("team", "eng"),), required, (Ref("team", "leads"), Ref("person", "ghost")), via,
                  "none", timedelta(hours=4), None, "shared", False, None, SRC)
    res = Resource("db-prod", "db", "prod", "role-membership", {"read": Role("read", ("app_read",), SRC)}, False,
                   None, {}, SRC)
    return PolicySet(
        Config("t", (), "UTC", {}, None, SRC), people,
        {"eng": Team("eng", ("alice", "bob"), SRC), "leads": Team("leads", ("lead", "bob"), SRC)},
        {"prod": wf}, {"db-prod": res}, grants if grants is not None else {"g1": grant("g1", "bob")},
    )


def grant(name: str, requester: str = "alice", start: datetime = T0, hours: int = 2) -> Grant:
    return Grant(name, requester, "db-prod", "read", start, start + hours * H, "INC-1 <!channel> slow", (), False,
                 f"digest-of-{name}-0123456789abcdef", Source(f"grants/{name}.yaml"))


def status(name: str, state: State, requester: str = "bob", **kw: Any) -> GrantStatus:
    base: dict[str, Any] = {"reason": "", "start": T0, "end": T0 + 2 * H,
                            "digest": f"digest-of-{name}-0123456789abcdef"}
    if state in ("scheduled", "active"):
        base["approvals"] = ("lead",)  # as approved grants are; break-glass tests say otherwise
    base.update(kw)
    return GrantStatus(name, state, requester=requester, resource="db-prod", role="read", **base)


def activated(name: str, at: datetime, until: datetime, requester: str = "bob", **kw: Any) -> dict[str, Any]:
    return {"time": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "event": "grant.activated", "grant": name,
            "digest": f"digest-of-{name}-0123456789abcdef", "requester": requester, "resource": "db-prod",
            "role": "read", "start": "1998-12-01T10:00:00Z", "end": "1998-12-01T12:00:00Z",
            "until": until.strftime("%Y-%m-%dT%H:%M:%SZ"), "approvals": [{"by": "lead", "key": "SHA256:x"}], **kw}


def revoked(name: str, at: datetime, reason: str, final: bool = True) -> dict[str, Any]:
    return {"time": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "event": "grant.revoked", "grant": name, "final": final,
            "reason": reason, "assignments": []}


def kinds(msgs: list[Message]) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(m.kind, m.grant, m.to) for m in msgs]


def run(statuses: list[GrantStatus] | None, events: list[dict[str, Any]] | None = None, now: datetime = T0,
        pol: PolicySet | None = None) -> list[Message]:
    return due(statuses, pol or policy(), events or [], now, expiring_within=WITHIN, max_age=AGE)


# -- each kind -----------------------------------------------------------------------------------

def test_pending_goes_to_approvers_minus_requester() -> None:
    (m,) = run([status("g1", "pending", requester="bob")])
    # bob is a lead but the requester; ghost is no person; lead is the only one left
    assert (m.kind, m.to, m.approvers) == ("pending", ("lead",), ("lead",))
    assert m.requester == "bob" and m.required == 1 and m.justification.startswith("INC-1")
    assert m.path == "grants/g1.yaml"
    (m,) = run([status("g1", "pending", requester="alice")], pol=policy({"g1": grant("g1", "alice")}))
    assert m.to == ("bob", "lead")


def test_pending_with_enough_approvals_or_awaiting_mfa_is_not_for_approvers() -> None:
    assert run([status("g1", "pending", approvals=("lead",))]) == []
    assert run([status("g1", "pending", awaiting="okta-push")]) == []
    two = policy(required=2)
    assert kinds(run([status("g1", "pending", approvals=("lead",))], pol=two)) == [("pending", "g1", ("lead",))]


def test_scheduled_goes_to_requester_until_it_was_live() -> None:
    assert kinds(run([status("g1", "scheduled")])) == [("scheduled", "g1", ("bob",))]
    # between schedule windows of a grant already activated: not "approved, starts at"
    events = [activated("g1", T0 - H, T0 - H / 2), revoked("g1", T0 - H / 2, "outside schedule", final=False)]
    assert [m.kind for m in run([status("g1", "scheduled")], events)] == []


def test_activated_from_the_ledger() -> None:
    events = [activated("g1", T0 - 5 * timedelta(minutes=1), T0 + 2 * H)]
    (m,) = run([status("g1", "active", live_until=T0 + 2 * H)], events)
    assert (m.kind, m.to, m.approvals, m.until) == ("activated", ("bob",), ("lead",), T0 + 2 * H)
    assert m.key == "activated:g1:digest-of-g1-012:1998-12-01T12:00:00Z"


def test_activation_in_the_future_of_at_is_not_known_yet() -> None:
    events = [activated("g1", T0 + H, T0 + 2 * H)]
    assert run([], events) == []


def test_expiring_only_within_the_window_and_only_once_live() -> None:
    events = [activated("g1", T0 - H, T0 + 25 * timedelta(minutes=1))]
    live = status("g1", "active", live_until=T0 + 25 * timedelta(minutes=1))
    msgs = run([live], events)
    assert [m.kind for m in msgs] == ["activated", "expiring"]
    exp = msgs[1]
    assert exp.to == ("bob",) and exp.until == T0 + 25 * timedelta(minutes=1)
    # 31 minutes left: not yet
    later = replace(live, live_until=T0 + 31 * timedelta(minutes=1))
    assert [m.kind for m in run([later], events)] == ["activated"]
    # exactly 30 minutes: due (within is inclusive)
    edge = replace(live, live_until=T0 + WITHIN)
    assert [m.kind for m in run([edge], events)] == ["activated", "expiring"]
    # active by evaluation but never activated by an apply: nothing to say yet
    assert run([live], []) == []
    # activated with another digest (the grant was changed): the expiry is not about that access
    other = [activated("g1", T0 - H, T0 + H, digest="zzz")]
    assert [m.kind for m in run([live], other)] == ["activated"]


def test_each_live_interval_has_its_own_expiring_key() -> None:
    events = [activated("g1", T0 - H, T0 + 20 * timedelta(minutes=1))]
    a = run([status("g1", "active", live_until=T0 + 20 * timedelta(minutes=1))], events)[-1]
    b = run([status("g1", "active", live_until=T0 + 25 * timedelta(minutes=1))], events)[-1]
    assert a.kind == b.kind == "expiring" and a.key != b.key


def test_expired_and_revoked_from_final_revocations() -> None:
    events = [activated("g1", T0 - 3 * H, T0 - H), revoked("g1", T0 - H, "expired: window ended 1998-12-01T09:00:00Z"),
              activated("g2", T0 - 3 * H, T0 - H), revoked("g2", T0 - 2 * H, "revoked: revoked in its file"),
              activated("g3", T0 - 3 * H, T0 - H), revoked("g3", T0 - 2 * H, "outside schedule", final=False)]
    pol = policy({})  # the grant files are gone: requester and resource come from the activation
    msgs = run([], events, pol=pol)
    assert kinds(msgs) == [("expired", "g1", ("bob",)), ("revoked", "g2", ("bob",))]
    assert msgs[1].reason == "revoked: revoked in its file" and msgs[1].resource == "db-prod"
    assert msgs[0].path is None


def test_old_ledger_facts_are_not_news() -> None:
    events = [activated("g1", T0 - 30 * H, T0 + H), activated("g2", T0 - 40 * H, T0 - 30 * H),
              revoked("g2", T0 - 25 * H, "expired: window ended")]
    assert run([], events) == []
    assert [m.kind for m in due([], policy(), events, T0, expiring_within=WITHIN, max_age=48 * H)] == [
        "activated", "expired"]


def test_activation_followed_by_revocation_is_not_announced() -> None:
    events = [activated("g1", T0 - 2 * H, T0 - H), revoked("g1", T0 - H, "expired: window ended")]
    assert [m.kind for m in run([], events)] == ["expired"]


def test_rejected_with_reason_and_a_new_reason_is_a_new_message() -> None:
    (m,) = run([status("g1", "rejected", reason="window is 6h, workflow prod allows at most 4h")])
    assert (m.kind, m.to, m.reason) == ("rejected", ("bob",), "window is 6h, workflow prod allows at most 4h")
    (n,) = run([status("g1", "rejected", reason="person bob is disabled")])
    assert m.key != n.key


def test_changed_grant_is_a_new_request() -> None:
    a = run([status("g1", "pending")])[0]
    b = run([status("g1", "pending", digest="another-digest-0000")])[0]
    assert a.key != b.key


def test_invalid_repository_gives_only_ledger_facts() -> None:
    events = [activated("g1", T0 - H, T0 + H)]
    assert [m.kind for m in run(None, events)] == ["activated"]


def test_expired_and_pending_states_without_news() -> None:
    assert run([status("g1", "expired"), status("g2", "revoked")]) == []


# -- once only -----------------------------------------------------------------------------------

def test_sent_keys_make_a_message_not_due_again_on_that_channel_only() -> None:
    msgs = run([status("g1", "pending"), status("g2", "rejected", reason="no")],
               pol=policy({"g1": grant("g1", "bob"), "g2": grant("g2", "bob")}))
    assert len(msgs) == 2
    events = [{**sent_event(msgs[0], "webhook", T0), "seq": 7}]
    sent = sent_keys(events)
    assert sent == {Sent(msgs[0].key, "webhook")}
    assert unsent(msgs, sent, "webhook") == [msgs[1]]
    assert unsent(msgs, sent, "github") == msgs
    # a later run, same facts: same keys, so still nothing new on the webhook
    again = run([status("g1", "pending"), status("g2", "rejected", reason="no")],
                now=T0 + 5 * timedelta(minutes=1), pol=policy({"g1": grant("g1", "bob"), "g2": grant("g2", "bob")}))
    assert [m.key for m in again] == [m.key for m in msgs]
    assert unsent(again, sent, "webhook") == [again[1]]


def test_sent_event_body() -> None:
    (m,) = run([status("g1", "pending")])
    body = sent_event(m, "github", T0)
    assert body == {"time": "1998-12-01T10:00:00Z", "event": "notification.sent", "grant": "g1", "kind": "pending",
                    "key": m.key, "channel": "github", "to": ["lead"]}


def test_keys_do_not_depend_on_ledger_sequence_numbers() -> None:
    ev = activated("g1", T0 - H, T0 + H)
    a = run([], [{**ev, "seq": 3}])[0]
    b = run([], [{**ev, "seq": 9}])[0]
    assert a.key == b.key


def test_same_fact_in_two_ledger_files_is_one_message() -> None:
    events = [activated("g1", T0 - H, T0 + H), activated("g1", T0 - H, T0 + H)]
    assert [m.kind for m in run([], events)] == ["activated"]


def test_live_break_glass_grant_asks_approvers_and_still_warns_the_requester() -> None:
    g = replace(grant("g1", "bob"), breakglass=True)
    events = [activated("g1", T0 - H, T0 + 20 * timedelta(minutes=1))]
    live = status("g1", "active", live_until=T0 + 20 * timedelta(minutes=1), approvals=(),
                  reason="BREAK-GLASS, unapproved: revoked at 1998-12-01T10:20:00Z unless approved; live until ...")
    msgs = run([live], events, pol=policy({"g1": g}))
    assert [(m.kind, m.to) for m in msgs] == [("pending", ("lead",)), ("activated", ("bob",)),
                                              ("breakglass", ("lead",)), ("expiring", ("bob",))]
    assert msgs[0].breakglass and msgs[0].reason.startswith("BREAK-GLASS")
    # approved meanwhile: nothing more to do for the approvers; the use itself is still announced
    assert [m.kind for m in run([replace(live, approvals=("lead",))], events, pol=policy({"g1": g}))] == [
        "activated", "breakglass", "expiring"]


def test_scheduled_without_approvals_is_not_announced_as_approved() -> None:
    g = replace(grant("g1", "bob"), breakglass=True)
    assert [m.kind for m in run([status("g1", "scheduled", approvals=())], pol=policy({"g1": g}))] == ["pending"]
