"""The reconciler signs what it writes to the ledger, and every run checks that the ledger it
reads extends what it last signed (SPEC section 5). Each attack below is committed by someone who
can merge changes but does not hold the reconciler's key: it is detected, names the bad point,
adopts and adds nothing, and the revocations that are due still happen."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from jitpol.cli.main import cli
from jitpol.ledger.chain import seal
from jitpol.model.canonical import canonical_json
from tests.helpers.git import git
from tests.helpers.repo import RepoBuilder

T0, T1, T2 = "1998-12-01T10:00:00Z", "1998-12-01T10:30:00Z", "1998-12-01T15:00:00Z"  # T2: both grants ended




class World:
    def __init__(self, tmp: Path) -> None:
        self.rb = RepoBuilder(tmp / "repo", tmp / "keys").standard()
        key = tmp / "keys" / "reconciler"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "jitpol", "-f", str(key)], check=True)
        self.env = {"JITPOL_LEDGER_KEY": key.read_text(), "JITPOL_LEDGER_PUBKEY": Path(f"{key}.pub").read_text()}
        self.public = Path(f"{key}.pub").read_text().strip()
        self.rb.grant("alice-read", "alice", T0, "4h", approvers=("lead",))
        git(self.rb.root, "init", "-q", "-b", "main")
        self.commit("policy")

    @property
    def root(self) -> Path:
        return self.rb.root

    @property
    def ledger(self) -> Path:
        return self.root / "audit" / "ledger.jsonl"

    def commit(self, message: str) -> None:
        git(self.root, "add", "-A")
        git(self.root, "commit", "-q", "--allow-empty", "-m", message)

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(cli, [*args, "--repo", str(self.root)], env={**self.env, **(env or {})},
                                  catch_exceptions=False)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.ledger.read_text().splitlines()]


@pytest.fixture
def w(tmp_path: Path) -> World:
    w = World(tmp_path)
    res = w.run("apply", "--at", T1)  # adopts the policy, grants alice, signs, commits
    assert res.exit_code == 0, res.output
    assert w.rb.members("app_read") == ["alice"]
    assert (w.root / "audit" / "checkpoints" / "ledger.jsonl.json").exists()
    assert w.run("audit", "verify", "--ledger-key", w.public).exit_code == 0
    # an approved grant waits: after an attack it must not be added
    w.rb.grant("bob-read", "bob", T0, "4h", approvers=("lead",))
    w.commit("bob asks")
    return w


def attacked(w: World, expect: str) -> Result:
    """Run after the attack: exit 1 naming it, nothing added, alice's due revocation done."""
    w.commit("the attack")
    offline = w.run("audit", "verify", "--ledger-key", w.public)
    assert offline.exit_code == 1 and expect in offline.output, offline.output
    res = w.run("apply", "--at", T2, "--no-commit")
    assert res.exit_code == 1, res.output
    assert expect in res.output, res.output
    assert "bob" not in w.rb.members("app_read"), "an addition ran on an unauthenticated ledger"
    assert "alice" not in w.rb.members("app_read"), "the due revocation did not run"
    return res


