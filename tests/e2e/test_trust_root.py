"""The trust root pinned outside the repository (JITPOL_TRUST_ROOT): every adoption, the first
included, needs signatures by its keys; nothing in the repository alone (a deleted ledger, an
admin the change adds, a rotation it forges) can make the reconciler adopt a policy."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from jitpol.cli.main import cli
from jitpol.errors import InvalidInput
from jitpol.policy.root import TrustRoot, parse_root, root_message, walk
from jitpol.vcs import sshsig
from jitpol.vcs.sshsig import FastVerifier
from tests.helpers.repo import RepoBuilder

START, AT = "1998-12-01T10:00:00Z", "1998-12-01T10:30:00Z"


def pub(key: Path) -> str:
    return Path(str(key) + ".pub").read_text().strip()


def root_json(keys: list[Path], threshold: int = 1, version: int = 1, **extra: Any) -> str:
    return json.dumps({"version": version, "threshold": threshold, "keys": [pub(k) for k in keys], **extra})


def run(rb: RepoBuilder, root: str, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--repo", str(rb.root)], env={"JITPOL_TRUST_ROOT": root},
                              catch_exceptions=False)


def events(rb: RepoBuilder) -> list[dict[str, Any]]:
    path = rb.root / "audit" / "ledger.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def approve_policy(rb: RepoBuilder, who: str, key: Path | None = None) -> None:
    res = CliRunner().invoke(cli, ["approve", "--policy", "--as", who, "--key", str(key or rb.key(who)),
                                   "--repo", str(rb.root)], catch_exceptions=False)
    assert res.exit_code == 0, res.output


@pytest.fixture
def rb(tmp_path: Path) -> RepoBuilder:
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    rb.grant("alice-ok", "alice", START, "4h", approvers=("lead",))
    return rb


def test_the_first_adoption_needs_the_roots_signature(rb: RepoBuilder) -> None:
    root = root_json([rb.key("admin")])
    res = run(rb, root, "apply", "--at", START)
    assert res.exit_code == 1 and "nothing is granted" in res.output
    assert rb.members("app_read") == [] and not any(e["event"] == "policy.adopted" for e in events(rb))

    approve_policy(rb, "admin")
    res = run(rb, root, "apply", "--at", AT)
    assert res.exit_code == 0, res.output
    assert rb.members("app_read") == ["alice"]
    (adopted,) = [e for e in events(rb) if e["event"] == "policy.adopted"]
    assert adopted["trust_root"]["version"] == 1 and len(adopted["trust_root"]["signers"]) == 1
    assert adopted["approvals"] == [{"by": "admin", "key": sshsig.fingerprint(pub(rb.key("admin")))}]


def test_deleting_the_ledger_with_a_relaxed_workflow_adopts_nothing(rb: RepoBuilder) -> None:
    root = root_json([rb.key("admin")])
    approve_policy(rb, "admin")
    assert run(rb, root, "apply", "--at", START).exit_code == 0
    # the attack: delete audit/ and relax the workflow in the same change, then self-approve
    shutil.rmtree(rb.root / "audit")
    rb.workflow("prod", approvals={"required": 0})
    rb.grant("alice-write", "alice", START, "4h", role="write")
    res = run(rb, root, "apply", "--at", AT)
    assert res.exit_code == 1
    assert rb.members("app_write") == []
    assert not any(e["event"] == "policy.adopted" for e in events(rb))


def test_an_admin_the_policy_names_but_the_root_does_not_cannot_adopt(rb: RepoBuilder) -> None:
    root = root_json([rb.key("lead")])  # the root trusts lead's key; the policy says admin
    approve_policy(rb, "admin")
    assert run(rb, root, "apply", "--at", AT).exit_code == 1
    assert rb.members("app_read") == []
    st = json.loads(run(rb, root, "status", "--at", AT, "--format", "json").stdout)
    assert "not a key of the trust root" in st["policy"]["summary"]


def test_a_quorum_of_two_needs_two_distinct_keys(rb: RepoBuilder) -> None:
    root = root_json([rb.key("admin"), rb.key("lead")], threshold=2)
    approve_policy(rb, "admin")
    assert run(rb, root, "apply", "--at", AT).exit_code == 1
    approve_policy(rb, "lead")
    assert run(rb, root, "apply", "--at", AT).exit_code == 0
    assert rb.members("app_read") == ["alice"]


def test_a_pin_inside_the_repository_is_refused_and_revocations_go_on(rb: RepoBuilder) -> None:
    approve_policy(rb, "admin")
    assert run(rb, root_json([rb.key("admin")]), "apply", "--at", AT).exit_code == 0
    assert rb.members("app_read") == ["alice"]
    inside = rb.root / "root.json"
    inside.write_text(root_json([rb.key("alice")]))
    res = run(rb, str(inside), "apply", "--at", "1998-12-01T15:00:00Z")  # alice's grant has ended
    assert res.exit_code == 1 and "inside the repository" in res.output
    assert rb.members("app_read") == []  # the due revocation still ran


def test_the_root_rotates_only_with_the_old_roots_quorum(rb: RepoBuilder, tmp_path: Path) -> None:
    old = root_json([rb.key("admin")])
    approve_policy(rb, "admin")
    assert run(rb, old, "apply", "--at", START).exit_code == 0
    newkey = tmp_path / "keys" / "new-admin"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "new", "-f", str(newkey)], check=True)
    rotation = parse_root(root_json([newkey], version=2), "v2")

    def write(signers: list[Path]) -> None:
        sigs = [{"key": sshsig.fingerprint(pub(k)), "signature": sshsig.sign(root_message(rotation.digest), k)}
                for k in signers]
        (rb.root / "trust").mkdir(exist_ok=True)
        (rb.root / "trust" / "root-2.json").write_text(root_json([newkey], version=2, signatures=sigs))

    # a policy change the new key approves; the admin person now holds the new key
    rb.workflow("prod", maxDuration="8h")
    data = json.loads((rb.root / "people" / "admin.yaml").read_text())
    data["spec"]["keys"].append(pub(newkey))
    (rb.root / "people" / "admin.yaml").write_text(json.dumps(data))
    approve_policy(rb, "admin", newkey)
    write([newkey])  # forged: signed by the new key only
    st = json.loads(run(rb, old, "status", "--at", AT, "--format", "json").stdout)
    assert st["policy"]["approved"] is False
    res = run(rb, old, "plan", "--at", AT)
    assert "trust/root-2.json: signed by 0 of the 1 keys needed from v1" in res.output

    write([rb.key("admin"), newkey])  # signed by the old root and the new one
    st = json.loads(run(rb, old, "status", "--at", AT, "--format", "json").stdout)
    assert st["policy"]["approved"] is True and "trust root v2" in st["policy"]["summary"]


@pytest.mark.parametrize(("text", "message"), [
    ("not json", "not JSON"),
    ('{"threshold": 1, "keys": []}', "keys must be a list"),
    ('{"threshold": 2, "keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHWNlkGAIq7dISMMazr/Pk0B4Sp6Zw9K x"]}',
     "threshold must be"),
    ('{"threshold": 1, "keys": ["ssh-ed25519 nope"]}', "not an SSH public key"),
    ('{"threshold": 1, "keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHWNlkGAIq7dISMMazr/Pk0B4Sp6Zw9K x"], '
     '"extra": 1}', "unknown trust root field"),
])
def test_a_malformed_root_is_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_root(text, "$JITPOL_TRUST_ROOT")


def test_walk_stops_at_a_gap_and_at_a_wrong_version(rb: RepoBuilder) -> None:
    pinned = parse_root(root_json([rb.key("admin")]), "pin")
    reached, notes = walk(pinned, {3: ("{}", "trust/root-3.json")}, FastVerifier())
    assert reached is pinned and notes == []
    reached, notes = walk(pinned, {2: (root_json([rb.key("admin")], version=5), "trust/root-2.json")}, FastVerifier())
    assert isinstance(reached, TrustRoot) and reached.version == 1 and "expected 2" in notes[0]


def test_a_forged_ledger_entry_cannot_put_a_policy_in_force(rb: RepoBuilder) -> None:
    from jitpol.ledger.snapshots import write_snapshot
    from jitpol.ledger.store import Ledger
    from jitpol.load.repository import load_repository, snapshot_entries

    root = root_json([rb.key("admin")])
    approve_policy(rb, "admin")
    assert run(rb, root, "apply", "--at", START).exit_code == 0
    # the attacker relaxes the workflow and records, in an extra ledger file, that their policy
    # was adopted (with a matching snapshot): the ledger now says it is in force
    rb.workflow("prod", approvals={"required": 0})
    rb.grant("alice-write", "alice", START, "4h", role="write")
    loaded = load_repository(rb.root)
    write_snapshot(rb.root / "audit", loaded.policy_digest, snapshot_entries(loaded))
    Ledger(rb.root / "audit" / "ledger-9-of-9.jsonl").append([{
        "time": "1998-12-01T10:20:00Z", "event": "policy.adopted", "grant": None, "digest": loaded.policy_digest,
        "previous": None, "bootstrap": False, "approvals": [], "summary": "forged"}])
    res = run(rb, root, "apply", "--at", AT)
    assert "carries no signatures of the trust root" in res.output or "approval(s) by keys" in res.output, res.output
    assert rb.members("app_write") == []
