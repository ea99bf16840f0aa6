"""LocalHostConnector (type `local`: `jitpol agent --once` applies its own host's grants) for
real, run INSIDE the throwaway sshd's private mount namespace.

The connector code runs in a worker process that joins that namespace with setns(2), as nsenter
does, before it makes the connector (tests/ssh_fixtures.py LocalProxy): its subprocesses see the
namespace's /etc, /home and /run, so the host's own /etc is never changed (the worker refuses to
go on anywhere else, and a test checks the host's files). Results are checked through the SSH connector, real logins and
`sudo -n` run inside the namespace."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from jitpol.connectors import registry, ssh
from jitpol.connectors.base import Connector
from jitpol.connectors.ssh import LocalHostConnector, LocalRunner, SshConnector, host_matches
from jitpol.errors import PermanentTargetError, TargetUnavailable
from jitpol.model.assignment import Action, Assignment, Op, Scope
from jitpol.model.canonical import canonical_json
from tests.contract.suite import ConnectorContract, MakeAction
from tests.services import require_service
from tests.ssh_fixtures import (  # noqa: F401 - pytest finds the fixtures in this module
    _LOCAL_WORKER,
    REPO,
    TARGET,
    LocalConnect,
    LocalProxy,
    SshHost,
    local_connect_fixture,
    local_root_fixture,
    password_host_fixture,
    ssh_host_fixture,
    ssh_root_fixture,
    sshd_password_server_fixture,
    sshd_server_fixture,
    unique,
)

if TYPE_CHECKING:
    from tools.throwaway_sshd import ThrowawaySshd

ROLE, EPHEMERAL, SUDO, CHECKOUT = "role-membership", "ephemeral-account", "sudo-rule", "credential-checkout"
WINDOW = timedelta(hours=1)


def act(op: Op, model: str, principal: str, privilege: str, *, until: datetime | None = None,
        details: tuple[tuple[str, str], ...] = ()) -> Action:
    return Action(op=op, assignment=Assignment(TARGET, model, principal, privilege), resource="r",
                  grants=("g-local",), until=until,
                  details=tuple(sorted({"grant": "g-local", "person": "alice", **dict(details)}.items())))


def rule(command: str) -> str:
    return canonical_json({"command": command, "runAs": "root"})


def sudo_as(host: SshHost, user: str, *command: str) -> subprocess.CompletedProcess[str]:
    """`sudo -n COMMAND` as `user` inside the namespace (runuser: no password, no terminal)."""
    return host.run("runuser", "-u", user, "--", "sudo", "-n", *command, check=False)


# -- the contract suite, through LocalHostConnector --------------------------------------------------


class TestLocalRoleMembershipContract(ConnectorContract):
    marks: ClassVar[bool] = False  # /etc/group has no room for a marker
    native_end: ClassVar[bool] = False

    @pytest.fixture
    def connector(self, ssh_host: SshHost, local_root: LocalProxy) -> Connector:
        return local_root

    @pytest.fixture
    def roles(self, ssh_host: SshHost) -> tuple[str, str]:
        group, principal = ssh_host.group(), ssh_host.user()
        ssh_host.add_member(group, ssh_host.user("by"))  # standing members that are not ours
        ssh_host.add_member(ssh_host.group("un"), principal)
        return group, principal

    @pytest.fixture
    def scope(self, roles: tuple[str, str]) -> Scope:
        return Scope(TARGET, ROLE, frozenset({roles[0], "contract_missing_group"}))

    @pytest.fixture
    def make_action(self, roles: tuple[str, str]) -> MakeAction:
        group, principal = roles
        return lambda op: act(op, ROLE, principal, group)


class TestLocalSudoRuleContract(ConnectorContract):
    marks: ClassVar[bool] = True  # jitpol's header on its drop-ins
    native_end: ClassVar[bool] = True  # NOTAFTER

    @pytest.fixture
    def connector(self, ssh_host: SshHost, local_root: LocalProxy) -> Connector:
        return local_root

    @pytest.fixture
    def scope(self) -> Scope:
        return Scope(TARGET, SUDO, frozenset({rule("/usr/bin/id -u"), rule("/usr/bin/true")}))

    @pytest.fixture
    def make_action(self, ssh_host: SshHost) -> MakeAction:
        principal = ssh_host.user()
        until = datetime.now(UTC) + WINDOW
        return lambda op: act(op, SUDO, principal, rule("/usr/bin/id -u"), until=until if op == "grant" else None)


class TestLocalEphemeralAccountContract(ConnectorContract):
    marks: ClassVar[bool] = True  # the GECOS comment
    native_end: ClassVar[bool] = True  # the keys' expiry-time and the account's expiry day
    add_op: ClassVar[Op] = "create-account"
    remove_op: ClassVar[Op] = "delete-account"
    observe_filters_by_privileges: ClassVar[bool] = False

    @pytest.fixture
    def connector(self, ssh_host: SshHost, local_root: LocalProxy) -> Connector:
        return local_root

    @pytest.fixture
    def groups(self, ssh_host: SshHost) -> list[str]:
        return sorted([ssh_host.group(), ssh_host.group()])

    @pytest.fixture
    def scope(self, groups: list[str]) -> Scope:
        return Scope(TARGET, EPHEMERAL, frozenset({canonical_json(groups)}))

    @pytest.fixture
    def make_action(self, ssh_host: SshHost, groups: list[str]) -> MakeAction:
        account = unique("jit-alice-")
        until = datetime.now(UTC) + WINDOW
        keys = ssh_host.public_key + " alice@laptop\n"
        return lambda op: act(op, EPHEMERAL, account, canonical_json(groups),
                              until=until if op == "create-account" else None, details=(("ssh_keys", keys),))


# -- native ends and the same host seen both ways -----------------------------------------------------


def test_sudo_works_inside_the_shortened_window_and_not_after_notafter(
    local_root: LocalProxy, ssh_host: SshHost
) -> None:
    person = ssh_host.user()
    privilege = rule("/usr/bin/id -u")
    assert local_root.apply(act("grant", SUDO, person, privilege, until=datetime.now(UTC) + WINDOW)).changed
    # then shortened (a restriction cut the window): NOTAFTER follows the earlier end
    until = datetime.now(UTC) + timedelta(seconds=2.5)
    outcome = local_root.apply(act("grant", SUDO, person, privilege, until=until))
    assert [op.split()[0] for op in outcome.operations] == ["install", "visudo", "mv"]  # no sudo, no ssh
    inside = sudo_as(ssh_host, person, "/usr/bin/id", "-u")
    other = sudo_as(ssh_host, person, "/usr/bin/id", "-un")
    assert datetime.now(UTC) < until, "the machine is too slow for this window"
    assert (inside.returncode, inside.stdout.strip()) == (0, "0")
    assert other.returncode != 0  # only the granted command line
    (observed,) = local_root.observe(Scope(TARGET, SUDO, frozenset({privilege})))
    assert observed.expires is not None and until <= observed.expires < until + timedelta(seconds=1)
    delay = (observed.expires - datetime.now(UTC)).total_seconds() + 0.2
    if delay > 0:
        import time

        time.sleep(delay)
    after = sudo_as(ssh_host, person, "/usr/bin/id", "-u")
    assert after.returncode != 0 and "password is required" in after.stderr


def test_local_and_ssh_connectors_see_the_same_host(local_root: LocalProxy, ssh_root: SshConnector,
                                                    ssh_host: SshHost) -> None:
    group, person = ssh_host.group(), ssh_host.user()
    privilege = rule("/usr/bin/true")
    until = datetime.now(UTC) + WINDOW  # one end for both sides (another end would rightly move it)
    local_root.apply(act("grant", ROLE, person, group))
    local_root.apply(act("grant", SUDO, person, privilege, until=until))
    for model, name in ((ROLE, group), (SUDO, privilege)):
        scope = Scope(TARGET, model, frozenset({name}))
        assert ssh_root.observe(scope) == local_root.observe(scope) == {Assignment(TARGET, model, person, name)}
        # both read the same marker (the sudoers header), or both know a membership carries none
        assert [a.owned for a in ssh_root.observe(scope)] == [a.owned for a in local_root.observe(scope)] == [
            True if model == SUDO else None]
        # what one applied, the other finds already true; what one revokes, the other sees gone
        assert not ssh_root.apply(act("grant", model, person, name, until=until)).changed
        ssh_root.apply(act("revoke", model, person, name))
        assert local_root.observe(scope) == frozenset()
    assert ssh_host.members(group) == set()


def test_operations_are_the_plain_commands(local_root: LocalProxy, ssh_host: SshHost) -> None:
    group, person = ssh_host.group(), ssh_host.user()
    assert local_root.apply(act("grant", ROLE, person, group)).operations == (f"gpasswd -a {person} {group}",)
    revoke = local_root.apply(act("revoke", ROLE, person, group))
    assert revoke.operations[:2] == (f"gpasswd -d {person} {group}", f"pkill -KILL -u {person}")


@pytest.mark.parametrize("end_sessions", [True, False])
def test_revoke_ends_the_persons_processes(local_connect: LocalConnect, ssh_host: SshHost,
                                           end_sessions: bool) -> None:
    connector = local_connect(end_sessions=end_sessions)
    group, person = ssh_host.group(), ssh_host.user(key=True)
    connector.apply(act("grant", ROLE, person, group))
    uid = ssh_host.run("id", "-u", person).stdout.strip()
    client = ssh_host.client(person)
    try:
        _, stdout, _ = client.exec_command("id -nG; exec sleep 300")
        assert group in stdout.readline().split()
        connector.apply(act("revoke", ROLE, person, group))
        assert any("sleep 300" in p for p in ssh_host.processes(uid)) is not end_sessions
    finally:
        client.close()


def test_an_ephemeral_account_logs_in_with_the_persons_key(local_root: LocalProxy, ssh_host: SshHost) -> None:
    account, group = unique("jit-alice-"), ssh_host.group()
    local_root.apply(act("create-account", EPHEMERAL, account, canonical_json([group]),
                         until=datetime.now(UTC) + WINDOW, details=(("ssh_keys", ssh_host.public_key),)))
    status, out, _ = ssh_host.login(account, "id -nG")
    assert status == 0 and group in out.split()
    local_root.apply(act("delete-account", EPHEMERAL, account, canonical_json([group])))
    assert ssh_host.passwd(account) is None


def test_credential_checkout_locally(local_connect: LocalConnect, password_host: SshHost) -> None:
    connector = local_connect(password_host.server)
    account = password_host.user("ops")
    first, second = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    outcome = connector.apply(act("rotate", CHECKOUT, account, canonical_json(["g-local"]),
                                  until=datetime.now(UTC) + WINDOW, details=(("password", first),)))
    assert outcome.changed and outcome.operations[0] == f"chpasswd < {account}:***"
    assert first not in repr(outcome)
    assert password_host.password_login(account, first, "id -un")[1].strip() == account
    connector.apply(act("rotate", CHECKOUT, account, "[]", details=(("password", second),)))
    assert password_host.password_login(account, second, "true")[0] == 0
    import paramiko

    with pytest.raises(paramiko.AuthenticationException):
        password_host.password_login(account, first, "true")


# -- refusals ---------------------------------------------------------------------------------------


def test_another_host_is_refused_before_any_command(local_connect: LocalConnect, ssh_host: SshHost) -> None:
    connector = local_connect(hostname="not-this-host.example")
    group, person = ssh_host.group(), ssh_host.user()
    with pytest.raises(PermanentTargetError, match="refusing to apply another host's grants"):
        connector.apply(act("grant", ROLE, person, group))
    assert ssh_host.members(group) == set()


def test_running_as_a_normal_user_is_refused(local_connect: LocalConnect, ssh_host: SshHost) -> None:
    group, person = ssh_host.group(), ssh_host.user()
    uid = int(ssh_host.run("id", "-u", person).stdout)
    connector = local_connect(uid=uid)  # the worker drops root after joining the namespace
    with pytest.raises(PermanentTargetError, match=rf"type local .* must run as root \(running as uid {uid}\)"):
        connector.apply(act("grant", ROLE, person, group))
    with pytest.raises(PermanentTargetError, match="must run as root"):
        connector.observe(Scope(TARGET, ROLE, frozenset({group})))
    assert ssh_host.members(group) == set()


@pytest.mark.parametrize("settings", [
    {}, {"hostname": ""}, {"hostname": "-web"}, {"hostname": "web 1"}, {"hostname": 7},
    {"hostname": "web-1", "end_sessions": "yes"},
])
def test_bad_settings_are_refused_without_io(settings: dict[str, Any]) -> None:
    with pytest.raises(PermanentTargetError, match="setting"):
        LocalHostConnector("t", settings, {})


def test_the_registry_knows_type_local() -> None:
    connector = registry.create("t", "local", {"hostname": "web-1"}, {})
    assert isinstance(connector, LocalHostConnector) and connector.type == "local"
    local, remote = registry.TYPES["local"], registry.TYPES["ssh"]
    assert local.models == remote.models == connector.capabilities.models
    assert registry.name_check("local") is ssh.check_name
    assert CHECKOUT in local.secret_models and CHECKOUT in remote.secret_models
    connector.close()
    connector.close()


@pytest.mark.parametrize(("configured", "actual", "same"), [
    ("web-1", "web-1", True), ("WEB-1", "web-1", True), ("web-1", "web-1.internal", True),
    ("web-1.internal", "web-1", True), ("web-1.internal.", "web-1.internal", True),
    ("web-1", "web-10", False), ("web-1", "db-1", False), ("web-1.a", "db-1.a", False), ("web", "web-1", False),
])
def test_host_names_match_by_name_or_first_label(configured: str, actual: str, same: bool) -> None:
    assert host_matches(configured, actual) is same


# -- LocalRunner itself (harmless commands on the test machine) ------------------------------------


@pytest.fixture
def runner() -> LocalRunner:
    require_service(os.geteuid() == 0, "root", "LocalRunner runs only as root (CI: run the suite as root, e.g. sudo)")
    return LocalRunner("t")


def test_the_runner_passes_arguments_and_stdin_without_a_shell(runner: LocalRunner) -> None:
    hostile = "$(id) `id` ; x && y | z > /tmp/nope * ~"
    assert runner.run(["printf", "%s", hostile]) == (0, hostile, "")
    assert runner.run(["cat"], "a\nb: $(id)\n") == (0, "a\nb: $(id)\n", "")
    assert runner.run(["sh", "-c", 'printf "%s" "$LC_ALL $PATH"']) == (
        0, "C /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "")
    status, _, err = runner.run(["ls", "--", "/nonexistent-jitpol"])
    assert status == 2 and "No such file" in err
    assert runner.shown(["chpasswd"]) == "chpasswd" and runner.shown(["a b", "c"]) == "'a b' c"


def test_the_runner_reports_missing_programs_and_hangs() -> None:
    require_service(os.geteuid() == 0, "root", "LocalRunner runs only as root (CI: run the suite as root, e.g. sudo)")
    with pytest.raises(PermanentTargetError, match="not installed"):
        LocalRunner("t").run(["jitpol-no-such-program"])
    with pytest.raises(TargetUnavailable, match="timed out"):
        LocalRunner("t", timeout=0.3).run(["sleep", "5"])


# -- the host itself ----------------------------------------------------------------------------------


HOST_FILES = ["/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow"]


def host_state() -> dict[str, str]:
    state = {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in HOST_FILES if Path(p).exists()}
    state["/etc/sudoers.d"] = json.dumps(sorted(os.listdir("/etc/sudoers.d")) if Path("/etc/sudoers.d").is_dir()
                                         else None)
    state["/home"] = json.dumps(sorted(os.listdir("/home")))
    return state


def test_the_host_itself_is_never_touched(local_root: LocalProxy, ssh_host: SshHost) -> None:
    before = host_state()
    group, person, account = ssh_host.group(), ssh_host.user(), unique("jit-alice-")
    local_root.apply(act("grant", ROLE, person, group))
    local_root.apply(act("grant", SUDO, person, rule("/usr/bin/id"), until=datetime.now(UTC) + WINDOW))
    local_root.apply(act("create-account", EPHEMERAL, account, "[]", until=datetime.now(UTC) + WINDOW,
                         details=(("ssh_keys", ssh_host.public_key),)))
    assert ssh_host.members(group) == {person} and ssh_host.passwd(account) is not None
    assert len(ssh_host.jitpol_rule_files()) == 1
    assert host_state() == before
    for name in (person, account):
        assert subprocess.run(["getent", "passwd", name], capture_output=True).returncode == 2


def test_the_worker_refuses_to_run_outside_the_namespace(sshd_server: ThrowawaySshd) -> None:
    expected = os.readlink(f"/proc/{sshd_server.pid}/ns/mnt")
    outside = os.readlink("/proc/self/ns/mnt")
    # told to join this process's namespace (the host's): it must stop before making a connector
    result = subprocess.run(
        [sys.executable, "-c", _LOCAL_WORKER, str(os.getpid()), expected, outside, "", TARGET, "{}"],
        capture_output=True, text=True, timeout=30, cwd=str(REPO), input="",
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 2 and "not inside the throwaway sshd's mount namespace" in result.stdout
