"""`jitpol notify` end to end: a real policy repository in git, a real local HTTP server receiving
the webhook POSTs, the GitHub REST double receiving pull-request comments, the real ledger.

Also the renderer on its own: templates overridden from the repository, the sandbox, escaping."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from jitpol.cli.main import cli
from jitpol.cli.notify import notify
from jitpol.model.documents import Person, Source
from jitpol.notify.messages import Message
from jitpol.notify.render import Renderer, TemplateProblem, escape_github, escape_slack, slack_payload
from tests.doubles.github import GitHubDouble, GitHubState, PullCommit, PullRequest
from tests.helpers.repo import RepoBuilder

SECRET = "XyZsecretHookToken0123456789"
TOKEN = "ghp_notify_token_never_printed"
T0 = "1998-12-01T10:00:00Z"
EVIL = "INC-1 <!channel> & <https://evil.example|click> @org/everyone [x](https://evil.example) <img src=x>"


# -- a Slack-like incoming webhook ----------------------------------------------------------------

@dataclass
class Hook:
    """Records JSON POSTs; answers `status` (Slack says "ok" on success)."""

    status: int = 200
    posts: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def hook() -> Iterator[tuple[Hook, str]]:
    state = Hook()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with state.lock:
                status = state.status
                if status == 200:
                    assert self.headers.get("Content-Type") == "application/json"
                    state.posts.append(json.loads(body))
                    state.paths.append(self.path)
            # a failing server that echoes the request path must not leak it through jitpol
            answer = b"ok" if status == 200 else f"internal_error for {self.path}".encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_port}/services/T0001/B0002/{SECRET}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# -- repository -----------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "gitconfig"
    config.write_text("[user]\n\tname = Tester\n\temail = tester@example.com\n[init]\n\tdefaultBranch = main\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def gh() -> Iterator[GitHubDouble]:
    with GitHubDouble(GitHubState(repository="org/access", token=TOKEN)) as double:
        yield double


@pytest.fixture
def rb(tmp_path: Path, gh: GitHubDouble) -> RepoBuilder:
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    cfg = json.loads((rb.root / "jitpol.yaml").read_text())
    cfg["spec"]["git"] = {"host": "github", "api_url": gh.url, "repository": "org/access", "token_env": "GH_TOKEN"}
    (rb.root / "jitpol.yaml").write_text(json.dumps(cfg))
    for person in ("alice", "bob", "lead", "admin"):
        rb.person(person, accounts={"fake": person, "github": f"{person}-gh", "slack": f"U{person.upper()}1"})
    git(rb.root, "init", "-q")
    git(rb.root, "add", "-A")
    git(rb.root, "commit", "-q", "-m", "policy")
    return rb


def merge_pull(rb: RepoBuilder, gh: GitHubDouble, number: int, author: str = "alice") -> None:
    """Bring the work tree's changes to main through squash-merged pull request `number`."""
    git(rb.root, "switch", "-q", "-c", f"pr-{number}")
    git(rb.root, "add", "-A")
    git(rb.root, "commit", "-q", "-m", "request")
    head = git(rb.root, "rev-parse", "HEAD")
    git(rb.root, "switch", "-q", "main")
    git(rb.root, "merge", "-q", "--squash", f"pr-{number}")
    git(rb.root, "commit", "-q", "-m", f"Squashed (#{number})")
    merged = git(rb.root, "rev-parse", "HEAD")
    for sha in (head, merged):
        gh.state.associate(sha, number)
    gh.state.add_pull(PullRequest(number=number, author=f"{author}-gh", head_sha=head, merge_commit_sha=merged),
                      [PullCommit(head, f"{author}-gh")])


def jitpol(rb: RepoBuilder | Path, *args: str, env: dict[str, str] | None = None) -> Result:
    """`jitpol notify ...` (through the main group once it registers the command) or another command."""
    group: click.Command = cli
    argv = [*args, "--repo", str(rb.root if isinstance(rb, RepoBuilder) else rb)]
    if args[0] == "notify" and "notify" not in cli.commands:
        group, argv = notify, argv[1:]
    return CliRunner().invoke(group, argv, env=env, catch_exceptions=False)


