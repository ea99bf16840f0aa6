"""End-to-end scenarios through the CLI against the fake target (same semantics as the real
connectors; the PostgreSQL scenarios run the same flow on a real server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from jitpol.cli.main import cli
from tests.helpers.repo import RepoBuilder, doc, write_yaml

T0 = "1998-12-01T10:00:00Z"


@pytest.fixture
def rb(tmp_path: Path) -> RepoBuilder:
    return RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()


def run(rb: RepoBuilder, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--repo", str(rb.root)], catch_exceptions=False)


def status(rb: RepoBuilder, at: str) -> dict[str, dict[str, Any]]:
    res = run(rb, "status", "--at", at, "--format", "json")
    assert res.exit_code == 0, res.output
    return {g["name"]: g for g in json.loads(res.stdout)["grants"]}


def plan(rb: RepoBuilder, at: str) -> dict[str, Any]:
    res = run(rb, "plan", "--at", at, "--format", "json")
    assert res.exit_code in (0, 1), res.output
    out: dict[str, Any] = json.loads(res.stdout)
    return out


def ledger(rb: RepoBuilder) -> list[dict[str, Any]]:
    path = rb.root / "audit" / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_approved_grant_lifecycle(rb: RepoBuilder) -> None:
    rb.grant("alice-read", "alice", T0, "2h", approvers=("lead",))
    assert status(rb, "1998-12-01T09:00:00Z")["alice-read"]["state"] == "scheduled"
    p = plan(rb, "1998-12-01T10:30:00Z")
    assert [(a["op"], a["grant"], a["principal"], a["privilege"]) for a in p["actions"]] == [
        ("grant", "alice-read", "alice", "app_read")]
    res = run(rb, "apply", "--at", "1998-12-01T10:30:00Z")
    assert res.exit_code == 0, res.output
    assert rb.members("app_read") == ["alice"]
    # run again: nothing to do, no new ledger entries
    n = len(ledger(rb))
    res = run(rb, "plan", "--at", "1998-12-01T11:00:00Z", "--detailed-exitcode")
    assert res.exit_code == 0 and "No changes" in res.stdout
    assert run(rb, "apply", "--at", "1998-12-01T11:00:00Z").exit_code == 0
    assert len(ledger(rb)) == n
    # the window ends: revoked
    res = run(rb, "plan", "--at", "1998-12-01T12:00:00Z", "--detailed-exitcode")
    assert res.exit_code == 2 and "Plan: 1 to revoke." in res.stdout
    assert run(rb, "apply", "--at", "1998-12-01T12:00:00Z").exit_code == 0
    assert rb.members("app_read") == []
    events = [e["event"] for e in ledger(rb)]
    assert events == ["policy.adopted", "action.started", "grant.activated", "grant.revoked"]
    assert ledger(rb)[0]["bootstrap"] is True  # the first run adopts the policy it finds, and says so
    act = ledger(rb)[2]
    assert act["approvals"][0]["by"] == "lead" and act["digest"] and "policy_commit" in act
    assert status(rb, "1998-12-01T12:00:00Z")["alice-read"]["state"] == "expired"
    assert run(rb, "audit", "verify").exit_code == 0


def test_self_approval_does_not_count(rb: RepoBuilder) -> None:
    # bob is an approver (team leads) but also the requester
    rb.grant("bob-read", "bob", T0, approvers=("bob",))
    st = status(rb, "1998-12-01T10:30:00Z")["bob-read"]
    assert st["state"] == "pending"
    assert "requester cannot approve" in st["reason"]
    assert plan(rb, "1998-12-01T10:30:00Z")["actions"] == []


def test_edit_after_approval_voids_it(rb: RepoBuilder) -> None:
    path = rb.grant("alice-read", "alice", T0, approvers=("lead",))
    data = json.loads(path.read_text())
    data["spec"]["role"] = "write"  # escalate after the approval was given
    path.write_text(json.dumps(data))
    st = status(rb, "1998-12-01T10:30:00Z")["alice-read"]
    assert st["state"] == "pending" and "signature does not match" in st["reason"]


def test_approval_by_non_approver_and_forged_key(rb: RepoBuilder) -> None:
    path = rb.grant("alice-read", "alice", T0, approvers=("bob",))  # bob is in leads: valid
    assert status(rb, "1998-12-01T10:30:00Z")["alice-read"]["state"] == "active"
    rb.grant("alice-read2", "alice", T0, approvers=("admin",))  # admin is not an approver
    st = status(rb, "1998-12-01T10:30:00Z")["alice-read2"]
    assert st["state"] == "pending" and "not an approver" in st["reason"]
    # alice signs with her own key but claims to be lead
    data = json.loads(path.read_text())
    forged = rb.sign(data, "alice")
    forged["by"] = "lead"
    data["spec"]["approvals"] = [forged]
    path.write_text(json.dumps(data))
    st = status(rb, "1998-12-01T10:30:00Z")["alice-read"]
    assert st["state"] == "pending" and "not one of their keys" in st["reason"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"requester": "lead"}, "may not request"),
        ({"window": {"start": T0, "duration": "5h"}}, "allows at most 4h"),
    ],
)
def test_rule_rejections(rb: RepoBuilder, change: dict[str, Any], reason: str) -> None:
    change = dict(change)
    requester = change.pop("requester", "alice")
    rb.grant("g1", requester, T0, approvers=("bob",), **change)
    st = status(rb, "1998-12-01T10:30:00Z")["g1"]
    assert st["state"] == "rejected" and reason in st["reason"]
    assert plan(rb, "1998-12-01T10:30:00Z")["rejected"][0]["grant"] == "g1"


def test_justification_pattern(rb: RepoBuilder) -> None:
    rb.workflow("prod", justification={"required": True, "pattern": "^(INC|CHG)-[0-9]+"})
    rb.grant("g1", "alice", T0, approvers=("lead",), justification="just curious")
    st = status(rb, "1998-12-01T10:30:00Z")["g1"]
    assert st["state"] == "rejected" and "justification must match" in st["reason"]


def test_preapproved_workflow(rb: RepoBuilder) -> None:
    rb.workflow("prod", approvals={"required": 0})
    rb.grant("g1", "alice", T0)
    assert status(rb, "1998-12-01T10:30:00Z")["g1"]["state"] == "active"


def test_exclusive_checkout_one_holder(rb: RepoBuilder) -> None:
    rb.workflow("prod", checkout="exclusive", approvals={"required": 0})
    rb.grant("alice-first", "alice", "1998-12-01T10:00:00Z", "2h")
    rb.grant("bob-second", "bob", "1998-12-01T11:00:00Z", "2h")
    rb.grant("bob-later", "bob", "1998-12-01T12:00:00Z", "1h")  # after alice: fine
    st = status(rb, "1998-12-01T10:30:00Z")
    assert st["alice-first"]["state"] == "active"
    assert st["bob-second"]["state"] == "rejected" and "alice holds db-prod" in st["bob-second"]["reason"]
    assert st["bob-later"]["state"] == "scheduled"


def test_drift_on_exclusive_resource_and_unmanaged_untouched(rb: RepoBuilder) -> None:
    rb.resource("db-prod", exclusive=True)
    rb.resource("db-other", roles={"read": {"grants": ["other_read"]}})
    rb.set_fake_state({"members": {"app_read": ["legacy"], "other_read": ["reporting"]}})
    rb.grant("alice-read", "alice", T0, approvers=("lead",))
    p = plan(rb, "1998-12-01T10:30:00Z")
    ops = [(a["op"], a["principal"], a["privilege"], a["drift"]) for a in p["actions"]]
    assert ops == [("revoke", "legacy", "app_read", True), ("grant", "alice", "app_read", False)]
    assert run(rb, "apply", "--at", "1998-12-01T10:30:00Z").exit_code == 0
    assert rb.members("app_read") == ["alice"]
    assert rb.members("other_read") == ["reporting"]  # not exclusive: standing access left alone
    assert any(e["event"] == "drift.corrected" and e["principal"] == "legacy" for e in ledger(rb))


def test_unmanaged_member_of_non_exclusive_role_survives_revocation(rb: RepoBuilder) -> None:
    rb.set_fake_state({"members": {"app_read": ["reporting"]}})
    rb.grant("alice-read", "alice", T0, approvers=("lead",))
    run(rb, "apply", "--at", "1998-12-01T10:30:00Z")
    run(rb, "apply", "--at", "1998-12-01T13:00:00Z")
    assert rb.members("app_read") == ["reporting"]


def test_overlapping_grants_keep_access_until_the_last_ends(rb: RepoBuilder) -> None:
    rb.grant("a1", "alice", "1998-12-01T10:00:00Z", "2h", approvers=("lead",))
    rb.grant("a2", "alice", "1998-12-01T11:00:00Z", "2h", role="write", approvers=("lead",))
    run(rb, "apply", "--at", "1998-12-01T11:30:00Z")
    assert rb.members("app_read") == ["alice"] and rb.members("app_write") == ["alice"]
    p = plan(rb, "1998-12-01T12:30:00Z")  # a1 ended; a2 still covers app_read
    assert p["actions"] == []
    run(rb, "apply", "--at", "1998-12-01T12:30:00Z")
    assert rb.members("app_read") == ["alice"]
    assert any(e["event"] == "grant.revoked" and e["grant"] == "a1" for e in ledger(rb))
    run(rb, "apply", "--at", "1998-12-01T13:30:00Z")
    assert rb.members("app_read") == [] and rb.members("app_write") == []


def test_grant_names_are_single_use(rb: RepoBuilder) -> None:
    rb.grant("a1", "alice", T0, "1h", approvers=("lead",))
    run(rb, "apply", "--at", "1998-12-01T10:30:00Z")
    run(rb, "apply", "--at", "1998-12-01T11:30:00Z")
    assert rb.members("app_read") == []
    # a copy with a new window under the same name, properly approved again
    rb.grant("a1", "alice", "1998-12-01T12:00:00Z", "1h", approvers=("lead",))
    st = status(rb, "1998-12-01T12:30:00Z")["a1"]
    assert st["state"] == "revoked" and "single-use" in st["reason"]
    assert run(rb, "apply", "--at", "1998-12-01T12:30:00Z").exit_code == 0
    assert rb.members("app_read") == []


def test_early_release_and_deleted_file(rb: RepoBuilder) -> None:
    path = rb.grant("a1", "alice", T0, approvers=("lead",))
    rb.grant("b1", "bob", T0, approvers=("lead",))
    run(rb, "apply", "--at", "1998-12-01T10:10:00Z")
    assert rb.members("app_read") == ["alice", "bob"]
    data = json.loads(path.read_text())
    data["spec"]["revoke"] = True
    path.write_text(json.dumps(data))
    (rb.root / "grants" / "b1.yaml").unlink()
    assert run(rb, "apply", "--at", "1998-12-01T10:20:00Z").exit_code == 0
    assert rb.members("app_read") == []
    # reverting the deletion does not bring access back
    rb.grant("b1", "bob", T0, approvers=("lead",))
    run(rb, "apply", "--at", "1998-12-01T10:30:00Z")
    assert rb.members("app_read") == []


def test_invalid_repository_still_revokes_what_is_due(rb: RepoBuilder) -> None:
    rb.grant("a1", "alice", T0, "1h", approvers=("lead",))
    rb.grant("b1", "bob", "1998-12-01T10:00:00Z", "4h", approvers=("lead",))
    run(rb, "apply", "--at", "1998-12-01T10:30:00Z")
    assert rb.members("app_read") == ["alice", "bob"]
    (rb.root / "teams" / "eng.yaml").write_text("apiVersion: jitpol/v1\nkind: Team\nmetadata: {name: eng}\n"
                                                 "spec: {members: [alice, alice]}\n")
    rb.grant("c1", "alice", "1998-12-01T11:00:00Z", "1h", role="write", approvers=("lead",))
    res = run(rb, "apply", "--at", "1998-12-01T11:30:00Z")
    assert res.exit_code == 1
    assert "teams/eng.yaml:" in res.output
    assert rb.members("app_read") == ["bob"]  # alice's window ended: revoked anyway; bob's kept
    assert rb.members("app_write") == []  # nothing added from an invalid repository


def test_unreachable_target_does_not_hold_back_other_revocations(rb: RepoBuilder, tmp_path: Path) -> None:
    rb.config(targets={
        "db": {"type": "fake", "state_file": str(rb.root.parent / "fake-db.json")},
        "db2": {"type": "fake", "state_file": str(tmp_path / "db2.json")},
    })
    rb.resource("db2-prod", target="db2")
    rb.grant("a1", "alice", T0, "1h", approvers=("lead",))
    rb.grant("a2", "alice", T0, "1h", resource="db2-prod", approvers=("lead",))
    assert run(rb, "apply", "--at", "1998-12-01T10:30:00Z").exit_code == 0
    (tmp_path / "db2.json").write_text(json.dumps({**json.loads((tmp_path / "db2.json").read_text()),
                                                   "down": True}))
    res = run(rb, "apply", "--at", "1998-12-01T11:30:00Z")
    assert res.exit_code == 1
    assert rb.members("app_read") == []  # db revoked although db2 is down
    state = json.loads((tmp_path / "db2.json").read_text())
    assert state["members"]["app_read"] == ["alice"]
    state["down"] = False
    (tmp_path / "db2.json").write_text(json.dumps(state))
    assert run(rb, "apply", "--at", "1998-12-01T11:40:00Z").exit_code == 0  # the next run finishes it
    assert json.loads((tmp_path / "db2.json").read_text())["members"]["app_read"] == []


def test_failed_addition_is_recorded_and_others_continue(rb: RepoBuilder) -> None:
    rb.set_fake_state({"members": {}, "fail": ["bob"]})
    rb.grant("a1", "alice", T0, approvers=("lead",))
    rb.grant("b1", "bob", T0, approvers=("lead",))
    res = run(rb, "apply", "--at", "1998-12-01T10:30:00Z")
    assert res.exit_code == 1 and "permission denied" in res.output
    assert rb.members("app_read") == ["alice"]
    assert [e["grant"] for e in ledger(rb) if e["event"] == "action.failed"] == ["b1"]
    assert [e["grant"] for e in ledger(rb) if e["event"] == "grant.activated"] == ["a1"]


def test_crash_after_grant_before_ledger_is_healed(rb: RepoBuilder) -> None:
    """A run killed after an addition but before recording it: the intent in the ledger makes the
    next run treat the membership as jitpol's, so it is revoked when no grant backs it."""
    from jitpol.ledger.store import Ledger

    rb.grant("a1", "alice", T0, approvers=("lead",))
    Ledger(rb.root / "audit" / "ledger.jsonl").append([{
        "time": "1998-12-01T10:30:00Z", "event": "action.started", "grant": "a1", "op": "grant",
        "target": "db", "model": "role-membership", "principal": "alice", "privilege": "app_read",
        "grants": ["a1"]}])
    rb.set_fake_state({"members": {"app_read": ["alice"]}})
    (rb.root / "grants" / "a1.yaml").unlink()  # and then the grant is withdrawn
    assert run(rb, "apply", "--at", "1998-12-01T10:40:00Z").exit_code == 0
    assert rb.members("app_read") == []


