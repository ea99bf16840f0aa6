"""Review-based approvals (`approvals.via: github-review`) re-proved through the GitHub REST API:
real git repositories in temporary directories play the policy repository, a local HTTP double
of GitHub (tests/doubles/github.py) serves the pull requests, reviews, commits and file contents
those commits really have."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from jitpol.errors import PermanentTargetError, TargetUnavailable
from jitpol.vcs.github import CONTENT_DIFFERS, NO_PULL, GitHubReviews, ReviewVerdict
from tests.doubles.github import GitHubDouble, GitHubState, PullCommit, PullRequest

TOKEN = "ghp_" + "T0kenSecretValue" * 2
GRANT = "grants/alice-db.yaml"


def grant_text(tag: str) -> str:
    return (
        "apiVersion: jitpol/v1\nkind: Grant\nmetadata: {name: alice-db}\n"
        f"spec: {{requester: alice, resource: db-prod, role: read, justification: {tag}}}\n"
    )


@pytest.fixture(autouse=True)
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the host's git configuration out, give tests an identity and a default branch."""
    config = tmp_path / "gitconfig"
    config.write_text("[user]\n\tname = Tester\n\temail = tester@example.com\n[init]\n\tdefaultBranch = main\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


class Forge:
    """A git repository as GitHub hosts it: commits are made for real, and the double's state is
    filled with what GitHub would know about them (pull requests, associations, file contents)."""

    def __init__(self, root: Path, gh: GitHubDouble) -> None:
        self.root = root
        self.gh = gh
        self.state = gh.state
        root.mkdir(parents=True)
        self.git("init", "-q")
        self.publish(self.commit({"README.md": "policy repository\n"}, who="admin"))

    def git(self, *args: str, who: str = "tester") -> str:
        env = {**os.environ, "GIT_AUTHOR_NAME": who, "GIT_AUTHOR_EMAIL": f"{who}@example.com",
               "GIT_COMMITTER_NAME": who, "GIT_COMMITTER_EMAIL": f"{who}@example.com"}
        done = subprocess.run(["git", *args], cwd=self.root, env=env, check=True, capture_output=True, text=True)
        return done.stdout.strip()

    def commit(self, files: dict[str, str], *, who: str = "alice", message: str = "change") -> str:
        for name, text in files.items():
            (self.root / name).parent.mkdir(parents=True, exist_ok=True)
            (self.root / name).write_text(text)
        self.git("add", "--all")
        self.git("commit", "-q", "-m", message, who=who)
        return self.git("rev-parse", "HEAD")

    def publish(self, *shas: str) -> None:
        """The commits are pushed: the host knows them and serves their files."""
        for sha in shas:
            self.state.commits.add(sha)
            for name in self.git("ls-tree", "-r", "--name-only", sha).splitlines():
                blob = subprocess.run(["git", "cat-file", "blob", f"{sha}:{name}"], cwd=self.root,
                                      check=True, capture_output=True).stdout
                self.state.files[(sha, name)] = blob

    def pull(self, number: int, commits: list[tuple[dict[str, str], str]], *, author: str = "alice",
             how: str = "squash", merge: bool = True) -> PullRequest:
        """Open pull request `number` from a branch with `commits` ((files, git author login) each)
        and, when `merge`, merge it into main the way GitHub's button does (`how`)."""
        branch = f"pr-{number}"
        self.git("switch", "-q", "-c", branch, "main")
        heads = [self.commit(files, who=who, message=f"pr {number} commit") for files, who in commits]
        self.git("switch", "-q", "main")
        landed: list[str] = []
        if merge and how == "squash":
            self.git("merge", "-q", "--squash", branch)
            self.git("commit", "-q", "-m", f"Squashed (#{number})", who=author)
            landed = [self.git("rev-parse", "HEAD")]
        elif merge and how == "merge":
            self.git("merge", "-q", "--no-ff", "-m", f"Merge pull request #{number}", branch, who="web-flow")
            landed = [self.git("rev-parse", "HEAD")]
        elif merge and how == "rebase":
            for head in heads:
                self.git("cherry-pick", "--allow-empty", head, who="web-flow")
                landed.append(self.git("rev-parse", "HEAD"))
        self.publish(*heads, *landed)
        pull = self.state.add_pull(
            PullRequest(number=number, author=author, head_sha=heads[-1], head_ref=branch,
                        merged_at="1998-01-10T12:00:00Z" if merge else None,
                        merge_commit_sha=landed[-1] if landed else None),
            [PullCommit(sha, who) for sha, (_, who) in zip(heads, commits, strict=True)],
        )
        for sha in [*heads, *landed]:
            self.state.associate(sha, number)
        return pull

    def reviews(self, *, token: str | None = TOKEN, url: str | None = None) -> GitHubReviews:
        return GitHubReviews(url or self.gh.url, "org/access", token, self.root, timeout=5.0)

    def verdict(self, path: str = GRANT) -> ReviewVerdict:
        return self.reviews().verdicts([path])[path]


@pytest.fixture
def github() -> Iterator[GitHubDouble]:
    with GitHubDouble(GitHubState(repository="org/access", token=TOKEN)) as gh:
        yield gh


@pytest.fixture
def forge(tmp_path: Path, github: GitHubDouble) -> Forge:
    return Forge(tmp_path / "access", github)


# --- approvals that count ------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["squash", "merge", "rebase"])
def test_an_approved_merged_pull_request_counts(forge: Forge, how: str) -> None:
    pull = forge.pull(7, [({GRANT: grant_text("INC-1")}, "alice")], how=how)
    forge.state.review(7, "Bob", "APPROVED", pull.head_sha)

    verdict = forge.verdict()

    (review,) = forge.state.reviews[7]
    assert verdict == ReviewVerdict(path=GRANT, pull=7, approvers=("bob",), excluded=(),
                                    reason="approved in pull request #7 by bob", review_ids=(("bob", review.id),))
    request = forge.state.requests_to("/reviews")[0]
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["accept"] == "application/vnd.github+json"
    assert request.headers["x-github-api-version"] == "2022-11-28"


def test_several_approvers_are_sorted_and_lower_cased(forge: Forge) -> None:
    pull = forge.pull(3, [({GRANT: grant_text("INC-2")}, "alice")])
    for login in ("Zed", "carol", "BOB"):
        forge.state.review(3, login, "APPROVED", pull.head_sha)
    assert forge.verdict().approvers == ("bob", "carol", "zed")


def test_comment_after_approval_keeps_it_and_a_new_approval_after_changes_requested_counts(forge: Forge) -> None:
    pull = forge.pull(4, [({GRANT: grant_text("INC-3")}, "alice")])
    forge.state.review(4, "bob", "APPROVED", pull.head_sha)
    forge.state.review(4, "bob", "COMMENTED", pull.head_sha)
    forge.state.review(4, "carol", "CHANGES_REQUESTED", pull.head_sha)
    forge.state.review(4, "carol", "APPROVED", pull.head_sha)
    forge.state.review(4, "dave", "PENDING", pull.head_sha)
    assert forge.verdict().approvers == ("bob", "carol")


# --- reviews that do not count -------------------------------------------------------------------


def test_the_authors_own_approval_is_excluded(forge: Forge) -> None:
    pull = forge.pull(5, [({GRANT: grant_text("INC-4")}, "alice")], author="Alice")
    forge.state.review(5, "alice", "APPROVED", pull.head_sha)
    forge.state.review(5, "bob", "APPROVED", pull.head_sha)

    verdict = forge.verdict()

    assert verdict.approvers == ("bob",)
    assert verdict.excluded == ("alice: author of the pull request",)


@pytest.mark.parametrize("role", ["author", "committer"])
def test_a_reviewer_who_pushed_a_commit_to_the_pull_request_is_excluded(forge: Forge, role: str) -> None:
    pull = forge.pull(6, [({GRANT: grant_text("draft")}, "alice"), ({GRANT: grant_text("INC-5")}, "carol")])
    if role == "committer":  # alice's name on the commit, but carol made it (e.g. amended and pushed)
        forge.state.pull_commits[6][1] = PullCommit(pull.head_sha, "alice", committer="Carol")
    forge.state.review(6, "carol", "APPROVED", pull.head_sha)

    verdict = forge.verdict()

    assert verdict.approvers == ()
    assert verdict.excluded == ("carol: authored or committed commits in the pull request",)
    assert verdict.reason == "pull request #6 has no approval that counts"


def test_web_flow_as_committer_excludes_nobody(forge: Forge) -> None:
    pull = forge.pull(8, [({GRANT: grant_text("INC-6")}, "alice")])
    forge.state.pull_commits[8][0] = PullCommit(pull.head_sha, "alice", committer="web-flow")
    forge.state.review(8, "bob", "APPROVED", pull.head_sha)
    assert forge.verdict().approvers == ("bob",)


def test_bots_are_excluded(forge: Forge) -> None:
    pull = forge.pull(9, [({GRANT: grant_text("INC-7")}, "alice")])
    forge.state.review(9, "renovate[bot]", "APPROVED", pull.head_sha)
    forge.state.review(9, "approver-app", "APPROVED", pull.head_sha, user_type="Bot")

    verdict = forge.verdict()

    assert verdict.approvers == ()
    assert verdict.excluded == ("approver-app: a bot", "renovate[bot]: a bot")


def test_an_approval_of_an_earlier_push_does_not_count(forge: Forge) -> None:
    pull = forge.pull(10, [({GRANT: grant_text("harmless")}, "alice"), ({GRANT: grant_text("INC-8 admin")}, "alice")])
    first = forge.state.pull_commits[10][0].sha
    forge.state.review(10, "bob", "APPROVED", first)

    verdict = forge.verdict()

    assert verdict.approvers == ()
    assert verdict.excluded == (f"bob: approved {first[:12]}, not the merged head {pull.head_sha[:12]}",)


def test_approved_then_changes_requested_by_the_same_reviewer_does_not_count(forge: Forge) -> None:
    pull = forge.pull(11, [({GRANT: grant_text("INC-9")}, "alice")])
    forge.state.review(11, "bob", "APPROVED", pull.head_sha)
    forge.state.review(11, "bob", "CHANGES_REQUESTED", pull.head_sha)
    forge.state.review(11, "carol", "APPROVED", pull.head_sha)
    forge.state.reviews[11][-1].state = "DISMISSED"  # GitHub rewrites a dismissed review's state in place

    verdict = forge.verdict()

    assert verdict.approvers == ()
    assert verdict.excluded == ("bob: latest review is CHANGES_REQUESTED", "carol: latest review is DISMISSED")


def test_a_review_by_a_deleted_account_does_not_count(forge: Forge) -> None:
    pull = forge.pull(12, [({GRANT: grant_text("INC-10")}, "alice")])
    forge.state.review(12, None, "APPROVED", pull.head_sha)
    verdict = forge.verdict()
    assert verdict.approvers == ()
    assert verdict.excluded[0].startswith("<deleted account>")


def test_a_pull_request_without_a_known_author_yields_nothing(forge: Forge) -> None:
    pull = forge.pull(13, [({GRANT: grant_text("INC-11")}, "alice")])
    pull.author_missing = True
    forge.state.review(13, "bob", "APPROVED", pull.head_sha)
    verdict = forge.verdict()
    assert verdict.approvers == ()
    assert "no author" in verdict.reason


def test_a_pull_request_with_more_commits_than_github_lists_yields_nothing(forge: Forge) -> None:
    pull = forge.pull(14, [({GRANT: grant_text("INC-12")}, "alice")])
    forge.state.pull_commits[14] = [PullCommit(f"{i:040x}", "alice") for i in range(300)]
    forge.state.review(14, "bob", "APPROVED", pull.head_sha)
    verdict = forge.verdict()
    assert verdict.approvers == ()
    assert "250 or more commits" in verdict.reason


# --- content that no review covers ---------------------------------------------------------------


def test_a_direct_push_has_no_approvals(forge: Forge) -> None:
    sha = forge.commit({GRANT: grant_text("pushed")}, who="alice")
    forge.publish(sha)
    forge.state.associate(sha)  # GitHub knows the commit; no pull request brought it

    verdict = forge.verdict()

    assert verdict == ReviewVerdict(path=GRANT, pull=None, approvers=(), excluded=(), reason=NO_PULL)


def test_a_direct_push_after_an_approved_pull_request_voids_it(forge: Forge) -> None:
    pull = forge.pull(15, [({GRANT: grant_text("INC-13")}, "alice")])
    forge.state.review(15, "bob", "APPROVED", pull.head_sha)
    sha = forge.commit({GRANT: grant_text("INC-13 and prod-admin")}, who="alice")
    forge.publish(sha)

    assert forge.verdict().reason == NO_PULL


def test_an_approved_but_unmerged_pull_request_does_not_count(forge: Forge) -> None:
    pull = forge.pull(16, [({GRANT: grant_text("INC-14")}, "alice")], merge=False)
    forge.state.review(16, "bob", "APPROVED", pull.head_sha)
    forge.git("merge", "-q", "--ff-only", "pr-16")  # the head itself lands on main, not by merging #16

    verdict = forge.verdict()

    assert verdict.approvers == ()
    assert verdict.reason == f"{NO_PULL}: pull request #16 is not merged into main"


def test_a_pull_request_merged_into_another_branch_does_not_count(forge: Forge) -> None:
    pull = forge.pull(17, [({GRANT: grant_text("INC-15")}, "alice")])
    pull.base_ref = "release"
    forge.state.review(17, "bob", "APPROVED", pull.head_sha)
    assert forge.verdict().reason == f"{NO_PULL}: pull request #17 is not merged into main"


def test_merged_content_that_differs_from_the_reviewed_head_does_not_count(forge: Forge) -> None:
    pull = forge.pull(18, [({GRANT: grant_text("INC-16")}, "alice")])
    forge.state.review(18, "bob", "APPROVED", pull.head_sha)
    # The merge commit itself carries other content than the reviewed head (an "evil merge").
    (forge.root / GRANT).write_text(grant_text("INC-16 role: write"))
    forge.git("commit", "-q", "--amend", "--all", "--no-edit")
    merged = forge.git("rev-parse", "HEAD")
    forge.publish(merged)
    pull.merge_commit_sha = merged
    forge.state.associate(merged, 18)

    verdict = forge.verdict()

    assert verdict.approvers == ()
    assert verdict.pull == 18
    assert verdict.reason == f"{CONTENT_DIFFERS} in pull request #18 (head {pull.head_sha[:12]})"


def test_an_uncommitted_edit_in_the_work_tree_does_not_count(forge: Forge) -> None:
    pull = forge.pull(19, [({GRANT: grant_text("INC-17")}, "alice")])
    forge.state.review(19, "bob", "APPROVED", pull.head_sha)
    (forge.root / GRANT).write_text(grant_text("INC-17 but longer"))
    assert forge.verdict().reason == f"{CONTENT_DIFFERS}: the work-tree file has uncommitted changes"


def test_a_merge_that_resurrects_old_approved_content_does_not_reuse_the_old_approval(forge: Forge) -> None:
    """The grant was approved in #20, then revoked in #21. An unreviewed pull request #22 merges a
    branch that still has #20's content; git's default history simplification would trace the file
    back to #20's commit and its approval. Following first parents finds #22, which nobody approved."""
    old = forge.pull(20, [({GRANT: grant_text("INC-18")}, "alice")], how="merge")
    forge.state.review(20, "bob", "APPROVED", old.head_sha)
    revoke = forge.pull(21, [({GRANT: grant_text("INC-18") + "  revoke: true\n"}, "bob")], author="bob")
    forge.state.review(21, "carol", "APPROVED", revoke.head_sha)

    # Mallory branches from #20's old head, and "syncs" main with `-s ours`, which keeps the old file.
    forge.git("switch", "-q", "-c", "pr-22", old.head_sha)
    readme = forge.commit({"README.md": "typo fix\n"}, who="mallory")
    forge.git("merge", "-q", "-s", "ours", "-m", "sync main", "main", who="mallory")
    head = forge.git("rev-parse", "HEAD")
    forge.git("switch", "-q", "main")
    forge.git("merge", "-q", "--no-ff", "-m", "Merge pull request #22", "pr-22", who="web-flow")
    merged = forge.git("rev-parse", "HEAD")
    forge.publish(readme, head, merged)
    forge.state.add_pull(PullRequest(22, "mallory", head, merge_commit_sha=merged),
                         [PullCommit(readme, "mallory"), PullCommit(head, "mallory")])
    forge.state.associate(merged, 22)
    assert (forge.root / GRANT).read_text() == grant_text("INC-18")
    # what plain `git log -- path` would have trusted: #20's head, with bob's approval
    assert forge.git("log", "-1", "--format=%H", "--", GRANT) == old.head_sha

    verdict = forge.verdict()

    assert verdict.pull == 22
    assert verdict.approvers == ()


def test_a_commit_the_host_does_not_have_yields_nothing(forge: Forge) -> None:
    sha = forge.commit({GRANT: grant_text("local only")})
    verdict = forge.verdict()
    assert verdict.approvers == ()
    assert verdict.reason.startswith(f"commit {sha[:12]} is not on the git host")


def test_a_file_that_is_not_committed_yields_nothing(forge: Forge) -> None:
    (forge.root / "grants").mkdir()
    (forge.root / GRANT).write_text(grant_text("new"))
    assert forge.verdict().reason == "the grant file is not committed on this branch"


def test_a_symlinked_grant_file_yields_nothing(forge: Forge) -> None:
    pull = forge.pull(23, [({"grants/target.yaml": grant_text("INC-19")}, "alice")])
    forge.state.review(23, "bob", "APPROVED", pull.head_sha)
    (forge.root / GRANT).symlink_to("target.yaml")
    assert "symbolic link" in forge.verdict().reason


def test_a_shallow_clone_cannot_tell_which_commit_brought_the_content(forge: Forge, tmp_path: Path) -> None:
    pull = forge.pull(24, [({GRANT: grant_text("INC-20")}, "alice")])
    forge.state.review(24, "bob", "APPROVED", pull.head_sha)
    other = forge.pull(25, [({"grants/other.yaml": grant_text("other")}, "bob")], author="bob")
    forge.state.review(25, "carol", "APPROVED", other.head_sha)
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{forge.root}", str(shallow)], check=True)

    reviews = GitHubReviews(forge.gh.url, "org/access", TOKEN, shallow)
    verdict = reviews.verdicts([GRANT])[GRANT]

    # HEAD (#25's squash) looks like it added every file; #25's approval must not cover GRANT.
    assert verdict.approvers == ()
    assert "shallow" in verdict.reason


def test_policies_in_a_subdirectory_are_looked_up_by_their_repository_path(forge: Forge) -> None:
    path = "policies/" + GRANT
    pull = forge.pull(26, [({path: grant_text("INC-21")}, "alice")])
    forge.state.review(26, "bob", "APPROVED", pull.head_sha)
    verdict = GitHubReviews(forge.gh.url, "org/access", TOKEN, forge.root / "policies").verdicts([GRANT])[GRANT]
    assert verdict.approvers == ("bob",)
    assert forge.state.requests_to(f"/contents/{path}")


def test_paths_must_stay_inside_the_repository(forge: Forge) -> None:
    for bad in ("../outside.yaml", "/etc/passwd", ""):
        with pytest.raises(ValueError, match="not a path inside"):
            forge.reviews().verdicts([bad])


# --- the API -------------------------------------------------------------------------------------


def test_reviews_are_read_across_three_pages(forge: Forge) -> None:
    pull = forge.pull(27, [({GRANT: grant_text("INC-22")}, "alice")])
    forge.state.review(27, "carol", "APPROVED", pull.head_sha)  # page 1 ...
    for i in range(215):
        forge.state.review(27, f"commenter{i}", "COMMENTED", pull.head_sha)
    forge.state.review(27, "carol", "CHANGES_REQUESTED", pull.head_sha)  # ... cancelled on page 3
    for i in range(20):
        forge.state.review(27, f"commenter{i}", "COMMENTED", pull.head_sha)
    forge.state.review(27, "bob", "APPROVED", pull.head_sha)  # only on page 3

    verdict = forge.verdict()

    assert verdict.approvers == ("bob",)
    assert "carol: latest review is CHANGES_REQUESTED" in verdict.excluded
    pages = forge.state.requests_to("/reviews")
    assert [r.query.get("page", ["1"])[0] for r in pages] == ["1", "2", "3"]
    assert all(r.query["per_page"] == ["100"] for r in pages)
    # GitHub's next links use the /repositories/{id}/ form; they are followed as given
    assert pages[1].path.startswith(f"/repositories/{forge.state.repository_id}/")


def test_one_pull_request_is_fetched_once_per_run(forge: Forge) -> None:
    second = "grants/bob-db.yaml"
    pull = forge.pull(28, [({GRANT: grant_text("INC-23"), second: grant_text("INC-24")}, "alice")])
    forge.state.review(28, "carol", "APPROVED", pull.head_sha)
    reviews = forge.reviews()

    first = reviews.verdicts([GRANT, second, GRANT])
    count = len(forge.state.requests)
    again = reviews.verdicts([second])

    assert list(first) == [GRANT, second]
    assert first[GRANT].approvers == first[second].approvers == ("carol",)
    assert again[second] == first[second]
    assert len(forge.state.requests_to("/reviews")) == 1
    assert len(forge.state.requests_to("/pulls/28/commits")) == 1
    assert len(forge.state.requests) == count  # nothing refetched


def test_a_bad_token_is_a_permanent_error_that_does_not_show_the_token(forge: Forge) -> None:
    forge.pull(29, [({GRANT: grant_text("INC-25")}, "alice")])
    wrong = "ghp_WrongButStillSecret0123456789"
    with pytest.raises(PermanentTargetError, match="HTTP 401 Bad credentials") as caught:
        forge.reviews(token=wrong).verdicts([GRANT])
    assert wrong not in str(caught.value) and wrong not in repr(caught.value)
    assert TOKEN not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_no_token_on_a_private_repository_reads_as_not_found(forge: Forge) -> None:
    forge.pull(30, [({GRANT: grant_text("INC-26")}, "alice")])
    with pytest.raises(PermanentTargetError, match="HTTP 404 Not Found"):
        forge.reviews(token=None).verdicts([GRANT])


def test_a_wrong_repository_is_a_permanent_error(forge: Forge) -> None:
    forge.pull(31, [({GRANT: grant_text("INC-27")}, "alice")])
    reviews = GitHubReviews(forge.gh.url, "org/other", TOKEN, forge.root)
    with pytest.raises(PermanentTargetError, match="404"):
        reviews.verdicts([GRANT])


def test_a_token_without_permission_is_a_permanent_error(forge: Forge) -> None:
    forge.pull(32, [({GRANT: grant_text("INC-28")}, "alice")])
    forge.state.forbidden = True
    with pytest.raises(PermanentTargetError, match="403 Resource not accessible"):
        forge.verdict()


def test_a_spent_rate_limit_is_temporary_and_says_when_it_resets(forge: Forge) -> None:
    forge.pull(33, [({GRANT: grant_text("INC-29")}, "alice")])
    forge.state.rate_remaining = 0
    with pytest.raises(TargetUnavailable, match="rate limited; the limit resets at 2095-01-15T08:00:00Z"):
        forge.verdict()


def test_a_server_error_is_temporary(forge: Forge) -> None:
    forge.pull(34, [({GRANT: grant_text("INC-30")}, "alice")])
    forge.state.fail_status = 502
    with pytest.raises(TargetUnavailable, match="HTTP 502"):
        forge.verdict()


def test_a_server_that_is_down_is_temporary(forge: Forge) -> None:
    forge.pull(35, [({GRANT: grant_text("INC-31")}, "alice")])
    url = forge.gh.url
    forge.gh.stop()
    with pytest.raises(TargetUnavailable, match="unreachable") as caught:
        forge.reviews(url=url).verdicts([GRANT])
    assert TOKEN not in str(caught.value)


def test_redirects_are_not_followed_so_the_token_stays_home(forge: Forge) -> None:
    forge.pull(36, [({GRANT: grant_text("INC-32")}, "alice")])
    with GitHubDouble(GitHubState(repository="org/access")) as elsewhere:
        forge.state.redirect_to = elsewhere.url
        with pytest.raises(PermanentTargetError, match="does not follow redirects"):
            forge.verdict()
        assert elsewhere.state.requests == []


def test_a_pagination_link_to_another_host_is_refused(forge: Forge) -> None:
    pull = forge.pull(37, [({GRANT: grant_text("INC-33")}, "alice")])
    for i in range(120):
        forge.state.review(37, f"commenter{i}", "COMMENTED", pull.head_sha)
    with GitHubDouble(GitHubState(repository="org/access")) as elsewhere:
        forge.state.link_base = elsewhere.url  # a hostile (or misconfigured) Link header
        with pytest.raises(PermanentTargetError, match="another host"):
            forge.verdict()
        assert elsewhere.state.requests == []


def test_plain_http_with_a_token_is_refused_except_on_loopback(tmp_path: Path) -> None:
    with pytest.raises(PermanentTargetError, match="plain http"):
        GitHubReviews("http://github.example.com/api/v3", "org/access", TOKEN, tmp_path)
    GitHubReviews("http://127.0.0.1:9/api", "org/access", TOKEN, tmp_path)  # no I/O in the constructor
    with pytest.raises(PermanentTargetError, match="OWNER/NAME"):
        GitHubReviews("https://api.github.com", "org/access/x", TOKEN, tmp_path)


def test_a_detached_head_needs_the_branch_named(forge: Forge) -> None:
    pull = forge.pull(38, [({GRANT: grant_text("INC-34")}, "alice")])
    forge.state.review(38, "bob", "APPROVED", pull.head_sha)
    forge.git("switch", "-q", "--detach", "main")
    with pytest.raises(PermanentTargetError, match="detached"):
        forge.verdict()
    named = GitHubReviews(forge.gh.url, "org/access", TOKEN, forge.root, branch="main")
    assert named.verdicts([GRANT])[GRANT].approvers == ("bob",)
