"""A committed symbolic link never redirects what jitpol writes or reads (SPEC section 6: "it never
follows a symlink out of the repository"). git records a link as an ordinary blob, so anyone who
can merge a change can put one where jitpol keeps its own files: audit/ and everything below it,
and, in the subdirectory layout, the run lock. Each link below is refused and named; nothing is
written outside the repository; revocations that the readable ledger makes due still run."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from jitpol.cli.main import cli
from jitpol.ledger.store import Ledger
from tests.helpers.git import git
from tests.helpers.repo import RepoBuilder

T0 = "1998-12-01T10:00:00Z"
T1 = "1998-12-01T10:30:00Z"  # alice-read (10:00, 1h) is active
T2 = "1998-12-01T11:30:00Z"  # alice-read has ended: her revocation is due; bob-read (11:00, 2h) is active


def run(root: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, [*args, "--repo", str(root)], env=env, catch_exceptions=False)


def tree(path: Path) -> dict[str, str]:
    """Every file below `path` (not following links) with a hash of its content: to prove that
    nothing there was written, replaced, removed or added."""
    out: dict[str, str] = {}
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            full = Path(top) / name
            rel = full.relative_to(path).as_posix()
            if full.is_symlink():
                out[rel] = "link:" + os.readlink(full)
            elif full.is_file():
                out[rel] = hashlib.sha256(full.read_bytes()).hexdigest()
            else:
                out[rel] = "dir"
    return out


@pytest.fixture
def rb(tmp_path: Path) -> RepoBuilder:
    """alice holds db-prod read since the first run; bob asks for it from 11:00."""
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    rb.grant("alice-read", "alice", T0, "1h", approvers=("lead",))
    res = run(rb.root, "apply", "--at", T1)
    assert res.exit_code == 0, res.output
    assert rb.members("app_read") == ["alice"]
    rb.grant("bob-read", "bob", "1998-12-01T11:00:00Z", "2h", approvers=("lead",))
    return rb


def outside_dir(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("not jitpol's\n")
    return outside


def test_an_audit_link_out_of_the_repository_is_neither_read_nor_written(rb: RepoBuilder, tmp_path: Path) -> None:
    outside = outside_dir(tmp_path)
    shutil.move(rb.root / "audit", outside / "audit")  # the attacker's copy of the ledger, outside
    (rb.root / "audit").symlink_to(outside / "audit", target_is_directory=True)
    before = tree(outside)

    res = run(rb.root, "apply", "--at", T2)

    assert res.exit_code == 1, res.output
    assert "internal error" not in res.output
    assert "audit is a symbolic link" in res.output and "remove the link" in res.output, res.output
    assert tree(outside) == before, "jitpol wrote through the audit link"
    assert "bob" not in rb.members("app_read"), "an addition ran without a ledger"
    # every reader refuses it the same way, by name
    for args in (("status", "--at", T2), ("plan", "--at", T2), ("audit", "verify"), ("report", "--html",
                                                                                         str(tmp_path / "r.html"))):
        other = run(rb.root, *args)
        assert "internal error" not in other.output, (args, other.output)
    assert tree(outside) == before


def test_a_dangling_audit_link_does_not_crash_the_run(tmp_path: Path) -> None:
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    rb.grant("alice-read", "alice", T0, "1h", approvers=("lead",))
    (rb.root / "audit").symlink_to(tmp_path / "nowhere", target_is_directory=True)

    res = run(rb.root, "apply", "--at", T1)

    assert res.exit_code == 1, res.output
    assert "internal error" not in res.output and "FileExistsError" not in res.output, res.output
    assert "audit is a symbolic link" in res.output, res.output
    assert not (tmp_path / "nowhere").exists(), "a folder was created where the link points"
    assert rb.members("app_read") == [], "an addition ran without a ledger"
    assert (rb.root / "audit").is_symlink()  # left for the operator to remove


def test_a_credentials_link_fails_the_delivery_and_nothing_else(tmp_path: Path) -> None:
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    rb.resource("shared-admin", model="credential-checkout", account="app_admin", roles=None)
    rb.set_fake_state({"members": {}, "shared": {"app_admin": {"password": "initial-unknown"}}})
    rb.grant("alice-read", "alice", T0, "1h", approvers=("lead",))
    assert run(rb.root, "apply", "--at", T1).exit_code == 0
    assert rb.members("app_read") == ["alice"]
    rb.grant("bob-read", "bob", "1998-12-01T11:00:00Z", "2h", approvers=("lead",))
    rb.grant("carol-co", "alice", "1998-12-01T11:00:00Z", "1h", resource="shared-admin", role=None,
             approvers=("lead",))
    outside = outside_dir(tmp_path)
    (rb.root / "audit" / "credentials").symlink_to(outside, target_is_directory=True)
    before = tree(outside)

    res = run(rb.root, "apply", "--at", T2)

    assert res.exit_code == 1, res.output
    assert tree(outside) == before, "a secret was written through audit/credentials"
    assert "FAILED rotate" in res.output and "audit/credentials is a symbolic link" in res.output, res.output
    # the target never got a secret nobody could be handed
    assert rb.fake_state()["shared"]["app_admin"]["password"] == "initial-unknown"
    # the others went on: alice's due revocation, bob's addition
    assert rb.members("app_read") == ["bob"]
    events = Ledger(rb.root / "audit" / "ledger.jsonl").events()
    failed = [e for e in events if e["event"] == "action.failed"]
    assert [e["grant"] for e in failed] == ["carol-co"] and "audit/credentials" in failed[0]["error"]
    assert [e["grant"] for e in events if e["event"] == "grant.revoked"] == ["alice-read"]


def test_a_policies_link_is_refused_on_the_first_adoption(tmp_path: Path) -> None:
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    rb.grant("alice-read", "alice", T0, "1h", approvers=("lead",))
    outside = outside_dir(tmp_path)
    (rb.root / "audit").mkdir()
    (rb.root / "audit" / "policies").symlink_to(outside, target_is_directory=True)
    before = tree(outside)

    res = run(rb.root, "apply", "--at", T1)

    assert res.exit_code == 1, res.output
    assert "internal error" not in res.output
    assert "audit/policies is a symbolic link" in res.output, res.output
    assert tree(outside) == before, "the policy snapshot was written through audit/policies"
    assert rb.members("app_read") == []


def test_a_policies_link_is_not_read(rb: RepoBuilder, tmp_path: Path) -> None:
    outside = outside_dir(tmp_path)
    shutil.move(rb.root / "audit" / "policies", outside / "policies")
    (rb.root / "audit" / "policies").symlink_to(outside / "policies", target_is_directory=True)
    before = tree(outside)

    res = run(rb.root, "apply", "--at", T2)

    assert res.exit_code == 1, res.output
    assert "internal error" not in res.output
    assert "audit/policies is a symbolic link" in res.output, res.output
    assert tree(outside) == before
    assert "bob" not in rb.members("app_read"), "an addition ran on a policy read through a link"


class Signed:
    """A repository whose reconciler signs ledger checkpoints (JITPOL_LEDGER_KEY)."""

    def __init__(self, tmp_path: Path) -> None:
        self.rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
        key = tmp_path / "keys" / "reconciler"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "jitpol", "-f", str(key)], check=True)
        self.env = {"JITPOL_LEDGER_KEY": key.read_text(), "JITPOL_LEDGER_PUBKEY": Path(f"{key}.pub").read_text()}

    def run(self, *args: str) -> Result:
        return run(self.rb.root, *args, env=self.env)


def test_a_checkpoints_link_is_neither_read_nor_written(tmp_path: Path) -> None:
    s = Signed(tmp_path)
    s.rb.grant("alice-read", "alice", T0, "1h", approvers=("lead",))
    assert s.run("apply", "--at", T1).exit_code == 0
    checkpoints = s.rb.root / "audit" / "checkpoints"
    assert (checkpoints / "ledger.jsonl.json").is_file()
    s.rb.grant("bob-read", "bob", "1998-12-01T11:00:00Z", "2h", approvers=("lead",))
    outside = outside_dir(tmp_path)
    shutil.move(checkpoints, outside / "checkpoints")
    checkpoints.symlink_to(outside / "checkpoints", target_is_directory=True)
    before = tree(outside)

    res = s.run("apply", "--at", T2)

    assert res.exit_code == 1, res.output
    assert "audit/checkpoints" in res.output and "symbolic link" in res.output, res.output
    assert tree(outside) == before, "a checkpoint was written through the link"
    assert s.rb.members("app_read") == [], "alice's due revocation did not run, or bob was added"


def test_a_symlinked_ledger_file_is_damage_not_a_path(rb: RepoBuilder, tmp_path: Path) -> None:
    outside = outside_dir(tmp_path)
    ledger = rb.root / "audit" / "ledger.jsonl"
    shutil.move(ledger, outside / "ledger.jsonl")
    ledger.symlink_to(outside / "ledger.jsonl")
    before = tree(outside)

    res = run(rb.root, "apply", "--at", T2)

    assert res.exit_code == 1, res.output
    assert "audit/ledger.jsonl is a symbolic link" in res.output, res.output
    assert tree(outside) == before
    assert "bob" not in rb.members("app_read")
    verify = run(rb.root, "audit", "verify")
    assert verify.exit_code == 1 and "symbolic link" in verify.output, verify.output


# -- the run lock in the subdirectory layout ------------------------------------------------------------------


@pytest.fixture
def layered(tmp_path: Path) -> RepoBuilder:
    """The policy in policies/ of a git work tree: the layout where the lock once lived in the tree."""
    top = tmp_path / "work"
    top.mkdir()
    git(top, "init", "-q", "-b", "main")
    rb = RepoBuilder(top / "policies", tmp_path / "keys").standard()
    rb.grant("alice-read", "alice", T0, "1h", approvers=("lead",))
    git(top, "add", "-A")
    git(top, "commit", "-q", "-m", "policy")
    res = run(rb.root, "apply", "--at", T1)
    assert res.exit_code == 0, res.output
    return rb


def ledger_events(rb: RepoBuilder) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (rb.root / "audit" / "ledger.jsonl").read_text().splitlines()]


def test_a_committed_lock_link_cannot_destroy_the_ledger(layered: RepoBuilder) -> None:
    rb = layered
    top = rb.root.parent
    ledger = rb.root / "audit" / "ledger.jsonl"
    before = ledger.read_bytes()
    assert before and Ledger(ledger).verify() is None
    (rb.root / ".jitpol.lock").unlink(missing_ok=True)  # where an older jitpol kept its lock
    (rb.root / ".jitpol.lock").symlink_to("audit/ledger.jsonl")
    git(top, "add", "-A")
    git(top, "commit", "-q", "-m", "the attack: a lock file that is the ledger")
    rb.grant("bob-read", "bob", "1998-12-01T11:00:00Z", "2h", approvers=("lead",))
    git(top, "add", "-A")
    git(top, "commit", "-q", "-m", "bob asks")

    res = run(rb.root, "apply", "--at", T2)

    assert res.exit_code == 0, res.output
    after = ledger.read_bytes()
    assert after.startswith(before), "the ledger was truncated or overwritten through the lock"
    assert Ledger(ledger).verify() is None
    assert rb.members("app_read") == ["bob"]
    assert (rb.root / ".jitpol.lock").is_symlink()  # not touched at all: the lock is in the git directory
    assert (top / ".git" / "jitpol.lock").is_file()
