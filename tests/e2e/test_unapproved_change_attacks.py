"""Attacks by a requester who gets a change merged without admin approval (docs/threat-model.md).

Each test first makes a policy the one in force (the first run adopts it), then commits the
attacker's unapproved change and checks that only the effective policy decided: the change neither
gives, widens, redirects nor reveals access. Every one of these succeeded before the effective
policy (jitpol.policy.effective) existed.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from jitpol.cli.main import cli
from tests.doubles.github import GitHubDouble, GitHubState, PullCommit, PullRequest
from tests.helpers.git import git
from tests.helpers.repo import RepoBuilder, write_yaml

TOKEN = "ghp_the_real_token"
DSN_SECRET = "postgresql://postgres:SuperSecretPw@db.internal/postgres"
START, AT, LATER = "1998-12-01T10:00:00Z", "1998-12-01T10:30:00Z", "1998-12-01T10:40:00Z"


def run(rb: RepoBuilder, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, [*args, "--repo", str(rb.root)], env=env or {}, catch_exceptions=False)


def edit(path: Path, change: Any) -> None:
    data = json.loads(path.read_text())
    change(data["spec"])
    path.write_text(json.dumps(data))


def statuses(rb: RepoBuilder, env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    res = run(rb, "status", "--at", AT, "--format", "json", env=env)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["policy"]["approved"] is False, "the attack must be an unapproved change"
    return {g["name"]: g for g in out["grants"]}


def adopt(rb: RepoBuilder, env: dict[str, str] | None = None) -> None:
    res = run(rb, "apply", "--at", START, env=env)
    assert res.exit_code == 0, res.output


# -- keys: the secret of another person's checkout ---------------------------------------------


def test_adding_ones_key_to_another_persons_file_reveals_no_secret(tmp_path: Path) -> None:
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    rb.workflow("prod", approvals={"required": 0})
    rb.resource("db-shared", model="credential-checkout", account="app_admin", roles=None)
    rb.set_fake_state({"members": {}, "shared": {"app_admin": {"password": "initial-unknown"}}})
    adopt(rb)
    # alice (a requester) appends a key only she holds to bob's person file in the change that
    # carries bob's checkout, merged without admin approval: the secret is made and delivered now
    stolen = rb.keydir / "alice-second"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "x", "-f", str(stolen)], check=True)
    edit(rb.root / "people" / "bob.yaml", lambda spec: spec["keys"].append(Path(f"{stolen}.pub").read_text().strip()))
    rb.grant("bob-shared", "bob", START, "2h", resource="db-shared", role=None)
    res = run(rb, "apply", "--at", AT)
    assert res.exit_code == 0, res.output
    res = run(rb, "credentials", "bob-shared", "--key", str(stolen))
    assert res.exit_code != 0, "alice opened bob's checked-out secret"
    assert run(rb, "credentials", "bob-shared", "--key", str(rb.key("bob"))).exit_code == 0


# -- exclusive and the observed scope -------------------------------------------------------------


def test_an_unapproved_exclusive_flag_revokes_nobody(tmp_path: Path) -> None:
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    rb.set_fake_state({"members": {"app_read": ["carol-unmanaged"], "ops_admin": ["dave-unmanaged"]}})
    adopt(rb)
    # the attacker flips exclusive on, and adds a new exclusive resource over another privilege
    edit(rb.root / "resources" / "db-prod.yaml", lambda spec: spec.update(exclusive=True))
    rb.resource("ops", exclusive=True, roles={"admin": {"grants": ["ops_admin"]}})
    res = run(rb, "apply", "--at", AT)
    assert res.exit_code == 0, res.output
    assert rb.members("app_read") == ["carol-unmanaged"]
    assert rb.members("ops_admin") == ["dave-unmanaged"]


def test_an_unapproved_new_person_and_team_membership_give_nothing(tmp_path: Path) -> None:
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    adopt(rb)
    rb.person("mallory")
    rb.team("eng", ["alice", "bob", "mallory"])
    rb.team("leads", ["lead", "bob", "mallory"])
    rb.grant("mallory-read", "mallory", START, "2h", approvers=("bob",))
    rb.grant("alice-read", "alice", START, "2h", approvers=("mallory",))
    st = statuses(rb)
    assert st["mallory-read"]["state"] != "active" and st["alice-read"]["state"] != "active"
    assert run(rb, "apply", "--at", AT).exit_code == 0
    assert rb.members("app_read") == []


def test_an_unapproved_account_mapping_redirects_no_grant(tmp_path: Path) -> None:
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    rb.grant("alice-read", "alice", START, "4h", approvers=("lead",))
    adopt(rb)
    assert rb.members("app_read") == ["alice"]
    rb.person("alice", accounts={"fake": "mallory-account"})  # her grant, now to the attacker's account
    assert run(rb, "apply", "--at", AT).exit_code == 0
    assert "mallory-account" not in rb.members("app_read")


# -- the git host: where reviews come from, which token goes there, whose review counts -----------




@pytest.fixture
def hosts() -> Iterator[tuple[GitHubDouble, GitHubDouble]]:
    with GitHubDouble(GitHubState(repository="org/access", token=TOKEN)) as real, \
            GitHubDouble(GitHubState(repository="evil/access", token=None)) as evil:
        yield real, evil


def review_repo(tmp_path: Path, real: GitHubDouble) -> RepoBuilder:
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    cfg = json.loads((rb.root / "jitpol.yaml").read_text())
    cfg["spec"]["git"] = {"host": "github", "api_url": real.url, "repository": "org/access", "token_env": "GH_TOKEN"}
    write_yaml(rb.root / "jitpol.yaml", cfg)
    for person in ("alice", "bob", "lead", "admin"):
        rb.person(person, accounts={"fake": person, "github": f"{person}-gh"})
    rb.workflow("prod", approvals={"required": 1, "approvers": ["team:leads"], "via": "github-review"})
    git(rb.root, "init", "-q", "-b", "main")
    git(rb.root, "add", "-A")
    git(rb.root, "commit", "-q", "-m", "policy")
    return rb


def publish(rb: RepoBuilder, host: GitHubDouble, number: int, author: str, *, commit: bool = True) -> str:
    """Commit the work tree as pull request `number` by `author`, merged (commit=False: HEAD as
    it is), and tell `host` about it; returns the head sha."""
    if commit:
        git(rb.root, "add", "-A")
        git(rb.root, "commit", "-q", "-m", f"request (#{number})", who=author)
    head = git(rb.root, "rev-parse", "HEAD")
    st = host.state
    st.commits.add(head)
    for name in git(rb.root, "ls-tree", "-r", "--name-only", head).splitlines():
        st.files[(head, name)] = subprocess.run(["git", "cat-file", "blob", f"{head}:{name}"], cwd=rb.root,
                                                check=True, capture_output=True).stdout
    st.associate(head, number)
    st.add_pull(PullRequest(number=number, author=f"{author}-gh", head_sha=head, merge_commit_sha=head),
                [PullCommit(head, f"{author}-gh")])
    return head


def test_an_unapproved_git_host_gets_no_request_and_no_secret(tmp_path: Path,
                                                               hosts: tuple[GitHubDouble, GitHubDouble]) -> None:
    real, evil = hosts
    rb = review_repo(tmp_path, real)
    env = {"GH_TOKEN": TOKEN, "JITPOL_TEST_DSN": DSN_SECRET}
    adopt(rb, env)
    # the attacker points reviews at a host of theirs, with the DSN variable as the "token"
    cfg = json.loads((rb.root / "jitpol.yaml").read_text())
    cfg["spec"]["git"] = {"host": "github", "api_url": evil.url, "repository": "evil/access",
                          "token_env": "JITPOL_TEST_DSN"}
    write_yaml(rb.root / "jitpol.yaml", cfg)
    rb.grant("alice-write", "alice", START, "2h", role="write")
    head = publish(rb, evil, 5, "alice")
    evil.state.review(5, "lead-gh", "APPROVED", head)  # a forged review on the attacker's host
    publish(rb, real, 5, "alice", commit=False)  # the real host knows the pull request too, unreviewed
    st = statuses(rb, env)
    assert st["alice-write"]["state"] == "pending"
    assert run(rb, "apply", "--at", AT, env=env).exit_code == 0
    assert rb.members("app_write") == []
    assert evil.state.requests == [], "jitpol talked to a git host only the unapproved change names"
    assert all(DSN_SECRET not in json.dumps(r.headers) for r in real.state.requests)


def test_an_unapproved_login_mapping_makes_no_review_count(tmp_path: Path,
                                                           hosts: tuple[GitHubDouble, GitHubDouble]) -> None:
    real, _ = hosts
    rb = review_repo(tmp_path, real)
    env = {"GH_TOKEN": TOKEN}
    adopt(rb, env)
    # bob (an engineer and, here, not the requester) remaps lead's login to his own
    rb.person("lead", accounts={"fake": "lead", "github": "mallory-gh"})
    rb.grant("alice-read", "alice", START, "2h")
    head = publish(rb, real, 8, "alice")
    real.state.review(8, "mallory-gh", "APPROVED", head)
    st = statuses(rb, env)
    assert st["alice-read"]["state"] == "pending", st["alice-read"]
    assert run(rb, "apply", "--at", AT, env=env).exit_code == 0
    assert rb.members("app_read") == []
    # a changed mapping is trusted in neither direction until the admins approve it: lead's
    # review under her old login does not count either; once they approve, the new one does
    real.state.review(8, "lead-gh", "APPROVED", head)
    assert statuses(rb, env)["alice-read"]["state"] == "pending"
    assert run(rb, "approve", "--policy", "--as", "admin", "--key", str(rb.key("admin"))).exit_code == 0
    res = run(rb, "status", "--at", AT, "--format", "json", env=env)
    assert json.loads(res.stdout)["policy"]["approved"] is True
    assert {g["name"]: g["state"] for g in json.loads(res.stdout)["grants"]}["alice-read"] == "active"
