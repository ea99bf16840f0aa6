"""Break-glass is limited per person: a cap per rolling period and an optional cool-down (pure
evaluation), counting the repository's grants and the ledger's record of activations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from jitpol.model.documents import Config, Grant, Person, PolicySet, Resource, Role, Source, Target, Team, Workflow
from jitpol.model.refs import Ref
from jitpol.model.times import utc_text
from jitpol.policy.evaluate import Evaluation, GrantStatus, evaluate
from jitpol.policy.history import History, merge, replay

T0 = datetime(1998, 12, 1, 10, 0, tzinfo=UTC)
H = timedelta(hours=1)
M = timedelta(minutes=1)
SRC = Source("x.yaml")


class AcceptAll:
    def verify_many(self, items: Sequence[tuple[bytes, str, str]], *, namespace: str = "") -> list[bool]:
        return [True] * len(items)


def workflow(name: str = "prod", required: int = 1, **glass: Any) -> Workflow:
    wf = Workflow(name, (Ref("team", "eng"),), required, (Ref("team", "leads"),), "signature", "none", 4 * H, None,
                  "shared", False, None, SRC, breakglass_deadline=30 * M)
    return replace(wf, **glass)


def policy(grants: Sequence[Grant], *workflows: Workflow) -> PolicySet:
    wfs = {w.name: w for w in (workflows or (workflow(),))}
    people = {n: Person(n, f"{n}@example.com", (), {"fake": n}, SRC) for n in ("alice", "bob", "lead")}
    resources = {
        f"db-{w}": Resource(f"db-{w}", "db", w, "role-membership", {"read": Role("read", ("app_read",), SRC)},
                            False, None, {}, SRC)
        for w in wfs
    }
    return PolicySet(
        Config("t", (), "UTC", {"db": Target("db", "fake", {}, SRC)}, None, SRC), people,
        {"eng": Team("eng", ("alice", "bob"), SRC), "leads": Team("leads", ("lead",), SRC)},
        wfs, resources, {g.name: g for g in grants},
    )


def bg(name: str, start: datetime, hours: float = 2, requester: str = "alice", wf: str = "prod") -> Grant:
    return Grant(name, requester, f"db-{wf}", "read", start, start + hours * H, "INC-1", (), False,
                 f"digest-{name}", Source(f"grants/{name}.yaml"), breakglass=True)


def activation(grant: Grant, **kw: Any) -> dict[str, Any]:
    return {"event": "grant.activated", "time": utc_text(grant.start), "grant": grant.name,
            "digest": grant.digest, "requester": grant.requester, "resource": grant.resource, "role": grant.role,
            "start": utc_text(grant.start), "end": utc_text(grant.end), "until": utc_text(grant.start + 30 * M),
            "approvals": [], "assignments": [], "breakglass": True, **kw}


def used(*grants: Grant) -> History:
    """The ledger after apply activated these grants."""
    return replay([activation(g) for g in grants])


def run(grants: Sequence[Grant], now: datetime, history: History | None = None,
        *workflows: Workflow) -> dict[str, GrantStatus]:
    ev: Evaluation = evaluate(policy(grants, *workflows), now, history or History(), AcceptAll())
    return ev.by_name()


def test_one_breakglass_grant_per_person_per_day_by_default() -> None:
    first, second = bg("bg1", T0), bg("bg2", T0 + 3 * H)
    got = run([first, second], T0 + 3 * H + M, used(first))
    assert got["bg2"].state == "rejected"
    reason = got["bg2"].reason
    assert reason.startswith("break-glass limit: workflow prod allows each person 1 break-glass grant(s) per 1d")
    assert "bg1 (from 1998-12-01T10:00:00Z)" in reason and "1998-12-02T10:00:00Z" in reason
    # a day after the first started, break-glass is available again
    third = bg("bg3", T0 + 24 * H)
    assert run([first, third], T0 + 24 * H + M, used(first))["bg3"].state == "active"
    # another person is not limited by alice's use
    assert run([first, bg("bob1", T0 + H, requester="bob")], T0 + H + M, used(first))["bob1"].state == "active"
    # a break-glass grant that was never activated (its deadline passed unapproved before any run) is no use
    assert run([first, second], T0 + 3 * H + M)["bg2"].state == "active"


def test_the_rejected_grant_holds_no_access() -> None:
    ev = evaluate(policy([bg("bg1", T0), bg("bg2", T0 + 10 * M)]), T0 + 20 * M, History(), AcceptAll())
    assert {g for d in ev.desired.values() for g in d.grants} == {"bg1"}


def test_a_deleted_grant_file_still_counts_through_the_ledger() -> None:
    gone = bg("gone", T0)
    history = replay([activation(gone), {"event": "grant.revoked", "time": utc_text(T0 + 30 * M),
                                         "grant": "gone", "final": True, "reason": "grant file deleted"}])
    got = run([bg("again", T0 + 2 * H)], T0 + 2 * H + M, history)["again"]
    assert got.state == "rejected" and "gone (from 1998-12-01T10:00:00Z)" in got.reason


def test_a_ledger_activation_not_marked_breakglass_does_not_count() -> None:
    ordinary = bg("ordinary", T0)
    history = replay([activation(ordinary, breakglass=False)])
    assert run([bg("now", T0 + 2 * H)], T0 + 2 * H + M, history)["now"].state == "active"


def without_flag(grant: Grant, **kw: Any) -> dict[str, Any]:
    """An activation as a ledger that does not record `breakglass` writes it."""
    ev = activation(grant, **kw)
    del ev["breakglass"]
    return ev


def test_a_ledger_without_the_flag_counts_activations_that_lacked_approvals() -> None:
    gone = bg("gone", T0)
    later = bg("later", T0 + 2 * H)
    got = run([later], T0 + 2 * H + M, replay([without_flag(gone)]))["later"]
    assert got.state == "rejected" and "gone (from 1998-12-01T10:00:00Z)" in got.reason
    # an activation with its approvals was no break-glass use
    approved = replay([without_flag(gone, approvals=[{"by": "lead", "key": "SHA256:x"}])])
    assert run([later], T0 + 2 * H + M, approved)["later"].state == "active"


def test_editing_an_activated_grant_does_not_reset_the_count() -> None:
    first = bg("bg1", T0)
    edited = replace(first, breakglass=False, digest="digest-edited")  # flag removed after the fact
    history = replay([without_flag(first)])
    got = run([edited, bg("bg2", T0 + 2 * H)], T0 + 2 * H + M, history)
    assert got["bg1"].state == "rejected" and "single-use" in got["bg1"].reason
    assert got["bg2"].state == "rejected" and "bg1 (from" in got["bg2"].reason


def test_a_grant_in_both_the_repository_and_the_ledger_counts_once() -> None:
    first = bg("bg1", T0)
    history = replay([activation(first)])
    # the same grant, still in the repository, reported by the ledger: counted once
    got = run([first, bg("bg2", T0 + 2 * H)], T0 + 2 * H + M, history)
    assert got["bg1"].state != "rejected" and got["bg2"].state == "rejected"


def test_cap_and_period_from_the_workflow() -> None:
    wf = workflow(breakglass_max_uses=2, breakglass_per=12 * H)
    grants = [bg("a", T0, 1), bg("b", T0 + 2 * H, 1), bg("c", T0 + 4 * H, 1)]
    got = run(grants, T0 + 4 * H + M, used(*grants[:2]), wf)
    assert [got[n].state for n in "abc"] == ["expired", "expired", "rejected"]
    assert "allows each person 2 break-glass grant(s) per 12h" in got["c"].reason
    assert "a (from 1998-12-01T10:00:00Z), b (from 1998-12-01T12:00:00Z)" in got["c"].reason
    # 12h after the first started, one of the two slots is free again
    later = bg("d", T0 + 12 * H, 1)
    assert run([*grants[:2], later], T0 + 12 * H + M, used(*grants[:2]), wf)["d"].state == "active"


def test_cooldown_counts_from_the_end_of_the_previous_grant() -> None:
    wf = workflow(breakglass_max_uses=5, breakglass_per=24 * H, breakglass_cooldown=3 * H)
    first = bg("first", T0, 2)  # ends 12:00
    got = run([first, bg("soon", T0 + 4 * H)], T0 + 4 * H + M, used(first), wf)["soon"]
    assert got.state == "rejected" and got.reason.startswith("break-glass cool-down: workflow prod requires 3h")
    assert "grant first ends 1998-12-01T12:00:00Z, so the next may start at 1998-12-01T15:00:00Z" in got.reason
    assert run([first, bg("ok", T0 + 5 * H)], T0 + 5 * H + M, used(first), wf)["ok"].state == "active"


def test_cooldown_refuses_overlapping_breakglass_grants() -> None:
    wf = workflow(breakglass_max_uses=5, breakglass_cooldown=M)
    got = run([bg("a", T0), bg("b", T0 + 10 * M)], T0 + 20 * M, None, wf)
    assert got["a"].state == "active" and got["b"].state == "rejected" and "cool-down" in got["b"].reason
    # without a cool-down, two at once are fine when the cap allows them
    got = run([bg("a", T0), bg("b", T0 + 10 * M)], T0 + 20 * M, None, workflow(breakglass_max_uses=2))
    assert got["a"].state == got["b"].state == "active"


def test_counts_breakglass_grants_through_every_workflow() -> None:
    other = workflow("other", breakglass_max_uses=1)
    got = run([bg("a", T0), bg("b", T0 + H, wf="other")], T0 + H + M, used(bg("a", T0)), workflow(), other)
    assert got["b"].state == "rejected" and "workflow other" in got["b"].reason


def test_order_is_start_then_name_whatever_the_file_order() -> None:
    a, b = bg("zz-first", T0), bg("aa-second", T0 + M)
    for grants in ([a, b], [b, a]):
        got = run(grants, T0 + 2 * M)
        assert got["zz-first"].state == "active" and got["aa-second"].state == "rejected"
    same_start = [bg("b", T0), bg("a", T0)]
    got = run(same_start, T0 + M)
    assert got["a"].state == "active" and got["b"].state == "rejected"


def test_a_rejected_grant_does_not_use_up_the_next_slot() -> None:
    wf = workflow(breakglass_max_uses=1, breakglass_per=H, breakglass_deadline=2 * H)
    a, b, c = bg("a", T0), bg("b", T0 + 10 * M), bg("c", T0 + 65 * M)
    got = run([a, b, c], T0 + 66 * M, used(a), wf)
    # b is refused (a started less than 1h before it) and was never activated: c, which starts
    # within an hour of b but not of a, is measured against a only
    assert [got[n].state for n in "abc"] == ["active", "rejected", "active"]


def test_scheduled_breakglass_is_limited_too() -> None:
    got = run([bg("a", T0), bg("later", T0 + 5 * H)], T0 + M)
    assert got["a"].state == "active" and got["later"].state == "rejected"


def test_approved_grants_are_not_limited_but_count() -> None:
    approved = workflow(required=0)  # pre-approved: nothing here needs break-glass
    got = run([bg("a", T0), bg("b", T0 + H)], T0 + H + M, None, approved)
    assert got["a"].state == got["b"].state == "active"


def test_activations_survive_replay_and_merge() -> None:
    g = bg("g", T0)
    one = replay([activation(g)])
    act = one.activations["g"]
    assert (act.requester, act.start, act.end, act.breakglass) == ("alice", T0, T0 + 2 * H, True)
    # a later activation of the same grant keeps the first facts; break-glass sticks once recorded
    two = replay([activation(g, breakglass=False), activation(g, time=utc_text(T0 + H))])
    assert two.activations["g"].breakglass and two.activations["g"].at == "1998-12-01T10:00:00Z"
    shard = replay([activation(g, breakglass=False, time=utc_text(T0 - H))])
    merged = merge([one, shard])
    assert merged.activations["g"].at == "1998-12-01T09:00:00Z" and merged.activations["g"].breakglass
