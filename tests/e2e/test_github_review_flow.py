"""approvals.via github-review through the CLI: only a review of the exact merged content, by an
approver who is not the author, activates a grant."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from jitpol.cli.main import cli
from tests.doubles.github import GitHubDouble, GitHubState, PullCommit, PullRequest
from tests.helpers.git import git
from tests.helpers.repo import RepoBuilder

TOKEN = "ghp_test_token_never_printed"
AT = "1998-12-01T10:30:00Z"




@pytest.fixture
def gh() -> Iterator[GitHubDouble]:
    with GitHubDouble(GitHubState(repository="org/access", token=TOKEN)) as double:
        yield double


@pytest.fixture
def rb(tmp_path: Path, gh: GitHubDouble) -> RepoBuilder:
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys")
    rb.standard()
    cfg = json.loads((rb.root / "jitpol.yaml").read_text())
    cfg["spec"]["git"] = {"host": "github", "api_url": gh.url, "repository": "org/access", "token_env": "GH_TOKEN"}
    (rb.root / "jitpol.yaml").write_text(json.dumps(cfg))
    for person in ("alice", "bob", "lead", "admin"):
        rb.person(person, accounts={"fake": person, "github": f"{person}-gh"})
    rb.workflow("prod", approvals={"required": 1, "approvers": ["team:leads"], "via": "github-review"})
    git(rb.root, "init", "-q", "-b", "main")
    git(rb.root, "add", "-A")
    git(rb.root, "commit", "-q", "-m", "policy")
    return rb


def merge_pull(rb: RepoBuilder, gh: GitHubDouble, number: int, author: str) -> str:
    """Commit the work tree's new grant on a branch, squash-merge it into main; returns head sha."""
    git(rb.root, "switch", "-q", "-c", f"pr-{number}")
    git(rb.root, "add", "-A")
    git(rb.root, "commit", "-q", "-m", "request", who=author)
    head = git(rb.root, "rev-parse", "HEAD")
    git(rb.root, "switch", "-q", "main")
    git(rb.root, "merge", "-q", "--squash", f"pr-{number}")
    git(rb.root, "commit", "-q", "-m", f"Squashed (#{number})", who=author)
    merged = git(rb.root, "rev-parse", "HEAD")
    st = gh.state
    for sha in (head, merged):
        st.commits.add(sha)
        for name in git(rb.root, "ls-tree", "-r", "--name-only", sha).splitlines():
            st.files[(sha, name)] = subprocess.run(["git", "cat-file", "blob", f"{sha}:{name}"], cwd=rb.root,
                                                   check=True, capture_output=True).stdout
        st.associate(sha, number)
    st.add_pull(PullRequest(number=number, author=f"{author}-gh", head_sha=head, merge_commit_sha=merged),
                [PullCommit(head, f"{author}-gh")])
    return head


def state(rb: RepoBuilder, name: str) -> dict[str, Any]:
    res = CliRunner().invoke(cli, ["status", "--repo", str(rb.root), "--at", AT, "--format", "json"],
                             env={"GH_TOKEN": TOKEN}, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert TOKEN not in res.output
    found: dict[str, Any] = next(g for g in json.loads(res.stdout)["grants"] if g["name"] == name)
    return found


def test_review_by_an_approver_activates(rb: RepoBuilder, gh: GitHubDouble) -> None:
    rb.grant("alice-read", "alice", "1998-12-01T10:00:00Z", "2h")
    head = merge_pull(rb, gh, 7, "alice")
    assert state(rb, "alice-read")["state"] == "pending"
    gh.state.review(7, "alice-gh", "APPROVED", head)  # the author approving herself: no
    st = state(rb, "alice-read")
    assert st["state"] == "pending" and "alice-gh" in st["reason"] and "author" in st["reason"]
    gh.state.review(7, "lead-gh", "APPROVED", head)
    st = state(rb, "alice-read")
    assert st["state"] == "active" and st["approvals"] == ["lead"]


def test_direct_push_and_non_approver_review_do_not_activate(rb: RepoBuilder, gh: GitHubDouble) -> None:
    rb.grant("alice-read", "alice", "1998-12-01T10:00:00Z", "2h")
    git(rb.root, "add", "-A")
    git(rb.root, "commit", "-q", "-m", "direct push", who="alice")
    st = state(rb, "alice-read")
    assert st["state"] == "pending" and "no review can cover it" in st["reason"]


def test_review_by_someone_outside_the_approvers_does_not_count(rb: RepoBuilder, gh: GitHubDouble) -> None:
    rb.grant("alice-read", "alice", "1998-12-01T10:00:00Z", "2h")
    head = merge_pull(rb, gh, 9, "alice")
    gh.state.review(9, "admin-gh", "APPROVED", head)
    st = state(rb, "alice-read")
    assert st["state"] == "pending" and "not an approver" in st["reason"]


def test_unreachable_host_leaves_grants_pending(rb: RepoBuilder, gh: GitHubDouble) -> None:
    rb.grant("alice-read", "alice", "1998-12-01T10:00:00Z", "2h")
    head = merge_pull(rb, gh, 10, "alice")
    gh.state.review(10, "lead-gh", "APPROVED", head)
    gh.state.fail_status = 502
    st = state(rb, "alice-read")
    assert st["state"] == "pending" and "could not check pull-request reviews" in st["reason"]


def test_the_activation_names_the_review_that_counted(rb: RepoBuilder, gh: GitHubDouble) -> None:
    rb.grant("alice-read", "alice", "1998-12-01T10:00:00Z", "2h")
    head = merge_pull(rb, gh, 11, "alice")
    gh.state.review(11, "lead-gh", "APPROVED", head)
    res = CliRunner().invoke(cli, ["apply", "--repo", str(rb.root), "--at", AT, "--no-commit"],
                             env={"GH_TOKEN": TOKEN}, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    events = [json.loads(x) for x in (rb.root / "audit" / "ledger.jsonl").read_text().splitlines()]
    (activated,) = [e for e in events if e["event"] == "grant.activated"]
    (review,) = [r for r in gh.state.reviews[11] if r.login == "lead-gh"]
    assert activated["approvals"] == [{"by": "lead", "via": "github-review", "login": "lead-gh", "pull": 11,
                                       "review": review.id}]
    assert activated["breakglass"] is False and activated["justification"] == "INC-1 testing"
