"""PostgresConnector's ephemeral-account and credential-checkout models against a real server:
password logins over TCP inside and after the window, VALID UNTIL without a delete, sessions
that must not survive, objects an account owned, rotation, secrets kept out of everything, and
roles that are not jitpol's."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg import sql

from jitpol.connectors.postgres import (
    CHECKOUT,
    EPHEMERAL,
    GRANTOR_ROLE,
    PostgresConnector,
    parse_role_list,
    password_matches,
    validate_account_name,
)
from jitpol.connectors.registry import TYPES
from jitpol.errors import InvalidInput, PermanentTargetError, TargetError
from jitpol.model.assignment import Action, Assignment, Outcome, Scope
from jitpol.model.canonical import canonical_json
from tests.doubles.server import closed_port

if TYPE_CHECKING:
    from tests.conftest import PgDatabase, PgRoles
    from tests.helpers.clock import Now

TARGET = "pg-acct"
DSN_ENV = "PG_ACCT_DSN"
PASSWORD = "Eph3meral-S3cret-pw"  # what the core would pass in action.detail("password")
DETAILS = (("grant", "alice-dba-1"), ("person", "alice"))


def later(**delta: float) -> datetime:
    return datetime.now(UTC) + timedelta(**delta)


def create(
    name: str,
    roles: list[str],
    until: datetime,
    password: str | None = PASSWORD,
    details: tuple[tuple[str, str], ...] = DETAILS,
) -> Action:
    extra = () if password is None else (("password", password),)
    return Action(
        op="create-account",
        assignment=Assignment(TARGET, EPHEMERAL, name, canonical_json(sorted(roles))),
        resource="db-jit",
        grants=("alice-dba-1",),
        until=until,
        details=tuple(sorted(details + extra)),
    )


def delete(name: str, **details: str) -> Action:
    return Action(
        op="delete-account",
        assignment=Assignment(TARGET, EPHEMERAL, name, "[]"),
        resource="",
        grants=("alice-dba-1",),
        details=tuple(sorted(details.items())),
    )


def rotate(account: str, holders: list[str], password: str | None, until: datetime | None = None) -> Action:
    return Action(
        op="rotate",
        assignment=Assignment(TARGET, CHECKOUT, account, canonical_json(sorted(holders))),
        resource="shared-admin",
        grants=tuple(holders),
        until=until,
        details=() if password is None else (("password", password),),
    )


Connect = Callable[..., PostgresConnector]


@pytest.fixture
def connect(pg_roles: PgRoles) -> Iterator[Connect]:
    """connect(dsn=None, **settings) -> a PostgresConnector (by default as the superuser)."""
    made: list[PostgresConnector] = []

    def make(dsn: str | None = None, **settings: Any) -> PostgresConnector:
        env = {DSN_ENV: dsn or pg_roles.server.superuser_dsn}
        connector = PostgresConnector(TARGET, {"dsn_env": DSN_ENV, **settings}, env)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


class Accounts:
    """Unique `jit-` names for a test, and a cleanup that removes whatever of them is left (even
    owning objects, if a test failed half-way) without the connector under test."""

    def __init__(self, pg_roles: PgRoles) -> None:
        self.pg_roles = pg_roles
        self.names: list[str] = []

    def new(self) -> str:
        name = f"jit-t{uuid.uuid4().hex[:12]}"
        self.names.append(name)
        return name

    def cleanup(self) -> None:
        admin = self.pg_roles.admin
        server = self.pg_roles.server
        for name in self.names:
            if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is None:
                continue
            admin.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = %s", (name,))
            for (db,) in admin.execute("SELECT datname FROM pg_database WHERE datallowconn").fetchall():
                with psycopg.connect(server.dsn(dbname=db), autocommit=True) as conn:
                    conn.execute(sql.SQL("REASSIGN OWNED BY {} TO postgres").format(sql.Identifier(name)))
                    conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.fixture
def accounts(pg_roles: PgRoles) -> Iterator[Accounts]:
    made = Accounts(pg_roles)
    try:
        yield made
    finally:
        made.cleanup()


def login(pg_roles: PgRoles, user: str, password: str, dbname: str = "postgres") -> psycopg.Connection[Any]:
    """A password login over TCP (scram-sha-256 in pg_hba): what VALID UNTIL gates."""
    return psycopg.connect(
        host="127.0.0.1", port=pg_roles.server.port, user=user, password=password, dbname=dbname,
        connect_timeout=5, autocommit=True,
    )  # fmt: skip


def can_login(pg_roles: PgRoles, user: str, password: str) -> bool:
    try:
        login(pg_roles, user, password).close()
    except psycopg.OperationalError:
        return False
    return True


def role_row(pg_roles: PgRoles, name: str) -> tuple[Any, ...] | None:
    """(rolcanlogin, rolvaliduntil, comment, sorted direct memberships) or None."""
    return pg_roles.admin.execute(
        "SELECT r.rolcanlogin, r.rolvaliduntil, shobj_description(r.oid, 'pg_authid'), "
        "ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
        "      WHERE m.member = r.oid ORDER BY 1) "
        "FROM pg_roles r WHERE r.rolname = %s",
        (name,),
    ).fetchone()


def existing_row(pg_roles: PgRoles, name: str) -> tuple[Any, ...]:
    """role_row of a role that must exist."""
    row = role_row(pg_roles, name)
    assert row is not None, f"no role {name}"
    return row


def is_dead(session: psycopg.Connection[Any]) -> bool:
    try:
        session.execute("SELECT 1")
    except psycopg.OperationalError:
        return True
    finally:
        session.close()
    return False


def assert_secret_free(*things: object, secrets: tuple[str, ...] = (PASSWORD,)) -> None:
    for thing in things:
        for text in (str(thing), repr(thing)):
            for secret in secrets:
                assert secret not in text
            assert "SCRAM-SHA-256$" not in text  # not even the verifier


# -- names and privileges (no server) --------------------------------------------------------

HOSTILE_ACCOUNTS = [
    "alice",  # not a jit- name: never created or dropped by this model
    "jit-",
    "jit--x",
    "JIT-alice",
    "jit-Alice",
    "jit-a" + "b" * 31,  # 36 characters: over the pattern (and the Linux/LDAP limits)
    "jit-a_b",
    'jit-a"; DROP ROLE postgres; --',
    "jit-a\n",
    "jit-ä",
    "jit-" + "a" * 60,  # past PostgreSQL's 63 bytes as well: would be truncated silently
    "postgres",
]


@pytest.mark.parametrize("name", HOSTILE_ACCOUNTS)
def test_hostile_account_names_fail_validation(name: str) -> None:
    with pytest.raises(InvalidInput, match="ephemeral account name"):
        validate_account_name(name)


def test_longest_allowed_account_name_is_used_whole() -> None:
    name = "jit-a" + "b" * 30
    assert validate_account_name(name) == name
    assert len(name.encode()) == 35 < 63


@pytest.mark.parametrize(
    "privilege",
    [
        "app_readonly",  # not JSON
        '{"role": "app"}',
        '["b","a"]',  # not sorted
        '["a","a"]',  # not distinct
        '[ "a" ]',  # not canonical
        '["a\\"; DROP ROLE postgres; --"]',
        '["public"]',
        '["' + "r" * 64 + '"]',
        "[1]",
        '["a", null]',
    ],
)
def test_hostile_privileges_fail_validation(privilege: str) -> None:
    with pytest.raises(InvalidInput):
        parse_role_list(privilege)


def test_privilege_is_the_canonical_sorted_list() -> None:
    assert parse_role_list(canonical_json(sorted(["b_role", "a.role@x"]))) == ["a.role@x", "b_role"]
    assert parse_role_list("[]") == []


@pytest.mark.parametrize(
    "action",
    [
        create("jit-a" + "b" * 31, ["app"], later(hours=1)),
        create('jit-a"; DROP ROLE postgres; --', ["app"], later(hours=1)),
        create("jit-ok", ['app"; DROP ROLE postgres; --'], later(hours=1)),
        Action(
            "create-account", Assignment(TARGET, EPHEMERAL, "jit-ok", '["b","a"]'), "r", ("g",),
            until=later(hours=1), details=DETAILS,
        ),  # the privilege as sent: not sorted
        create("jit-ok", ["app"], later(hours=1), details=(("grant", "g; DROP"), ("person", "alice"))),
        create("jit-ok", ["app"], later(hours=1), details=(("person", "alice"),)),  # no grant: no marker
        create("jit-ok", ["app"], datetime(2095, 1, 1)),  # naive: the server would read local time
        delete("alice"),
        delete("jit-" + "a" * 60),
        delete("jit-ok", reassign_to='x"; DROP ROLE postgres; --'),
        rotate('x"; DROP ROLE postgres; --', ["g"], PASSWORD),
        rotate("postgres", ["g"], PASSWORD),
        rotate("pg_monitor", ["g"], PASSWORD),
        rotate("a" * 64, ["g"], PASSWORD),
        rotate("shared_admin", ["g"], None),  # a rotation without a new secret
        rotate("shared_admin", ["g"], "nul\x00byte"),  # libpq would cut it short
        Action(
            "rotate", Assignment(TARGET, CHECKOUT, "shared_admin", "holders"), "r", ("g",),
            details=(("password", PASSWORD),),
        ),  # the privilege is not a JSON list
    ],
    ids=lambda a: f"{a.op}-{a.principal[:12]}",
)
@pytest.mark.parametrize("check", [False, True])
def test_hostile_input_is_refused_before_any_sql(action: Action, check: bool) -> None:
    # nothing listens on the port: reaching the network would be TargetUnavailable, so a
    # PermanentTargetError proves the refusal came first
    dsn = f"host=127.0.0.1 port={closed_port()} user=postgres password=pw dbname=postgres"
    connector = PostgresConnector(TARGET, {"dsn_env": DSN_ENV}, {DSN_ENV: dsn})
    with pytest.raises(PermanentTargetError) as info:
        connector.apply(action, check=check)
    assert "\n" not in str(info.value)
    assert_secret_free(info.value)


def test_reassign_to_setting_is_checked_without_io() -> None:
    with pytest.raises(PermanentTargetError, match="reassign_to"):
        PostgresConnector(TARGET, {"dsn_env": DSN_ENV, "reassign_to": "a b"}, {})
    PostgresConnector(TARGET, {"dsn_env": DSN_ENV, "reassign_to": "archive_owner"}, {}).close()


def test_capabilities_match_the_registry() -> None:
    caps = PostgresConnector.capabilities
    assert caps.models == TYPES["postgres"].models == {"role-membership", EPHEMERAL, CHECKOUT}
    assert caps.native_expiry == {EPHEMERAL, CHECKOUT}
    assert caps.ends_sessions


def test_password_matches_md5_and_refuses_what_it_cannot_tell() -> None:
    md5 = "md5" + hashlib.md5(b"pw-1jit-x", usedforsecurity=False).hexdigest()
    assert password_matches(md5, "pw-1", "jit-x")
    assert not password_matches(md5, "pw-2", "jit-x")
    assert not password_matches(md5, "pw-1", "jit-y")  # md5 is salted with the role name
    assert not password_matches(None, "pw-1", "jit-x")
    assert not password_matches("garbage", "pw-1", "jit-x")
    assert not password_matches("SCRAM-SHA-256$999999999:AAAA$AAAA:AAAA", "pw-1", "jit-x")


@pytest.mark.postgres
def test_password_matches_the_servers_scram_verifier(pg_roles: PgRoles, accounts: Accounts) -> None:
    name = accounts.new()
    for password in ("pw-1", "ümlaut-pw"):
        pg_roles.admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password))
        )  # hashed by the server itself
        row = pg_roles.admin.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (name,)).fetchone()
        assert row is not None and row[0].startswith("SCRAM-SHA-256$")
        # non-ASCII would need SASLprep: "cannot tell", so the connector sets it again
        assert password_matches(row[0], password, name) is password.isascii()
        assert not password_matches(row[0], password + "x", name)
        pg_roles.admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


# -- ephemeral-account: logins, window, sessions --------------------------------------------


@pytest.mark.postgres
def test_a_login_works_inside_the_window_and_fails_after_delete(
    pg_roles: PgRoles, accounts: Accounts, connect: Connect
) -> None:
    reader, writer = pg_roles.create("reader"), pg_roles.create("writer")
    name = accounts.new()
    until = later(hours=1)
    connector = connect()

    outcome = connector.apply(create(name, [reader, writer], until))

    assert outcome.changed and outcome.after
    roles = ", ".join(f'"{r}"' for r in sorted([reader, writer]))
    assert outcome.operations == (
        f"CREATE ROLE \"{name}\" WITH LOGIN PASSWORD '***' VALID UNTIL '{until.isoformat(sep=' ')}' IN ROLE {roles}",
        f"COMMENT ON ROLE \"{name}\" IS 'jitpol: grant=alice-dba-1; person=alice'",
    )
    with login(pg_roles, name, PASSWORD) as session:
        assert session.execute("SELECT current_user").fetchone() == (name,)
        # INHERIT: the roles' privileges apply without SET ROLE
        assert session.execute("SELECT pg_has_role(%s, 'USAGE')", (writer,)).fetchone() == (True,)
    comment = "jitpol: grant=alice-dba-1; person=alice"
    assert role_row(pg_roles, name) == (True, until, comment, sorted([reader, writer]))
    observed = connector.observe(Scope(TARGET, EPHEMERAL, frozenset()))
    mine = [a for a in observed if a.principal == name]
    assert mine == [Assignment(TARGET, EPHEMERAL, name, canonical_json(sorted([reader, writer])))]
    assert mine[0].expires == until

    deleted = connector.apply(delete(name))

    assert deleted.changed and deleted.after
    assert deleted.operations[0] == f'ALTER ROLE "{name}" NOLOGIN'
    assert "pg_terminate_backend" in deleted.operations[1]
    assert deleted.operations[-1] == f'DROP ROLE "{name}"'
    assert role_row(pg_roles, name) is None
    assert not can_login(pg_roles, name, PASSWORD)
    assert all(a.principal != name for a in connector.observe(Scope(TARGET, EPHEMERAL, frozenset())))
    again = connector.apply(delete(name))
    assert again == Outcome(changed=False, before=True, after=True)


@pytest.mark.postgres
def test_valid_until_ends_password_logins_without_a_delete(
    pg_roles: PgRoles, accounts: Accounts, connect: Connect
) -> None:
    group = pg_roles.create("grp")
    name = accounts.new()
    until = later(seconds=2)
    connector = connect()
    connector.apply(create(name, [group], until))
    assert can_login(pg_roles, name, PASSWORD)
    open_session = login(pg_roles, name, PASSWORD)

    time.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 0.3)

    # no run happened: the role is still there, yet the server refuses the password now
    assert role_row(pg_roles, name) is not None
    assert not can_login(pg_roles, name, PASSWORD)
    # ...while a session opened before the end lives on: why delete-account terminates sessions
    assert open_session.execute("SELECT current_user").fetchone() == (name,)
    connector.apply(delete(name))
    assert is_dead(open_session)


@pytest.mark.postgres
def test_a_session_does_not_survive_delete(
    pg_db: PgDatabase, pg_roles: PgRoles, accounts: Accounts, connect: Connect
) -> None:
    group = pg_roles.create("grp")
    name = accounts.new()
    connector = connect()
    connector.apply(create(name, [group], later(hours=1)))
    in_db = login(pg_roles, name, PASSWORD, dbname=pg_db.name)
    in_db.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(group)))
    in_postgres = login(pg_roles, name, PASSWORD)
    bystander = psycopg.connect(pg_db.dsn, autocommit=True)

    connector.apply(delete(name))

    assert is_dead(in_db)
    assert is_dead(in_postgres)
    assert bystander.execute("SELECT 1").fetchone() == (1,)
    bystander.close()


@pytest.mark.postgres
def test_check_mode_delete_changes_nothing(pg_roles: PgRoles, accounts: Accounts, connect: Connect) -> None:
    group = pg_roles.create("grp")
    name = accounts.new()
    connector = connect()
    connector.apply(create(name, [group], later(hours=1)))
    session = login(pg_roles, name, PASSWORD)
    outcome = connector.apply(delete(name), check=True)
    assert outcome.changed and not outcome.after
    assert f'DROP ROLE "{name}"' in outcome.operations
    assert session.execute("SELECT 1").fetchone() == (1,)
    session.close()
    assert can_login(pg_roles, name, PASSWORD)


# -- ephemeral-account: what the account owned ------------------------------------------------


@pytest.fixture
def database(pg_roles: PgRoles, pg_db: PgDatabase) -> PgDatabase:
    """pg_db, set up after pg_roles so that it is dropped first: the roles the test creates
    hold privileges and own tables in it, and could not be dropped while it exists."""
    return pg_db


def make_writable(pg_roles: PgRoles, dbname: str, group: str) -> None:
    """Let `group` create tables in `dbname`'s public schema (PUBLIC may not, since 15)."""
    with psycopg.connect(pg_roles.server.dsn(dbname=dbname), autocommit=True) as conn:
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(group)))


