"""SshConnector against a real sshd in a private mount namespace (tests/ssh_fixtures.py):
native ends (authorized_keys expiry-time, sudoers NOTAFTER, account expiry) proven by real
logins and sudo runs, hostile names and commands refused before anything runs, host keys
pinned, processes ended, unmanaged users/groups/sudoers files left alone, and the host itself
never touched."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paramiko
import pytest

from jitpol.connectors import ssh, sudoers
from jitpol.connectors.ssh import SshConnector, check_name
from jitpol.errors import InvalidInput, PermanentTargetError, TargetUnavailable
from jitpol.model.assignment import Action, Assignment, Op, Scope
from jitpol.model.canonical import canonical_json
from jitpol.model.sshkey import fingerprint
from tests.doubles.server import closed_port
from tests.ssh_fixtures import (  # noqa: F401 - pytest finds the fixtures in this module
    KEY_ENV,
    TARGET,
    Connect,
    SshHost,
    settings_for,
    ssh_connect_fixture,
    ssh_host_fixture,
    ssh_root_fixture,
    sshd_server_fixture,
    unique,
)

ROLE, EPHEMERAL, SUDO = "role-membership", "ephemeral-account", "sudo-rule"
HOUR = timedelta(hours=1)


def act(op: Op, model: str, principal: str, privilege: str, *, until: datetime | None = None,
        keys: str = "", start: str = "") -> Action:
    details = [("grant", "g-it"), ("person", "alice")]
    if keys:
        details.append(("ssh_keys", keys))
    if start:
        details.append(("start", start))
    return Action(op=op, assignment=Assignment(TARGET, model, principal, privilege), resource="r",
                  grants=("g-it",), until=until, details=tuple(sorted(details)))


def rule(command: str, run_as: str = "root") -> str:
    return canonical_json({"command": command, "runAs": run_as})


def groups_json(*groups: str) -> str:
    return canonical_json(sorted(groups))


@pytest.fixture(scope="module")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A valid private key that no server knows."""
    path = tmp_path_factory.mktemp("keys") / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.read_text()


def offline(key: str, **settings: Any) -> SshConnector:
    """A connector with a valid key for a port where nothing listens: reaching the network
    raises TargetUnavailable, so a PermanentTargetError proves the refusal came first."""
    host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHWNlkGAIq7dISMMazr/Pk0B4Sp6Zw9Kx9gmvl+CyKsu"
    base = {"host": "127.0.0.1", "port": closed_port(), "user": "root", "key_env": KEY_ENV, "host_key": host_key}
    return SshConnector(TARGET, {**base, **settings}, {KEY_ENV: key})


def wait_until(moment: datetime) -> None:
    delay = (moment - datetime.now(UTC)).total_seconds()
    if delay > 0:
        time.sleep(delay)


# -- names, without a server ------------------------------------------------------------------

HOSTILE_PRINCIPALS = ["alice; rm -rf /", "$(id)", "`id`", "root", "daemon", "nobody", "sshd", "systemd-network",
                      "ALL", "%sudo", "#0", "-rf", "a" * 33, "Alice", "", "alice\n", "al ice", "../etc"]
HOSTILE_GROUPS = ["sudo", "root", "wheel", "admin", "adm", "shadow", "disk", "kmem", "staff", "x y", "docker,sudo",
                  "$(id)", "%admin", "ALL", ""]
HOSTILE_RULES = [
    rule("/bin/sh"), rule("/usr/bin/bash"), rule("ALL"), rule("/usr/bin/vi"), rule("/usr/bin/vi /etc/motd"),
    rule("/usr/bin/id $(id)"), rule("sudoedit /etc/shadow"), rule("/usr/bin/env bash"),
    rule("/usr/bin/python3 -c x"), rule("/usr/bin/systemctl restart *"), rule("/usr/bin/id", "ALL"),
    rule("/usr/bin/id", "#0"), rule("/usr/bin/id -u,/bin/sh"), rule("alice; rm -rf /"),
    '{"command": "/usr/bin/id", "runAs": "root"}', '{"command":"/usr/bin/id"}',
]


@pytest.mark.parametrize("name", HOSTILE_PRINCIPALS)
def test_check_name_refuses_hostile_principals(name: str) -> None:
    with pytest.raises(InvalidInput):
        check_name(name, "principal")


@pytest.mark.parametrize("value", HOSTILE_GROUPS + HOSTILE_RULES + [None, 3, ["docker"]])
def test_check_name_refuses_hostile_privileges(value: object) -> None:
    with pytest.raises(InvalidInput) as info:
        check_name(value, "privilege")
    assert "\n" not in str(info.value)


def test_check_name_accepts_ordinary_names() -> None:
    check_name("alice", "principal")
    check_name("docker", "privilege")
    check_name("www-data", "privilege")
    check_name(rule("/usr/bin/systemctl restart nginx"), "privilege")
    check_name(rule("/usr/sbin/service nginx reload", "www-data"), "privilege")


def test_refused_group_message_explains_why() -> None:
    with pytest.raises(InvalidInput, match="sudo-rule"):
        check_name("sudo", "privilege")


