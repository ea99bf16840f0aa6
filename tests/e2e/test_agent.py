"""`jitpol agent --once` on an endpoint: it applies its own host's sudo rule locally, inside the
throwaway sshd's private mount namespace (the host's /etc is never touched), records it in
audit/agent-HOST.jsonl, and a central run never touches `local` targets."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from click.testing import CliRunner

from jitpol.cli.main import cli
from jitpol.ledger.store import Ledger
from tests.helpers.repo import RepoBuilder
from tests.ssh_fixtures import ssh_host_fixture, sshd_server_fixture  # noqa: F401

if TYPE_CHECKING:
    from tests.ssh_fixtures import SshHost
    from tools.throwaway_sshd import ThrowawaySshd

# runs `jitpol agent` from inside the server's mount namespace (joined with setns, as nsenter does)
_AGENT = r"""
import ctypes, os, sys
pid = sys.argv[1]
from jitpol.cli.main import cli
import jitpol.cli.agent  # commands are imported when they run: import this one while the host's paths are there
# and what jitpol imports on first use: jsonschema, importlib's submodules (a submodule of a package
# imported before the switch is looked up through the package's old path) and subprocess (git is
# started with it)
import importlib.readers, importlib.resources, jsonschema, jitpol.load.schema, subprocess
host_root = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
sys.path[:] = [f"/proc/self/fd/{host_root}{p}" if p.startswith("/") else p for p in sys.path]
outside = os.readlink("/proc/self/ns/mnt")
fd = os.open(f"/proc/{int(pid)}/ns/mnt", os.O_RDONLY)
assert ctypes.CDLL(None, use_errno=True).setns(fd, 0x00020000) == 0
assert os.readlink("/proc/self/ns/mnt") != outside, "not inside the namespace"
cli(sys.argv[2:], prog_name="jitpol")
"""


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_agent_applies_its_own_hosts_sudo_rule(tmp_path: Path, sshd_server: ThrowawaySshd,
                                                ssh_host: SshHost) -> None:
    user = ssh_host.user("agentu")
    host = socket.gethostname().split(".")[0]
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys")
    rb.config(targets={"this-host": {"type": "local", "hostname": host}})
    rb.person("alice", accounts={"ssh": user})
    for p in ("bob", "lead", "admin"):
        rb.person(p, accounts={})
    rb.team("eng", ["alice", "bob"])
    rb.team("leads", ["lead"])
    rb.team("admins", ["admin"])
    rb.workflow("prod", approvals={"required": 0})
    rb.resource("restart", target="this-host", model="sudo-rule",
                roles={"ops": {"grants": [{"command": "/usr/bin/id", "runAs": "root"}]}})
    now = datetime.now(UTC).replace(microsecond=0)
    rb.grant("alice-ops", "alice", iso(now - timedelta(minutes=5)), "1h", resource="restart", role="ops")
    assert CliRunner().invoke(cli, ["validate", "--repo", str(rb.root)]).exit_code == 0

    central = CliRunner().invoke(cli, ["plan", "--repo", str(rb.root), "--format", "json"])
    assert central.exit_code == 0, central.output
    assert json.loads(central.stdout)["actions"] == []  # the central run leaves local targets alone

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run([sys.executable, "-c", _AGENT, str(sshd_server.pid), "agent", "--once",
                           "--repo", str(rb.root), "--host", host], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    listed = sshd_server.run(["sudo", "-l", "-U", user]).stdout
    assert "/usr/bin/id" in listed
    host_rules = [p.name for p in Path("/etc/sudoers.d").iterdir() if p.name.startswith("jitpol-")]
    assert host_rules == []  # nothing reached the host's own /etc
    ledger = Ledger(rb.root / "audit" / f"agent-{host}.jsonl")
    assert ledger.verify() is None
    assert "grant.activated" in [e["event"] for e in ledger.events()]
    # run it again: nothing more to do
    again = subprocess.run([sys.executable, "-c", _AGENT, str(sshd_server.pid), "agent", "--once",
                            "--repo", str(rb.root), "--host", host], env=env, capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0 and "No changes" in again.stdout