def ledger(rb: RepoBuilder) -> list[dict[str, Any]]:
    path = rb.root / "audit" / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def sent(rb: RepoBuilder) -> list[tuple[str, str, str]]:
    return [(e["kind"], e["grant"], e["channel"]) for e in ledger(rb) if e["event"] == "notification.sent"]


def texts(hook: Hook) -> list[str]:
    return [p["text"] for p in hook.posts]


# -- the lifecycle through the webhook -----------------------------------------------------------

def test_lifecycle_on_the_webhook_each_message_once(rb: RepoBuilder, hook: tuple[Hook, str]) -> None:
    server, url = hook
    env = {"HOOK_URL": url}
    rb.grant("alice-read", "alice", T0, "2h", justification=EVIL)
    res = jitpol(rb, "notify", "--webhook-env", "HOOK_URL", "--at", "1998-12-01T09:00:00Z", env=env)
    assert res.exit_code == 0, res.output
    (post,) = server.posts
    text = post["text"]
    # the approvers but not the requester, mentioned by their Slack ids; the way to approve
    assert "<@UBOB1>" in text and "<@ULEAD1>" in text and "<@UALICE1>" not in text
    assert "*alice*" in text and "`db-prod/read`" in text and "1998-12-01 10:00\N{EN DASH}12:00 UTC" in text
    assert "`jitpol approve alice-read --as YOU --key YOUR_KEY`" in text
    # the justification cannot ping the channel or smuggle a link
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text and "<https://evil" not in text
    assert "&amp;" in text
    assert post["blocks"] and all(b["type"] == "section" and b["text"]["type"] == "mrkdwn" for b in post["blocks"])
    assert server.paths == [f"/services/T0001/B0002/{SECRET}"]
    assert sent(rb) == [("pending", "alice-read", "webhook")]
    assert ledger(rb)[-1]["time"] == "1998-12-01T09:00:00Z" and ledger(rb)[-1]["to"] == ["bob", "lead"]

    # a second run sends nothing new
    res = jitpol(rb, "notify", "--webhook-env", "HOOK_URL", "--at", "1998-12-01T09:05:00Z", env=env)
    assert res.exit_code == 0 and "nothing new" in res.stdout
    assert len(server.posts) == 1

    # approved: the requester hears it is scheduled
    rb.grant("alice-read", "alice", T0, "2h", justification=EVIL, approvers=("lead",))
    assert jitpol(rb, "notify", "--webhook-env", "HOOK_URL", "--at", "1998-12-01T09:30:00Z", env=env).exit_code == 0
    assert len(server.posts) == 2 and texts(server)[-1].startswith("<@UALICE1>: your request `alice-read`")
    assert "approved by lead" in texts(server)[-1]

    # apply activates; notify tells her
    assert jitpol(rb, "apply", "--at", "1998-12-01T10:05:00Z", "--no-commit").exit_code == 0
    res = jitpol(rb, "notify", "--webhook-env", "HOOK_URL", "--at", "1998-12-01T10:06:00Z", env=env)
    assert res.exit_code == 0, res.output
    assert len(server.posts) == 3 and "is active now" in texts(server)[-1]

    # nothing before the expiry window, then one "expiring" message, once
    assert jitpol(rb, "notify", "--webhook-env", "HOOK_URL", "--at", "1998-12-01T11:20:00Z", env=env).exit_code == 0
    assert len(server.posts) == 3
    for at in ("1998-12-01T11:40:00Z", "1998-12-01T11:45:00Z"):
        assert jitpol(rb, "notify", "--webhook-env", "HOOK_URL", "--at", at, env=env).exit_code == 0
    assert len(server.posts) == 4 and "ends at *1998-12-01 12:00 UTC*" in texts(server)[-1]

    # the window ends: apply revokes; notify says it expired
    assert jitpol(rb, "apply", "--at", "1998-12-01T12:00:00Z", "--no-commit").exit_code == 0
    assert jitpol(rb, "notify", "--webhook-env", "HOOK_URL", "--at", "1998-12-01T12:01:00Z", env=env).exit_code == 0
    assert len(server.posts) == 5 and "has ended" in texts(server)[-1]
    assert [k for k, _, _ in sent(rb)] == ["pending", "scheduled", "activated", "expiring", "expired"]
    assert jitpol(rb, "audit", "verify").exit_code == 0
    assert all(SECRET not in json.dumps(e) for e in ledger(rb))