@pytest.mark.parametrize(
    ("op", "model", "principal", "privilege"),
    [
        *[("grant", ROLE, p, "docker") for p in HOSTILE_PRINCIPALS],
        *[("revoke", ROLE, "alice", g) for g in HOSTILE_GROUPS],
        *[("grant", SUDO, "alice", r) for r in HOSTILE_RULES],
        *[("revoke", SUDO, p, rule("/usr/bin/id")) for p in HOSTILE_PRINCIPALS],
        ("create-account", EPHEMERAL, "alice", groups_json("docker")),
        ("create-account", EPHEMERAL, "jit-", groups_json("docker")),
        ("create-account", EPHEMERAL, "jit-Alice", groups_json("docker")),
        ("create-account", EPHEMERAL, "jit-" + "a" * 29, groups_json("docker")),  # 33 characters
        ("create-account", EPHEMERAL, "jit-a;id", groups_json("docker")),
        ("create-account", EPHEMERAL, "jit-alice", groups_json("sudo")),
        ("create-account", EPHEMERAL, "jit-alice", '["web","docker"]'),  # not sorted
        ("create-account", EPHEMERAL, "jit-alice", '["docker","docker"]'),
        ("create-account", EPHEMERAL, "jit-alice", '["docker", "web"]'),  # not canonical
        ("create-account", EPHEMERAL, "jit-alice", "docker"),
        ("delete-account", EPHEMERAL, "root", "[]"),
        ("grant", EPHEMERAL, "jit-alice", "[]"),  # wrong op for the model
        ("create-account", ROLE, "alice", "docker"),
        ("grant", "idp-elevation", "alice", "docker"),
    ],
)
def test_hostile_actions_are_refused_before_connecting(
    client_key: str, op: Op, model: str, principal: str, privilege: str
) -> None:
    action = act(op, model, principal, privilege, until=datetime.now(UTC) + HOUR,
                 keys="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHWNlkGAIq7dISMMazr/Pk0B4Sp6Zw9Kx9gmvl+CyKsu")
    for check in (True, False):
        with pytest.raises(PermanentTargetError):
            offline(client_key).apply(action, check=check)


@pytest.mark.parametrize(
    "keys",
    [
        'command="/bin/sh" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHWNlkGAIq7dISMMazr/Pk0B4Sp6Zw9Kx9gmvl+CyKsu',
        'expiry-time="20991231235959Z" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHWNlkGAIq7dISMMazr/Pk0B4Sp6Zw9K',
        "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
        "ssh-ed25519 not-base64!",
        "just text",
    ],
)
def test_person_keys_cannot_smuggle_options(keys: str) -> None:
    with pytest.raises(InvalidInput):
        ssh.public_keys(keys)


def test_person_keys_lose_their_comments() -> None:
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHWNlkGAIq7dISMMazr/Pk0B4Sp6Zw9Kx9gmvl+CyKsu"
    assert ssh.public_keys(f"# laptop\n{key} alice@laptop; rm -rf /\n\n{key} again\n") == (key,)


def test_authorized_keys_ends() -> None:
    end = datetime(1998, 11, 30, 12, 0, 0, 250000, tzinfo=UTC)
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHWNlkGAIq7dISMMazr/Pk0B4Sp6Zw9Kx9gmvl+CyKsu"
    text = ssh.authorized_keys_text([key], end, "g1")
    # sshd accepts through the second it names: 12:00:00 covers 12:00:00.25, access ends 12:00:01
    assert f'expiry-time="19981130120000Z" {key}\n' in text
    assert ssh.parse_authorized_keys(text) == (ssh.AuthorizedKey(key, datetime(1998, 11, 30, 12, 0, 1, tzinfo=UTC)),)
    foreign = f'from="10.0.0.1",expiry-time="19981130" {key}\n{key}\ngarbage line\n'
    assert [k.end for k in ssh.parse_authorized_keys(foreign)] == [None, None, None]


def test_account_expiry_day_rounds_up() -> None:
    assert ssh.expire_day(datetime(1970, 1, 2, tzinfo=UTC)) == 1
    assert ssh.expire_day(datetime(1970, 1, 2, 0, 0, 1, tzinfo=UTC)) == 2
    assert ssh.day_start(ssh.expire_day(datetime(1998, 11, 30, 12, tzinfo=UTC))) == datetime(1998, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "settings",
    [
        {"host": None}, {"host": "a b"}, {"host": "x;id"}, {"port": 0}, {"port": "22"}, {"port": True},
        {"user": "Root"}, {"user": "root;id"}, {"key_env": ""}, {"host_key": "AAAA"},
        {"host_key": "ssh-dss AAAAB3NzaC1kc3MAAACBAP"}, {"end_sessions": "yes"}, {"connect_timeout": 0},
    ],
)
def test_bad_settings_are_refused_without_io(settings: dict[str, Any]) -> None:
    base = {"host": "127.0.0.1", "user": "root", "key_env": KEY_ENV,
            "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHWNlkGAIq7dISMMazr/Pk0B4Sp6Zw9Kx9gmvl+CyKsu"}
    with pytest.raises(PermanentTargetError):
        SshConnector(TARGET, {**base, **settings}, {})


# -- connecting ---------------------------------------------------------------------------------


def test_unreachable_host_is_temporary(client_key: str) -> None:
    connector = offline(client_key, connect_timeout=2)
    with pytest.raises(TargetUnavailable):
        connector.observe(Scope(TARGET, SUDO, frozenset()))
    connector.close()
    connector.close()  # safe twice


def test_unreachable_host_is_temporary_on_observe(ssh_host: SshHost) -> None:
    server = ssh_host.server
    connector = SshConnector(TARGET, settings_for(server, port=closed_port(), connect_timeout=2),
                             {KEY_ENV: server.client_key_text})
    with pytest.raises(TargetUnavailable):
        connector.observe(Scope(TARGET, ROLE, frozenset({"docker"})))


