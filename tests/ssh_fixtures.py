"""Fixtures for the ssh connector: one throwaway sshd (tools/throwaway_sshd.py) per pytest
session, in a private mount namespace, so users, groups and sudoers files made by the tests
never reach the host.

    sshd_server   session: a started ThrowawaySshd
    ssh_host      function: SshHost — makes users/groups with unique names inside the namespace,
                  inspects them, logs in as them, and removes everything afterwards
    ssh_connect   function: ssh_connect(**settings) -> SshConnector logged in as root

    ssh_root      session: one SshConnector logged in as root, shared (connecting costs ~0.2 s)

Each is defined as `<name>_fixture` with `name="<name>"`, so a test module imports the
`*_fixture` functions (`from tests.ssh_fixtures import ssh_host_fixture  # noqa: F401`) and its
tests take the plain names as arguments without shadowing an import.

Without sshd (or root) the tests that need it are skipped on a laptop but FAIL when the CI
environment variable is set.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from jitpol.connectors.ssh import SshConnector

try:
    from tools.throwaway_sshd import SshdNotFound, ThrowawaySshd, ThrowawaySshdError
except ModuleNotFoundError:
    # `tools` is a plain directory at the repository root, not an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.modules.pop("tools", None)
    from tools.throwaway_sshd import SshdNotFound, ThrowawaySshd, ThrowawaySshdError

if TYPE_CHECKING:
    import paramiko

KEY_ENV = "SSH_TEST_KEY"
TARGET = "ssh-test"


@pytest.fixture(scope="session", name="sshd_server")
def sshd_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawaySshd]:
    reason = None
    if os.geteuid() != 0:
        reason = "the throwaway sshd needs root (mount namespaces, useradd)"
    server = ThrowawaySshd(tmp_path_factory.mktemp("sshd"))
    if reason is None:
        try:
            server.start()
        except SshdNotFound as exc:
            reason = str(exc)
        except ThrowawaySshdError as exc:
            pytest.fail(f"could not start the throwaway sshd: {exc}", pytrace=False)
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and sshd is required: {reason}", pytrace=False)
        pytest.skip(reason)
    try:
        yield server
    finally:
        server.stop()


def unique(prefix: str) -> str:
    """A Linux name no other test uses: prefix + 10 hex (prefixes are short)."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


