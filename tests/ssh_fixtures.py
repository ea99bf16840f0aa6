"""Fixtures for the ssh connector: one throwaway sshd (tools/throwaway_sshd.py) per pytest
session, in a private mount namespace, so users, groups and sudoers files made by the tests
never reach the host.

    sshd_server   session: a started ThrowawaySshd
    ssh_host      function: SshHost — makes users/groups with unique names inside the namespace,
                  inspects them, logs in as them, and removes everything afterwards
    ssh_connect   function: ssh_connect(**settings) -> SshConnector logged in as root

    ssh_root      session: one SshConnector logged in as root, shared (connecting costs ~0.2 s)

    sshd_password_server  session: a second ThrowawaySshd that also accepts password logins
    password_host         function: SshHost on that server (password_login(user, password, cmd))
    password_root         function: SshConnector logged in as root on that server

    local_root    session: LocalProxy — a LocalHostConnector running INSIDE sshd_server's mount
                  namespace (a worker process that joins it with setns), used like a connector
    local_connect function: local_connect(server=None, **settings) -> LocalProxy (closed after)

Each is defined as `<name>_fixture` with `name="<name>"`, so a test module imports the
`*_fixture` functions (`from tests.ssh_fixtures import ssh_host_fixture  # noqa: F401`) and its
tests take the plain names as arguments without shadowing an import.

Without sshd (or root) the tests that need it are skipped on a laptop but FAIL when the CI
environment variable is set.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from jitpol import errors
from jitpol.connectors.ssh import LocalHostConnector, SshConnector
from jitpol.model.assignment import Action, Assignment, Capabilities, Outcome, Scope
from tests.services import require_service, serve

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


REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", name="sshd_server")
def sshd_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawaySshd]:
    yield from _serve(tmp_path_factory, password_auth=False)


@pytest.fixture(scope="session", name="sshd_password_server")
def sshd_password_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawaySshd]:
    """A throwaway sshd with PasswordAuthentication on (credential checkouts log in with the
    password jitpol set)."""
    yield from _serve(tmp_path_factory, password_auth=True)


def _serve(tmp_path_factory: pytest.TempPathFactory, *, password_auth: bool) -> Iterator[ThrowawaySshd]:
    server = ThrowawaySshd(tmp_path_factory.mktemp("sshd"), password_auth=password_auth)
    require_service(os.geteuid() == 0, "sshd", "the throwaway sshd needs root (mount namespaces, useradd)")
    yield from serve(server, what="sshd", missing=SshdNotFound, failed=ThrowawaySshdError, name="the throwaway sshd")


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
        return _exec(self.client(user, key_path=key_path), command)

    def client(self, user: str, *, key_path: Path | None = None, password: str | None = None) -> paramiko.SSHClient:
        """An SSH connection as `user` with the person's key, or with `password` only when it
        is given (the caller closes it). Raises paramiko.AuthenticationException when refused."""
        import paramiko

        kind, blob = self.server.host_key_line.split()
        client = paramiko.SSHClient()
        pinned = paramiko.PKey.from_type_string(kind, base64.b64decode(blob))
        client.get_host_keys().add(f"[127.0.0.1]:{self.server.port}", kind, pinned)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        credential: dict[str, Any] = (
            {"password": password} if password is not None else {"key_filename": str(key_path or self.key_path)}
        )
        try:
            client.connect("127.0.0.1", port=self.server.port, username=user, allow_agent=False,
                           look_for_keys=False, timeout=10, banner_timeout=10, auth_timeout=10, **credential)
        except paramiko.SSHException:
            client.close()
            raise
        return client

    def password_login(self, user: str, password: str, command: str) -> tuple[int, str, str]:
        """Run `command` over SSH as `user`, authenticating with `password` only."""
        return _exec(self.client(user, password=password), command)

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


@pytest.fixture(name="password_host")
def password_host_fixture(sshd_password_server: ThrowawaySshd, tmp_path: Path) -> Iterator[SshHost]:
    host = SshHost(sshd_password_server, tmp_path)
    try:
        yield host
    finally:
        host.cleanup()


@pytest.fixture(name="password_root")
def password_root_fixture(sshd_password_server: ThrowawaySshd) -> Iterator[SshConnector]:
    connector = SshConnector(TARGET, settings_for(sshd_password_server),
                             {KEY_ENV: sshd_password_server.client_key_text})
    yield connector
    connector.close()


# -- LocalHostConnector, run inside a throwaway server's mount namespace --------------------------

# The worker: `python -c _LOCAL_WORKER SSHD_PID EXPECTED_NS OUTSIDE_NS UID TARGET SETTINGS_JSON`.
# It starts on the host (this machine's Python may live where the namespace hides it, e.g. under
# /root), imports jitpol, then joins the server's mount namespace with setns(2) --
# what nsenter does -- and refuses to go on unless it really is in that namespace (and not in the
# test process's): the host's own /etc can never be changed by it. With UID it then drops root.
# One JSON request per stdin line, one JSON answer per stdout line.
_LOCAL_WORKER = r"""
import ctypes, json, os, sys
from datetime import datetime