def _other_key(tmp: Path, kind: str) -> str:
    path = tmp / f"other_{kind}"
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)], check=True)
    return " ".join(Path(f"{path}.pub").read_text().split()[:2])


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa", "rsa"])
def test_a_changed_host_key_is_refused(ssh_connect: Connect, ssh_host: SshHost, tmp_path: Path, kind: str) -> None:
    pinned = _other_key(tmp_path, kind)
    connector = ssh_connect(host_key=pinned)
    with pytest.raises(PermanentTargetError) as info:
        connector.observe(Scope(TARGET, ROLE, frozenset({"users"})))
    message = str(info.value)
    real = ssh_host.server.host_key_line
    assert "SHA256:" in message
    assert fingerprint(pinned) in message and fingerprint(real) in message
    assert real.split()[1] not in message and pinned.split()[1] not in message  # fingerprints, not keys


def test_the_pinned_host_key_connects(ssh_connect: Connect) -> None:
    assert ssh_connect().observe(Scope(TARGET, ROLE, frozenset({"root"}))) == frozenset()


def test_a_refused_client_key_is_permanent_and_secret(ssh_connect: Connect, ssh_host: SshHost) -> None:
    text = ssh_host.key_path.read_text()  # a valid key, but not root's
    with pytest.raises(PermanentTargetError) as info:
        ssh_connect(env={KEY_ENV: text}).observe(Scope(TARGET, ROLE, frozenset({"users"})))
    assert "refused the key" in str(info.value)
    assert text.splitlines()[1] not in str(info.value)


@pytest.mark.parametrize("value", [None, "", "-----BEGIN OPENSSH PRIVATE KEY-----\nnonsense\n"])
def test_a_missing_or_broken_client_key_is_permanent(ssh_connect: Connect, value: str | None) -> None:
    env = {} if value is None else {KEY_ENV: value}
    with pytest.raises(PermanentTargetError) as info:
        ssh_connect(env=env).observe(Scope(TARGET, ROLE, frozenset({"users"})))
    assert "nonsense" not in str(info.value)


def test_an_encrypted_client_key_is_refused(ssh_connect: Connect, tmp_path: Path) -> None:
    path = tmp_path / "enc"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret-pass", "-f", str(path)], check=True)
    with pytest.raises(PermanentTargetError, match="encrypted"):
        ssh_connect(env={KEY_ENV: path.read_text()}).observe(Scope(TARGET, ROLE, frozenset({"users"})))


# -- the host stays untouched ----------------------------------------------------------------------


