"""MysqlConnector's ephemeral-account and credential-checkout models against a real MariaDB: logins
inside and after the window, the end the server enforces itself (its event scheduler locks the
account, no run needed), connections KILLed, redelivery and extension, the event scheduler
switched off, rotation with the holder's connections ended and the stored hash checked, secrets
kept out of operations and errors, and accounts that are not jitpol's."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime

import pymysql
import pytest

from jitpol.connectors.mysql import CHECKOUT, EPHEMERAL, native_password_hash, parse_role_list, validate_account_name
from jitpol.errors import InvalidInput, PermanentTargetError
from jitpol.model.assignment import Action, Assignment, Outcome, Scope
from jitpol.model.canonical import canonical_json
from tests.helpers.clock import Now
from tests.mysql_fixtures import *  # noqa: F403 (the fixture mysql_sandbox)
from tests.mysql_fixtures import PASSWORD, TARGET, MysqlSandbox

SECRET = "Eph3meral-S3cret-pw"  # what the core would pass in action.detail("password")
DETAILS = (("grant", "alice-dba-1"), ("person", "alice"))
LOCKED = 4151  # ER_ACCOUNT_HAS_BEEN_LOCKED
DENIED = 1045  # ER_ACCESS_DENIED_ERROR


def create(name: str, roles: list[str], until: datetime, password: str | None = SECRET) -> Action:
    extra = () if password is None else (("password", password),)
    return Action(op="create-account", assignment=Assignment(TARGET, EPHEMERAL, name, canonical_json(sorted(roles))),
                  resource="db-jit", grants=("alice-dba-1",), until=until, details=tuple(sorted(DETAILS + extra)))


def delete(name: str) -> Action:
    return Action(op="delete-account", assignment=Assignment(TARGET, EPHEMERAL, name, "[]"), resource="",
                  grants=("alice-dba-1",))


def rotate(account: str, holders: list[str], password: str | None, until: datetime | None = None) -> Action:
    extra = () if password is None else (("password", password),)
    return Action(op="rotate", assignment=Assignment(TARGET, CHECKOUT, account, canonical_json(sorted(holders))),
                  resource="shared-db", grants=tuple(holders) or ("g-end",), until=until, details=extra)


def refused(sandbox: MysqlSandbox, user: str, password: str) -> int | None:
    """The server's error code when `user` logs in with `password`; None when it lets them in."""
    try:
        sandbox.connect(user, password).close()
    except pymysql.err.OperationalError as exc:
        return int(exc.args[0])
    return None


def wait_refused(sandbox: MysqlSandbox, user: str, password: str, timeout: float = 15) -> int | None:
    deadline = time.monotonic() + timeout
    while (code := refused(sandbox, user, password)) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    return code


def all_text(outcome: Outcome) -> str:
    return "\n".join(outcome.operations)


@pytest.fixture
def roles(mysql_sandbox: MysqlSandbox) -> list[str]:
    roles = sorted([mysql_sandbox.role("app"), mysql_sandbox.role("app")])
    mysql_sandbox.execute(f"GRANT SELECT ON mysql.roles_mapping TO {mysql_sandbox.lit(roles[0])}")
    return roles


@pytest.fixture
def scheduler_off(mysql_sandbox: MysqlSandbox) -> Iterator[None]:
    mysql_sandbox.execute("SET GLOBAL event_scheduler = OFF")
    try:
        yield
    finally:
        mysql_sandbox.execute("SET GLOBAL event_scheduler = ON")


# -- names, without a server -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["alice", "jit-", "jit--x", "jit-Alice", "jit-a'b", "jit-" + "a" * 29, "jit-a b",
                                  "JIT-a", "jit-a\n"])
def test_hostile_account_names_fail_validation(name: str) -> None:
    with pytest.raises(InvalidInput):
        validate_account_name(name)