def owner_of(pg_roles: PgRoles, dbname: str, table: str) -> str | None:
    with psycopg.connect(pg_roles.server.dsn(dbname=dbname), autocommit=True) as conn:
        row = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = %s", (table,)).fetchone()
    return None if row is None else str(row[0])


@pytest.fixture
def second_db(pg_roles: PgRoles, unique_name: Callable[[str], str]) -> Iterator[str]:
    name = unique_name("db2")
    pg_roles.admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        pg_roles.admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.mark.postgres
def test_objects_the_account_owned_are_reassigned_in_every_database(
    database: PgDatabase, second_db: str, pg_roles: PgRoles, accounts: Accounts, connect: Connect
) -> None:
    group = pg_roles.create("creators")
    heir = pg_roles.create("archive_owner")
    for db in (database.name, second_db):
        make_writable(pg_roles, db, group)
    with psycopg.connect(database.dsn, autocommit=True) as admin_db:
        admin_db.execute("CREATE TABLE shared_facts (x int)")  # owned by postgres
    name = accounts.new()
    connector = connect(reassign_to=heir)
    connector.apply(create(name, [group], later(hours=1)))
    for db in (database.name, second_db):
        with login(pg_roles, name, PASSWORD, dbname=db) as session:
            session.execute("CREATE TABLE incident_notes (note text)")
            session.execute("INSERT INTO incident_notes VALUES ('keep me')")
    with psycopg.connect(database.dsn, autocommit=True) as admin_db:
        # a privilege granted TO the account: DROP OWNED removes it, else DROP ROLE would fail
        admin_db.execute(sql.SQL("GRANT SELECT ON shared_facts TO {}").format(sql.Identifier(name)))

    outcome = connector.apply(delete(name))

    assert role_row(pg_roles, name) is None
    for db in (database.name, second_db):
        assert owner_of(pg_roles, db, "incident_notes") == heir
        with psycopg.connect(pg_roles.server.dsn(dbname=db)) as conn:
            assert conn.execute("SELECT note FROM incident_notes").fetchall() == [("keep me",)]
        label = f'/* database "{db}" */ '
        assert label + f'REASSIGN OWNED BY "{name}" TO "{heir}"' in outcome.operations
        assert label + f'DROP OWNED BY "{name}"' in outcome.operations