def test_tampered_ledger_is_detected_and_refused(rb: RepoBuilder) -> None:
    rb.grant("a1", "alice", T0, "1h", approvers=("lead",))
    run(rb, "apply", "--at", "1998-12-01T10:30:00Z")
    run(rb, "apply", "--at", "1998-12-01T11:30:00Z")
    path = rb.root / "audit" / "ledger.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace('"lead"', '"admin"')
    path.write_text("\n".join(lines) + "\n")
    res = run(rb, "audit", "verify")
    assert res.exit_code == 1 and ":3:" in res.output
    res = run(rb, "apply", "--at", "1998-12-01T11:40:00Z")
    assert res.exit_code == 1 and "ledger" in res.output.lower()


def test_validate_reports_every_problem_with_location(rb: RepoBuilder) -> None:
    (rb.root / "grants").mkdir(exist_ok=True)
    (rb.root / "grants" / "bad1.yaml").write_text(
        "apiVersion: jitpol/v1\nkind: Grant\nmetadata: {name: bad1}\nspec:\n  requester: alice\n"
        "  requester: bob\n")
    (rb.root / "grants" / "bad2.yaml").write_text(
        "apiVersion: jitpol/v1\nkind: Grant\nmetadata: {name: bad2}\nspec:\n  requester: nobody\n"
        "  resource: db-prod\n  role: read\n  window: {start: \"1998-12-01T10:00:00Z\", duration: 1h}\n")
    res = run(rb, "validate")
    assert res.exit_code == 1
    assert "grants/bad1.yaml:6:" in res.output and "duplicate" in res.output.lower()
    assert "grants/bad2.yaml:5:" in res.output and "nobody" in res.output
    ok = RepoBuilder(rb.root.parent / "ok", rb.keydir.parent / "okkeys").standard()
    assert run(ok, "validate").exit_code == 0