def test_the_core_s_longest_account_name_fits_mysql() -> None:
    from jitpol.policy.evaluate import ephemeral_name

    name = ephemeral_name("a" * 63, "some-grant")
    assert validate_account_name(name) == name and len(name) <= 32


@pytest.mark.parametrize("privilege", ['["b","a"]', '["a","a"]', '"a"', "[1]", '["x\'y"]', "not json", '[ "a"]'])
def test_hostile_privileges_fail_validation(privilege: str) -> None:
    with pytest.raises(InvalidInput):
        parse_role_list(privilege)


# -- ephemeral accounts ------------------------------------------------------------------------


def test_a_login_works_inside_the_window_and_fails_after_delete(
    mysql_sandbox: MysqlSandbox, roles: list[str], now: Now
) -> None:
    connector = mysql_sandbox.connector()
    name = mysql_sandbox.ephemeral_name()
    outcome = connector.apply(create(name, roles, now.plus(hours=1)))
    assert outcome.changed and SECRET not in all_text(outcome)
    assert native_password_hash(SECRET) not in all_text(outcome)
    assert f"CREATE USER '{name}'@'%' IDENTIFIED BY PASSWORD '***'" in outcome.operations
    with mysql_sandbox.connect(name, SECRET) as conn, conn.cursor() as cur:
        cur.execute("SELECT CURRENT_ROLE()")
        assert cur.fetchone() == (roles[0],)  # MariaDB: one default role, the first
        cur.execute("SELECT COUNT(*) FROM mysql.roles_mapping")
        cur.execute(f"SET ROLE {mysql_sandbox.lit(roles[1])}")  # the other one, on demand
        session = mysql_sandbox.connect(name, SECRET)
        outcome = connector.apply(delete(name))
        assert outcome.operations == (
            f"ALTER USER '{name}'@'%' ACCOUNT LOCK", f"KILL CONNECTION <each connection of user '{name}'>",
            f"DROP USER '{name}'@'%'", f"DROP EVENT IF EXISTS `{mysql_sandbox.event_schema}`.`jitpol_end_{name}`")
        with pytest.raises((pymysql.err.OperationalError, pymysql.err.InterfaceError)):
            cur.execute("SELECT 1")
    with pytest.raises((pymysql.err.OperationalError, pymysql.err.InterfaceError)), session.cursor() as other:
        other.execute("SELECT 1")
    assert not mysql_sandbox.exists(name) and mysql_sandbox.events() == {}
    assert refused(mysql_sandbox, name, SECRET) == DENIED
    assert not connector.apply(delete(name)).changed


def test_the_server_locks_the_account_at_the_end_without_a_run(
    mysql_sandbox: MysqlSandbox, roles: list[str], now: Now
) -> None:
    connector = mysql_sandbox.connector()
    name = mysql_sandbox.ephemeral_name()
    until = now.plus(seconds=3)
    connector.apply(create(name, roles, until))
    with mysql_sandbox.connect(name, SECRET):
        pass  # inside the window
    # no run from here on: the event scheduler ends the account by itself
    assert wait_refused(mysql_sandbox, name, SECRET) == LOCKED
    assert Now.read().at >= until
    observed = connector.observe(Scope(TARGET, EPHEMERAL, frozenset()))
    assert {(a.principal, a.expires) for a in observed} == {(name, until)}  # still jitpol's, until deleted
    connector.apply(delete(name))
    assert not mysql_sandbox.exists(name)