def test_rejected_and_revoked_reach_the_requester(rb: RepoBuilder, hook: tuple[Hook, str]) -> None:
    server, url = hook
    env = {"HOOK_URL": url}
    rb.grant("bob-long", "bob", T0, "6h", approvers=("lead",))
    rb.grant("alice-read", "alice", T0, "2h", approvers=("lead",))
    assert jitpol(rb, "apply", "--at", "1998-12-01T10:05:00Z", "--no-commit").exit_code == 0
    res = jitpol(rb, "notify", "--webhook-env", "HOOK_URL", "--at", "1998-12-01T10:06:00Z", "--format", "json",
                 env=env)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert sorted((m["kind"], m["grant"], m["outcome"]) for m in out["messages"]) == [
        ("activated", "alice-read", "sent"), ("rejected", "bob-long", "sent")]
    rejected = next(p["text"] for p in server.posts if "rejected" in p["text"])
    assert rejected.startswith("<@UBOB1>:") and "allows at most 4h" in rejected
    rb.grant("alice-read", "alice", T0, "2h", approvers=("lead",), revoke=True)
    assert jitpol(rb, "apply", "--at", "1998-12-01T10:30:00Z", "--no-commit").exit_code == 0
    assert jitpol(rb, "notify", "--webhook-env", "HOOK_URL", "--at", "1998-12-01T10:31:00Z", env=env).exit_code == 0
    assert "was revoked" in texts(server)[-1] and "revoke: true" in texts(server)[-1]
    assert len(server.posts) == 3


def test_failing_webhook_is_retried_next_run_and_never_shows_the_url(
        rb: RepoBuilder, hook: tuple[Hook, str]) -> None:
    server, url = hook
    env = {"HOOK_URL": url}
    rb.grant("alice-read", "alice", T0, "2h")
    server.status = 500
    res = jitpol(rb, "notify", "--webhook-env", "HOOK_URL", "--at", "1998-12-01T09:00:00Z", env=env)
    assert res.exit_code == 1
    assert "FAILED" in res.stderr and "HTTP 500" in res.stderr and "$HOOK_URL" in res.stderr
    assert SECRET not in res.output and "T0001" not in res.output
    assert sent(rb) == [] and server.posts == []
    # json output does not carry it either
    res = jitpol(rb, "notify", "--webhook-env", "HOOK_URL", "--at", "1998-12-01T09:01:00Z", "--format", "json",
                 env=env)
    assert res.exit_code == 1 and SECRET not in res.output
    # back up: the next run delivers it, once
    server.status = 200
    res = jitpol(rb, "notify", "--webhook-env", "HOOK_URL", "--at", "1998-12-01T09:02:00Z", env=env)
    assert res.exit_code == 0 and SECRET not in res.output
    assert len(server.posts) == 1 and sent(rb) == [("pending", "alice-read", "webhook")]
    assert jitpol(rb, "notify", "--webhook-env", "HOOK_URL", "--at", "1998-12-01T09:03:00Z", env=env).exit_code == 0
    assert len(server.posts) == 1


