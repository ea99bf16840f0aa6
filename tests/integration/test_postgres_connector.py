"""PostgresConnector against a real server: hostile names, connection errors without secrets,
session termination on revoke, leaving unmanaged memberships alone, and jitpol's ownership marker
(the grantor role every membership jitpol grants is GRANTED BY)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg import sql

from jitpol.connectors.postgres import (
    GRANTOR_COMMENT,
    GRANTOR_ROLE,
    MARKER_PREFIX,
    PostgresConnector,
    check_name,
    validate_identifier,
    validate_principal,
)
from jitpol.errors import InvalidInput, PermanentTargetError, TargetError, TargetUnavailable
from jitpol.model.assignment import Action, Assignment, Op, Scope
from jitpol.plan.diff import diff
from jitpol.policy.history import History
from tests.doubles.server import closed_port

if TYPE_CHECKING:
    from tests.conftest import PgDatabase, PgRoles

TARGET = "pg-it"
MODEL = "role-membership"
DSN_ENV = "PG_IT_DSN"
REPO = Path(__file__).resolve().parents[2]


def action(op: Op, principal: str, role: str) -> Action:
    return Action(op=op, assignment=Assignment(TARGET, MODEL, principal, role), resource="r", grants=("g",))


Connect = Callable[..., PostgresConnector]


def ensure_grantor(pg_roles: PgRoles, name: str = GRANTOR_ROLE) -> None:
    """The grantor role as a superuser connector's first grant creates it (for tests that compare
    exact statements, whichever test ran first on this server)."""
    if pg_roles.admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is None:
        pg_roles.admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN NOINHERIT").format(sql.Identifier(name)))
        pg_roles.admin.execute(
            sql.SQL("COMMENT ON ROLE {} IS {}").format(sql.Identifier(name), sql.Literal(GRANTOR_COMMENT)))


def grantors(pg_roles: PgRoles, role: str, member: str) -> list[str]:
    """Who granted `member` its membership in `role` (one row per grantor from PostgreSQL 16)."""
    rows = pg_roles.admin.execute(
        "SELECT coalesce(g.rolname::text, m.grantor::text) FROM pg_auth_members m "
        "JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member "
        "LEFT JOIN pg_roles g ON g.oid = m.grantor WHERE r.rolname = %s AND u.rolname = %s ORDER BY 1",
        (role, member),
    ).fetchall()
    return [str(row[0]) for row in rows]


def server_version(pg_roles: PgRoles) -> int:
    return int(pg_roles.admin.info.server_version)


@pytest.fixture
def connect(pg_roles: PgRoles) -> Iterator[Connect]:
    """connect(**settings) -> a PostgresConnector on the test server as its superuser (the
    default grantor role exists)."""
    ensure_grantor(pg_roles)
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
    assert outcome.operations == (f'GRANT "{group}" TO "{principal}" GRANTED BY "{GRANTOR_ROLE}"',)
    assert pg_roles.members(group) == {principal}
    scope = Scope(TARGET, MODEL, frozenset({group}))
    assert connector.observe(scope) == {Assignment(TARGET, MODEL, principal, group)}
    outcome = connector.apply(action("revoke", principal, group))
    assert outcome.operations[0] == f'REVOKE "{group}" FROM "{principal}" GRANTED BY "{GRANTOR_ROLE}"'
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
    for grantor in ("postgres", "pg_monitor", "public", 'x"; DROP ROLE postgres; --', 7):
        with pytest.raises(PermanentTargetError, match="grantor_role"):
            PostgresConnector(TARGET, {"dsn_env": DSN_ENV, "grantor_role": grantor}, {})
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
    assert outcome.operations[0] == f'REVOKE "{group}" FROM "{alice}" GRANTED BY "{GRANTOR_ROLE}"'
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

    assert outcome.operations == (f'REVOKE "{group}" FROM "{alice}" GRANTED BY "{GRANTOR_ROLE}"',)
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


# -- ownership marker: the grantor role ------------------------------------------------------


@pytest.mark.postgres
def test_what_jitpol_grants_is_granted_by_its_grantor_role_and_observed_owned(
    pg_roles: PgRoles, connect: Connect
) -> None:
    group = pg_roles.create("grp")
    alice = pg_roles.create("alice", login=True)
    standing = pg_roles.create("standing", login=True)
    pg_roles.grant(group, standing)
    connector = connect()

    outcome = connector.apply(action("grant", alice, group))

    assert outcome.operations == (f'GRANT "{group}" TO "{alice}" GRANTED BY "{GRANTOR_ROLE}"',)
    assert grantors(pg_roles, group, alice) == [GRANTOR_ROLE]
    observed = {a.principal: a.owned for a in connector.observe(Scope(TARGET, MODEL, frozenset({group})))}
    assert observed == {alice: True, standing: False}


@pytest.mark.postgres
def test_standing_access_stays_unmarked_through_a_grant_and_outlives_its_revocation_path(
    pg_roles: PgRoles, connect: Connect
) -> None:
    """A membership someone else gave before jitpol's grant: observed owned=False, the grant
    changes nothing (no marker added), and with no ledger entry naming it the diff never revokes
    it, while the marked membership next to it is revoked as jitpol's."""
    group = pg_roles.create("grp")
    dave = pg_roles.create("dave", login=True)
    alice = pg_roles.create("alice", login=True)
    pg_roles.grant(group, dave)  # by the superuser, long before jitpol
    connector = connect()
    scope = Scope(TARGET, MODEL, frozenset({group}))
    assert [a.owned for a in connector.observe(scope)] == [False]

    unchanged = connector.apply(action("grant", dave, group))
    assert (unchanged.changed, unchanged.before, unchanged.after, unchanged.operations) == (False, True, True, ())
    assert grantors(pg_roles, group, dave) == ["postgres"], "the grant must not mark standing access"
    connector.apply(action("grant", alice, group))
    observed = connector.observe(scope)
    assert {a.principal: a.owned for a in observed} == {dave: False, alice: True}

    # both grants are over and the ledger is lost: only the marked membership is jitpol's to take back
    plan = diff({}, {TARGET: observed}, History(), {})
    assert [(a.op, a.principal, a.drift) for a in plan] == [("revoke", alice, True)]
    for step in plan:
        assert connector.apply(step).changed
    assert pg_roles.members(group) == {dave}
    assert [(a.principal, a.owned) for a in connector.observe(scope)] == [(dave, False)]
    assert diff({}, {TARGET: connector.observe(scope)}, History(), {}) == ()