@pytest.mark.postgres
def test_by_default_objects_go_to_the_connectors_login(
    database: PgDatabase, pg_roles: PgRoles, accounts: Accounts, connect: Connect
) -> None:
    group = pg_roles.create("creators")
    make_writable(pg_roles, database.name, group)
    name = accounts.new()
    connector = connect()
    connector.apply(create(name, [group], later(hours=1)))
    with login(pg_roles, name, PASSWORD, dbname=database.name) as session:
        session.execute("CREATE TABLE scratch (x int)")
    connector.apply(delete(name))
    assert owner_of(pg_roles, database.name, "scratch") == "postgres"


@pytest.mark.postgres
def test_reassign_to_from_the_action_wins_and_is_checked(
    database: PgDatabase, pg_roles: PgRoles, accounts: Accounts, connect: Connect
) -> None:
    group = pg_roles.create("creators")
    make_writable(pg_roles, database.name, group)
    setting_heir, action_heir = pg_roles.create("heir_a"), pg_roles.create("heir_b")
    name, other = accounts.new(), accounts.new()
    connector = connect(reassign_to=setting_heir)
    connector.apply(create(name, [group], later(hours=1)))
    connector.apply(create(other, [], later(hours=1)))
    with login(pg_roles, name, PASSWORD, dbname=database.name) as session:
        session.execute("CREATE TABLE scratch (x int)")
    with pytest.raises(PermanentTargetError, match='reassign_to role "no_such_heir" does not exist'):
        connector.apply(delete(name, reassign_to="no_such_heir"))
    with pytest.raises(PermanentTargetError, match="ephemeral account"):
        connector.apply(delete(name, reassign_to=other))  # it would drop the objects in turn
    assert role_row(pg_roles, name) is not None
    connector.apply(delete(name, reassign_to=action_heir))
    assert owner_of(pg_roles, database.name, "scratch") == action_heir