def test_unreachable_webhook_and_bad_urls_never_show_the_url(rb: RepoBuilder) -> None:
    rb.grant("alice-read", "alice", T0, "2h")
    with socket_closed_port() as port:
        url = f"http://127.0.0.1:{port}/services/{SECRET}"
        res = jitpol(rb, "notify", "--webhook-env", "HOOK_URL", "--at", "1998-12-01T09:00:00Z", env={"HOOK_URL": url})
    assert res.exit_code == 1 and "unreachable" in res.stderr and SECRET not in res.output
    for bad in (f"http://hooks.example.com/services/{SECRET}", f"ftp://x/{SECRET}", f"https://x:port/{SECRET}"):
        res = jitpol(rb, "notify", "--webhook-env", "HOOK_URL", "--at", "1998-12-01T09:00:00Z", env={"HOOK_URL": bad})
        assert res.exit_code == 1 and SECRET not in res.output, res.output
    res = jitpol(rb, "notify", "--webhook-env", "UNSET_VAR_X", "--at", "1998-12-01T09:00:00Z")
    assert res.exit_code == 1 and "UNSET_VAR_X" in res.stderr and "not set" in res.stderr
    assert sent(rb) == []


class socket_closed_port:
    """A port on 127.0.0.1 where nothing listens."""

    def __enter__(self) -> int:
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        s.close()
        return port

    def __exit__(self, *exc: object) -> None:
        return None


def test_dry_run_prints_and_records_nothing(rb: RepoBuilder, hook: tuple[Hook, str]) -> None:
    server, url = hook
    rb.grant("alice-read", "alice", T0, "2h")
    res = jitpol(rb, "notify", "--dry-run", "--webhook-env", "HOOK_URL", "--at", "1998-12-01T09:00:00Z",
                 env={"HOOK_URL": url})
    assert res.exit_code == 0, res.output
    assert "--- webhook: pending alice-read (to bob, lead)" in res.stdout and "<@ULEAD1>" in res.stdout
    assert SECRET not in res.output and server.posts == [] and ledger(rb) == []
    # without a channel: a plain-text preview
    res = jitpol(rb, "notify", "--dry-run", "--at", "1998-12-01T09:00:00Z")
    assert res.exit_code == 0 and "--- preview: pending alice-read" in res.stdout and "lead" in res.stdout
    # neither a channel nor --dry-run: a usage error
    assert jitpol(rb, "notify", "--at", "1998-12-01T09:00:00Z").exit_code == 2


# -- GitHub pull-request comments -----------------------------------------------------------------

def test_comments_on_the_grant_pull_request_once(rb: RepoBuilder, gh: GitHubDouble, hook: tuple[Hook, str]) -> None:
    server, url = hook
    env = {"GH_TOKEN": TOKEN, "HOOK_URL": url}
    rb.grant("alice-read", "alice", T0, "2h", justification="INC-7 @org/everyone <b>x</b> [y](http://e.x)")
    merge_pull(rb, gh, 7)
    rb.grant("bob-read", "bob", T0, "2h")  # committed directly: no pull request brought it
    git(rb.root, "add", "-A")
    git(rb.root, "commit", "-q", "-m", "direct")
    head = git(rb.root, "rev-parse", "HEAD")
    gh.state.commits.add(head)
    args = ("notify", "--github", "--webhook-env", "HOOK_URL", "--at", "1998-12-01T09:00:00Z")
    res = jitpol(rb, *args, env=env)
    assert res.exit_code == 0, res.output
    (comment,) = gh.state.comments[7]
    assert comment.body.startswith("@bob-gh, @lead-gh: **alice** asks for `db-prod/read`")
    assert "@&#8203;org/everyone" in comment.body and "<b>" not in comment.body and "&lt;b&gt;" in comment.body
    assert "\\[y\\]\\(http" in comment.body
    post = next(r for r in gh.state.requests if r.method == "POST")
    assert post.path == "/repos/org/access/issues/7/comments" and post.headers["authorization"] == f"Bearer {TOKEN}"
    assert "skipped github   pending   bob-read" in res.stdout and "no pull request" in res.stdout
    assert TOKEN not in res.output
    assert sorted(sent(rb)) == [("pending", "alice-read", "github"), ("pending", "alice-read", "webhook"),
                                ("pending", "bob-read", "webhook")]
    # a second run: nothing new on either channel (the skipped one is looked up again, not posted)
    res = jitpol(rb, *args, env=env)
    assert res.exit_code == 0
    assert len(gh.state.comments[7]) == 1 and len(server.posts) == 2


