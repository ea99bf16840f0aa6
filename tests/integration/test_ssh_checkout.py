"""credential-checkout on Linux hosts (SshConnector, op `rotate`) against a real sshd that accepts
password logins (tools/throwaway_sshd.py with password_auth, in a private mount namespace): the
delivered password logs in, a rotation ends the old password and every open session of the
account, and no secret appears in an Outcome, an exception or a log."""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime, timedelta

import paramiko
import pytest

from jitpol.connectors.ssh import SshConnector, check_name
from jitpol.errors import InvalidInput, PermanentTargetError
from jitpol.model.assignment import Action, Assignment, Scope
from jitpol.model.canonical import canonical_json
from tests.ssh_fixtures import (  # noqa: F401 - pytest finds the fixtures in this module
    KEY_ENV,
    TARGET,
    SshHost,
    password_host_fixture,
    password_root_fixture,
    settings_for,
    sshd_password_server_fixture,
    unique,
)

CHECKOUT = "credential-checkout"


def rotate(account: str, password: str | None, *holders: str, until: datetime | None = None) -> Action:
    details = [("grant", holders[0])] if holders else []
    if password is not None:
        details.append(("password", password))
    return Action(
        op="rotate", assignment=Assignment(TARGET, CHECKOUT, account, canonical_json(sorted(holders))),
        resource="shared-ops", grants=tuple(sorted(holders)),
        until=until if until is not None else (datetime.now(UTC) + timedelta(hours=1) if holders else None),
        details=tuple(sorted(details)),
    )


def new_password() -> str:
    return secrets.token_urlsafe(24)


def shared_account(host: SshHost) -> str:
    """A shared login account with a shell and no usable password yet ('*')."""
    return host.user("ops")


def shadow(host: SshHost, user: str) -> list[str]:
    return host.run("getent", "shadow", user).stdout.strip().split(":")


def refused(host: SshHost, user: str, password: str) -> bool:
    try:
        host.password_login(user, password, "true")
    except paramiko.AuthenticationException:
        return True
    return False


def test_the_delivered_password_logs_in(password_root: SshConnector, password_host: SshHost) -> None:
    account = shared_account(password_host)
    assert refused(password_host, account, "anything")  # '*': no password login before
    secret = new_password()
    outcome = password_root.apply(rotate(account, secret, "g-alice-1"))
    assert outcome.changed and not outcome.before and outcome.after
    assert outcome.operations == (
        f"chpasswd < {account}:***",
        f"pkill -KILL -u {account}",
        f"sh -c {_wait_script()} jitpol-wait {account}",
    )
    status, out, _ = password_host.password_login(account, secret, "id -un")
    assert status == 0 and out.strip() == account
    assert password_host.run("passwd", "-S", account).stdout.split()[1] == "P"


def test_rotation_ends_the_old_password_and_open_sessions(password_root: SshConnector,
                                                           password_host: SshHost) -> None:
    account = shared_account(password_host)
    old, new = new_password(), new_password()
    password_root.apply(rotate(account, old, "g-alice-1"))
    uid = password_host.run("id", "-u", account).stdout.strip()
    session = password_host.client(account, password=old)
    try:
        _, stdout, _ = session.exec_command("echo started; exec sleep 300")
        assert stdout.readline().strip() == "started"
        assert any("sleep 300" in p for p in password_host.processes(uid))

        password_root.apply(rotate(account, new, "g-bob-2"))

        assert password_host.processes(uid) == []  # the previous holder keeps no shell
        assert stdout.channel.recv_exit_status() != 0  # killed, not finished
    finally:
        session.close()
    assert refused(password_host, account, old)
    assert password_host.password_login(account, new, "id -un")[1].strip() == account