@pytest.mark.postgres
def test_an_unmarked_membership_the_ledger_names_is_revoked_as_before(pg_roles: PgRoles, connect: Connect) -> None:
    """Granted before jitpol marked its memberships (a plain GRANT): the ledger says jitpol gave
    it, so the revoke is the plain REVOKE it always was."""
    group = pg_roles.create("grp")
    alice = pg_roles.create("alice", login=True)
    pg_roles.grant(group, alice)
    outcome = connect().apply(action("revoke", alice, group))
    assert outcome.operations[0] == f'REVOKE "{group}" FROM "{alice}"'
    assert pg_roles.members(group) == set()


@pytest.mark.postgres
def test_a_marker_driven_revoke_never_takes_an_unmarked_membership(pg_roles: PgRoles, connect: Connect) -> None:
    """plan.diff's revoke of a marked membership no grant or ledger entry backs (drift, no
    resource): if what it finds when it runs carries no marker (jitpol's row gone, a standing
    row granted since observe), it is not jitpol's to take, and that is no error."""
    group = pg_roles.create("grp")
    alice = pg_roles.create("alice", login=True)
    pg_roles.grant(group, alice)  # by the superuser: standing access
    marked = replace(action("revoke", alice, group), resource="", grants=(), drift=True)
    outcome = connect().apply(marked)
    assert (outcome.changed, outcome.operations) == (False, ())
    assert pg_roles.members(group) == {alice}