def test_github_failure_is_retried_and_token_never_shown(rb: RepoBuilder, gh: GitHubDouble) -> None:
    rb.grant("alice-read", "alice", T0, "2h")
    merge_pull(rb, gh, 8)
    gh.state.fail_status = 502
    args = ("notify", "--github", "--at", "1998-12-01T09:00:00Z")
    res = jitpol(rb, *args, env={"GH_TOKEN": TOKEN})
    assert res.exit_code == 1 and "HTTP 502" in res.stderr and TOKEN not in res.output
    assert sent(rb) == []
    gh.state.fail_status = None
    res = jitpol(rb, *args, env={"GH_TOKEN": TOKEN})
    assert res.exit_code == 0, res.output
    assert len(gh.state.comments[8]) == 1 and sent(rb) == [("pending", "alice-read", "github")]
    # a wrong token: refused, clearly, without echoing it
    rb.grant("alice-write", "alice", T0, "2h", role="write")
    merge_pull(rb, gh, 9)
    res = jitpol(rb, *args, env={"GH_TOKEN": "wrong-token-value"})
    assert res.exit_code == 1 and "HTTP 401" in res.stderr and "wrong-token-value" not in res.output
    # no token at all
    res = jitpol(rb, *args, env={"GH_TOKEN": ""})
    assert res.exit_code == 1 and "token" in res.stderr


# -- templates ----------------------------------------------------------------------------------

def test_repository_template_overrides_the_builtin(rb: RepoBuilder, hook: tuple[Hook, str]) -> None:
    server, url = hook
    (rb.root / "notifications").mkdir()
    (rb.root / "notifications" / "pending.j2").write_text(
        "Access request {{ grant | code }} by {{ requester_mention }} needs {{ missing }} from {{ mentions }}.\n"
        "Why: {{ justification }}\n")
    rb.grant("alice-read", "alice", T0, "2h", justification="INC-9 <!here>")
    res = jitpol(rb, "notify", "--webhook-env", "HOOK_URL", "--at", "1998-12-01T09:00:00Z", env={"HOOK_URL": url})
    assert res.exit_code == 0, res.output
    assert texts(server) == ["Access request `alice-read` by <@UALICE1> needs 1 from <@UBOB1>, <@ULEAD1>.\n"
                             "Why: INC-9 &lt;!here&gt;"]


@pytest.mark.parametrize("template", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__ }}",
    "{{ cycler.__init__.__globals__.os.environ }}",
    "{{ approvers.append('mallory') }}",
])
def test_sandbox_refuses_attribute_tricks(rb: RepoBuilder, hook: tuple[Hook, str], template: str) -> None:
    server, url = hook
    (rb.root / "notifications").mkdir()
    (rb.root / "notifications" / "pending.j2").write_text("ok\n" + template + "\n")
    rb.grant("alice-read", "alice", T0, "2h")
    res = jitpol(rb, "notify", "--webhook-env", "HOOK_URL", "--at", "1998-12-01T09:00:00Z",
                 env={"HOOK_URL": url, "SOME_SECRET": "s3cr3t-value"})
    assert res.exit_code == 1
    assert "notifications/pending.j2:2:" in res.stderr
    assert "sandbox" in res.stderr or "undefined" in res.stderr
    assert "Traceback" not in res.output and "s3cr3t-value" not in res.output
    assert server.posts == [] and sent(rb) == []