def test_two_applies_at_once(rb: RepoBuilder) -> None:
    from jitpol.execute.lock import RunLock

    with RunLock(rb.root):
        res = run(rb, "apply", "--at", T0)
    assert res.exit_code == 1 and "another jitpol run" in res.output


def test_approve_command_round_trip(rb: RepoBuilder) -> None:
    path = rb.grant("a1", "alice", T0)
    res = run(rb, "approve", "a1", "--as", "lead", "--key", str(rb.key("lead")))
    assert res.exit_code == 0, res.output
    assert status(rb, "1998-12-01T10:30:00Z")["a1"]["state"] == "active"
    assert "signature" in path.read_text()
    res = run(rb, "approve", str(path), "--as", "lead", "--key", str(rb.key("alice")))
    assert res.exit_code == 1 and "not one of lead's keys" in res.output


def test_request_writes_a_valid_grant(rb: RepoBuilder) -> None:
    res = run(rb, "request", "--resource", "db-prod", "--role", "read", "--for", "2h",
              "--start", T0, "--reason", "INC-7 disk full", "--as", "alice", "--no-branch", "--name", "alice-inc-7")
    assert res.exit_code == 0, res.output
    assert run(rb, "validate").exit_code == 0
    assert status(rb, "1998-12-01T10:30:00Z")["alice-inc-7"]["state"] == "pending"
    res = run(rb, "request", "--resource", "db-prod", "--role", "admin", "--for", "2h", "--start", T0,
              "--as", "alice", "--no-branch", "--name", "bad")
    assert res.exit_code == 1 and "no role 'admin'" in res.output
    assert not (rb.root / "grants" / "bad.yaml").exists()