class SshHost:
    """Prepares and inspects the namespaced host through nsenter (never through the code under
    test). cleanup() removes every user, group, jit-* account and jitpol-* drop-in the test
    made, and kills their processes."""

    def __init__(self, server: ThrowawaySshd, tmp: Path) -> None:
        self.server = server
        self.tmp = tmp
        self.users: list[str] = []
        self.groups: list[str] = []
        self.extra_files: list[str] = []
        self._before_accounts = set(self.jitpol_accounts())
        self._before_rules = set(self.jitpol_rule_files())

    # -- preparing --------------------------------------------------------------------------

    def run(self, *argv: str, check: bool = True, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.server.run(list(argv), check=check, input_text=input_text)

    def group(self, prefix: str = "g") -> str:
        name = unique(prefix)
        self.run("groupadd", "--", name)
        self.groups.append(name)
        return name

    def user(self, prefix: str = "u", *, key: bool = False) -> str:
        """A normal login user (uid >= 1000, password '*'); with key=True, the test's key
        (self.key_path) in its authorized_keys."""
        name = unique(prefix)
        self.run("useradd", "-m", "-p", "*", "-s", "/bin/bash", "--", name)
        self.users.append(name)
        if key:
            self.run("install", "-d", "-m", "700", "-o", name, "-g", name, f"/home/{name}/.ssh")
            self.run("install", "-m", "600", "-o", name, "-g", name, "/dev/stdin",
                     f"/home/{name}/.ssh/authorized_keys", input_text=self.public_key + "\n")
        return name

    def add_member(self, group: str, user: str) -> None:
        self.run("gpasswd", "-a", user, group)

    def write_file(self, path: str, text: str, mode: str = "0440") -> None:
        self.run("install", "-m", mode, "/dev/stdin", path, input_text=text)
        self.extra_files.append(path)

    @property
    def key_path(self) -> Path:
        """A person's ed25519 key pair, made once per test."""
        path = self.tmp / "person_ed25519"
        if not path.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "person@test", "-f", str(path)],
                           check=True, capture_output=True)
        return path

    @property
    def public_key(self) -> str:
        return " ".join(Path(f"{self.key_path}.pub").read_text().split()[:2])

    # -- inspecting -------------------------------------------------------------------------

    def members(self, group: str) -> set[str]:
        line = self.run("getent", "group", group).stdout.strip()
        return {m for m in line.split(":")[3].split(",") if m}

    def passwd(self, name: str) -> list[str] | None:
        result = self.run("getent", "passwd", name, check=False)
        return result.stdout.strip().split(":") if result.returncode == 0 else None

    def jitpol_accounts(self) -> list[str]:
        out = self.run("getent", "passwd").stdout
        return [ln.split(":")[0] for ln in out.splitlines() if ln.split(":")[4].startswith("jitpol grant ")]

    def jitpol_rule_files(self) -> list[str]:
        out = self.run("sh", "-c", "ls -A /etc/sudoers.d").stdout
        return sorted(f for f in out.split() if f.startswith("jitpol-"))

    def sudoers_files(self) -> list[str]:
        return sorted(self.run("sh", "-c", "ls -A /etc/sudoers.d").stdout.split())

    def processes(self, uid: str) -> list[str]:
        """Non-zombie processes of the user with this uid (ps inside the namespace; by uid, so it
        works after the account is gone)."""
        out = self.run("ps", "-o", "pid=,stat=,args=", "-u", uid, check=False).stdout
        return [ln for ln in out.splitlines() if not ln.split()[1].startswith("Z")]

    def login(self, user: str, command: str, *, key_path: Path | None = None) -> tuple[int, str, str]:
        """Run `command` over SSH as `user` with the person's key (paramiko, host key pinned).
        Raises paramiko.AuthenticationException when sshd refuses the key."""
        client = self.client(user, key_path=key_path)
        try:
            _, stdout, stderr = client.exec_command(command, timeout=20)
            status = stdout.channel.recv_exit_status()
            return status, stdout.read().decode(), stderr.read().decode()
        finally:
            client.close()

    def client(self, user: str, *, key_path: Path | None = None) -> paramiko.SSHClient:
        """An SSH connection as `user` with the person's key (the caller closes it)."""
        import paramiko

        kind, blob = self.server.host_key_line.split()
        client = paramiko.SSHClient()
        pinned = paramiko.PKey.from_type_string(kind, base64.b64decode(blob))
        client.get_host_keys().add(f"[127.0.0.1]:{self.server.port}", kind, pinned)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect("127.0.0.1", port=self.server.port, username=user,
                       key_filename=str(key_path or self.key_path), allow_agent=False, look_for_keys=False,
                       timeout=10, banner_timeout=10, auth_timeout=10)
        return client

    # -- cleaning up ------------------------------------------------------------------------

    def cleanup(self) -> None:
        new_accounts = set(self.jitpol_accounts()) - self._before_accounts
        for name in [*self.users, *sorted(new_accounts)]:
            if self.passwd(name) is not None:
                self.run("pkill", "-KILL", "-u", name, check=False)
                self.run("userdel", "-r", "-f", "--", name, check=False)
        for name in self.groups:
            self.run("groupdel", "--", name, check=False)
        new_rules = set(self.jitpol_rule_files()) - self._before_rules
        paths = [f"/etc/sudoers.d/{f}" for f in sorted(new_rules)] + self.extra_files
        if paths:
            self.run("rm", "-rf", "--", *paths)


@pytest.fixture(name="ssh_host")
def ssh_host_fixture(sshd_server: ThrowawaySshd, tmp_path: Path) -> Iterator[SshHost]:
    host = SshHost(sshd_server, tmp_path)
    try:
        yield host
    finally:
        host.cleanup()


Connect = Callable[..., SshConnector]


def settings_for(server: ThrowawaySshd, **overrides: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": server.port, "user": "root", "key_env": KEY_ENV,
            "host_key": server.host_key_line, **overrides}


@pytest.fixture(name="ssh_connect")
def ssh_connect_fixture(sshd_server: ThrowawaySshd) -> Iterator[Connect]:
    """ssh_connect(**settings) -> an SshConnector for the throwaway host as root (closed after)."""
    made: list[SshConnector] = []

    def make(env: dict[str, str] | None = None, **settings: Any) -> SshConnector:
        connector = SshConnector(TARGET, settings_for(sshd_server, **settings),
                                 env if env is not None else {KEY_ENV: sshd_server.client_key_text})
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


@pytest.fixture(scope="session", name="ssh_root")
def ssh_root_fixture(sshd_server: ThrowawaySshd) -> Iterator[SshConnector]:
    """One connector logged in as root, shared by the whole session."""
    connector = SshConnector(TARGET, settings_for(sshd_server), {KEY_ENV: sshd_server.client_key_text})
    yield connector
    connector.close()
