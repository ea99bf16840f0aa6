"""Knowing what jitpol owns survives the ledger (SPEC section 6, issue 12): targets carry jitpol's
ownership marker on what it granted, so with the ledger deleted or untrusted a run still revokes
what jitpol gave that no valid grant backs, adds nothing, keeps standing access, and exits 1
saying why. The fake target marks its memberships (`owned` in its state file)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from click.testing import CliRunner, Result

from jitpol.cli.main import cli
from jitpol.ledger.chain import seal
from jitpol.model.canonical import canonical_json
from tests.helpers.git import git
from tests.helpers.repo import RepoBuilder

T0, T1, T2 = "1998-12-01T10:00:00Z", "1998-12-01T10:30:00Z", "1998-12-01T11:00:00Z"
AFTER = "1998-12-01T15:00:00Z"  # alice's 4h grant has ended


class World:
    def __init__(self, tmp: Path, *, with_root: bool) -> None:
        self.rb = RepoBuilder(tmp / "repo", tmp / "keys").standard()
        key = tmp / "keys" / "reconciler"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "jitpol", "-f", str(key)], check=True)
        self.env = {"JITPOL_LEDGER_KEY": key.read_text(), "JITPOL_LEDGER_PUBKEY": Path(f"{key}.pub").read_text()}
        if with_root:
            admin = Path(f"{self.rb.key('admin')}.pub").read_text().strip()
            self.env["JITPOL_TRUST_ROOT"] = json.dumps({"version": 1, "threshold": 1, "keys": [admin]})
        self.rb.grant("alice-read", "alice", T0, "4h", approvers=("lead",))
        git(self.rb.root, "init", "-q", "-b", "main")
        if with_root:
            res = CliRunner().invoke(cli, ["approve", "--policy", "--as", "admin", "--key", str(self.rb.key("admin")),
                                           "--repo", str(self.rb.root)], catch_exceptions=False)
            assert res.exit_code == 0, res.output
        self.commit("policy")

    def commit(self, message: str) -> None:
        git(self.rb.root, "add", "-A")
        git(self.rb.root, "commit", "-q", "--allow-empty", "-m", message)

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(cli, [*args, "--repo", str(self.rb.root)], env=self.env, catch_exceptions=False)

    def owned(self, privilege: str) -> list[str]:
        return sorted(self.rb.fake_state().get("owned", {}).get(privilege, []))


def lose_the_ledger(w: World) -> None:
    """alice was granted (marked); carol too, by a run killed before it recorded her grant (her
    grant is gone); dave holds app_read from before jitpol (unmarked). Then audit/ is deleted and
    bob's approved grant waits."""
    res = w.run("apply", "--at", T1)
    assert res.exit_code == 0, res.output
    assert w.rb.members("app_read") == ["alice"] and w.owned("app_read") == ["alice"]
    state = w.rb.fake_state()
    state["members"]["app_read"] += ["carol", "dave"]
    state["owned"]["app_read"].append("carol")
    w.rb.set_fake_state(state)
    shutil.rmtree(w.rb.root / "audit")
    w.rb.grant("bob-read", "bob", T0, "4h", approvers=("lead",))
    w.commit("audit/ deleted; bob asks")


def test_a_lost_ledger_revokes_what_jitpol_owns_and_no_valid_grant_backs(tmp_path: Path) -> None:
    w = World(tmp_path, with_root=True)
    lose_the_ledger(w)
    res = w.run("apply", "--at", T2, "--no-commit")
    assert res.exit_code == 1, res.output
    assert "audit/ is gone" in res.output and "nothing is adopted or added" in res.output, res.output
    assert "carries jitpol's ownership marker" in res.output, res.output
    members = w.rb.members("app_read")
    assert "carol" not in members, "jitpol's own orphaned grant outlived the ledger"
    assert "dave" in members, "standing access jitpol never gave was taken away"
    assert "bob" not in members, "an addition ran on a lost ledger"
    # the repository as the trust root approved it says alice's grant is valid: she keeps it
    assert "alice" in members, res.output


def test_without_a_trust_root_a_lost_ledger_connects_nowhere_and_says_why(tmp_path: Path) -> None:
    """Nothing outside the repository vouches for its target settings, and connecting where an
    unapproved change points would hand the target's credentials to whoever wrote it."""
    w = World(tmp_path, with_root=False)
    lose_the_ledger(w)
    res = w.run("apply", "--at", T2, "--no-commit")
    assert res.exit_code == 1, res.output
    assert "nothing is connected to until audit/ is restored" in res.output, res.output
    assert "pin a trust root" in res.output, res.output
    assert w.rb.members("app_read") == ["alice", "carol", "dave"]


def test_a_lost_ledger_still_ends_a_valid_grant_on_time(tmp_path: Path) -> None:
    w = World(tmp_path, with_root=True)
    lose_the_ledger(w)
    res = w.run("apply", "--at", AFTER, "--no-commit")
    assert res.exit_code == 1, res.output
    assert w.rb.members("app_read") == ["dave"], res.output


def test_lines_appended_without_the_reconcilers_key_keep_nothing(tmp_path: Path) -> None:
    """An attacker who cannot sign appends a validly chained line opening a long interval for
    bob's unapproved grant (its file is there, so no restriction ends it): the run distrusts the
    ledger, and the forged interval keeps nothing: bob's marked membership goes."""
    w = World(tmp_path, with_root=False)
    assert w.run("apply", "--at", T1).exit_code == 0
    state = w.rb.fake_state()
    state["members"]["app_read"].append("bob")
    state["owned"]["app_read"].append("bob")
    w.rb.set_fake_state(state)
    w.rb.grant("bob-forever", "bob", T0, "4h")  # never approved
    ledger = w.rb.root / "audit" / "ledger.jsonl"
    last = json.loads(ledger.read_text().splitlines()[-1])
    forged = seal({"event": "grant.activated", "time": T1, "grant": "bob-forever", "digest": "0" * 64,
                   "until": "2999-01-01T00:00:00Z",
                   "assignments": [{"target": "db", "model": "role-membership", "principal": "bob",
                                    "privilege": "app_read"}]}, seq=last["seq"] + 1, prev=last["hash"])
    with ledger.open("a") as fh:
        fh.write(canonical_json(forged) + "\n")
    w.commit("the attack")
    res = w.run("apply", "--at", T2, "--no-commit")
    assert res.exit_code == 1, res.output
    assert "did not sign" in res.output, res.output
    assert "bob" not in w.rb.members("app_read"), res.output
    assert "alice" in w.rb.members("app_read"), "the signed part of the ledger still keeps alice's interval"


def test_a_symlinked_audit_folder_still_revokes_what_jitpol_owns(tmp_path: Path) -> None:
    """audit/ replaced by a committed link to a copy elsewhere: jitpol reads nothing through it,
    and the marker still finds carol's orphaned membership."""
    w = World(tmp_path, with_root=True)
    lose_the_ledger(w)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (w.rb.root / "audit").symlink_to(elsewhere)
    w.commit("audit is a link")
    res = w.run("apply", "--at", T2, "--no-commit")
    assert res.exit_code == 1, res.output
    assert w.rb.members("app_read") == ["alice", "dave"], res.output
    assert list(elsewhere.iterdir()) == [], "jitpol wrote through the link"