@pytest.mark.postgres
def test_a_superuser_connector_creates_its_grantor_role_with_the_first_grant(
    pg_roles: PgRoles, connect: Connect, unique_name: Callable[[str], str]
) -> None:
    group = pg_roles.create("grp")
    alice, bob = pg_roles.create("alice", login=True), pg_roles.create("bob", login=True)
    grantor = unique_name("grantor")
    connector = connect(grantor_role=grantor)
    admin_option = server_version(pg_roles) >= 160000  # a grantor must hold ADMIN OPTION from 16 on
    setup = (
        f'CREATE ROLE "{grantor}" WITH NOLOGIN NOINHERIT',
        f"COMMENT ON ROLE \"{grantor}\" IS '{GRANTOR_COMMENT.replace(chr(39), chr(39) * 2)}'",
        *([f'GRANT "{group}" TO "{grantor}" WITH ADMIN TRUE, INHERIT FALSE, SET FALSE'] if admin_option else []),
    )
    grant = f'GRANT "{group}" TO "{alice}" GRANTED BY "{grantor}"'

    preview = connector.apply(action("grant", alice, group), check=True)
    assert preview.operations == (*setup, grant)
    assert pg_roles.admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (grantor,)).fetchone() is None

    assert connector.apply(action("grant", alice, group)).operations == (*setup, grant)
    pg_roles.created.append(grantor)  # dropped first, after the test revokes what it granted
    row = pg_roles.admin.execute(
        "SELECT rolcanlogin, rolinherit, rolsuper, rolcreaterole, shobj_description(oid, 'pg_authid') "
        "FROM pg_roles WHERE rolname = %s", (grantor,)).fetchone()
    assert row == (False, False, False, False, GRANTOR_COMMENT)
    assert not GRANTOR_COMMENT.startswith(MARKER_PREFIX), "the grantor is never taken for an ephemeral account"
    assert all(a.principal != grantor for a in connector.observe(Scope(TARGET, "ephemeral-account", frozenset())))
    assert grantors(pg_roles, group, alice) == [grantor]
    # the next grant finds it
    assert connector.apply(action("grant", bob, group)).operations == (
        f'GRANT "{group}" TO "{bob}" GRANTED BY "{grantor}"',)
    observed = connector.observe(Scope(TARGET, MODEL, frozenset({group})))
    assert {(a.principal, a.owned) for a in observed} == {(alice, True), (bob, True)}
    for person in (alice, bob):
        connector.apply(action("revoke", person, group))
    assert pg_roles.members(group) == ({grantor} if admin_option else set())


@pytest.mark.postgres
def test_a_failed_grant_leaves_no_grantor_role_behind(
    pg_roles: PgRoles, connect: Connect, unique_name: Callable[[str], str]
) -> None:
    group = pg_roles.create("grp")
    alice = pg_roles.create("alice", login=True)
    pg_roles.grant(alice, group)  # group is a member of alice: GRANT group TO alice would make a loop
    grantor = unique_name("grantor")
    with pytest.raises(PermanentTargetError, match="is a member of role"):
        connect(grantor_role=grantor).apply(action("grant", alice, group))
    assert pg_roles.admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (grantor,)).fetchone() is None


@pytest.mark.postgres
def test_an_unfit_grantor_role_marks_nothing_and_is_refused(pg_roles: PgRoles, connect: Connect) -> None:
    """A grantor of record that can log in (a person), is a superuser, or is an ephemeral account
    would make what it granted by hand look like jitpol's: observe then reports nothing as owned
    and every grant is refused (revocations go on)."""
    group = pg_roles.create("grp")
    alice, bob = pg_roles.create("alice", login=True), pg_roles.create("bob", login=True)
    person = pg_roles.create("person", login=True)
    root_like = pg_roles.create("su", superuser=True)
    marked = pg_roles.create("marked")
    pg_roles.admin.execute(sql.SQL("COMMENT ON ROLE {} IS {}").format(
        sql.Identifier(marked), sql.Literal(f"{MARKER_PREFIX} grant=g; person=p")))
    for grantor, why in ((person, "can log in"), (root_like, "is a superuser"), (marked, "ephemeral-account marker")):
        pg_roles.admin.execute(sql.SQL("GRANT {} TO {} GRANTED BY {}").format(
            sql.Identifier(group), sql.Identifier(alice), sql.Identifier(grantor)))
        connector = connect(grantor_role=grantor)
        assert [a.owned for a in connector.observe(Scope(TARGET, MODEL, frozenset({group})))] == [False]
        for check in (True, False):
            with pytest.raises(PermanentTargetError, match=f"grantor role '{grantor}'.*{why}"):
                connector.apply(action("grant", bob, group), check=check)
        connector.apply(action("revoke", alice, group))
        assert pg_roles.members(group) == set()


