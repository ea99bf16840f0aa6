"""MFA with security keys, break-glass, and requests that expire unapproved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from jitpol.cli.main import cli
from jitpol.model.canonical import approval_message, grant_digest
from jitpol.model.sshkey import fingerprint
from tests.helpers.repo import RepoBuilder
from tests.helpers.sk import SoftSecurityKey

T0 = "1998-12-01T10:00:00Z"


def run(rb: RepoBuilder, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--repo", str(rb.root)], catch_exceptions=False)


def grants(rb: RepoBuilder, at: str) -> dict[str, dict[str, Any]]:
    res = run(rb, "status", "--at", at, "--format", "json")
    assert res.exit_code == 0, res.output
    return {g["name"]: g for g in json.loads(res.stdout)["grants"]}


@pytest.fixture
def rb(tmp_path: Path) -> RepoBuilder:
    return RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()


def sk_sign(data: dict[str, Any], who: str, key: SoftSecurityKey) -> dict[str, str]:
    return {"by": who, "key": fingerprint(key.public_line()),
            "signature": key.sign(approval_message(grant_digest(data)))}


def with_sk(rb: RepoBuilder, person: str, key: SoftSecurityKey) -> None:
    path = rb.root / "people" / f"{person}.yaml"
    data = json.loads(path.read_text())
    data["spec"]["keys"].append(key.public_line())
    path.write_text(json.dumps(data))


def test_security_key_mfa(rb: RepoBuilder) -> None:
    rb.workflow("prod", mfa="security-key")
    alice_sk, lead_sk = SoftSecurityKey(), SoftSecurityKey()
    with_sk(rb, "alice", alice_sk)
    with_sk(rb, "lead", lead_sk)
    # ordinary keys: refused for both the requester's presence and the approval
    path = rb.grant("g1", "alice", T0, approvers=("lead",))
    st = grants(rb, "1998-12-01T10:30:00Z")["g1"]
    assert st["state"] == "pending" and "security-key signature" in st["reason"]
    data = json.loads(path.read_text())
    data["spec"]["approvals"] = [sk_sign(data, "alice", alice_sk), rb.sign(data, "lead")]
    path.write_text(json.dumps(data))
    st = grants(rb, "1998-12-01T10:30:00Z")["g1"]
    assert st["state"] == "pending" and "requires a security key" in st["reason"]
    # hardware-backed signatures from both: active; the requester's own never counts as approval
    data["spec"]["approvals"] = [sk_sign(data, "alice", alice_sk), sk_sign(data, "lead", lead_sk)]
    path.write_text(json.dumps(data))
    st = grants(rb, "1998-12-01T10:30:00Z")["g1"]
    assert st["state"] == "active" and st["approvals"] == ["lead"]
    data["spec"]["approvals"] = [sk_sign(data, "alice", alice_sk)]
    path.write_text(json.dumps(data))
    assert grants(rb, "1998-12-01T10:30:00Z")["g1"]["state"] == "pending"


def test_request_sign_adds_the_requesters_signature(rb: RepoBuilder) -> None:
    res = run(rb, "request", "--resource", "db-prod", "--role", "read", "--for", "1h", "--start", T0,
              "--reason", "INC-1", "--as", "alice", "--no-branch", "--name", "g2", "--sign", str(rb.key("alice")))
    assert res.exit_code == 0, res.output
    data = json.loads(json.dumps(__import__("yaml").safe_load((rb.root / "grants" / "g2.yaml").read_text())))
    assert [a["by"] for a in data["spec"]["approvals"]] == ["alice"]


def test_breakglass_activates_unapproved_and_is_revoked_at_the_deadline(rb: RepoBuilder) -> None:
    rb.workflow("prod", breakglass={"allowed": True, "deadline": "30m"})
    rb.grant("bg", "alice", T0, "2h", breakglass=True)
    st = grants(rb, "1998-12-01T10:10:00Z")["bg"]
    assert st["state"] == "active" and st["reason"].startswith("BREAK-GLASS")
    assert run(rb, "apply", "--at", "1998-12-01T10:10:00Z").exit_code == 0
    assert rb.members("app_read") == ["alice"]
    st = grants(rb, "1998-12-01T10:40:00Z")["bg"]
    assert st["state"] == "pending" and "deadline" in st["reason"]
    assert run(rb, "apply", "--at", "1998-12-01T10:40:00Z").exit_code == 0
    assert rb.members("app_read") == []
    # approved after the fact: a legitimate grant again
    assert run(rb, "approve", "bg", "--as", "lead", "--key", str(rb.key("lead"))).exit_code == 0
    assert grants(rb, "1998-12-01T10:50:00Z")["bg"]["state"] == "active"


def test_breakglass_needs_a_workflow_that_allows_it(rb: RepoBuilder) -> None:
    rb.grant("bg", "alice", T0, "2h", breakglass=True)
    st = grants(rb, "1998-12-01T10:10:00Z")["bg"]
    assert st["state"] == "rejected" and "does not allow break-glass" in st["reason"]


def test_unapproved_requests_expire(rb: RepoBuilder) -> None:
    rb.workflow("prod", approvals={"required": 1, "approvers": ["team:leads"], "timeout": "1h"}, maxDuration="1d")
    path = rb.grant("slow", "alice", T0, "8h")
    assert grants(rb, "1998-12-01T10:30:00Z")["slow"]["state"] == "pending"
    st = grants(rb, "1998-12-01T11:30:00Z")["slow"]
    assert st["state"] == "expired" and "not approved and activated within 1h" in st["reason"]
    data = json.loads(path.read_text())
    data["spec"]["approvals"] = [rb.sign(data, "lead")]
    path.write_text(json.dumps(data))
    assert grants(rb, "1998-12-01T11:30:00Z")["slow"]["state"] == "expired"  # too late
    assert grants(rb, "1998-12-01T10:30:00Z")["slow"]["state"] == "active"  # in time: fine