# -- ephemeral-account: re-delivery, repair, expiry -----------------------------------------


@pytest.mark.postgres
def test_redelivery_sets_the_new_password_extends_and_repairs_roles(
    pg_roles: PgRoles, accounts: Accounts, connect: Connect
) -> None:
    a, b, stray = pg_roles.create("a"), pg_roles.create("b"), pg_roles.create("stray")
    name = accounts.new()
    first_end, later_end = later(hours=1), later(hours=3)
    connector = connect()
    connector.apply(create(name, [a, b], first_end, password="first-Secret-1"))
    pg_roles.grant(stray, name)  # drift behind jitpol's back
    pg_roles.admin.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(b), sql.Identifier(name)))

    # the core lost the first secret (a crash before it was recorded) and delivers a new one
    outcome = connector.apply(create(name, [a, b], later_end))

    assert outcome.changed
    assert outcome.operations == (
        f"ALTER ROLE \"{name}\" WITH PASSWORD '***'",
        f"ALTER ROLE \"{name}\" VALID UNTIL '{later_end.isoformat(sep=' ')}'",
        f'GRANT "{b}" TO "{name}"',
        f'REVOKE "{stray}" FROM "{name}"',
    )
    assert not can_login(pg_roles, name, "first-Secret-1")
    assert can_login(pg_roles, name, PASSWORD)
    row = role_row(pg_roles, name)
    assert row is not None and row[1] == later_end and row[3] == sorted([a, b])
    # the same secret again is already true (the stored SCRAM verifier is checked)
    assert connector.apply(create(name, [a, b], later_end)) == Outcome(changed=False, before=True, after=True)
    # an earlier end shortens the account's: the server follows the grant's live end both ways
    shortened = connector.apply(create(name, [a, b], first_end))
    assert shortened.operations == (f"ALTER ROLE \"{name}\" VALID UNTIL '{first_end.isoformat(sep=' ')}'",)
    assert existing_row(pg_roles, name)[1] == first_end