def test_template_syntax_error_names_file_and_line(rb: RepoBuilder) -> None:
    (rb.root / "notifications").mkdir()
    (rb.root / "notifications" / "pending.j2").write_text("hello\n{% if %}\n")
    rb.grant("alice-read", "alice", T0, "2h")
    res = jitpol(rb, "notify", "--dry-run", "--at", "1998-12-01T09:00:00Z")
    assert res.exit_code == 1 and "notifications/pending.j2:2:" in res.stderr


def test_symlinked_template_is_refused(rb: RepoBuilder, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    (rb.root / "notifications").mkdir()
    (rb.root / "notifications" / "pending.j2").symlink_to(secret)
    rb.grant("alice-read", "alice", T0, "2h")
    res = jitpol(rb, "notify", "--dry-run", "--at", "1998-12-01T09:00:00Z")
    assert res.exit_code == 1 and "symbolic link" in res.stderr and "TOP-SECRET-CONTENT" not in res.output
    (rb.root / "notifications" / "pending.j2").unlink()
    (rb.root / "notifications").rmdir()
    (rb.root / "notifications").symlink_to(tmp_path)
    with pytest.raises(TemplateProblem, match="symbolic link"):
        Renderer(rb.root, {})


def person(name: str, **accounts: str) -> Person:
    return Person(name, f"{name}@example.com", (), accounts, Source("p.yaml"))


def message(**kw: Any) -> Message:
    start = datetime(1998, 12, 1, 10, tzinfo=UTC)
    base: dict[str, Any] = {"kind": "pending", "grant": "g", "key": "k", "to": ("lead",), "requester": "alice",
                            "resource": "db", "role": "read", "start": start, "end": start.replace(hour=12),
                            "justification": "x", "approvers": ("lead",), "required": 1}
    base.update(kw)
    return Message(**base)


def test_escaping_rules() -> None:
    assert escape_slack("a & <!channel> <http://x|y>") == "a &amp; &lt;!channel&gt; &lt;http://x|y&gt;"
    assert escape_slack("line1\nline2\u202e\x1b[31m") == "line1 line2[31m"
    assert escape_github("@all <script> *b* [l](u)") == "@&#8203;all &lt;script&gt; \\*b\\* \\[l\\]\\(u\\)"
    # mention syntax only from the accounts the renderer trusts; a hostile slack id is just text
    people = {"lead": person("lead", slack="<!channel>", github="lead-gh"), "alice": person("alice", slack="UA1")}
    r = Renderer(None, people)
    slack = r.render(message(), "slack").text
    assert "<!channel>" not in slack and "&lt;!channel&gt;" not in slack and slack.startswith("lead:")
    assert r.render(message(), "github").text.startswith("@lead-gh:")
    plain = r.render(message(), "text").text
    assert plain.startswith("lead: alice asks for `db/read` 1998-12-01 10:00\N{EN DASH}12:00 UTC")


def test_times_in_the_configured_timezone_and_slack_blocks() -> None:
    r = Renderer(None, {}, "Europe/Berlin")
    text = r.render(message(kind="expiring", until=datetime(1998, 12, 1, 11, 30, tzinfo=UTC)), "text").text
    assert "ends at 1998-12-01 12:30 CET" in text
    payload = slack_payload("first\n\nsecond " + "x" * 4000)
    assert [b["text"]["text"][:6] for b in payload["blocks"]] == ["first", "second"]
    assert all(len(b["text"]["text"]) <= 3000 for b in payload["blocks"]) and len(payload["text"]) <= 3000


def test_every_builtin_template_renders_for_every_channel() -> None:
    r = Renderer(None, {"alice": person("alice", slack="UA1", github="alice-gh")})
    kinds = ("pending", "scheduled", "activated", "expiring", "expired", "revoked", "rejected")
    for kind in kinds:
        for fmt in ("slack", "github", "text"):
            text = r.render(message(kind=kind, to=("alice",), reason="because", until=None), fmt).text
            assert "g" in text and text.strip(), (kind, fmt)


def requested_and_pushed(rb: RepoBuilder, tmp_path: Path) -> Path:
    """alice's request committed and pushed to a new bare remote (origin); returns the remote."""
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    git(rb.root, "remote", "add", "origin", str(remote))
    rb.grant("alice-read", "alice", T0, "2h")
    git(rb.root, "add", "-A")
    git(rb.root, "commit", "-q", "-m", "request")
    git(rb.root, "push", "-q", "origin", "main")
    return remote


def test_push_records_what_was_sent_on_the_remote(rb: RepoBuilder, hook: tuple[Hook, str], tmp_path: Path) -> None:
    server, url = hook
    remote = requested_and_pushed(rb, tmp_path)
    res = jitpol(rb, "notify", "--webhook-env", "HOOK_URL", "--push", "--at", "1998-12-01T09:00:00Z",
                 env={"HOOK_URL": url})
    assert res.exit_code == 0, res.output
    assert "Pushed ledger to origin/main" in res.stdout
    on_remote = subprocess.run(["git", "--git-dir", str(remote), "show", "main:audit/ledger.jsonl"], check=True,
                               capture_output=True, text=True).stdout
    assert [json.loads(line)["event"] for line in on_remote.splitlines()] == ["notification.sent"]
    assert git(rb.root, "status", "--porcelain", "--", "audit") == ""
    # a fresh clone (the next CI job) knows it was sent
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(remote), str(clone)], check=True)
    res = jitpol(clone, "notify", "--webhook-env", "HOOK_URL", "--at", "1998-12-01T09:05:00Z", env={"HOOK_URL": url})
    assert res.exit_code == 0 and "nothing new" in res.stdout and len(server.posts) == 1