from jitpol.connectors.ssh import LocalHostConnector
from jitpol.errors import JitpolError
from jitpol.model.assignment import Action, Assignment, Scope

pid, expected, outside, uid, target, settings = sys.argv[1:7]
CLONE_NEWNS = 0x00020000
# modules imported later (lazily, e.g. _strptime) are still found through the host's root
host_root = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
sys.path[:] = [f"/proc/self/fd/{host_root}{p}" if p.startswith("/") else p for p in sys.path]
fd = os.open(f"/proc/{int(pid)}/ns/mnt", os.O_RDONLY)
if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNS) != 0:
    print(json.dumps({"fatal": "setns failed: " + os.strerror(ctypes.get_errno())}), flush=True)
    sys.exit(2)
os.close(fd)
os.chdir("/")
here = os.readlink("/proc/self/ns/mnt")
if here != expected or here == outside:
    print(json.dumps({"fatal": "worker is not inside the throwaway sshd's mount namespace: " + here}), flush=True)
    sys.exit(2)
if uid:
    os.setgroups([])
    os.setgid(int(uid))
    os.setuid(int(uid))

connector = LocalHostConnector(target, json.loads(settings), {})
print(json.dumps({"ready": here}), flush=True)
for line in sys.stdin:
    request = json.loads(line)
    try:
        if request["call"] == "apply":
            a = request["action"]
            action = Action(
                op=a["op"], assignment=Assignment(*a["assignment"]), resource=a["resource"],
                grants=tuple(a["grants"]), until=datetime.fromisoformat(a["until"]) if a["until"] else None,
                reason=a["reason"], drift=a["drift"], details=tuple((k, v) for k, v in a["details"]),
            )
            o = connector.apply(action, check=request["check"])
            answer = {"outcome": [o.changed, o.before, o.after, list(o.operations)]}
        elif request["call"] == "observe":
            s = request["scope"]
            found = connector.observe(Scope(s["target"], s["model"], frozenset(s["privileges"]),
                                            tuple((k, v) for k, v in s["settings"])))
            answer = {"observed": [[x.target, x.model, x.principal, x.privilege,
                                    x.expires.isoformat() if x.expires else None, x.owned] for x in found]}
        else:
            connector.close()
            answer = {"closed": True}
    except JitpolError as exc:
        answer = {"error": type(exc).__name__, "message": str(exc)}
    print(json.dumps(answer), flush=True)