def test_rotation_to_nobody_is_always_a_change(password_root: SshConnector, password_host: SshHost) -> None:
    account = shared_account(password_host)
    secret = new_password()
    password_root.apply(rotate(account, secret, "g-alice-1"))
    # the checkout ended: a secret nobody holds; a rotation is an event, never "already true"
    nobody = new_password()
    for _ in range(2):
        outcome = password_root.apply(rotate(account, nobody))
        assert outcome.changed and outcome.operations
    assert refused(password_host, account, secret)


def test_check_mode_changes_nothing(password_root: SshConnector, password_host: SshHost) -> None:
    account = shared_account(password_host)
    secret = new_password()
    password_root.apply(rotate(account, secret, "g-alice-1"))
    stored = shadow(password_host, account)
    outcome = password_root.apply(rotate(account, new_password(), "g-bob-2"), check=True)
    assert outcome.changed and not outcome.before and not outcome.after
    assert outcome.operations[0] == f"chpasswd < {account}:***"
    assert shadow(password_host, account) == stored
    assert password_host.password_login(account, secret, "true")[0] == 0


def test_no_account_expiry_is_set_and_a_locked_password_becomes_usable(password_root: SshConnector,
                                                                       password_host: SshHost) -> None:
    """`chage -E` would lock the whole account from the start of a day: the end of a checkout
    is the rotation the reconciler makes, and the account itself is never expired."""
    account = shared_account(password_host)
    password_host.run("usermod", "-L", account)
    assert password_host.run("passwd", "-S", account).stdout.split()[1] == "L"
    secret = new_password()
    password_root.apply(rotate(account, secret, "g-alice-1", until=datetime.now(UTC) + timedelta(minutes=5)))
    fields = shadow(password_host, account)
    assert fields[1].startswith("$") and fields[7] == ""  # a usable hash; no account expiry day
    assert password_host.run("passwd", "-S", account).stdout.split()[1] == "P"
    assert password_host.password_login(account, secret, "true")[0] == 0


def test_unusual_characters_in_the_password_work(password_root: SshConnector, password_host: SshHost) -> None:
    # chpasswd splits `user:password` at the first colon only
    account = shared_account(password_host)
    secret = "a:b c$(id)`x`'\"\\;|&" + new_password()
    password_root.apply(rotate(account, secret, "g-alice-1"))
    assert password_host.password_login(account, secret, "true")[0] == 0


def test_observe_reports_nothing(password_root: SshConnector, password_host: SshHost) -> None:
    account = shared_account(password_host)
    password_root.apply(rotate(account, new_password(), "g-alice-1"))
    holders = canonical_json(["g-alice-1"])
    assert password_root.observe(Scope(TARGET, CHECKOUT, frozenset({holders, "checkout"}))) == frozenset()


# -- refusals ----------------------------------------------------------------------------------------


def test_accounts_that_are_never_checked_out(password_root: SshConnector, password_host: SshHost) -> None:
    secret = new_password()
    system = unique("svc")
    password_host.run("useradd", "-r", "--", system)
    password_host.users.append(system)
    marked = unique("jit-alice-")
    password_host.run("useradd", "-m", "-c", "jitpol grant g-old", "-p", "*", "--", marked)
    password_host.users.append(marked)
    cases = {
        "root": "root or a system account",
        "daemon": "root or a system account",
        system: "system account",
        marked: "ephemeral account",
        unique("ghost"): "does not exist",
        "alice; rm -rf /": "not an allowed Linux name",
    }
    for account, message in cases.items():
        before = password_host.run("getent", "shadow", "root", system, marked, check=False).stdout
        with pytest.raises(PermanentTargetError, match=message) as info:
            password_root.apply(rotate(account, secret, "g-alice-1"))
        assert secret not in str(info.value)
        assert password_host.run("getent", "shadow", "root", system, marked, check=False).stdout == before