@pytest.mark.postgres
def test_the_grantor_role_is_never_granted_given_a_role_or_observed(pg_roles: PgRoles, connect: Connect) -> None:
    group = pg_roles.create("grp")
    alice = pg_roles.create("alice", login=True)
    team = pg_roles.create("team")
    connector = connect()
    connector.apply(action("grant", alice, group))
    pg_roles.grant(group, GRANTOR_ROLE)  # as PostgreSQL 16 records its ADMIN OPTION: a row in group
    pg_roles.grant(GRANTOR_ROLE, team)  # someone made team a member of the grantor role
    try:
        for op in ("grant", "revoke"):
            with pytest.raises(PermanentTargetError, match="jitpol's grantor role"):
                connector.apply(action(op, alice, GRANTOR_ROLE))
            with pytest.raises(PermanentTargetError, match="jitpol's grantor role"):
                connector.apply(action(op, GRANTOR_ROLE, group))
        # a member of the grantor role could grant as it: reaching it is never handed out
        with pytest.raises(PermanentTargetError, match=rf"reaches jitpol's grantor role.*{team} -> {GRANTOR_ROLE}"):
            connector.apply(action("grant", alice, team))
        with pytest.raises(PermanentTargetError, match="reaches jitpol's grantor role"):
            connector.apply(replace(action("grant", alice, team), details=(("privileged", "allowed"),)))
        observed = connector.observe(Scope(TARGET, MODEL, frozenset({group, GRANTOR_ROLE})))
        assert {a.principal for a in observed} == {alice}
    finally:
        for role, member in ((group, GRANTOR_ROLE), (GRANTOR_ROLE, team)):
            pg_roles.admin.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(role), sql.Identifier(member)))
    assert pg_roles.members(GRANTOR_ROLE) == set()


@pytest.mark.postgres
def test_a_non_superuser_login_and_the_grantor_role(pg_roles: PgRoles, connect: Connect) -> None:
    """PostgreSQL 15 and earlier let only a superuser name a grantor: a CREATEROLE login grants
    unmarked (observed owned False; the ledger alone knows it), and its revocations of marked
    memberships still work. From 16 on the login grants unmarked until it has the grantor role's
    privileges, then grants as it (after giving it ADMIN OPTION)."""
    group = pg_roles.create("grp")
    alice, bob = pg_roles.create("alice", login=True), pg_roles.create("bob", login=True)
    login = pg_roles.create("jitpol_login", login=True, password="login-Pw-1")
    pg_roles.admin.execute(sql.SQL("ALTER ROLE {} CREATEROLE").format(sql.Identifier(login)))
    pg_roles.admin.execute(sql.SQL("GRANT {} TO {} WITH ADMIN OPTION").format(
        sql.Identifier(group), sql.Identifier(login)))
    as_superuser = connect()
    as_superuser.apply(action("grant", alice, group))
    as_login = PostgresConnector(TARGET, {"dsn_env": DSN_ENV},
                                 {DSN_ENV: pg_roles.server.dsn(user=login, password="login-Pw-1")})
    try:
        outcome = as_login.apply(action("grant", bob, group))
        assert outcome.changed and outcome.operations == (f'GRANT "{group}" TO "{bob}"',)
        assert grantors(pg_roles, group, bob) == [login]
        (seen,) = [x for x in as_login.observe(Scope(TARGET, MODEL, frozenset({group}))) if x.principal == bob]
        assert seen.owned is False
        as_login.apply(action("revoke", bob, group))
        assert bob not in pg_roles.members(group)
        if server_version(pg_roles) >= 160000:
            pg_roles.admin.execute(sql.SQL("GRANT {} TO {} WITH INHERIT TRUE").format(
                sql.Identifier(GRANTOR_ROLE), sql.Identifier(login)))
            assert as_login.apply(action("grant", bob, group)).changed
            assert grantors(pg_roles, group, bob) == [GRANTOR_ROLE]
            as_login.apply(action("revoke", bob, group))
        # what jitpol granted as a superuser, a non-superuser login takes back
        outcome = as_login.apply(action("revoke", alice, group))
        assert outcome.operations[0] == f'REVOKE "{group}" FROM "{alice}" GRANTED BY "{GRANTOR_ROLE}"'
        assert alice not in pg_roles.members(group)
    finally:
        as_login.close()
        pg_roles.admin.execute(sql.SQL("REVOKE {} FROM {}").format(
            sql.Identifier(GRANTOR_ROLE), sql.Identifier(login)))


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