def test_kill_switch_disables_person(rb: RepoBuilder) -> None:
    rb.grant("a1", "alice", T0, approvers=("lead",))
    run(rb, "apply", "--at", "1998-12-01T10:30:00Z")
    rb.person("alice", disabled=True)
    run(rb, "apply", "--at", "1998-12-01T10:40:00Z")
    assert rb.members("app_read") == []


def test_grant_missing_required_fields_is_invalid(rb: RepoBuilder) -> None:
    write_yaml(rb.root / "grants" / "x.yaml", doc("Grant", "x", {"requester": "alice"}))
    assert run(rb, "validate").exit_code == 1


def test_request_infers_the_requester_from_git(rb: RepoBuilder) -> None:
    import subprocess

    subprocess.run(["git", "init", "-q", "-b", "main", str(rb.root)], check=True)
    subprocess.run(["git", "-C", str(rb.root), "config", "user.email", "Alice@Example.com"], check=True)
    res = run(rb, "request", "--resource", "db-prod", "--role", "read", "--for", "1h", "--start", T0,
              "--reason", "INC-9", "--name", "alice-inc-9")
    assert res.exit_code == 0, res.output
    assert "access/alice-inc-9" in res.output
    head = subprocess.run(["git", "-C", str(rb.root), "symbolic-ref", "--short", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert head == "access/alice-inc-9"
    assert status(rb, "1998-12-01T10:30:00Z")["alice-inc-9"]["requester"] == "alice"
    subprocess.run(["git", "-C", str(rb.root), "config", "user.email", "nobody@example.com"], check=True)
    res = run(rb, "request", "--resource", "db-prod", "--role", "read", "--for", "1h", "--start", T0,
              "--name", "x2", "--no-branch")
    assert res.exit_code == 1 and "pass --as" in res.output


def test_apply_and_audit_verify_speak_json(rb: RepoBuilder) -> None:
    rb.grant("a1", "alice", T0, "1h", approvers=("lead",))
    res = run(rb, "apply", "--at", "1998-12-01T10:30:00Z", "--format", "json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["ok"] is True and out["plan"]["actions"][0]["grant"] == "a1"
    assert out["results"] == [{"op": "grant", "target": "db", "principal": "alice", "privilege": "app_read",
                               "grants": ["a1"], "ok": True, "changed": True, "error": None}]
    res = run(rb, "audit", "verify", "--format", "json")
    assert res.exit_code == 0 and json.loads(res.stdout)["intact"] is True