@pytest.mark.postgres
def test_an_extension_sets_the_end_earlier_or_later_and_keeps_the_secret(
    pg_roles: PgRoles, accounts: Accounts, connect: Connect, now: Now
) -> None:
    """The core's "extend" (the grant's live end moved, no new secret): VALID UNTIL follows it,
    cut short by a schedule or a restriction as well as prolonged."""
    group = pg_roles.create("grp")
    name = accounts.new()
    connector = connect()
    connector.apply(create(name, [group], now.plus(hours=8)))
    scope = Scope(TARGET, EPHEMERAL, frozenset())
    for hours in (1, 3, 0.5):
        until = now.plus(hours=hours)
        outcome = connector.apply(create(name, [group], until, password=None, details=(*DETAILS, ("mode", "extend"))))
        assert outcome.operations == (f"ALTER ROLE \"{name}\" VALID UNTIL '{until.isoformat(sep=' ')}'",)
        (account,) = [a for a in connector.observe(scope) if a.principal == name]
        assert (account.expires, account.owned) == (until, True)
        assert existing_row(pg_roles, name)[1] == until
        assert not connector.apply(create(name, [group], until, password=None)).changed
    assert can_login(pg_roles, name, PASSWORD), "an extension keeps the delivered secret"


@pytest.mark.postgres
def test_an_infinite_or_removed_end_is_set_again(pg_roles: PgRoles, accounts: Accounts, connect: Connect) -> None:
    name = accounts.new()
    until = later(hours=1)
    connector = connect()
    connector.apply(create(name, [], until))
    scope = Scope(TARGET, EPHEMERAL, frozenset())
    for end in ("infinity", "-infinity"):
        pg_roles.admin.execute(sql.SQL("ALTER ROLE {} VALID UNTIL {}").format(sql.Identifier(name), sql.Literal(end)))
        (account,) = [x for x in connector.observe(scope) if x.principal == name]
        if end == "infinity":
            assert account.expires is None
        else:
            assert account.expires is not None and account.expires < until
        outcome = connector.apply(create(name, [], until))
        assert outcome.operations == (f"ALTER ROLE \"{name}\" VALID UNTIL '{until.isoformat(sep=' ')}'",)
        assert existing_row(pg_roles, name)[1] == until


