"""Ephemeral accounts and shared-credential checkout: secrets are set, delivered only to their
holder, rotated when the window ends, and appear nowhere else."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from jitpol.cli.main import cli
from tests.helpers.repo import RepoBuilder


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
        self.rb.workflow("prod", approvals={"required": 0}, checkout="exclusive")
        self.rb.resource("shared-admin", model="credential-checkout", account="app_admin", roles=None)
        self.rb.resource("scratch", model="ephemeral-account",
                         roles={"read": {"grants": ["app_read", "app_stats"]}})
        self.rb.set_fake_state({"members": {}, "shared": {"app_admin": {"password": "initial-unknown"}}})
        subprocess.run(["git", "init", "-q", "-b", "main", str(self.rb.root)], check=True)
        self.outputs: list[str] = []
        self.secrets: set[str] = set()

    def run(self, *args: str) -> Result:
        res = CliRunner().invoke(cli, [*args, "--repo", str(self.rb.root)], catch_exceptions=False)
        self.outputs.append(res.output)
        self.harvest()
        return res

    def harvest(self) -> None:
        """Every secret the target was ever given (a real target keeps them too)."""
        state = self.rb.fake_state()
        for acct in state.get("shared", {}).values():
            if acct.get("password") and acct["password"] != "initial-unknown":
                self.secrets.add(acct["password"])
        for acct in state.get("accounts", {}).values():
            if acct.get("password"):
                self.secrets.add(acct["password"])

    def creds(self, grant: str, person: str) -> Result:
        return self.run("credentials", grant, "--key", str(self.rb.key(person)), "--format", "json")

    def shared_password(self) -> str:
        password: str = self.rb.fake_state()["shared"]["app_admin"]["password"]
        return password

    def events(self) -> list[dict[str, Any]]:
        path = self.rb.root / "audit" / "ledger.jsonl"
        return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture
def w(tmp_path: Path) -> World:
    return World(tmp_path)


def test_checkout_one_after_another(w: World) -> None:
    w.rb.grant("alice-co", "alice", "1998-12-01T10:00:00Z", "1h", resource="shared-admin", role=None)
    w.rb.grant("bob-co", "bob", "1998-12-01T11:00:00Z", "1h", resource="shared-admin", role=None)
    assert w.run("apply", "--at", "1998-12-01T10:10:00Z").exit_code == 0
    res = w.creds("alice-co", "alice")
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert got["username"] == "app_admin" and got["password"] == w.shared_password()
    assert w.creds("alice-co", "bob").exit_code == 1  # not bob's
    alice_secret = got["password"]

    assert w.run("apply", "--at", "1998-12-01T11:10:00Z").exit_code == 0  # alice out, bob in: one rotation
    assert w.shared_password() != alice_secret
    assert w.creds("alice-co", "alice").exit_code == 1  # her delivery is gone with her window
    assert json.loads(w.creds("bob-co", "bob").stdout)["password"] == w.shared_password()
    bob_secret = w.shared_password()

    assert w.run("apply", "--at", "1998-12-01T12:10:00Z").exit_code == 0  # nobody: rotate to unknown
    assert w.shared_password() not in (alice_secret, bob_secret)
    assert not list((w.rb.root / "audit" / "credentials").glob("*.age"))
    rotated = [e for e in w.events() if e["event"] == "credential.rotated"]
    assert [e["holders"] for e in rotated] == [["alice-co"], ["bob-co"], []]
    assert all(e["fingerprint"].startswith("sha256:") for e in rotated)
    activated = [e["grant"] for e in w.events() if e["event"] == "grant.activated"]
    ended = [e["grant"] for e in w.events() if e["event"] == "grant.revoked"]
    assert activated == ["alice-co", "bob-co"] and ended == ["alice-co", "bob-co"]
    assert w.run("audit", "verify").exit_code == 0


def test_two_people_asking_for_an_exclusive_account_at_once(w: World) -> None:
    w.rb.grant("alice-co", "alice", "1998-12-01T10:00:00Z", "1h", resource="shared-admin", role=None)
    w.rb.grant("bob-co", "bob", "1998-12-01T10:00:00Z", "1h", resource="shared-admin", role=None)
    w.run("apply", "--at", "1998-12-01T10:10:00Z")
    st = {g["name"]: g for g in json.loads(w.run("status", "--at", "1998-12-01T10:10:00Z", "--format",
                                                  "json").stdout)["grants"]}
    assert st["alice-co"]["state"] == "active"  # deterministic: same start, the first name wins
    assert st["bob-co"]["state"] == "rejected" and "exclusive checkout" in st["bob-co"]["reason"]
    assert w.creds("bob-co", "bob").exit_code == 1


def test_crash_between_setting_and_recording_is_healed(w: World) -> None:
    w.rb.grant("alice-co", "alice", "1998-12-01T10:00:00Z", "1h", resource="shared-admin", role=None)
    w.run("apply", "--at", "1998-12-01T10:10:00Z", "--no-commit")
    # the run "died" right after changing the target: drop its last ledger lines (the chain of
    # what remains still verifies, as after a crash)
    path = w.rb.root / "audit" / "ledger.jsonl"
    lines = path.read_text().splitlines()
    keep = [x for x in lines if json.loads(x)["event"] not in ("credential.rotated", "grant.activated")]
    assert keep == lines[:len(keep)]
    path.write_text("\n".join(keep) + "\n")
    assert w.run("audit", "verify").exit_code == 0
    assert w.run("apply", "--at", "1998-12-01T10:20:00Z", "--no-commit").exit_code == 0
    assert json.loads(w.creds("alice-co", "alice").stdout)["password"] == w.shared_password()


def test_ephemeral_account_is_created_delivered_and_deleted(w: World) -> None:
    w.rb.grant("alice-tmp", "alice", "1998-12-01T10:00:00Z", "1h", resource="scratch", role="read")
    assert w.run("apply", "--at", "1998-12-01T10:10:00Z").exit_code == 0
    got = json.loads(w.creds("alice-tmp", "alice").stdout)
    accounts = w.rb.fake_state()["accounts"]
    assert list(accounts) == [got["username"]] and got["username"].startswith("jit-alice-")
    assert accounts[got["username"]]["password"] == got["password"]
    assert accounts[got["username"]]["groups"] == ["app_read", "app_stats"]
    assert accounts[got["username"]]["expires"].startswith("1998-12-01T11:00:00")
    assert w.run("apply", "--at", "1998-12-01T10:20:00Z").exit_code == 0  # converged: nothing re-issued
    assert len([e for e in w.events() if e["event"] == "account.created"]) == 1
    assert w.run("apply", "--at", "1998-12-01T11:10:00Z").exit_code == 0
    assert w.rb.fake_state()["accounts"] == {}
    assert w.creds("alice-tmp", "alice").exit_code == 1
    assert [e["event"] for e in w.events() if e["event"].startswith("account.")] == [
        "account.created", "account.deleted"]


def test_ephemeral_account_whose_delivery_was_lost_gets_a_new_secret(w: World) -> None:
    w.rb.grant("alice-tmp", "alice", "1998-12-01T10:00:00Z", "1h", resource="scratch", role="read")
    w.run("apply", "--at", "1998-12-01T10:10:00Z", "--no-commit")
    path = w.rb.root / "audit" / "ledger.jsonl"
    lines = path.read_text().splitlines()
    keep = [x for x in lines if json.loads(x)["event"] not in ("account.created", "grant.activated")]
    path.write_text("\n".join(keep) + "\n")
    (w.rb.root / "audit" / "credentials" / "alice-tmp.age").unlink()
    assert w.run("apply", "--at", "1998-12-01T10:20:00Z", "--no-commit").exit_code == 0
    got = json.loads(w.creds("alice-tmp", "alice").stdout)
    assert w.rb.fake_state()["accounts"][got["username"]]["password"] == got["password"]


def test_no_secret_appears_anywhere_but_its_delivery(w: World) -> None:
    w.rb.grant("alice-co", "alice", "1998-12-01T10:00:00Z", "1h", resource="shared-admin", role=None)
    w.rb.grant("bob-tmp", "bob", "1998-12-01T10:00:00Z", "2h", resource="scratch", role="read")
    for at in ("1998-12-01T10:10:00Z", "1998-12-01T11:10:00Z", "1998-12-01T12:10:00Z"):
        w.run("plan", "--at", at, "--format", "json")
        res = CliRunner().invoke(cli, ["--debug", "apply", "--repo", str(w.rb.root), "--at", at])
        w.outputs.append(res.output)
        w.harvest()
        w.run("status", "--at", at, "--format", "json")
    res = CliRunner().invoke(cli, ["--debug", "plan", "--repo", str(w.rb.root), "--at", "1998-12-01T12:20:00Z"])
    w.outputs.append(res.output)
    assert len(w.secrets) >= 3  # alice's checkout, bob's account, the final rotation to nobody
    history = subprocess.run(["git", "-C", str(w.rb.root), "log", "-p", "--all", "--format=%H %s"],
                             capture_output=True, text=True, check=True).stdout
    files = "".join(p.read_text(errors="replace") for p in w.rb.root.rglob("*") if p.is_file()
                    and ".git" not in p.parts)
    haystacks = {"git history": history, "repository files": files, "command output": "\n".join(w.outputs)}
    for secret in w.secrets:
        for where, text in haystacks.items():
            assert secret not in text, f"a secret leaked into {where}"


def test_status_shows_who_holds_each_shared_account(w: World) -> None:
    w.rb.grant("alice-co", "alice", "1998-12-01T10:00:00Z", "1h", resource="shared-admin", role=None)
    w.run("apply", "--at", "1998-12-01T10:10:00Z")
    out = json.loads(w.run("status", "--at", "1998-12-01T10:15:00Z", "--format", "json").stdout)
    assert out["checkouts"] == [{"target": "db", "account": "app_admin", "holders": ["alice-co"]}]
    assert "Shared account app_admin on db: held by alice-co" in w.run("status", "--at", "1998-12-01T10:15:00Z").output


def test_a_checkout_whose_end_is_cut_gets_a_secret_that_ends_then(w: World) -> None:
    """A schedule added to the workflow (a restriction: in force at once, no admin approval)
    cuts alice's live checkout from 14:00 to 12:00: the shared account's secret is rotated for
    her again, and the end the target enforces is the new one (the native end follows the grant)."""
    w.rb.grant("alice-co", "alice", "1998-12-01T10:00:00Z", "4h", resource="shared-admin", role=None)
    assert w.run("apply", "--at", "1998-12-01T10:10:00Z").exit_code == 0
    assert w.rb.fake_state()["shared"]["app_admin"]["until"] == "1998-12-01T14:00:00+00:00"
    first = w.shared_password()
    # 1998-12-01 is a Tuesday
    w.rb.workflow("prod", approvals={"required": 0}, checkout="exclusive",
                  schedule={"timezone": "UTC", "windows": [{"days": ["tue"], "start": "09:00", "end": "12:00"}]})
    res = w.run("apply", "--at", "1998-12-01T10:20:00Z")
    assert res.exit_code == 0, res.output
    assert "now ends 1998-12-01T12:00:00Z" in res.output, res.output
    assert w.rb.fake_state()["shared"]["app_admin"]["until"] == "1998-12-01T12:00:00+00:00"
    assert w.shared_password() != first
    assert json.loads(w.creds("alice-co", "alice").stdout)["password"] == w.shared_password()
    (last,) = [e for e in w.events() if e["event"] == "credential.rotated"][-1:]
    assert last["until"] == "1998-12-01T12:00:00Z" and last["holders"] == ["alice-co"]
    again = w.run("apply", "--at", "1998-12-01T10:30:00Z")
    assert "now ends" not in again.output, again.output