def test_an_extension_moves_the_end_and_unlocks_a_locked_account(
    mysql_sandbox: MysqlSandbox, roles: list[str], now: Now
) -> None:
    connector = mysql_sandbox.connector()
    name = mysql_sandbox.ephemeral_name()
    connector.apply(create(name, roles, now.plus(seconds=2)))
    assert wait_refused(mysql_sandbox, name, SECRET) == LOCKED
    later = Now.read().plus(hours=2)
    outcome = connector.apply(create(name, roles, later, password=None))  # an extension carries no secret
    assert outcome.operations == (
        f"ALTER EVENT `{mysql_sandbox.event_schema}`.`jitpol_end_{name}` ON SCHEDULE AT "
        f"'{later.strftime('%Y-%m-%d %H:%M:%S')}' ON COMPLETION PRESERVE ENABLE",
        f"ALTER USER '{name}'@'%' ACCOUNT UNLOCK")
    assert refused(mysql_sandbox, name, SECRET) is None
    assert mysql_sandbox.events()[f"jitpol_end_{name}"][0] == "ENABLED"
    assert not connector.apply(create(name, roles, later, password=None)).changed


def test_an_end_already_past_creates_the_account_locked(
    mysql_sandbox: MysqlSandbox, roles: list[str], now: Now
) -> None:
    connector = mysql_sandbox.connector()
    name = mysql_sandbox.ephemeral_name()
    outcome = connector.apply(create(name, roles, now.plus(minutes=-5)))
    assert f"CREATE USER '{name}'@'%' IDENTIFIED BY PASSWORD '***' ACCOUNT LOCK" in outcome.operations
    assert refused(mysql_sandbox, name, SECRET) == LOCKED


def test_redelivery_sets_the_new_password_and_repairs_roles(
    mysql_sandbox: MysqlSandbox, roles: list[str], now: Now
) -> None:
    connector = mysql_sandbox.connector()
    name = mysql_sandbox.ephemeral_name()
    until = now.plus(hours=1)
    connector.apply(create(name, roles, until))
    extra = mysql_sandbox.role("extra")
    mysql_sandbox.grant(extra, f"{name}@%")  # added behind jitpol's back
    mysql_sandbox.execute(f"REVOKE {mysql_sandbox.lit(roles[1])} FROM '{name}'@'%'")
    outcome = connector.apply(create(name, roles, until, password="N3w-s3cret-pw"))
    assert outcome.operations == (
        f"ALTER USER '{name}'@'%' IDENTIFIED BY PASSWORD '***'",
        f"GRANT '{roles[1]}' TO '{name}'@'%'", f"REVOKE '{extra}' FROM '{name}'@'%'")
    assert mysql_sandbox.roles_of(f"{name}@%") == set(roles)
    assert refused(mysql_sandbox, name, SECRET) == DENIED
    assert refused(mysql_sandbox, name, "N3w-s3cret-pw") is None


def test_check_mode_writes_nothing(mysql_sandbox: MysqlSandbox, roles: list[str], now: Now) -> None:
    connector = mysql_sandbox.connector()
    name = mysql_sandbox.ephemeral_name()
    outcome = connector.apply(create(name, roles, now.plus(hours=1)), check=True)
    assert outcome.changed and not outcome.after and outcome.operations
    assert not mysql_sandbox.exists(name) and mysql_sandbox.events() == {}
    connector.apply(create(name, roles, now.plus(hours=1)))
    with mysql_sandbox.connect(name, SECRET) as conn, conn.cursor() as cur:
        outcome = connector.apply(delete(name), check=True)
        assert outcome.changed and not outcome.after
        cur.execute("SELECT 1")  # not killed
    assert mysql_sandbox.exists(name)


def test_create_needs_a_password_and_an_end(mysql_sandbox: MysqlSandbox, roles: list[str], now: Now) -> None:
    connector = mysql_sandbox.connector()
    name = mysql_sandbox.ephemeral_name()
    with pytest.raises(PermanentTargetError, match="needs a password"):
        connector.apply(create(name, roles, now.plus(hours=1), password=None))
    action = create(name, roles, now.plus(hours=1))
    from dataclasses import replace

    with pytest.raises(PermanentTargetError, match="end of its window"):
        connector.apply(replace(action, until=None))
    assert not mysql_sandbox.exists(name)