@pytest.mark.postgres
def test_without_a_password_detail_the_account_has_none(
    pg_roles: PgRoles, accounts: Accounts, connect: Connect
) -> None:
    name = accounts.new()
    outcome = connect().apply(create(name, [], later(hours=1), password=None))
    assert "PASSWORD" not in outcome.operations[0]
    row = pg_roles.admin.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (name,)).fetchone()
    assert row == (None,)
    assert not can_login(pg_roles, name, "")


@pytest.mark.postgres
def test_check_mode_create_writes_nothing(pg_roles: PgRoles, accounts: Accounts, connect: Connect) -> None:
    name = accounts.new()
    outcome = connect().apply(create(name, [pg_roles.create("grp")], later(hours=1)), check=True)
    assert outcome.changed and not outcome.after
    assert outcome.operations[0].startswith(f"CREATE ROLE \"{name}\" WITH LOGIN PASSWORD '***' VALID UNTIL")
    assert role_row(pg_roles, name) is None


@pytest.mark.postgres
def test_create_needs_an_end(pg_roles: PgRoles, accounts: Accounts, connect: Connect) -> None:
    name = accounts.new()
    action = create(name, [], later(hours=1))
    endless = Action(action.op, action.assignment, action.resource, action.grants, until=None, details=action.details)
    with pytest.raises(PermanentTargetError, match="end of its window"):
        connect().apply(endless)
    assert role_row(pg_roles, name) is None


@pytest.mark.postgres
def test_roles_that_must_not_be_handed_out(pg_roles: PgRoles, accounts: Accounts, connect: Connect) -> None:
    root_like = pg_roles.create("su", superuser=True)
    connector = connect()
    other = accounts.new()
    connector.apply(create(other, [], later(hours=1)))
    name = accounts.new()
    connector.apply(create(name, [], later(hours=1)))
    grantor = pg_roles.create("grantor")
    team = pg_roles.create("team")
    pg_roles.grant(grantor, team)
    connector = connect(grantor_role=grantor)
    for role, message in [
        (root_like, "it is a superuser role"),
        (other, "it is another ephemeral account"),  # its end would take the access away mid-window
        (name, "it is the account itself"),
        ("no_such_role", 'role "no_such_role" does not exist'),
        (grantor, "it is jitpol's grantor role"),  # it may grant every managed role as jitpol
        (team, "reaches jitpol's grantor role"),
    ]:
        with pytest.raises(PermanentTargetError, match=message):
            connector.apply(create(name, [role], later(hours=1)))
        with pytest.raises(PermanentTargetError, match=message):
            connector.apply(create(name, [role], later(hours=1)), check=True)
    assert existing_row(pg_roles, name)[3] == []
    # a connector that is not a superuser must not hand out its own login's powers
    own = pg_roles.create("jitpol_admin", login=True, password="admin-pw")
    pg_roles.admin.execute(sql.SQL("ALTER ROLE {} CREATEROLE").format(sql.Identifier(own)))
    as_own = connect(dsn=pg_roles.server.dsn(user=own, password="admin-pw"))
    with pytest.raises(PermanentTargetError, match="it is jitpol's own login"):
        as_own.apply(create(accounts.new(), [own], later(hours=1)))