def chain(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Seal `bodies` into a fresh, valid hash chain: what anyone can do without the key."""
    out: list[dict[str, Any]] = []
    for i, body in enumerate(bodies, start=1):
        out.append(seal(body, seq=i, prev=out[-1]["hash"] if out else None))
    return out


def test_honest_runs_extend_and_sign_the_ledger(w: World) -> None:
    res = w.run("apply", "--at", T1)
    assert res.exit_code == 0, res.output
    assert sorted(w.rb.members("app_read")) == ["alice", "bob"]
    cp = json.loads((w.root / "audit" / "checkpoints" / "ledger.jsonl.json").read_text())
    assert cp["seq"] == 2 and cp["lines"] == len(w.events())
    assert w.run("audit", "verify", "--ledger-key", w.public).exit_code == 0


def test_truncation_is_detected(w: World) -> None:
    lines = w.ledger.read_text().splitlines(keepends=True)
    w.ledger.write_text("".join(lines[:-1]))
    attacked(w, "entries were removed")


def test_rewriting_and_rechaining_is_detected(w: World) -> None:
    events = w.events()
    bodies = [{k: v for k, v in e.items() if k not in ("seq", "prev", "hash")} for e in events]
    for b in bodies:
        if b.get("event") == "grant.activated":
            b["end"] = "1999-12-01T00:00:00Z"  # access that "never ended"
    w.ledger.write_text("".join(canonical_json(e) + "\n" for e in chain(bodies)))
    assert w.run("audit", "verify", env={"JITPOL_LEDGER_PUBKEY": ""}).exit_code == 0  # the chain alone is fooled
    attacked(w, "re-chained")


def test_an_extra_ledger_file_is_detected(w: World) -> None:
    shutil.copy(w.ledger, w.root / "audit" / "ledger-9-of-9.jsonl")
    attacked(w, "audit/ledger-9-of-9.jsonl: no checkpoint signed by the reconciler")


def test_deleting_the_whole_audit_folder_is_detected(w: World) -> None:
    shutil.rmtree(w.root / "audit")
    w.commit("the attack")
    res = w.run("apply", "--at", T2, "--no-commit")
    assert res.exit_code == 1 and "audit/ is gone" in res.output, res.output
    assert "bob" not in w.rb.members("app_read")


def test_line_ends_rewritten_by_gitattributes_are_detected(w: World) -> None:
    w.ledger.write_bytes(w.ledger.read_bytes().replace(b"\n", b"\r\n"))
    attacked(w, "transformed")


def test_unsigned_lines_appended_in_a_commit_are_detected(w: World) -> None:
    events = w.events()
    body = {k: v for k, v in events[-1].items() if k not in ("seq", "prev", "hash")}
    w.ledger.write_text("".join(canonical_json(e) + "\n" for e in chain(
        [{k: v for k, v in e.items() if k not in ("seq", "prev", "hash")} for e in events] + [body])))
    attacked(w, "did not sign them")


def test_a_checkpoint_signed_with_another_key_is_refused(w: World, tmp_path: Path) -> None:
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    lines = w.ledger.read_text().splitlines(keepends=True)
    w.ledger.write_text("".join(lines[:-1]))
    res = w.run("audit", "sign", env={"JITPOL_LEDGER_KEY": other.read_text(), "JITPOL_LEDGER_PUBKEY": ""})
    assert res.exit_code == 0, res.output
    attacked(w, "signature does not verify")


def test_rolling_the_branch_back_is_detected_with_the_state_file(w: World, tmp_path: Path) -> None:
    state = str(tmp_path / "state" / "jitpol.json")
    w.run("apply", "--at", T1, env={"JITPOL_STATE_FILE": state})  # bob granted, checkpoint 2 remembered
    old = git(w.root, "rev-list", "--max-count=1", "--skip=1", "HEAD").strip()
    git(w.root, "reset", "-q", "--hard", old)  # the branch as it was before: a validly signed state
    res = w.run("apply", "--at", T2, "--no-commit", env={"JITPOL_STATE_FILE": state})
    assert res.exit_code == 1 and "rolled back" in res.output, res.output


def test_a_run_killed_before_signing_is_finished_by_the_next(w: World) -> None:
    events = w.events()
    body = {k: v for k, v in events[-1].items() if k not in ("seq", "prev", "hash")}
    # what a killed run leaves: lines written in the work tree, never signed, never committed
    w.ledger.write_text("".join(canonical_json(e) + "\n" for e in chain(
        [{k: v for k, v in e.items() if k not in ("seq", "prev", "hash")} for e in events] + [body])))
    res = w.run("apply", "--at", T1)
    assert res.exit_code == 0, res.output
    assert "bob" in w.rb.members("app_read")
    assert w.run("audit", "verify", "--ledger-key", w.public).exit_code == 0


def test_notifications_recorded_in_the_ledger_are_signed_too(w: World) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        res = w.run("notify", "--webhook-env", "HOOK", "--at", T1, "--commit",
                    env={"HOOK": f"http://127.0.0.1:{server.server_address[1]}/hook"})
        assert res.exit_code == 0, res.output
    finally:
        server.shutdown()
    assert any(e["event"] == "notification.sent" for e in w.events())
    assert w.run("audit", "verify", "--ledger-key", w.public).exit_code == 0
    res = w.run("apply", "--at", T1)  # the committed notification lines do not stop additions
    assert res.exit_code == 0, res.output
    assert "bob" in w.rb.members("app_read")


@pytest.mark.parametrize("listed", [True, False])
def test_an_agents_ledger_file_is_signed_with_its_own_key(w: World, tmp_path: Path, listed: bool) -> None:
    from jitpol.ledger.store import Ledger
    from jitpol.trust.ledger import sign_checkpoint

    agent = tmp_path / "agent-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(agent)], check=True)
    other = tmp_path / "other-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    admin = Path(f"{w.rb.key('admin')}.pub").read_text().strip()
    root = json.dumps({"version": 1, "threshold": 1, "keys": [admin], "ledgerKey": w.public,
                       "agentKeys": {"web-1": Path(f"{agent if listed else other}.pub").read_text().strip()}})
    env = {"JITPOL_TRUST_ROOT": root, "JITPOL_LEDGER_PUBKEY": ""}
    res = w.run("approve", "--policy", "--as", "admin", "--key", str(w.rb.key("admin")))
    assert res.exit_code == 0, res.output
    # what the agent on web-1 writes and signs with its own key, never the reconciler's
    path = w.root / "audit" / "agent-web-1.jsonl"
    Ledger(path).append([{"time": T0, "event": "grant.rejected", "grant": "zz", "reason": "test"}])
    sign_checkpoint(w.root, path, {"JITPOL_LEDGER_KEY": agent.read_text()}, T0,
                    Path(f"{agent}.pub").read_text().strip())
    w.commit("the agent's ledger")
    res = w.run("apply", "--at", T1, env=env)
    if listed:
        assert res.exit_code == 0, res.output
        assert "bob" in w.rb.members("app_read")
    else:
        assert res.exit_code == 1 and "agent-web-1.jsonl.json: its signature does not verify" in res.output
        assert "bob" not in w.rb.members("app_read")