def _host_snapshot() -> dict[str, str]:
    snap = {p: hashlib.sha256(Path(p).read_bytes()).hexdigest()
            for p in ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow")}
    snap["/etc/sudoers.d"] = " ".join(sorted(os.listdir("/etc/sudoers.d")))
    snap["/home"] = " ".join(sorted(os.listdir("/home")))
    return snap


def test_changes_stay_inside_the_namespace(ssh_root: SshConnector, ssh_host: SshHost) -> None:
    before = _host_snapshot()
    group, person = ssh_host.group(), ssh_host.user()
    account = unique("jit-iso-")
    until = datetime.now(UTC) + HOUR
    ssh_root.apply(act("grant", ROLE, person, group))
    ssh_root.apply(act("create-account", EPHEMERAL, account, groups_json(group), until=until,
                       keys=ssh_host.public_key))
    ssh_root.apply(act("grant", SUDO, person, rule("/usr/bin/id"), until=until))
    # inside: everything happened
    assert ssh_host.members(group) == {person, account}
    assert ssh_host.jitpol_rule_files()
    assert (ssh_host.server.base_dir / "etc-upper" / "passwd").exists()  # the overlay took the write
    # outside: nothing did
    assert _host_snapshot() == before
    for name in (person, account, group):
        assert name not in Path("/etc/passwd").read_text() + Path("/etc/group").read_text()
    ssh_root.apply(act("delete-account", EPHEMERAL, account, groups_json(group)))
    assert _host_snapshot() == before


# -- ephemeral accounts ----------------------------------------------------------------------------


def test_ephemeral_login_works_in_the_window_and_not_after(ssh_root: SshConnector, ssh_host: SshHost) -> None:
    group = ssh_host.group()
    account = unique("jit-alice-")
    until = datetime.now(UTC) + timedelta(seconds=2.5)
    outcome = ssh_root.apply(act("create-account", EPHEMERAL, account, groups_json(group), until=until,
                                 keys=ssh_host.public_key + " alice@laptop"))
    assert outcome.changed
    assert any(op.startswith("useradd -m -c 'jitpol grant g-it' -p '*' -s /bin/bash -e ") for op in outcome.operations)

    # the account as observed: marker, groups and the end the host enforces
    observed = {a for a in ssh_root.observe(Scope(TARGET, EPHEMERAL, frozenset())) if a.principal == account}
    assert observed == {Assignment(TARGET, EPHEMERAL, account, groups_json(group))}
    (seen,) = observed
    assert seen.expires is not None and until <= seen.expires < until + timedelta(seconds=1)
    assert seen.owned is True  # the GECOS marker
    passwd = ssh_host.passwd(account)
    assert passwd is not None and passwd[4] == "jitpol grant g-it" and passwd[6] == "/bin/bash"
    shadow = ssh_host.run("getent", "shadow", account).stdout.split(":")
    assert shadow[1] == "*" and int(shadow[7]) == ssh.expire_day(until)

    status, out, _ = ssh_host.login(account, "id -nG")
    early = ssh_host.client(account)  # a connection opened inside the window...
    assert datetime.now(UTC) < until, "the machine is too slow for this window"
    assert status == 0 and group in out.split()
    try:
        wait_until(seen.expires + timedelta(seconds=0.2))
        with pytest.raises(paramiko.AuthenticationException):
            ssh_host.login(account, "id")
        # ...outlives the key's end (sshd checks expiry-time only when it authenticates): ending
        # it is delete-account's job, see test_delete_account_ends_its_processes
        _, stdout, _ = early.exec_command("true")
        assert stdout.channel.recv_exit_status() == 0
    finally:
        early.close()


def test_an_expired_account_cannot_log_in_even_with_a_valid_key(ssh_root: SshConnector, ssh_host: SshHost) -> None:
    # the day-granular account expiry is the backstop if the keys were tampered with
    account = unique("jit-exp-")
    ssh_root.apply(act("create-account", EPHEMERAL, account, "[]", until=datetime.now(UTC) + HOUR,
                       keys=ssh_host.public_key))
    assert ssh_host.login(account, "true")[0] == 0
    ssh_host.run("usermod", "--expiredate", "1", "--", account)
    with pytest.raises(paramiko.AuthenticationException):
        ssh_host.login(account, "true")


def test_delete_account_ends_its_processes(ssh_root: SshConnector, ssh_host: SshHost) -> None:
    account = unique("jit-proc-")
    privilege = groups_json(ssh_host.group())
    ssh_root.apply(act("create-account", EPHEMERAL, account, privilege, until=datetime.now(UTC) + HOUR,
                       keys=ssh_host.public_key))
    uid = ssh_host.run("id", "-u", account).stdout.strip()
    client = ssh_host.client(account)
    try:
        _, stdout, _ = client.exec_command("sleep 300; echo survived")
        deadline = time.monotonic() + 5
        while not any("sleep 300" in p for p in ssh_host.processes(uid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any("sleep 300" in p for p in ssh_host.processes(uid))

        outcome = ssh_root.apply(act("delete-account", EPHEMERAL, account, privilege))
        assert [op.split()[0] for op in outcome.operations] == ["usermod", "pkill", "sh", "userdel"]
        assert ssh_host.processes(uid) == []
        assert ssh_host.passwd(account) is None
        assert ssh_host.run("test", "-e", f"/home/{account}", check=False).returncode != 0
        stdout.channel.settimeout(5)
        assert stdout.read() == b""  # the session ended without finishing its command
    finally:
        client.close()
    again = ssh_root.apply(act("delete-account", EPHEMERAL, account, privilege))
    assert not again.changed and again.operations == ()


def test_the_account_end_follows_the_grant_both_ways(ssh_root: SshConnector, ssh_host: SshHost) -> None:
    account = unique("jit-ext-")
    privilege = groups_json(ssh_host.group())
    first = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)  # whole seconds: observed exactly

    def create(until: datetime, *, check: bool = False, extend: bool = True) -> tuple[str, ...] | None:
        action = act("create-account", EPHEMERAL, account, privilege, until=until, keys=ssh_host.public_key)
        if extend:  # what the diff sends when the enforced end differs from the grant's live end
            action = replace(action, details=tuple(sorted({**dict(action.details), "mode": "extend"}.items())))
        outcome = ssh_root.apply(action, check=check)
        return outcome.operations if outcome.changed else None

    def expires() -> datetime | None:
        (a,) = [a for a in ssh_root.observe(Scope(TARGET, EPHEMERAL, frozenset())) if a.principal == account]
        return a.expires

    def shadow_day() -> int:
        return int(ssh_host.run("getent", "shadow", account).stdout.split(":")[7])

    assert create(first, extend=False)
    assert expires() == first and shadow_day() == ssh.expire_day(first)
    # shortened: a restriction cut the window to one hour; the keys and the account's day follow
    shorter = first - timedelta(days=3) + HOUR
    ops = create(shorter, check=True)
    assert ops is not None and expires() == first  # check mode writes nothing
    assert [op.split()[0] for op in ops] == ["usermod", "sh"]
    assert create(shorter) == ops
    assert expires() == shorter and shadow_day() == ssh.expire_day(shorter)
    assert create(shorter) is None  # in place
    # lengthened again, past the first end
    later = first + timedelta(days=2)
    assert create(later)
    assert expires() == later and shadow_day() == ssh.expire_day(later)
    assert create(later) is None
    # within the same second and day: nothing to write
    assert create(later - timedelta(microseconds=1)) is None


def test_a_shortened_account_end_is_enforced_by_sshd(ssh_root: SshConnector, ssh_host: SshHost) -> None:
    account = unique("jit-cut-")
    privilege = groups_json(ssh_host.group())
    ssh_root.apply(act("create-account", EPHEMERAL, account, privilege, until=datetime.now(UTC) + HOUR,
                       keys=ssh_host.public_key))
    assert ssh_host.login(account, "true")[0] == 0
    cut = datetime.now(UTC) + timedelta(seconds=2.5)
    outcome = ssh_root.apply(act("create-account", EPHEMERAL, account, privilege, until=cut,
                                 keys=ssh_host.public_key))
    assert outcome.changed and any(f"expiry-time={ssh.key_end(cut)}" in op for op in outcome.operations)
    (seen,) = [a for a in ssh_root.observe(Scope(TARGET, EPHEMERAL, frozenset())) if a.principal == account]
    assert seen.expires is not None and cut <= seen.expires < cut + timedelta(seconds=1)
    assert seen.owned is True
    assert ssh_host.login(account, "true")[0] == 0
    assert datetime.now(UTC) < cut, "the machine is too slow for this window"
    wait_until(seen.expires + timedelta(seconds=0.2))
    with pytest.raises(paramiko.AuthenticationException):
        ssh_host.login(account, "true")


def test_changed_groups_are_set_exactly(ssh_root: SshConnector, ssh_host: SshHost) -> None:
    account = unique("jit-grp-")
    a, b, c = ssh_host.group(), ssh_host.group(), ssh_host.group()
    until = datetime.now(UTC) + HOUR
    ssh_root.apply(act("create-account", EPHEMERAL, account, groups_json(a, b), until=until, keys=ssh_host.public_key))
    outcome = ssh_root.apply(act("create-account", EPHEMERAL, account, groups_json(b, c), until=until,
                                 keys=ssh_host.public_key))
    assert outcome.operations == (f"usermod -G {','.join(sorted([b, c]))} -- {account}",)
    assert (ssh_host.members(a), ssh_host.members(b), ssh_host.members(c)) == (set(), {account}, {account})


def test_create_account_needs_keys_existing_groups_and_an_end(ssh_root: SshConnector, ssh_host: SshHost) -> None:
    account = unique("jit-bad-")
    group = ssh_host.group()
    until = datetime.now(UTC) + HOUR
    with pytest.raises(PermanentTargetError, match="no SSH public keys"):
        ssh_root.apply(act("create-account", EPHEMERAL, account, groups_json(group), until=until))
    with pytest.raises(PermanentTargetError, match="do not exist"):
        ssh_root.apply(act("create-account", EPHEMERAL, account, groups_json(group, "nosuchgroup"), until=until,
                           keys=ssh_host.public_key))
    with pytest.raises(PermanentTargetError, match="end"):
        ssh_root.apply(act("create-account", EPHEMERAL, account, groups_json(group), keys=ssh_host.public_key))
    assert ssh_host.passwd(account) is None


def test_accounts_jitpol_did_not_create_are_left_alone(ssh_root: SshConnector, ssh_host: SshHost) -> None:
    # a jit-* name without the marker (made by hand) is neither observed nor changed nor deleted
    name = unique("jit-hand-")
    ssh_host.run("useradd", "-m", "-p", "*", "-c", "made by hand", "--", name)
    ssh_host.users.append(name)
    group = ssh_host.group()
    assert name not in {a.principal for a in ssh_root.observe(Scope(TARGET, EPHEMERAL, frozenset()))}
    for op in ("create-account", "delete-account"):
        with pytest.raises(PermanentTargetError, match="not created by jitpol"):
            ssh_root.apply(act(op, EPHEMERAL, name, groups_json(group), until=datetime.now(UTC) + HOUR,
                               keys=ssh_host.public_key))
    assert ssh_host.passwd(name) is not None and ssh_host.members(group) == set()


# -- sudo rules ------------------------------------------------------------------------------------


def test_sudo_rule_works_in_the_window_and_not_after(ssh_root: SshConnector, ssh_host: SshHost) -> None:
    person = ssh_host.user(key=True)
    privilege = rule("/usr/bin/id -u")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    until = datetime.now(UTC) + timedelta(seconds=3)
    outcome = ssh_root.apply(act("grant", SUDO, person, privilege, until=until, start=start.isoformat()))
    assert [op.split()[0] for op in outcome.operations] == ["install", "visudo", "mv"]
    (name,) = ssh_host.jitpol_rule_files()
    text = ssh_host.run("cat", f"/etc/sudoers.d/{name}").stdout
    assert text == (
        "# managed by jitpol: grant g-it\n"
        f"{person} ALL=(root) NOTBEFORE={start:%Y%m%d%H%M%S}Z NOTAFTER={ssh.key_end(until)} NOPASSWD: /usr/bin/id -u\n"
    )
    mode = ssh_host.run("stat", "-c", "%a %U", f"/etc/sudoers.d/{name}").stdout.split()
    assert mode == ["440", "root"]

    observed = ssh_root.observe(Scope(TARGET, SUDO, frozenset({privilege})))
    assert observed == {Assignment(TARGET, SUDO, person, privilege)}
    ends = next(iter(observed)).expires
    assert ends is not None and until <= ends < until + timedelta(seconds=1)

    # one login runs every probe, so the window can be short: the granted command line works;
    # other arguments, other programs and a shell do not
    probes = ["/usr/bin/id -u", "/usr/bin/id", "/usr/bin/id -un", "/usr/bin/whoami", "-s true"]
    script = "sudo -n /usr/bin/id -u; " + "; ".join(f"sudo -n {p} >/dev/null 2>&1; echo $?" for p in probes)
    status, out, _ = ssh_host.login(person, script)
    assert datetime.now(UTC) < until, "the machine is too slow for this window"
    assert status == 0 and out.split() == ["0", "0", "1", "1", "1", "1"]  # uid 0, then exit statuses
    wait_until(ends + timedelta(seconds=0.2))
    status, _, err = ssh_host.login(person, "sudo -n /usr/bin/id -u")
    assert status != 0 and "password is required" in err


def test_a_rule_without_arguments_allows_none(ssh_root: SshConnector, ssh_host: SshHost) -> None:
    person = ssh_host.user(key=True)
    ssh_root.apply(act("grant", SUDO, person, rule("/usr/bin/id"), until=datetime.now(UTC) + HOUR))
    assert ssh_host.login(person, "sudo -n /usr/bin/id -u")[0] != 0
    status, out, _ = ssh_host.login(person, "sudo -n /usr/bin/id")
    assert status == 0 and out.startswith("uid=0(root)")


def test_sudo_rule_end_follows_the_grant_both_ways(ssh_root: SshConnector, ssh_host: SshHost) -> None:
    person = ssh_host.user()
    privilege = rule("/usr/bin/id")
    first = datetime.now(UTC).replace(microsecond=0) + 3 * HOUR  # whole seconds: observed exactly
    scope = Scope(TARGET, SUDO, frozenset({privilege}))

    def grant(until: datetime, *, check: bool = False) -> bool:
        return ssh_root.apply(act("grant", SUDO, person, privilege, until=until), check=check).changed

    assert grant(first)
    assert not grant(first)
    assert not grant(first - timedelta(microseconds=1))  # the same NOTAFTER second
    # shortened: the file is rewritten with the earlier NOTAFTER
    assert grant(first - 2 * HOUR, check=True)
    assert [a.expires for a in ssh_root.observe(scope)] == [first]  # check mode writes nothing
    assert grant(first - 2 * HOUR)
    assert [(a.expires, a.owned) for a in ssh_root.observe(scope)] == [(first - 2 * HOUR, True)]
    (name,) = ssh_host.jitpol_rule_files()  # replaced in place, no temp file left
    assert f"NOTAFTER={ssh.key_end(first - 2 * HOUR)}" in ssh_host.run("cat", f"/etc/sudoers.d/{name}").stdout
    assert not grant(first - 2 * HOUR)
    # lengthened
    assert grant(first + HOUR)
    assert [a.expires for a in ssh_root.observe(scope)] == [first + HOUR]
    assert len(ssh_host.jitpol_rule_files()) == 1


def test_a_shortened_notafter_is_enforced_by_sudo(ssh_root: SshConnector, ssh_host: SshHost) -> None:
    person = ssh_host.user(key=True)
    privilege = rule("/usr/bin/id -u")
    ssh_root.apply(act("grant", SUDO, person, privilege, until=datetime.now(UTC) + HOUR))
    cut = datetime.now(UTC) + timedelta(seconds=2.5)
    outcome = ssh_root.apply(act("grant", SUDO, person, privilege, until=cut))
    assert outcome.changed and [op.split()[0] for op in outcome.operations] == ["install", "visudo", "mv"]
    (observed,) = ssh_root.observe(Scope(TARGET, SUDO, frozenset({privilege})))
    assert observed.expires is not None and cut <= observed.expires < cut + timedelta(seconds=1)
    status, out, _ = ssh_host.login(person, "sudo -n /usr/bin/id -u")
    assert datetime.now(UTC) < cut, "the machine is too slow for this window"
    assert (status, out.strip()) == (0, "0")
    wait_until(observed.expires + timedelta(seconds=0.2))
    status, _, err = ssh_host.login(person, "sudo -n /usr/bin/id -u")
    assert status != 0 and "password is required" in err


def test_sudo_programs_are_checked_on_the_host(ssh_root: SshConnector, ssh_host: SshHost) -> None:
    person = ssh_host.user()
    until = datetime.now(UTC) + HOUR
    # /etc is the namespace's overlay: these files exist only there
    ssh_host.run("mkdir", "-p", "/etc/jitpol-test")
    ssh_host.extra_files.append("/etc/jitpol-test")
    ssh_host.run("ln", "-sfn", "/bin/bash", "/etc/jitpol-test/tool")  # a shell under another name
    ssh_host.run("install", "-m", "0777", "/usr/bin/true", "/etc/jitpol-test/writable")
    ssh_host.run("install", "-m", "0755", "-o", person, "/usr/bin/true", "/etc/jitpol-test/owned")
    ssh_host.run("install", "-d", "-m", "0777", "/etc/jitpol-test/open")  # anyone may swap the program
    ssh_host.run("install", "-m", "0755", "/usr/bin/true", "/etc/jitpol-test/open/prog")
    before = ssh_host.sudoers_files()
    cases = {
        "/etc/jitpol-test/tool": "can start a shell",
        "/etc/jitpol-test/writable": "only root can change",
        "/etc/jitpol-test/owned": "only root can change",
        "/etc/jitpol-test/open/prog": "'/etc/jitpol-test/open' is not",
        "/etc/jitpol-test/missing": "does not exist",
    }
    for command, why in cases.items():
        with pytest.raises(PermanentTargetError, match=why):
            ssh_root.apply(act("grant", SUDO, person, rule(command), until=until))
    assert ssh_host.sudoers_files() == before
    ssh_host.run("rm", "-rf", "/etc/jitpol-test")


def test_sudo_rules_need_a_real_person(ssh_root: SshConnector, ssh_host: SshHost) -> None:
    until = datetime.now(UTC) + HOUR
    system = unique("svc")
    ssh_host.run("useradd", "-r", "--", system)  # a system account (uid < 1000) not in any name list
    ssh_host.users.append(system)
    with pytest.raises(PermanentTargetError, match="system account"):
        ssh_root.apply(act("grant", SUDO, system, rule("/usr/bin/id"), until=until))
    with pytest.raises(PermanentTargetError, match="does not exist"):
        ssh_root.apply(act("grant", SUDO, unique("ghost"), rule("/usr/bin/id"), until=until))
    with pytest.raises(PermanentTargetError, match="system account"):
        ssh_root.apply(act("grant", SUDO, "root", rule("/usr/bin/id"), until=until))


def test_unmanaged_sudoers_files_are_left_alone(ssh_root: SshConnector, ssh_host: SshHost) -> None:
    person = ssh_host.user(key=True)
    privilege = rule("/usr/bin/id")
    # standing access: a hand-written rule for the same person and command, and a jitpol-named
    # file we did not write
    standing = f"{person} ALL=(root) NOPASSWD: /usr/bin/id\n"
    ssh_host.write_file("/etc/sudoers.d/local-admins", standing)
    ssh_host.write_file("/etc/sudoers.d/jitpol-0000000000000000", standing)
    scope = Scope(TARGET, SUDO, frozenset({privilege}))
    assert ssh_root.observe(scope) == frozenset()  # rules jitpol did not write are never read
    ssh_root.apply(act("grant", SUDO, person, privilege, until=datetime.now(UTC) + HOUR))
    # only jitpol's own drop-in is reported, as jitpol's; the standing files are unchanged
    assert [a.owned for a in ssh_root.observe(scope)] == [True]
    for path in ("/etc/sudoers.d/local-admins", "/etc/sudoers.d/jitpol-0000000000000000"):
        assert ssh_host.run("cat", path).stdout == standing
    ssh_root.apply(act("revoke", SUDO, person, privilege))
    files = ssh_host.sudoers_files()
    assert "local-admins" in files and "jitpol-0000000000000000" in files
    assert ssh_root.observe(scope) == frozenset()
    # the grant's end did not take the standing access away
    status, out, _ = ssh_host.login(person, "sudo -n /usr/bin/id")
    assert status == 0 and out.startswith("uid=0(root)")


def test_a_rule_at_jitpols_file_name_without_its_header_is_never_replaced_or_removed(
    ssh_root: SshConnector, ssh_host: SshHost
) -> None:
    person = ssh_host.user(key=True)
    privilege = rule("/usr/bin/id")
    path = f"/etc/sudoers.d/{sudoers.file_name(person, privilege)}"
    standing = f'{person} ALL=(root) NOPASSWD: /usr/bin/id ""\n'
    ssh_host.write_file(path, standing)
    scope = Scope(TARGET, SUDO, frozenset({privilege}))
    assert ssh_root.observe(scope) == frozenset()
    with pytest.raises(PermanentTargetError, match="not written by jitpol"):
        ssh_root.apply(act("grant", SUDO, person, privilege, until=datetime.now(UTC) + HOUR))
    revoke = ssh_root.apply(act("revoke", SUDO, person, privilege))
    assert not revoke.changed and revoke.operations == ()
    assert ssh_host.run("cat", path).stdout == standing
    assert ssh_host.login(person, "sudo -n /usr/bin/id")[0] == 0


def test_a_rule_edited_under_jitpols_header_is_still_jitpols(ssh_root: SshConnector, ssh_host: SshHost) -> None:
    # someone removed NOTAFTER from jitpol's drop-in: not the template, so not observed, but
    # jitpol's by its header, so the next grant rewrites it and a revoke removes it
    person = ssh_host.user()
    privilege = rule("/usr/bin/id")
    path = f"/etc/sudoers.d/{sudoers.file_name(person, privilege)}"
    edited = f'# managed by jitpol: grant g-it\n{person} ALL=(root) NOPASSWD: /usr/bin/id ""\n'
    scope = Scope(TARGET, SUDO, frozenset({privilege}))
    ssh_host.write_file(path, edited)
    assert ssh_root.observe(scope) == frozenset()
    until = datetime.now(UTC).replace(microsecond=0) + HOUR
    assert ssh_root.apply(act("grant", SUDO, person, privilege, until=until)).changed
    assert [(a.expires, a.owned) for a in ssh_root.observe(scope)] == [(until, True)]
    ssh_host.write_file(path, edited)
    assert ssh_root.apply(act("revoke", SUDO, person, privilege)).changed
    assert ssh_host.run("test", "-e", path, check=False).returncode != 0


# -- role membership -------------------------------------------------------------------------------


@pytest.mark.parametrize("end_sessions", [True, False])
def test_revoke_ends_the_persons_processes(ssh_connect: Connect, ssh_host: SshHost, end_sessions: bool) -> None:
    connector = ssh_connect(end_sessions=end_sessions)
    group, person = ssh_host.group(), ssh_host.user(key=True)
    connector.apply(act("grant", ROLE, person, group))
    uid = ssh_host.run("id", "-u", person).stdout.strip()
    client = ssh_host.client(person)
    try:
        _, stdout, _ = client.exec_command("id -nG; exec sleep 300")
        assert group in stdout.readline().split()  # the session holds the group
        outcome = connector.apply(act("revoke", ROLE, person, group))
        assert ssh_host.members(group) == set()
        running = any("sleep 300" in p for p in ssh_host.processes(uid))
        assert running is not end_sessions
        assert any(op.startswith("pkill -KILL -u") for op in outcome.operations) is end_sessions
    finally:
        client.close()


def test_role_membership_refusals_on_the_host(ssh_root: SshConnector, ssh_host: SshHost) -> None:
    person = ssh_host.user()
    primary = ssh_host.run("id", "-gn", person).stdout.strip()
    with pytest.raises(PermanentTargetError, match="primary group"):
        ssh_root.apply(act("grant", ROLE, person, primary))
    with pytest.raises(PermanentTargetError, match="does not exist"):
        ssh_root.apply(act("grant", ROLE, person, unique("nogroup")))
    with pytest.raises(PermanentTargetError, match="does not exist"):
        ssh_root.apply(act("grant", ROLE, unique("ghost"), ssh_host.group()))
    system = unique("svc")
    ssh_host.run("useradd", "-r", "--", system)
    ssh_host.users.append(system)
    with pytest.raises(PermanentTargetError, match="system account"):
        ssh_root.apply(act("grant", ROLE, system, ssh_host.group()))


def test_a_standing_membership_is_unowned_and_a_grant_leaves_it_unchanged(
    ssh_root: SshConnector, ssh_host: SshHost
) -> None:
    group, person = ssh_host.group(), ssh_host.user()
    ssh_host.add_member(group, person)  # held before any grant
    line = ssh_host.run("getent", "group", group).stdout
    scope = Scope(TARGET, ROLE, frozenset({group}))
    (seen,) = ssh_root.observe(scope)
    # /etc/group has no room for a marker: only the ledger knows who gave a membership
    assert seen == Assignment(TARGET, ROLE, person, group) and seen.owned is None and seen.expires is None
    outcome = ssh_root.apply(act("grant", ROLE, person, group, until=datetime.now(UTC) + HOUR))
    assert not outcome.changed and outcome.operations == ()
    assert ssh_host.run("getent", "group", group).stdout == line
    assert ssh_root.apply(act("grant", ROLE, ssh_host.user(), group)).changed
    assert {a.owned for a in ssh_root.observe(scope)} == {None}  # what jitpol granted looks the same


def test_unmanaged_members_are_left_alone(ssh_root: SshConnector, ssh_host: SshHost) -> None:
    group = ssh_host.group()
    standing, person = ssh_host.user(), ssh_host.user()
    ssh_host.add_member(group, standing)
    ssh_root.apply(act("grant", ROLE, person, group))
    ssh_root.apply(act("revoke", ROLE, person, group))
    assert ssh_host.members(group) == {standing}


# -- a login user that is not root ------------------------------------------------------------------


def test_a_non_root_login_goes_through_sudo(ssh_connect: Connect, ssh_host: SshHost) -> None:
    admin = ssh_host.user("adm", key=True)
    ssh_host.write_file(f"/etc/sudoers.d/zz-{admin}", f"{admin} ALL=(ALL) NOPASSWD: ALL\n")
    connector = ssh_connect(user=admin, env={KEY_ENV: ssh_host.key_path.read_text()})
    group, person = ssh_host.group(), ssh_host.user()
    outcome = connector.apply(act("grant", ROLE, person, group))
    assert outcome.operations == (f"sudo -n -- gpasswd -a {person} {group}",)
    assert ssh_host.members(group) == {person}
    privilege = rule("/usr/bin/id")
    connector.apply(act("grant", SUDO, person, privilege, until=datetime.now(UTC) + HOUR))
    assert connector.observe(Scope(TARGET, SUDO, frozenset({privilege}))) == {
        Assignment(TARGET, SUDO, person, privilege)}


def test_a_non_root_login_without_sudo_is_refused_clearly(ssh_connect: Connect, ssh_host: SshHost) -> None:
    plain = ssh_host.user("pl", key=True)
    connector = ssh_connect(user=plain, env={KEY_ENV: ssh_host.key_path.read_text()})
    with pytest.raises(PermanentTargetError, match="sudo -n"):
        connector.apply(act("grant", ROLE, ssh_host.user(), ssh_host.group()))


# -- the throwaway server itself ---------------------------------------------------------------------


def test_throwaway_sshd_cli_starts_and_stops_from_separate_processes(sshd_server: object, tmp_path: Path) -> None:
    # sshd_server: only so that the test is skipped (or fails in CI) where sshd cannot run
    repo = Path(__file__).resolve().parents[2]
    base = tmp_path / "cli-sshd"
    started = subprocess.run([sys.executable, "tools/throwaway_sshd.py", "start", str(base)], cwd=repo,
                             capture_output=True, text=True, check=True, timeout=60)
    env = dict(line.split("=", 1) for line in started.stdout.splitlines())
    pid = int(env["SSHD_PID"])
    namespace = os.readlink(f"/proc/{pid}/ns/mnt")
    assert namespace != os.readlink("/proc/self/ns/mnt")
    with socket.create_connection(("127.0.0.1", int(env["SSH_PORT"])), timeout=5) as s:
        assert s.recv(64).startswith(b"SSH-2.0-")
    subprocess.run([sys.executable, "tools/throwaway_sshd.py", "stop", str(base)], cwd=repo,
                   capture_output=True, text=True, check=True, timeout=60)
    assert not base.exists()
    # nothing (but zombies waiting for PID 1) is left in the server's namespace
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.readlink(entry / "ns" / "mnt") == namespace:
                assert (entry / "stat").read_text().rpartition(")")[2].split()[0] in ("Z", "X"), entry
        except OSError:
            continue  # exited while we looked, or not ours to inspect (PID 1 here)