@pytest.mark.postgres
def test_a_role_without_the_marker_is_never_adopted_or_dropped(
    pg_roles: PgRoles, accounts: Accounts, connect: Connect
) -> None:
    group = pg_roles.create("grp")
    name = accounts.new()
    pg_roles.create("squatter", login=True, password="their-own-pw", name=name)
    pg_roles.grant(group, name)
    connector = connect()
    before = existing_row(pg_roles, name)

    with pytest.raises(PermanentTargetError, match="does not carry jitpol's marker"):
        connector.apply(create(name, [group], later(hours=1)))
    with pytest.raises(PermanentTargetError, match="does not carry jitpol's marker"):
        connector.apply(create(name, [group], later(hours=1)), check=True)
    with pytest.raises(PermanentTargetError, match="does not carry jitpol's marker"):
        connector.apply(delete(name))
    pg_roles.admin.execute(sql.SQL("COMMENT ON ROLE {} IS 'managed by ansible'").format(sql.Identifier(name)))
    with pytest.raises(PermanentTargetError, match="does not carry jitpol's marker"):
        connector.apply(delete(name))

    assert role_row(pg_roles, name) == (*before[:2], "managed by ansible", before[3])
    assert can_login(pg_roles, name, "their-own-pw")
    assert all(a.principal != name for a in connector.observe(Scope(TARGET, EPHEMERAL, frozenset({group}))))


# -- credential-checkout ----------------------------------------------------------------------


@pytest.mark.postgres
def test_rotate_ends_the_old_password_and_every_session(
    pg_roles: PgRoles, accounts: Accounts, connect: Connect
) -> None:
    shared = pg_roles.create("shared_admin", login=True, password="old-Shared-pw")
    sessions = [login(pg_roles, shared, "old-Shared-pw") for _ in range(2)]
    until = later(hours=2)
    connector = connect()

    outcome = connector.apply(rotate(shared, ["alice-checkout-1"], PASSWORD, until))

    assert outcome == Outcome(
        changed=True, before=False, after=True,
        operations=(
            f"ALTER ROLE \"{shared}\" WITH PASSWORD '***' VALID UNTIL '{until.isoformat(sep=' ')}'",
            "SELECT pg_catalog.pg_terminate_backend(pid, 5000) FROM pg_catalog.pg_stat_activity "  # noqa: S608
            f"WHERE usename = '{shared}' AND pid <> pg_catalog.pg_backend_pid()",  # (the expected text)
        ),
    )  # fmt: skip
    assert all(is_dead(s) for s in sessions)
    assert not can_login(pg_roles, shared, "old-Shared-pw")
    assert can_login(pg_roles, shared, PASSWORD)
    assert existing_row(pg_roles, shared)[1] == until

    # the holder's session ends when the credential is rotated to nobody at the window's end
    holder = login(pg_roles, shared, PASSWORD)
    back = connector.apply(rotate(shared, [], "nobody-Knows-this-1"))
    assert back.changed
    assert is_dead(holder)
    assert not can_login(pg_roles, shared, PASSWORD)
    assert connector.observe(Scope(TARGET, CHECKOUT, frozenset({"[]"}))) == frozenset()


@pytest.mark.postgres
def test_valid_until_ends_a_checkout_without_a_run(pg_roles: PgRoles, connect: Connect) -> None:
    shared = pg_roles.create("shared_admin", login=True)
    until = later(seconds=2)
    connect().apply(rotate(shared, ["alice-checkout-1"], PASSWORD, until))
    assert can_login(pg_roles, shared, PASSWORD)
    time.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 0.3)
    assert not can_login(pg_roles, shared, PASSWORD)


@pytest.mark.postgres
def test_rotation_to_nobody_leaves_valid_until_alone(pg_roles: PgRoles, connect: Connect) -> None:
    shared = pg_roles.create("shared_admin", login=True)
    connector = connect()
    outcome = connector.apply(rotate(shared, [], "nobody-Knows-this-1", until=later(hours=1)))
    assert "VALID UNTIL" not in outcome.operations[0]
    assert existing_row(pg_roles, shared)[1] is None
    end = later(hours=5)
    pg_roles.admin.execute(
        sql.SQL("ALTER ROLE {} VALID UNTIL {}").format(sql.Identifier(shared), sql.Literal(end.isoformat()))
    )
    connector.apply(rotate(shared, [], "nobody-Knows-this-2"))
    assert existing_row(pg_roles, shared)[1] == end


