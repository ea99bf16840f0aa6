"""`jitpol check --base` sees what the reconciler will see, in every documented layout: the policy
at the git root, and the policy in a directory of the git work tree (`--repo policies`, as
docs/ci.md documents). It decides with the effective policy, lists approvers as they are under the
policy in force, and refuses edits to audit/, .gitattributes, links leaving the policy root and the
trust root's inputs."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from jitpol.cli.main import cli
from jitpol.review import TRUST_ROOT_INPUTS
from tests.helpers.repo import RepoBuilder, doc, load_doc, write_yaml

AT = "1998-12-01T10:30:00Z"
ADOPTED = "1998-12-01T09:00:00Z"


def git(top: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(top), "-c", "user.name=t", "-c", "user.email=t@localhost", *args],
                          check=True, capture_output=True, text=True).stdout


def run(rb: RepoBuilder, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--repo", str(rb.root)], catch_exceptions=False)


@pytest.fixture(params=["git-root", "policies"])
def rb(request: pytest.FixtureRequest, tmp_path: Path) -> RepoBuilder:
    """An adopted policy committed on main, and a branch access/x checked out. In the `policies`
    layout the git work tree also holds other things (a README, CI files) beside the policy."""
    top = tmp_path / "work"
    top.mkdir()
    root = top if request.param == "git-root" else top / "policies"
    rb = RepoBuilder(root, tmp_path / "keys").standard()
    # the fake target's state lives beside the policy root: keep it out of git
    (top / ".gitignore").write_text("fake-db.json\n")
    if root != top:
        (top / "README.md").write_text("the access policy is in policies/\n")
    git(top, "init", "-q", "-b", "main")
    assert run(rb, "apply", "--at", ADOPTED, "--no-commit").exit_code == 0  # adopt the policy
    git(top, "add", "-A")
    git(top, "commit", "-q", "-m", "policy and ledger")
    git(top, "switch", "-q", "-c", "access/x")
    return rb


def top_of(rb: RepoBuilder) -> Path:
    return Path(git(rb.root, "rev-parse", "--show-toplevel").strip())


def commit(rb: RepoBuilder, message: str = "change") -> None:
    git(top_of(rb), "add", "-A")
    git(top_of(rb), "commit", "-q", "-m", message)


def check(rb: RepoBuilder) -> tuple[int, dict[str, Any]]:
    res = run(rb, "check", "--base", "main", "--at", AT, "--format", "json")
    return res.exit_code, json.loads(res.output)


def markdown(rb: RepoBuilder) -> tuple[int, str]:
    res = run(rb, "check", "--base", "main", "--at", AT, "--format", "markdown")
    return res.exit_code, res.output


def guarded(report: dict[str, Any]) -> list[str]:
    return sorted(g["path"] for g in report["guarded"])


# -- paths are the policy root's, on both sides --------------------------------------------------


def test_a_request_is_reviewed_with_paths_from_the_policy_root(rb: RepoBuilder) -> None:
    rb.grant("alice-read", "alice", "1998-12-01T10:00:00Z", "2h")
    code, report = check(rb)
    assert code == 0, report
    (g,) = report["grants"]
    assert (g["name"], g["path"], g["change"], g["state"], g["approvers"]) == (
        "alice-read", "grants/alice-read.yaml", "added", "pending", ["bob", "lead"])
    assert report["guarded"] == [] and report["policy_files"] == []


def test_an_approved_request_shows_what_merging_grants(rb: RepoBuilder) -> None:
    rb.grant("alice-read", "alice", "1998-12-01T10:00:00Z", "2h", approvers=("lead",))
    commit(rb, "request")
    code, md = markdown(rb)
    assert code == 0, md
    assert "- grant `app_read` to `alice` on `db`" in md


def test_a_deleted_grant_is_read_from_the_base_in_the_same_directory(rb: RepoBuilder) -> None:
    git(top_of(rb), "switch", "-q", "main")
    rb.grant("alice-read", "alice", "1998-12-01T10:00:00Z", "2h", approvers=("lead",))
    commit(rb, "alice's grant")
    git(top_of(rb), "switch", "-q", "-C", "access/x")
    (rb.root / "grants" / "alice-read.yaml").unlink()
    code, report = check(rb)
    assert code == 0, report
    (g,) = report["grants"]
    assert (g["name"], g["path"], g["change"], g["state"]) == (
        "alice-read", "grants/alice-read.yaml", "deleted", "revoked")
    assert "was active" in g["reason"]
    assert report["revoke"] == [{"target": "db", "model": "role-membership", "principal": "alice",
                                 "privilege": "app_read"}]


def test_a_policy_change_is_listed_relative_to_the_policy_root(rb: RepoBuilder) -> None:
    rb.team("eng", ["alice", "bob", "lead"])
    code, report = check(rb)
    assert code == 0, report
    assert report["policy_files"] == ["teams/eng.yaml"]
    assert report["policy"]["approved"] is False and report["policy"]["admin_people"] == ["admin"]


@pytest.mark.parametrize("rb", ["policies"], indirect=True)
def test_files_outside_the_policy_root_are_not_policy(rb: RepoBuilder) -> None:
    top = top_of(rb)
    assert top != rb.root
    (top / "README.md").write_text("changed\n")
    (top / "grants").mkdir()
    write_yaml(top / "grants" / "decoy.yaml", {"not": "a policy file"})
    code, report = check(rb)
    assert code == 0, report
    assert report["grants"] == [] and report["policy_files"] == [] and report["guarded"] == []
    assert report["policy_root"] == "policies"


# -- guarded paths -----------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["add", "append", "delete"])
def test_any_edit_to_audit_is_not_approvable(rb: RepoBuilder, how: str) -> None:
    ledger = rb.root / "audit" / "ledger.jsonl"
    if how == "add":
        (rb.root / "audit" / "extra.jsonl").write_text("")
        expected = ["audit/extra.jsonl"]
    elif how == "append":
        ledger.write_text(ledger.read_text() + ledger.read_text().splitlines()[-1] + "\n")
        expected = ["audit/ledger.jsonl"]
    else:
        ledger.unlink()
        expected = ["audit/ledger.jsonl"]
    commit(rb)
    code, report = check(rb)
    assert code == 1 and report["approvable"] is False
    assert guarded(report) == expected
    assert any("edits audit/" in p and "not approvable without admin review" in p for p in report["problems"])
    code, md = markdown(rb)
    assert code == 1 and "🚨" in md and f"`{expected[0]}`" in md and "written only by the reconciler" in md


def test_deleting_the_ledger_with_a_relaxation_grants_nothing_in_the_report(rb: RepoBuilder) -> None:
    """Deleting audit/ made the next run treat the change as a first run and adopt it: the check
    still reads the base's ledger, so it reports the relaxation as waiting for the admins."""
    for f in (rb.root / "audit").iterdir():
        f.unlink() if f.is_file() else None
    rb.workflow("prod", approvals={"required": 0})
    rb.grant("alice-write", "alice", "1998-12-01T10:00:00Z", "2h", role="write")
    code, report = check(rb)
    assert code == 1
    assert "audit/ledger.jsonl" in guarded(report)
    assert report["policy"]["approved"] is False and report["grant"] == []
    assert {k["privilege"] for k in report["grant_after_policy"]} == {"app_read", "app_write"}
    assert any("split the policy change" in p for p in report["problems"])