def test_the_login_user_is_never_checked_out(password_host: SshHost) -> None:
    admin = password_host.user("adm", key=True)
    password_host.write_file(f"/etc/sudoers.d/zz-{admin}", f"{admin} ALL=(ALL) NOPASSWD: ALL\n")
    connector = SshConnector(TARGET, settings_for(password_host.server, user=admin),
                             {KEY_ENV: password_host.key_path.read_text()})
    try:
        with pytest.raises(PermanentTargetError, match="logs in as"):
            connector.apply(rotate(admin, new_password(), "g-alice-1"))
        # through sudo -n, a rotation of another account works
        account = shared_account(password_host)
        secret = new_password()
        outcome = connector.apply(rotate(account, secret, "g-alice-1"))
        assert outcome.operations[0] == f"sudo -n -- chpasswd < {account}:***"
        assert password_host.password_login(account, secret, "true")[0] == 0
    finally:
        connector.close()


@pytest.mark.parametrize("password", [None, "", "abc\nroot:owned", "abc\rdef", "abc\x00def", "x" * 1025])
def test_a_missing_or_unsafe_password_is_refused(password_root: SshConnector, password_host: SshHost,
                                                 password: str | None) -> None:
    account = shared_account(password_host)
    before = password_host.run("getent", "shadow", account, "root").stdout
    with pytest.raises(PermanentTargetError, match="password") as info:
        password_root.apply(rotate(account, password, "g-alice-1"))
    if password:
        assert password not in str(info.value) and "abc" not in str(info.value)
    assert password_host.run("getent", "shadow", account, "root").stdout == before


@pytest.mark.parametrize("privilege", ["checkout", '["Not A Grant"]', "[1]", "{}"])
def test_the_holders_must_be_a_list_of_grants(password_root: SshConnector, password_host: SshHost,
                                              privilege: str) -> None:
    account = shared_account(password_host)
    action = Action(op="rotate", assignment=Assignment(TARGET, CHECKOUT, account, privilege), resource="r",
                    grants=(), details=(("password", new_password()),))
    with pytest.raises(PermanentTargetError, match="list of the grant names"):
        password_root.apply(action)


def test_other_operations_are_refused(password_root: SshConnector, password_host: SshHost) -> None:
    account = shared_account(password_host)
    action = Action(op="grant", assignment=Assignment(TARGET, CHECKOUT, account, "[]"), resource="r",
                    grants=(), details=(("password", new_password()),))
    with pytest.raises(PermanentTargetError, match="only rotate"):
        password_root.apply(action)


def test_check_name_accepts_shared_accounts_like_principals() -> None:
    check_name("ops", "account")
    for bad in ("root", "sshd", "a b", "$(id)"):
        with pytest.raises(InvalidInput):
            check_name(bad, "account")


# -- secrets -----------------------------------------------------------------------------------------


def test_secrets_appear_in_no_outcome_exception_or_log(password_root: SshConnector, password_host: SshHost,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # everything paramiko and jitpol log
    account = shared_account(password_host)
    secret = new_password()
    outcome = password_root.apply(rotate(account, secret, "g-alice-1"))
    assert secret not in repr(outcome)

    # chpasswd fails: /etc/shadow read-only (inside the namespace only) for this one attempt
    other = new_password()
    password_host.run("mount", "-n", "--bind", "/etc/shadow", "/etc/shadow")
    try:
        password_host.run("mount", "-n", "-o", "remount,ro,bind", "/etc/shadow")
        with pytest.raises(PermanentTargetError, match="chpasswd failed") as info:
            password_root.apply(rotate(account, other, "g-bob-2"))
    finally:
        password_host.run("umount", "-n", "/etc/shadow")
    text = f"{info.value!s} {info.value!r} {info.value.__cause__!r} {info.value.__context__!r}"
    assert other not in text and secret not in text
    assert secret not in caplog.text and other not in caplog.text
    assert password_host.password_login(account, secret, "true")[0] == 0  # unchanged by the failure


def _wait_script() -> str:
    import shlex

    from jitpol.connectors import ssh

    return shlex.quote(ssh._WAIT_GONE)