@pytest.mark.postgres
def test_rotate_is_always_an_event_and_check_mode_writes_nothing(pg_roles: PgRoles, connect: Connect) -> None:
    shared = pg_roles.create("shared_admin", login=True, password="old-Shared-pw")
    session = login(pg_roles, shared, "old-Shared-pw")
    connector = connect()
    preview = connector.apply(rotate(shared, ["g1"], PASSWORD, later(hours=1)), check=True)
    assert preview.changed and not preview.after and len(preview.operations) == 2
    assert session.execute("SELECT 1").fetchone() == (1,)
    assert can_login(pg_roles, shared, "old-Shared-pw")
    session.close()
    for _ in range(2):  # the same secret twice is still a rotation: sessions end again
        assert connector.apply(rotate(shared, ["g1"], PASSWORD, later(hours=1))).changed


@pytest.mark.postgres
def test_rotate_refuses_superusers_ephemeral_accounts_and_its_own_login(
    pg_roles: PgRoles, accounts: Accounts, connect: Connect
) -> None:
    root_like = pg_roles.create("su", login=True, superuser=True, password="root-pw")
    name = accounts.new()
    connector = connect()
    connector.apply(create(name, [], later(hours=1)))
    if pg_roles.admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (GRANTOR_ROLE,)).fetchone() is None:
        pg_roles.admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN NOINHERIT").format(sql.Identifier(GRANTOR_ROLE)))
    for account in (root_like, name, GRANTOR_ROLE):
        with pytest.raises(PermanentTargetError, match="refusing to rotate"):
            connector.apply(rotate(account, ["g1"], "stolen-Pw-1", later(hours=1)))
    assert can_login(pg_roles, root_like, "root-pw")
    assert can_login(pg_roles, name, PASSWORD)
    own = pg_roles.create("jitpol_admin", login=True, password="admin-pw")
    pg_roles.admin.execute(sql.SQL("ALTER ROLE {} CREATEROLE").format(sql.Identifier(own)))
    as_own = connect(dsn=pg_roles.server.dsn(user=own, password="admin-pw"))
    with pytest.raises(PermanentTargetError, match="refusing to rotate"):
        as_own.apply(rotate(own, ["g1"], "locks-Us-out", later(hours=1)))
    with pytest.raises(PermanentTargetError, match='role "no_such_shared" does not exist'):
        connector.apply(rotate("no_such_shared", ["g1"], "pw-x", later(hours=1)))


# -- secrets ---------------------------------------------------------------------------------


@pytest.mark.postgres
def test_secrets_never_reach_operations_errors_or_the_server_log(
    pg_roles: PgRoles, accounts: Accounts, connect: Connect
) -> None:
    log = Path(pg_roles.server.env()["PGRUNDIR"]) / "server.log"
    log_start = log.stat().st_size
    group = pg_roles.create("grp")
    shared = pg_roles.create("shared_admin", login=True)
    name = accounts.new()
    connector = connect()
    outcomes: list[Outcome] = [
        connector.apply(create(name, [group], later(hours=1)), check=True),
        connector.apply(create(name, [group], later(hours=1))),
        connector.apply(create(name, [group], later(hours=2), password="Sec0nd-Secret-pw")),
        connector.apply(rotate(shared, ["g1"], "Third-Secret-pw", later(hours=1)), check=True),
        connector.apply(rotate(shared, ["g1"], "Third-Secret-pw", later(hours=1))),
        connector.apply(delete(name)),
    ]
    secrets = (PASSWORD, "Sec0nd-Secret-pw", "Third-Secret-pw")
    assert_secret_free(*outcomes, secrets=secrets)
    assert all("PASSWORD '***'" in o.operations[0] for o in outcomes[:5])

    # a login that may not create or alter roles: the server refuses the statements that carry
    # the (hashed) secret, and neither the secret nor the verifier may show in the error
    weak = pg_roles.create("weak_admin", login=True, password="weak-pw")
    as_weak = connect(dsn=pg_roles.server.dsn(user=weak, password="weak-pw"))
    errors: list[TargetError] = []
    for action in (create(accounts.new(), [group], later(hours=1)), rotate(shared, ["g1"], PASSWORD, later(hours=1))):
        with pytest.raises(PermanentTargetError, match="permission denied") as info:
            as_weak.apply(action)
        errors.append(info.value)
    for error in errors:
        assert_secret_free(error, secrets=secrets)
        assert error.__cause__ is None and error.__context__ is None  # no driver text to print

    text = log.read_bytes()[log_start:].decode(errors="replace")
    assert "STATEMENT:  CREATE ROLE" in text and "STATEMENT:  ALTER ROLE" in text  # the refused ones
    for secret in secrets:
        assert secret not in text  # only verifiers were sent: libpq hashed the passwords here
