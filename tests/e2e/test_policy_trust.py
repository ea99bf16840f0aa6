"""Nobody grants themselves access alone: policy changes wait for the admins of the policy in
force; restrictions bite at once (SPEC section 2)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from jitpol.cli.main import cli
from tests.helpers.repo import RepoBuilder

T = "1998-12-01T10:30:00Z"


@pytest.fixture
def rb(tmp_path: Path) -> RepoBuilder:
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    rb.grant("alice-ok", "alice", "1998-12-01T10:00:00Z", "4h", approvers=("lead",))
    assert run(rb, "apply", "--at", "1998-12-01T10:05:00Z").exit_code == 0  # adopts this policy
    return rb


def run(rb: RepoBuilder, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--repo", str(rb.root)], catch_exceptions=False)


def status(rb: RepoBuilder, at: str = T) -> dict[str, Any]:
    res = run(rb, "status", "--at", at, "--format", "json")
    assert res.exit_code == 0, res.output
    out: dict[str, Any] = json.loads(res.stdout)
    return out


def states(rb: RepoBuilder, at: str = T) -> dict[str, str]:
    return {g["name"]: g["state"] for g in status(rb, at)["grants"]}


def events(rb: RepoBuilder) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (rb.root / "audit" / "ledger.jsonl").read_text().splitlines()]


def test_first_run_adopts_the_policy_and_says_so(rb: RepoBuilder) -> None:
    first = events(rb)[0]
    assert first["event"] == "policy.adopted" and first["bootstrap"] is True
    snap = rb.root / "audit" / "policies" / f"{first['digest']}.json"
    assert snap.exists()
    assert status(rb)["policy"]["summary"].startswith(f"policy {first['digest'][:12]} is in force")


def test_relaxing_the_workflow_in_the_same_change_as_a_grant_waits_for_admins(rb: RepoBuilder) -> None:
    rb.workflow("prod", approvals={"required": 0})  # the attacker's relaxation
    rb.grant("alice-sneaky", "alice", "1998-12-01T10:00:00Z", "4h", role="write")
    st = status(rb)
    sneaky = next(g for g in st["grants"] if g["name"] == "alice-sneaky")
    assert sneaky["state"] == "pending" and "waits for admin approval" in sneaky["reason"]
    assert st["policy"]["approved"] is False and "0 of 1" in st["policy"]["summary"]
    res = run(rb, "plan", "--at", T, "--format", "json")
    plan = json.loads(res.stdout)
    assert plan["actions"] == []
    assert "until approved (`jitpol approve --policy`)" in " ".join(plan["notes"])
    run(rb, "apply", "--at", T)
    assert rb.members("app_write") == []

    # approving with a key added in the same change does not count
    rb.person("admin")  # unchanged key; now an extra key only the change knows:
    extra = rb.keydir / "admin-new"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(extra)], check=True)
    data = json.loads((rb.root / "people" / "admin.yaml").read_text())
    data["spec"]["keys"].append(Path(str(extra) + ".pub").read_text().strip())
    (rb.root / "people" / "admin.yaml").write_text(json.dumps(data))
    assert run(rb, "approve", "--policy", "--as", "admin", "--key", str(extra)).exit_code == 0
    st = status(rb)
    assert st["policy"]["approved"] is False and "not theirs in the policy in force" in st["policy"]["summary"]

    # a non-admin cannot approve it
    assert run(rb, "approve", "--policy", "--as", "alice", "--key", str(rb.key("alice"))).exit_code == 0
    assert status(rb)["policy"]["approved"] is False

    # the admin, with the key the policy in force knows, approves: now it applies
    assert run(rb, "approve", "--policy", "--as", "admin", "--key", str(rb.key("admin"))).exit_code == 0
    assert states(rb)["alice-sneaky"] == "active"
    assert run(rb, "apply", "--at", T).exit_code == 0
    assert rb.members("app_write") == ["alice"]
    adopted = [e for e in events(rb) if e["event"] == "policy.adopted"]
    assert len(adopted) == 2 and adopted[1]["approvals"] == [
        {"by": "admin", "key": adopted[1]["approvals"][0]["key"]}]


def test_restrictions_bite_at_once(rb: RepoBuilder) -> None:
    run(rb, "apply", "--at", T)
    assert rb.members("app_read") == ["alice"]
    rb.team("eng", ["bob"])  # alice is no longer a requester — unapproved, but a restriction
    assert states(rb)["alice-ok"] == "rejected"
    assert run(rb, "apply", "--at", "1998-12-01T10:40:00Z").exit_code == 0
    assert rb.members("app_read") == []


def test_revoked_key_voids_its_approvals_at_once(rb: RepoBuilder) -> None:
    data = json.loads((rb.root / "people" / "lead.yaml").read_text())
    data["spec"]["keys"] = []
    (rb.root / "people" / "lead.yaml").write_text(json.dumps(data))
    assert states(rb)["alice-ok"] == "pending"


def test_second_identity_cannot_approve(rb: RepoBuilder) -> None:
    # alice invents "alice2" with her own key and makes her a lead, then approves her own request
    pub = Path(str(rb.key("alice")) + ".pub").read_text().strip()
    (rb.root / "people" / "alice2.yaml").write_text(json.dumps({
        "apiVersion": "jitpol/v1", "kind": "Person", "metadata": {"name": "alice2"},
        "spec": {"email": "alice2@example.com", "keys": [pub], "accounts": {"fake": "alice2"}}}))
    rb.team("leads", ["lead", "bob", "alice2"])
    path = rb.grant("alice-self", "alice", "1998-12-01T10:00:00Z", "2h", role="write")
    data = json.loads(path.read_text())
    signed = rb.sign(data, "alice")
    signed["by"] = "alice2"
    data["spec"]["approvals"] = [signed]
    path.write_text(json.dumps(data))
    # a second Person with alice's key is refused outright (one human, one Person file) ...
    res = run(rb, "validate")
    assert res.exit_code == 1 and "people/alice2.yaml:" in res.output and "is also person alice's" in res.output
    # ... so nothing is added because of it
    run(rb, "apply", "--at", T)
    assert rb.members("app_write") == []


def test_unapproved_change_cannot_redirect_a_target(rb: RepoBuilder, tmp_path: Path) -> None:
    rb.config(targets={"db": {"type": "fake", "state_file": str(tmp_path / "attacker.json")}})
    run(rb, "apply", "--at", T)
    assert not (tmp_path / "attacker.json").exists()
    assert rb.members("app_read") == ["alice"]


def test_tampered_policy_snapshot_is_refused(rb: RepoBuilder) -> None:
    snap = next((rb.root / "audit" / "policies").glob("*.json"))
    snap.write_text(snap.read_text().replace('"lead"', '"alice"'))
    rb.workflow("prod", approvals={"required": 0})  # a change, so the snapshot is needed
    res = run(rb, "apply", "--at", T)
    assert res.exit_code == 1 and "snapshot was altered" in res.output


def test_tampered_policy_snapshot_is_refused_when_the_repository_is_unchanged(rb: RepoBuilder) -> None:
    """The policy in force is then the one just loaded (same digest, no second build), but the
    snapshot is still read and checked against its digest: tampering is damage all the same."""
    snap = next((rb.root / "audit" / "policies").glob("*.json"))
    snap.write_text(snap.read_text().replace('"lead"', '"alice"'))
    res = run(rb, "apply", "--at", T)
    assert res.exit_code == 1 and "snapshot was altered" in res.output


def test_notification_templates_are_policy(rb: RepoBuilder) -> None:
    before = status(rb)["policy"]["digest"]
    (rb.root / "notifications").mkdir()
    (rb.root / "notifications" / "activated.j2").write_text("Access granted: {{ grant }}\n")
    after = status(rb)["policy"]
    assert after["digest"] != before and after["approved"] is False