def test_notify_does_not_run_beside_an_apply(rb: RepoBuilder, hook: tuple[Hook, str]) -> None:
    from jitpol.execute.lock import RunLock

    server, url = hook
    rb.grant("alice-read", "alice", T0, "2h")
    with RunLock(rb.root):
        res = jitpol(rb, "notify", "--webhook-env", "HOOK_URL", "--at", "1998-12-01T09:00:00Z", env={"HOOK_URL": url})
    assert res.exit_code == 1 and server.posts == [] and sent(rb) == []


def test_push_also_sends_what_a_killed_notify_left_and_rechains_it_onto_a_moved_remote(
        rb: RepoBuilder, hook: tuple[Hook, str], tmp_path: Path) -> None:
    """A notify run killed after recording its sends (before its commit) owes those lines; the
    next `notify --push`, with nothing new of its own to send, commits and pushes them, also when
    the remote moved meanwhile (re-chained onto it, nothing lost)."""
    server, url = hook
    remote = requested_and_pushed(rb, tmp_path)
    # the killed run: it sent and recorded, and never committed
    res = jitpol(rb, "notify", "--webhook-env", "HOOK_URL", "--at", "1998-12-01T09:00:00Z", env={"HOOK_URL": url})
    assert res.exit_code == 0 and len(server.posts) == 1
    assert git(rb.root, "status", "--porcelain", "--", "audit") != ""
    # meanwhile someone else pushed
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(remote), str(other)], check=True)
    (other / "README.md").write_text("moved\n")
    git(other, "add", "README.md")
    git(other, "commit", "-q", "-m", "moved")
    git(other, "push", "-q", "origin", "main")
    res = jitpol(rb, "notify", "--webhook-env", "HOOK_URL", "--push", "--at", "1998-12-01T09:05:00Z",
                 env={"HOOK_URL": url})
    assert res.exit_code == 0, res.output
    assert "Pushed ledger to origin/main" in res.stdout and len(server.posts) == 1, res.output
    on_remote = subprocess.run(["git", "--git-dir", str(remote), "show", "main:audit/ledger.jsonl"], check=True,
                               capture_output=True, text=True).stdout
    assert [json.loads(line)["event"] for line in on_remote.splitlines()] == ["notification.sent"]
    assert subprocess.run(["git", "--git-dir", str(remote), "show", "main:README.md"], check=True,
                          capture_output=True, text=True).stdout == "moved\n"
