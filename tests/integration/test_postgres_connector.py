"""PostgresConnector against a real server: hostile names, connection errors without secrets,
session termination on revoke, and leaving unmanaged memberships alone."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg import sql

from jitpol.connectors.postgres import (
    PostgresConnector,
    check_name,
    validate_identifier,
    validate_principal,
)
from jitpol.errors import InvalidInput, PermanentTargetError, TargetError, TargetUnavailable
from jitpol.model.assignment import Action, Assignment, Op, Scope

if TYPE_CHECKING:
    from conftest import PgDatabase, PgRoles  # tests/conftest.py

TARGET = "pg-it"
MODEL = "role-membership"
DSN_ENV = "PG_IT_DSN"
REPO = Path(__file__).resolve().parents[2]


def action(op: Op, principal: str, role: str) -> Action:
    return Action(op=op, assignment=Assignment(TARGET, MODEL, principal, role), resource="r", grants=("g",))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens once the socket is closed


Connect = Callable[..., PostgresConnector]


@pytest.fixture
def connect(pg_roles: PgRoles) -> Iterator[Connect]:
    """connect(**settings) -> a PostgresConnector on the test server as its superuser."""
    made: list[PostgresConnector] = []

    def make(**settings: Any) -> PostgresConnector:
        connector = PostgresConnector(
            TARGET, {"dsn_env": DSN_ENV, **settings}, {DSN_ENV: pg_roles.server.superuser_dsn}
        )
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


# -- names ----------------------------------------------------------------------------------

HOSTILE = [
    'x"; DROP ROLE postgres; --',
    "a" * 64,  # PostgreSQL would silently truncate it to 63 bytes: another role
    "",
    "1abc",
    "-rf",
    "app readonly",
    "app\nreadonly",
    "app\x00",
    "röle",  # outside the ASCII allowlist
    "public",
    "PUBLIC",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_fail_validation(name: str) -> None:
    with pytest.raises(InvalidInput):
        validate_identifier(name, "role")
    with pytest.raises(InvalidInput):
        validate_principal(name)


@pytest.mark.parametrize("name", ["pg_signal_backend", "PG_READ_ALL_DATA", "postgres", "Postgres"])
def test_reserved_principals_fail_validation(name: str) -> None:
    validate_identifier(name, "role")  # fine as the granted role (pg_* predefined roles are useful)
    with pytest.raises(InvalidInput, match="reserved"):
        validate_principal(name)


def test_allowed_names_pass_validation() -> None:
    for name in ["alice", "app_readonly", "a.b-c@d", "_x", "A" * 63, "svc-1.prod@corp"]:
        validate_identifier(name, "role")
        validate_principal(name)


def test_check_name_is_the_loaders_hook() -> None:
    check_name("pg_read_all_data", "privilege")
    check_name("alice", "principal")
    with pytest.raises(InvalidInput, match="reserved"):
        check_name("pg_read_all_data", "principal")
    with pytest.raises(InvalidInput, match="string"):
        check_name({"role": "x"}, "privilege")
    with pytest.raises(InvalidInput):
        check_name("a" * 64, "privilege")


def test_error_message_escapes_the_name() -> None:
    with pytest.raises(InvalidInput) as info:
        validate_identifier("x\nINJECTED" + "y" * 200, "role")
    message = str(info.value)
    assert "\n" not in message
    assert len(message) < 300


@pytest.mark.parametrize(
    ("principal", "role"),
    [
        ("alice", 'x"; DROP ROLE postgres; --'),
        ('x"; DROP ROLE postgres; --', "app"),
        ("a" * 64, "app"),
        ("alice", "b" * 64),
        ("pg_signal_backend", "app"),
        ("postgres", "app"),
        ("public", "app"),
    ],
)
@pytest.mark.parametrize("op", ["grant", "revoke"])
def test_hostile_names_are_refused_before_any_sql(principal: str, role: str, op: Op) -> None:
    # the DSN points at a port where nothing listens: reaching the network would raise
    # TargetUnavailable, so PermanentTargetError proves the refusal came first
    dsn = f"host=127.0.0.1 port={closed_port()} user=postgres password=pw dbname=postgres"
    connector = PostgresConnector(TARGET, {"dsn_env": DSN_ENV}, {DSN_ENV: dsn})
    with pytest.raises(PermanentTargetError):
        connector.apply(action(op, principal, role))
    with pytest.raises(PermanentTargetError):
        connector.apply(action(op, principal, role), check=True)


def test_module_imports_and_validates_without_psycopg() -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"  # any `import psycopg` now fails
        "from jitpol.connectors.registry import name_check\n"
        "from jitpol.connectors.postgres import validate_identifier\n"
        "name_check('postgres')('alice', 'principal')\n"
        "from jitpol.errors import InvalidInput\n"
        "validate_identifier('alice', 'principal')\n"
        "try:\n"
        "    validate_identifier('a b', 'role')\n"
        "except InvalidInput:\n"
        "    print('refused')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "refused"


@pytest.mark.postgres
def test_a_hostile_but_allowed_name_works_quoted(pg_roles: PgRoles, connect: Connect) -> None:
    group = pg_roles.create("Grp.x-y@z")
    principal = pg_roles.create("a.b-c@d", login=True)
    connector = connect()
    outcome = connector.apply(action("grant", principal, group))
    assert outcome.operations == (f'GRANT "{group}" TO "{principal}"',)
    assert pg_roles.members(group) == {principal}
    scope = Scope(TARGET, MODEL, frozenset({group}))
    assert connector.observe(scope) == {Assignment(TARGET, MODEL, principal, group)}
    connector.apply(action("revoke", principal, group))
    assert pg_roles.members(group) == set()


@pytest.mark.postgres
def test_a_63_byte_name_is_used_whole(
    pg_roles: PgRoles, connect: Connect, unique_name: Callable[[str], str]
) -> None:
    group = pg_roles.create("grp")
    principal = pg_roles.create("long", name=unique_name("long").ljust(63, "q"))
    assert len(principal.encode()) == 63
    connect().apply(action("grant", principal, group))
    assert pg_roles.members(group) == {principal}


@pytest.mark.postgres
@pytest.mark.parametrize("op", ["grant", "revoke"])
def test_superusers_are_never_touched(pg_roles: PgRoles, connect: Connect, op: Op) -> None:
    group = pg_roles.create("grp")
    root_like = pg_roles.create("su", superuser=True)
    if op == "revoke":
        pg_roles.grant(group, root_like)
    before = pg_roles.members(group)
    connector = connect()
    with pytest.raises(PermanentTargetError, match="superuser"):
        connector.apply(action(op, root_like, group))
    with pytest.raises(PermanentTargetError, match="superuser"):
        connector.apply(action(op, root_like, group), check=True)
    assert pg_roles.members(group) == before


@pytest.mark.postgres
def test_a_superuser_role_is_never_handed_out(pg_roles: PgRoles, connect: Connect) -> None:
    # membership in a superuser role is superuser: SET ROLE to it
    root_like = pg_roles.create("su", superuser=True)
    alice = pg_roles.create("alice", login=True)
    with pytest.raises(PermanentTargetError, match="superuser"):
        connect().apply(action("grant", alice, root_like))
    assert pg_roles.members(root_like) == set()


@pytest.mark.postgres
def test_missing_roles_are_named(pg_roles: PgRoles, connect: Connect) -> None:
    group = pg_roles.create("grp")
    alice = pg_roles.create("alice")
    connector = connect()
    with pytest.raises(PermanentTargetError, match=r'target pg-it: role "no_such_role" does not exist'):
        connector.apply(action("grant", alice, "no_such_role"))
    with pytest.raises(PermanentTargetError, match=r'role "nobody_here" does not exist'):
        connector.apply(action("revoke", "nobody_here", group), check=True)


@pytest.mark.postgres
def test_other_operations_are_not_supported(pg_roles: PgRoles, connect: Connect) -> None:
    group = pg_roles.create("grp")
    alice = pg_roles.create("alice")
    with pytest.raises(PermanentTargetError, match="not supported"):
        connect().apply(action("create-account", alice, group))


@pytest.mark.postgres
def test_observe_ignores_roles_that_do_not_exist(pg_roles: PgRoles, connect: Connect) -> None:
    group = pg_roles.create("grp")
    alice = pg_roles.create("alice")
    pg_roles.grant(group, alice)
    scope = Scope(TARGET, MODEL, frozenset({group, "no_such_role", 'x"; DROP ROLE postgres; --'}))
    assert connect().observe(scope) == {Assignment(TARGET, MODEL, alice, group)}


@pytest.mark.postgres
def test_observe_reports_direct_members_only(pg_roles: PgRoles, connect: Connect) -> None:
    group = pg_roles.create("grp")
    team = pg_roles.create("team")
    alice = pg_roles.create("alice")
    pg_roles.grant(group, team)
    pg_roles.grant(team, alice)  # alice reaches group only through team
    observed = connect().observe(Scope(TARGET, MODEL, frozenset({group})))
    assert observed == {Assignment(TARGET, MODEL, team, group)}


# -- configuration and connection errors ----------------------------------------------------


def test_settings_are_checked_without_io() -> None:
    with pytest.raises(PermanentTargetError, match="dsn_env"):
        PostgresConnector(TARGET, {}, {})
    with pytest.raises(PermanentTargetError, match="terminate_sessions"):
        PostgresConnector(TARGET, {"dsn_env": DSN_ENV, "terminate_sessions": "no"}, {})
    with pytest.raises(PermanentTargetError, match="connect_timeout"):
        PostgresConnector(TARGET, {"dsn_env": DSN_ENV, "connect_timeout": True}, {})
    # a valid constructor does nothing else: no DSN, no server, no error yet
    PostgresConnector(TARGET, {"dsn_env": DSN_ENV}, {}).close()


def test_missing_env_var_is_permanent_and_named() -> None:
    connector = PostgresConnector(TARGET, {"dsn_env": DSN_ENV}, {"OTHER": "x"})
    with pytest.raises(PermanentTargetError, match=DSN_ENV):
        connector.observe(Scope(TARGET, MODEL, frozenset({"app"})))


def assert_no_secret(error: TargetError, *secrets: str) -> None:
    text = str(error)
    for secret in secrets:
        assert secret not in text
    # tracebacks print the cause too; psycopg's message may quote the DSN
    assert error.__cause__ is None
    assert error.__suppress_context__


def test_closed_port_is_temporary_and_keeps_the_dsn_secret() -> None:
    password = "Cl0sed-P0rt-Secret"
    dsn = f"host=127.0.0.1 port={closed_port()} user=postgres password={password} dbname=postgres"
    connector = PostgresConnector(TARGET, {"dsn_env": DSN_ENV, "connect_timeout": 2}, {DSN_ENV: dsn})
    with pytest.raises(TargetUnavailable) as info:
        connector.observe(Scope(TARGET, MODEL, frozenset({"app"})))
    assert_no_secret(info.value, password, dsn)
    assert "target pg-it" in str(info.value)


@pytest.mark.postgres
def test_wrong_password_keeps_the_password_secret(pg_roles: PgRoles) -> None:
    password = "Wr0ng-Passw0rd-Secret"
    dsn = pg_roles.server.dsn(password=password)
    connector = PostgresConnector(TARGET, {"dsn_env": DSN_ENV}, {DSN_ENV: dsn})
    with pytest.raises(TargetUnavailable) as info:
        connector.observe(Scope(TARGET, MODEL, frozenset({"app"})))
    assert_no_secret(info.value, password, dsn, pg_roles.server.password)
    assert "authentication failed" in str(info.value)


@pytest.mark.parametrize(
    "dsn",
    [
        "garbage Malformed-Secret",
        "host=127.0.0.1 password='Malformed-Secret",
        "postgresql://u:Malformed-Secret@[::1",
    ],
)
def test_malformed_dsn_is_permanent_and_not_echoed(dsn: str) -> None:
    connector = PostgresConnector(TARGET, {"dsn_env": DSN_ENV}, {DSN_ENV: dsn})
    with pytest.raises(TargetError) as info:
        connector.observe(Scope(TARGET, MODEL, frozenset({"app"})))
    assert_no_secret(info.value, "Malformed-Secret", dsn)


@pytest.mark.postgres
def test_one_connection_is_reused_and_close_is_safe_twice(pg_roles: PgRoles, connect: Connect) -> None:
    group = pg_roles.create("grp")
    alice = pg_roles.create("alice")
    connector = connect()
    scope = Scope(TARGET, MODEL, frozenset({group}))

    def jitpol_backends() -> int:
        row = pg_roles.admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'jitpol' AND backend_start > %s",
            (start,),
        ).fetchone()
        assert row is not None
        return int(row[0])

    now = pg_roles.admin.execute("SELECT now()").fetchone()
    assert now is not None
    start = now[0]
    connector.observe(scope)
    connector.apply(action("grant", alice, group))
    connector.apply(action("revoke", alice, group), check=True)
    connector.observe(scope)
    assert jitpol_backends() == 1
    connector.close()
    connector.close()
    # usable again after close: it reconnects lazily
    assert connector.observe(scope) == {Assignment(TARGET, MODEL, alice, group)}


@pytest.mark.postgres
def test_a_dropped_connection_is_temporary_then_recovers(pg_roles: PgRoles, connect: Connect) -> None:
    group = pg_roles.create("grp")
    connector = connect()
    scope = Scope(TARGET, MODEL, frozenset({group}))
    connector.observe(scope)
    pg_roles.admin.execute(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE application_name = 'jitpol'"
    )
    with pytest.raises(TargetUnavailable, match="connection to PostgreSQL lost"):
        connector.observe(scope)
    assert connector.observe(scope) == frozenset()  # next call reconnects


# -- sessions -------------------------------------------------------------------------------


def login_and_set_role(
    pg_db: PgDatabase, pg_roles: PgRoles, principal: str, password: str, group: str
) -> psycopg.Connection[tuple[Any, ...]]:
    """A password login over TCP as `principal`, then SET ROLE to `group`."""
    session = psycopg.connect(
        pg_roles.server.dsn(dbname=pg_db.name, user=principal, password=password), autocommit=True
    )
    session.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(group)))
    row = session.execute("SELECT current_user").fetchone()
    assert row is not None and row[0] == group
    return session


@pytest.mark.postgres
def test_revoke_ends_the_principals_sessions(pg_db: PgDatabase, pg_roles: PgRoles, connect: Connect) -> None:
    group = pg_roles.create("grp")
    password = "Sess10n-Pw"
    alice = pg_roles.create("alice", login=True, password=password)
    connector = connect()
    connector.apply(action("grant", alice, group))
    session = login_and_set_role(pg_db, pg_roles, alice, password, group)
    bystander = psycopg.connect(pg_db.dsn, autocommit=True)  # another superuser session

    outcome = connector.apply(action("revoke", alice, group))

    assert outcome.changed
    assert len(outcome.operations) == 2
    assert outcome.operations[0] == f'REVOKE "{group}" FROM "{alice}"'
    assert "pg_terminate_backend" in outcome.operations[1] and f"'{alice}'" in outcome.operations[1]
    with pytest.raises(psycopg.OperationalError):
        session.execute("SELECT 1")
    session.close()
    assert bystander.execute("SELECT 1").fetchone() == (1,)
    bystander.close()
    # the connector's own connection survived its own termination query
    assert connector.observe(Scope(TARGET, MODEL, frozenset({group}))) == frozenset()


@pytest.mark.postgres
def test_without_termination_a_set_role_session_keeps_the_role(
    pg_db: PgDatabase, pg_roles: PgRoles, connect: Connect
) -> None:
    """Why terminate_sessions defaults to true: REVOKE alone leaves SET ROLE sessions alone."""
    group = pg_roles.create("grp")
    password = "Sess10n-Pw"
    alice = pg_roles.create("alice", login=True, password=password)
    connector = connect(terminate_sessions=False)
    connector.apply(action("grant", alice, group))
    session = login_and_set_role(pg_db, pg_roles, alice, password, group)

    outcome = connector.apply(action("revoke", alice, group))

    assert outcome.operations == (f'REVOKE "{group}" FROM "{alice}"',)
    assert pg_roles.members(group) == set()
    assert session.execute("SELECT current_user").fetchone() == (group,)  # still acting as group
    session.close()


@pytest.mark.postgres
def test_check_mode_revoke_ends_no_session(pg_db: PgDatabase, pg_roles: PgRoles, connect: Connect) -> None:
    group = pg_roles.create("grp")
    password = "Sess10n-Pw"
    alice = pg_roles.create("alice", login=True, password=password)
    connector = connect()
    connector.apply(action("grant", alice, group))
    session = login_and_set_role(pg_db, pg_roles, alice, password, group)
    outcome = connector.apply(action("revoke", alice, group), check=True)
    assert outcome.changed and len(outcome.operations) == 2
    assert session.execute("SELECT current_user").fetchone() == (group,)
    assert pg_roles.members(group) == {alice}
    session.close()


# -- unmanaged memberships ------------------------------------------------------------------


@pytest.mark.postgres
def test_unmanaged_members_are_observed_but_untouched(pg_roles: PgRoles, connect: Connect) -> None:
    group = pg_roles.create("grp")
    standing = pg_roles.create("standing", login=True)
    alice = pg_roles.create("alice", login=True)
    pg_roles.grant(group, standing)
    connector = connect()
    scope = Scope(TARGET, MODEL, frozenset({group}))
    standing_access = Assignment(TARGET, MODEL, standing, group)

    assert connector.observe(scope) == {standing_access}
    connector.apply(action("grant", alice, group))
    assert connector.observe(scope) == {standing_access, Assignment(TARGET, MODEL, alice, group)}
    connector.apply(action("revoke", alice, group))
    assert connector.observe(scope) == {standing_access}
    assert pg_roles.members(group) == {standing}


# -- the throwaway server itself ------------------------------------------------------------


@pytest.mark.postgres
def test_throwaway_server_is_local_and_needs_its_password(pg_roles: PgRoles) -> None:
    server = pg_roles.server
    settings: dict[str, str] = dict(
        pg_roles.admin.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN ('listen_addresses', 'fsync', 'port')"
        ).fetchall()
    )
    assert settings == {"listen_addresses": "127.0.0.1", "fsync": "off", "port": str(server.port)}
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(server.dsn(password="not-the-password")).close()
    assert len(server.password) >= 24


@pytest.mark.postgres
def test_throwaway_cli_starts_and_stops_a_server(pg_server: object, tmp_path: Path) -> None:
    # pg_server: only to skip/fail like the other tests when PostgreSQL is missing
    cli = [sys.executable, str(REPO / "tools" / "throwaway_pg.py")]
    started = subprocess.run(
        [*cli, "start", str(tmp_path / "pg")], capture_output=True, text=True, check=False
    )
    assert started.returncode == 0, started.stderr
    env = dict(line.split("=", 1) for line in started.stdout.splitlines())
    assert (tmp_path / "pg" / "env").stat().st_mode & 0o077 == 0  # it holds the password
    dsn = f"host=127.0.0.1 port={env['PGPORT']} user=postgres password={env['PGPASSWORD']} dbname=postgres"
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    pid = int((Path(env["PGDATA"]) / "postmaster.pid").read_text().split()[0])

    stopped = subprocess.run(
        [*cli, "stop", str(tmp_path / "pg")], capture_output=True, text=True, check=False
    )
    assert stopped.returncode == 0, stopped.stderr
    assert not Path(env["PGRUNDIR"]).exists()
    assert not (tmp_path / "pg" / "env").exists()
    state = Path(f"/proc/{pid}/stat")
    assert not state.exists() or state.read_text().rpartition(")")[2].split()[0] == "Z"
    again = subprocess.run([*cli, "stop", str(tmp_path / "pg")], capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