@pytest.mark.parametrize("where", ["policy root", "git root", "nested"])
def test_gitattributes_anywhere_is_not_approvable(rb: RepoBuilder, where: str) -> None:
    top = top_of(rb)
    path = {"policy root": rb.root, "git root": top, "nested": rb.root / "audit"}[where] / ".gitattributes"
    path.write_text("*.jsonl text eol=crlf\n")
    code, report = check(rb)
    assert code == 1
    (g,) = [g for g in report["guarded"] if g["why"].startswith(".gitattributes")]
    assert g["in_policy_root"] is (where != "git root" or top == rb.root)
    assert any(".gitattributes" in p for p in report["problems"])
    _, md = markdown(rb)
    assert ".gitattributes" in md and "Not approvable without admin review" in md


def test_a_symlink_leaving_the_policy_root_is_not_approvable(rb: RepoBuilder, tmp_path: Path) -> None:
    secret = tmp_path / "elsewhere.yaml"
    secret.write_text("{}\n")
    (rb.root / "grants").mkdir(exist_ok=True)
    (rb.root / "grants" / "sneaky.yaml").symlink_to(os.path.relpath(secret, rb.root / "grants"))
    (rb.root / "people" / "root.yaml").symlink_to("/etc/hostname")
    commit(rb)
    code, report = check(rb)
    assert code == 1
    assert guarded(report) == ["grants/sneaky.yaml", "people/root.yaml"]
    assert any("symbolic link" in p for p in report["problems"])