def test_an_account_without_the_marker_is_never_adopted_or_dropped(
    mysql_sandbox: MysqlSandbox, roles: list[str], now: Now
) -> None:
    connector = mysql_sandbox.connector()
    name = mysql_sandbox.ephemeral_name()
    mysql_sandbox.account(name=name)
    for action in (create(name, roles, now.plus(hours=1)), delete(name)):
        with pytest.raises(PermanentTargetError, match="jitpol"):
            connector.apply(action)
    assert mysql_sandbox.exists(name) and refused(mysql_sandbox, name, PASSWORD) is None
    assert connector.observe(Scope(TARGET, EPHEMERAL, frozenset())) == frozenset()


def test_roles_that_must_not_be_handed_out(mysql_sandbox: MysqlSandbox, roles: list[str], now: Now) -> None:
    connector = mysql_sandbox.connector()
    name = mysql_sandbox.ephemeral_name()
    filer = mysql_sandbox.role("file")
    mysql_sandbox.execute(f"GRANT FILE ON *.* TO {mysql_sandbox.lit(filer)}")
    with pytest.raises(PermanentTargetError, match="allowPrivileged"):
        connector.apply(create(name, sorted([roles[0], filer]), now.plus(hours=1)))
    with pytest.raises(PermanentTargetError, match="does not exist"):
        connector.apply(create(name, ["no_such_role"], now.plus(hours=1)))
    assert not mysql_sandbox.exists(name) and mysql_sandbox.events() == {}


def test_with_the_event_scheduler_off_accounts_are_refused_or_ended_by_runs_alone(
    mysql_sandbox: MysqlSandbox, roles: list[str], now: Now, scheduler_off: None
) -> None:
    name = mysql_sandbox.ephemeral_name()
    with pytest.raises(PermanentTargetError, match="event scheduler is not ON") as info:
        mysql_sandbox.connector().apply(create(name, roles, now.plus(hours=1)))
    assert "require_event_scheduler: false" in str(info.value)
    assert not mysql_sandbox.exists(name)
    relaxed = mysql_sandbox.connector(require_event_scheduler=False)
    relaxed.apply(create(name, roles, now.plus(hours=1)))
    assert mysql_sandbox.exists(name)
    relaxed.apply(delete(name))
    assert not mysql_sandbox.exists(name)


# -- credential checkout -----------------------------------------------------------------------


def test_rotate_ends_the_old_password_and_every_connection(mysql_sandbox: MysqlSandbox, now: Now) -> None:
    shared = mysql_sandbox.account("shared")
    user = shared.split("@")[0]
    connector = mysql_sandbox.connector()
    holder = mysql_sandbox.login(shared)
    outcome = connector.apply(rotate(shared, ["alice-1"], "Ch3ckout-pw-1", now.plus(hours=1)))
    assert outcome.changed
    assert outcome.operations[0] == f"ALTER USER '{user}'@'%' IDENTIFIED BY PASSWORD '***'"
    assert outcome.operations[-1] == f"KILL CONNECTION <each connection of user '{user}'>"
    assert "Ch3ckout-pw-1" not in all_text(outcome) and native_password_hash("Ch3ckout-pw-1") not in all_text(outcome)
    with pytest.raises((pymysql.err.OperationalError, pymysql.err.InterfaceError)), holder.cursor() as cur:
        cur.execute("SELECT 1")
    assert refused(mysql_sandbox, user, PASSWORD) == DENIED
    assert refused(mysql_sandbox, user, "Ch3ckout-pw-1") is None
    # the end of the checkout: a rotation to nobody; the holder's password stops working
    connector.apply(rotate(shared, [], "Unkn0wn-to-all"))
    assert refused(mysql_sandbox, user, "Ch3ckout-pw-1") == DENIED