"""


class LocalProxy:
    """A LocalHostConnector that runs in a worker process inside `server`'s mount namespace
    (joined with setns before the connector is made),
    used through the Connector protocol: apply/observe are sent to the worker, which runs the
    real connector there (its commands see the namespace's /etc, /home, /run). jitpol errors
    raised there are raised here again with the same class and message."""

    type: ClassVar[str] = "local"
    capabilities: ClassVar[Capabilities] = LocalHostConnector.capabilities

    def __init__(self, server: ThrowawaySshd, name: str = TARGET, *, uid: int | None = None, **settings: Any) -> None:
        self.name = name
        self.server = server
        self.uid = uid  # run the connector as this user instead of root
        self.settings = {"hostname": os.uname().nodename, **settings}
        self._proc: subprocess.Popen[str] | None = None
        self._stderr = tempfile.TemporaryFile(mode="w+")  # the worker's stderr, read when it dies

    def observe(self, scope: Scope) -> frozenset[Assignment]:
        answer = self._call({"call": "observe", "scope": {
            "target": scope.target, "model": scope.model, "privileges": sorted(scope.privileges),
            "settings": [list(kv) for kv in scope.settings]}})
        return frozenset(
            Assignment(t, m, p, v, expires=datetime.fromisoformat(e) if e else None, owned=o)
            for t, m, p, v, e, o in answer["observed"]
        )

    def apply(self, action: Action, *, check: bool = False) -> Outcome:
        a = action.assignment
        answer = self._call({"call": "apply", "check": check, "action": {
            "op": action.op, "assignment": [a.target, a.model, a.principal, a.privilege],
            "resource": action.resource, "grants": list(action.grants),
            "until": action.until.isoformat() if action.until else None, "reason": action.reason,
            "drift": action.drift, "details": [list(kv) for kv in action.details]}})
        changed, before, after, operations = answer["outcome"]
        return Outcome(changed=changed, before=before, after=after, operations=tuple(operations))

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        proc = self._worker()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(request) + "\n")
        proc.stdin.flush()
        answer = self._answer(proc)
        if "error" in answer:
            cls = getattr(errors, str(answer["error"]), None)
            if not (isinstance(cls, type) and issubclass(cls, errors.JitpolError)):
                cls = errors.JitpolError
            raise cls(answer["message"])
        return answer

    def _worker(self) -> subprocess.Popen[str]:
        if self._proc is None or self._proc.poll() is not None:
            expected = os.readlink(f"/proc/{self.server.pid}/ns/mnt")
            outside = os.readlink("/proc/self/ns/mnt")
            assert expected != outside, "the throwaway sshd shares the test's mount namespace"
            proc = subprocess.Popen(
                [sys.executable, "-c", _LOCAL_WORKER, str(self.server.pid), expected, outside,
                 "" if self.uid is None else str(self.uid), self.name, json.dumps(self.settings)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True, cwd=str(REPO),
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
            answer = self._answer(proc)
            if answer.get("ready") != expected:
                raise RuntimeError(f"local worker did not start in the namespace: {answer}")
            self._proc = proc
        return self._proc

    def _answer(self, proc: subprocess.Popen[str]) -> dict[str, Any]:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            proc.wait()
            self._stderr.seek(0)
            raise RuntimeError(f"local worker exited with status {proc.returncode}: {self._stderr.read()[-2000:]}")
        answer: dict[str, Any] = json.loads(line)
        if "fatal" in answer:
            raise RuntimeError(str(answer["fatal"]))
        return answer


@pytest.fixture(scope="session", name="local_root")
def local_root_fixture(sshd_server: ThrowawaySshd) -> Iterator[LocalProxy]:
    """One LocalHostConnector (default settings) inside sshd_server's namespace, shared."""
    proxy = LocalProxy(sshd_server)
    yield proxy
    proxy.close()


LocalConnect = Callable[..., LocalProxy]


@pytest.fixture(name="local_connect")
def local_connect_fixture(sshd_server: ThrowawaySshd) -> Iterator[LocalConnect]:
    """local_connect(server=None, **settings) -> a LocalProxy in `server`'s namespace (default:
    sshd_server), closed after the test."""
    made: list[LocalProxy] = []

    def make(server: ThrowawaySshd | None = None, **settings: Any) -> LocalProxy:
        proxy = LocalProxy(server or sshd_server, **settings)
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()


def _exec(client: paramiko.SSHClient, command: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `command` on an open connection, which is then closed."""
    try:
        _, stdout, stderr = client.exec_command(command, timeout=20)
        status = stdout.channel.recv_exit_status()
        return status, stdout.read().decode(), stderr.read().decode()
    finally:
        client.close()