def test_a_linked_directory_outside_is_neither_followed_nor_approvable(rb: RepoBuilder, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    rb.grant("alice-read", "alice", "1998-12-01T10:00:00Z", "2h", approvers=("lead",))
    (rb.root / "grants" / "alice-read.yaml").rename(outside / "alice-read.yaml")
    (rb.root / "grants").rmdir()
    (rb.root / "grants").symlink_to(outside)
    code, report = check(rb)
    assert code == 1 and guarded(report) == ["grants"]
    assert report["grants"] == [] and report["grant"] == []


def test_a_symlink_inside_the_policy_root_is_left_to_validation(rb: RepoBuilder) -> None:
    (rb.root / "grants").mkdir(exist_ok=True)
    (rb.root / "grants" / "alias.yaml").symlink_to("../teams/eng.yaml")
    code, report = check(rb)
    assert report["guarded"] == []
    assert code == 1 and report["diagnostics"]  # the loader refuses links


def test_trust_root_inputs_are_one_environment_independent_list() -> None:
    assert TRUST_ROOT_INPUTS[0] == "trust/" and "jitpol.yaml#spec.admins" in TRUST_ROOT_INPUTS


def test_the_trust_directory_is_not_approvable(rb: RepoBuilder) -> None:
    (rb.root / "trust").mkdir()
    (rb.root / "trust" / "root.json").write_text("{}\n")
    code, report = check(rb)
    assert code == 1 and guarded(report) == ["trust/root.json"]
    assert any("trust root" in p for p in report["problems"])


@pytest.mark.parametrize(("field", "value"), [("admins", ["team:admins", "person:alice"]),
                                               ("policyApprovals", {"required": 2}),
                                               ("ledger", {"dir": "elsewhere"})])
def test_who_approves_policy_is_a_trust_root_input(rb: RepoBuilder, field: str, value: Any) -> None:
    cfg = load_doc(rb.root / "jitpol.yaml")
    cfg["spec"][field] = value
    write_yaml(rb.root / "jitpol.yaml", cfg)
    code, report = check(rb)
    assert code == 1 and guarded(report) == ["jitpol.yaml"]
    assert field in report["guarded"][0]["why"]
    _, md = markdown(rb)
    assert f"🚨 `jitpol.yaml` (modified): a trust-root input (jitpol.yaml spec.{field})" in md


def test_other_config_changes_are_policy_changes_not_trust_root(rb: RepoBuilder) -> None:
    cfg = load_doc(rb.root / "jitpol.yaml")
    cfg["spec"]["timezone"] = "Europe/Berlin"
    write_yaml(rb.root / "jitpol.yaml", cfg)
    code, report = check(rb)
    assert code == 0, report
    assert report["guarded"] == [] and report["policy_files"] == ["jitpol.yaml"]


# -- the effective policy decides ----------------------------------------------------------------


def test_an_approver_the_change_adds_is_not_listed_as_sufficient(rb: RepoBuilder) -> None:
    rb.team("leads", ["lead", "bob", "alice"])  # alice makes herself an approver...
    rb.grant("bob-read", "bob", "1998-12-01T10:00:00Z", "2h")  # ...of her teammate's grant
    code, report = check(rb)
    assert code == 0, report
    (g,) = report["grants"]
    assert g["approvers"] == ["lead"] and g["approvers_after_policy"] == ["alice"]
    assert any("needs admin approval first" in w and "admin" in w for w in report["warnings"])
    code, md = markdown(rb)
    assert "approval by one of: lead;" in md and "approval by one of: alice" not in md
    assert "not sufficient until the admins approve the policy change: alice" in md
    assert "team:admins (admin)" in md


def test_an_approval_by_someone_the_change_adds_does_not_count(rb: RepoBuilder) -> None:
    rb.team("leads", ["lead", "bob", "alice"])
    rb.grant("bob-read", "bob", "1998-12-01T10:00:00Z", "2h", approvers=("alice",))
    commit(rb)
    code, report = check(rb)
    assert code == 1
    (g,) = report["grants"]
    assert g["state"] == "pending" and g["state_after_policy"] == "active" and g["depends_on_policy"]
    assert g["approvers"] == ["lead"] and g["approvers_after_policy"] == ["alice"]
    assert report["grant"] == []
    assert report["grant_after_policy"] == [{"target": "db", "model": "role-membership", "principal": "bob",
                                             "privilege": "app_read"}]
    _, md = markdown(rb)
    assert "#### Once the admins approve the policy change, merging would" in md
    assert "- grant `app_read` to `bob` on `db`" in md.split("#### Once the admins")[1]


def test_a_removed_approver_is_gone_at_once(rb: RepoBuilder) -> None:
    rb.team("leads", ["lead"])  # a restriction bites without admin approval
    rb.grant("alice-read", "alice", "1998-12-01T10:00:00Z", "2h")
    code, report = check(rb)
    assert code == 0, report
    assert report["grants"][0]["approvers"] == ["lead"]


def test_a_relaxed_workflow_grants_only_once_the_admins_approve(rb: RepoBuilder) -> None:
    rb.workflow("prod", approvals={"required": 0})
    rb.grant("alice-read", "alice", "1998-12-01T10:00:00Z", "2h")
    code, report = check(rb)
    assert code == 1
    assert report["grant"] == [] and len(report["grant_after_policy"]) == 1
    assert any("split the policy change" in p for p in report["problems"])


def test_an_admin_approved_policy_change_takes_effect_in_the_report(rb: RepoBuilder) -> None:
    rb.team("leads", ["lead", "bob", "alice"])
    commit(rb, "policy")
    assert run(rb, "approve", "--policy", "--as", "admin", "--key", str(rb.key("admin"))).exit_code == 0
    rb.grant("bob-read", "bob", "1998-12-01T10:00:00Z", "2h")
    code, report = check(rb)
    assert code == 0, report
    assert report["policy"]["approved"] is True
    assert report["grants"][0]["approvers"] == ["alice", "lead"]
    assert report["grants"][0]["approvers_after_policy"] == []


def test_a_new_person_file_is_no_approver_yet(rb: RepoBuilder) -> None:
    rb.person("mallory")
    write_yaml(rb.root / "teams" / "leads.yaml", doc("Team", "leads", {"members": ["lead", "bob", "mallory"]}))
    rb.grant("alice-read", "alice", "1998-12-01T10:00:00Z", "2h")
    code, report = check(rb)
    assert code == 0, report
    g = report["grants"][0]
    assert g["approvers"] == ["bob", "lead"] and g["approvers_after_policy"] == ["mallory"]


def test_ci_files_that_run_the_reconciler_are_warned_about(rb: RepoBuilder) -> None:
    write_yaml(top_of(rb) / ".github" / "workflows" / "jitpol-reconcile.yml", {"name": "reconcile"})
    code, report = check(rb)
    assert code == 0, report
    assert any(".github/workflows/jitpol-reconcile.yml" in w for w in report["warnings"])
    assert report["policy_files"] == []
    _, md = markdown(rb)
    assert "⚠️ the change edits CI files that run the reconciler" in md