def test_the_server_locks_a_checked_out_account_at_the_end_without_a_run(
    mysql_sandbox: MysqlSandbox, now: Now
) -> None:
    shared = mysql_sandbox.account("shared")
    user = shared.split("@")[0]
    connector = mysql_sandbox.connector()
    connector.apply(rotate(shared, ["alice-1"], "Ch3ckout-pw-2", now.plus(seconds=3)))
    assert refused(mysql_sandbox, user, "Ch3ckout-pw-2") is None
    assert wait_refused(mysql_sandbox, user, "Ch3ckout-pw-2") == LOCKED
    # the next checkout unlocks it until its own end
    connector.apply(rotate(shared, ["bob-1"], "Ch3ckout-pw-3", Now.read().plus(hours=1)))
    assert refused(mysql_sandbox, user, "Ch3ckout-pw-3") is None


def test_rotate_is_always_an_event_and_check_mode_writes_nothing(mysql_sandbox: MysqlSandbox, now: Now) -> None:
    shared = mysql_sandbox.account("shared")
    connector = mysql_sandbox.connector()
    preview = connector.apply(rotate(shared, ["alice-1"], "Ch3ckout-pw-4", now.plus(hours=1)), check=True)
    assert preview.changed and not preview.after
    assert refused(mysql_sandbox, shared.split("@")[0], PASSWORD) is None
    for _ in range(2):
        assert connector.apply(rotate(shared, ["alice-1"], "Ch3ckout-pw-4", now.plus(hours=1))).changed
    with pytest.raises(PermanentTargetError, match="needs a password"):
        connector.apply(rotate(shared, ["alice-1"], None))


def test_rotate_refuses_roles_super_accounts_its_own_login_and_ephemeral_accounts(
    mysql_sandbox: MysqlSandbox, roles: list[str], now: Now
) -> None:
    connector = mysql_sandbox.connector()
    admin = mysql_sandbox.account("admin")
    mysql_sandbox.execute(f"GRANT SUPER ON *.* TO {mysql_sandbox.acct(admin)}")
    name = mysql_sandbox.ephemeral_name()
    connector.apply(create(name, roles, now.plus(hours=1)))
    for account in (admin, f"{name}@%"):
        with pytest.raises(PermanentTargetError, match="refusing to rotate"):
            connector.apply(rotate(account, ["alice-1"], "Ch3ckout-pw-5"))
    with pytest.raises(PermanentTargetError, match="reserved"):
        connector.apply(rotate("root@127.0.0.1", ["alice-1"], "Ch3ckout-pw-5"))
    with pytest.raises(PermanentTargetError, match="does not exist"):
        connector.apply(rotate(f"{roles[0]}@%", ["alice-1"], "Ch3ckout-pw-5"))  # a role has no host
    assert refused(mysql_sandbox, name, SECRET) is None
    assert refused(mysql_sandbox, admin.split("@")[0], PASSWORD) is None


def test_a_rotation_the_server_refuses_reports_no_secret(mysql_sandbox: MysqlSandbox, now: Now) -> None:
    """jitpol's login may read accounts but not change them: the rotation fails, says why, and
    shows neither the secret nor its hash."""
    shared = mysql_sandbox.account("shared")
    reader = mysql_sandbox.account("reader")
    mysql_sandbox.execute(f"GRANT SELECT ON *.* TO {mysql_sandbox.acct(reader)}")
    connector = mysql_sandbox.connector(dsn=mysql_sandbox.server.dsn(user=reader.split("@")[0], password=PASSWORD))
    with pytest.raises(PermanentTargetError, match="refused") as info:
        connector.apply(rotate(shared, ["alice-1"], "Ch3ckout-pw-6", now.plus(hours=1)))
    assert "Ch3ckout-pw-6" not in str(info.value) and native_password_hash("Ch3ckout-pw-6") not in str(info.value)
    # the driver's exception (its text may quote the statement) is not kept
    assert info.value.__cause__ is None and info.value.__context__ is None
    assert refused(mysql_sandbox, shared.split("@")[0], PASSWORD) is None  # unchanged
