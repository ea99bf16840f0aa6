"""MysqlConnector's names, settings and role-membership model; the server tests run against a real
MariaDB (tests/mysql_fixtures.py): hostile names refused before any SQL and allowed ones quoted,
the server's length limit, default roles, connections KILLed on revoke, standing access left
alone, privileged roles refused, a statement that fails half-way finished by the next run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pymysql
import pytest

from jitpol.connectors.mysql import MysqlConnector, check_name, native_password_hash, parse_account, validate_user
from jitpol.connectors.registry import TYPES
from jitpol.errors import InvalidInput, PermanentTargetError, TargetUnavailable
from jitpol.load.repository import load_repository
from jitpol.model.assignment import PRIVILEGED_OPT_IN, Action, Assignment, Op, Scope
from tests.doubles.server import closed_port
from tests.helpers.clock import Now
from tests.helpers.repo import RepoBuilder
from tests.mysql_fixtures import *  # noqa: F403 (the fixture mysql_sandbox)
from tests.mysql_fixtures import DSN_ENV, PASSWORD, TARGET, MysqlSandbox

REPO = Path(__file__).resolve().parents[2]
MODEL = "role-membership"


def action(op: Op, principal: str, role: str, *, drift: bool = False, resource: str = "app-db",
           privileged: bool = False) -> Action:
    details = (PRIVILEGED_OPT_IN,) if privileged else ()
    return Action(op=op, assignment=Assignment(TARGET, MODEL, principal, role), resource=resource, grants=("g",),
                  drift=drift, details=details)


def unreachable(**settings: object) -> MysqlConnector:
    """A connector whose server does not exist: any I/O raises TargetUnavailable, so a
    PermanentTargetError proves the refusal came before the network."""
    dsn = f"mysql://root:pw@127.0.0.1:{closed_port()}/"
    return MysqlConnector(TARGET, {"dsn_env": DSN_ENV, **settings}, {DSN_ENV: dsn})


# -- names, without a server -------------------------------------------------------------------

HOSTILE_PRINCIPALS = [
    "alice",  # no host
    "alice@%@x",
    "@%",
    "alice@",
    "al'ice@%",
    "alice@%' OR '1'='1",
    "alice\\@%",
    "alice@h o st",
    "alice@%\n",
    "alice\x00@%",
    "-alice@%",
    ".alice@%",
    "ålice@%",
    "root@%",
    "ROOT@localhost",
    "mariadb.sys@localhost",
    "mysql.session@localhost",
    "a" * 81 + "@%",
    "alice@" + "h" * 256,
    "alice@Web1.example",  # the server would store web1.example, and never find this spelling again
]
HOSTILE_ROLES = ["app'read", 'app"read', "app`read", "app read", "", "none", "NONE", "public", "current_role",
                 "a" * 81, "app\nread", "röle", "app;drop", "app/*", "-app"]


@pytest.mark.parametrize("principal", HOSTILE_PRINCIPALS)
def test_hostile_principals_fail_validation(principal: str) -> None:
    with pytest.raises(InvalidInput):
        parse_account(principal)
    with pytest.raises(InvalidInput):
        check_name(principal, "principal")


@pytest.mark.parametrize("role", HOSTILE_ROLES)
def test_hostile_roles_fail_validation(role: str) -> None:
    with pytest.raises(InvalidInput):
        validate_user(role, "role")
    with pytest.raises(InvalidInput):
        check_name(role, "privilege")


def test_allowed_names_pass_validation() -> None:
    for principal, expected in [("alice@%", ("alice", "%")), ("svc.app-1@10.0.0.%", ("svc.app-1", "10.0.0.%")),
                                ("o_brien@localhost", ("o_brien", "localhost")),
                                ("bob@10.0.0.0/255.255.255.0", ("bob", "10.0.0.0/255.255.255.0")),
                                ("eve@::1", ("eve", "::1")), ("a" * 80 + "@" + "h" * 255, ("a" * 80, "h" * 255))]:
        assert parse_account(principal) == expected
        check_name(principal, "principal")
    for role in ["app_read", "App.Write-2", "r" * 80, "0day"]:
        assert validate_user(role, "role") == role


def test_check_name_is_the_loaders_hook_and_validate_names_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="string"):
        check_name({"role": "x"}, "privilege")
    with pytest.raises(InvalidInput, match="user@host"):
        check_name("alice", "principal")
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    rb.config({"db": {"type": "mysql", "dsn_env": "MYSQL_DSN"}}, admins=["team:admins"])
    rb.resource("db-prod", target="db", model=MODEL, roles={"read": {"grants": ["app_read", "x'; DROP USER root"]}})
    rb.person("carol", accounts={"mysql": "carol"})
    rb.person("dave", accounts={"mysql": "d" * 81 + "@%"})
    errors = [str(d) for d in load_repository(rb.root).diagnostics]
    assert any(e.startswith("resources/db-prod.yaml:") and "not an allowed MySQL/MariaDB name" in e
               for e in errors), errors
    assert any(e.startswith("people/carol.yaml:") and "user@host" in e for e in errors), errors
    assert any(e.startswith("people/dave.yaml:") and "longer than 80 characters" in e for e in errors), errors
    # every message is path:line:col: ...
    assert all(e.split(":")[1].isdigit() and e.split(":")[2].isdigit() for e in errors), errors


def test_error_message_escapes_the_name() -> None:
    with pytest.raises(InvalidInput) as info:
        validate_user("x\nINJECTED" + "y" * 200, "role")
    message = str(info.value)
    assert "\n" not in message
    assert len(message) < 300


@pytest.mark.parametrize(("principal", "role"), [
    ("alice@%", "x'; DROP USER 'root'@'localhost'; --"),
    ("x'@'%'; DROP USER root; --@%", "app"),
    ("a" * 81 + "@%", "app"),
    ("alice@%", "b" * 81),
    ("root@localhost", "app"),
    ("alice", "app"),
])
@pytest.mark.parametrize("op", ["grant", "revoke"])
def test_hostile_names_are_refused_before_any_sql(principal: str, role: str, op: Op) -> None:
    connector = unreachable()
    with pytest.raises(PermanentTargetError):
        connector.apply(action(op, principal, role))
    with pytest.raises(PermanentTargetError):
        connector.apply(action(op, principal, role), check=True)


def test_module_imports_and_validates_without_pymysql() -> None:
    code = (
        "import sys; sys.modules['pymysql'] = None\n"  # any `import pymysql` now fails
        "from jitpol.connectors.registry import name_check\n"
        "from jitpol.errors import InvalidInput\n"
        "name_check('mysql')('alice@%', 'principal')\n"
        "try:\n"
        "    name_check('mysql')('a b', 'privilege')\n"
        "except InvalidInput:\n"
        "    print('refused')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "refused"


def test_native_password_hash_is_the_servers() -> None:
    # MariaDB's PASSWORD('secret'), as documented for mysql_native_password
    assert native_password_hash("secret") == "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7"


@pytest.mark.parametrize("settings", [
    {"dsn_env": ""}, {"dsn_env": 5}, {"dsn_env": DSN_ENV, "terminate_sessions": "yes"},
    {"dsn_env": DSN_ENV, "connect_timeout": 0}, {"dsn_env": DSN_ENV, "connect_timeout": True},
    {"dsn_env": DSN_ENV, "event_schema": "mysql"}, {"dsn_env": DSN_ENV, "event_schema": "a`b"},
    {"dsn_env": DSN_ENV, "account_host": "h'x"}, {"dsn_env": DSN_ENV, "require_event_scheduler": 1},
])
def test_settings_are_checked_without_io(settings: dict[str, object]) -> None:
    with pytest.raises(PermanentTargetError, match=f"target {TARGET}: setting"):
        MysqlConnector(TARGET, settings, {})


def test_missing_env_var_is_permanent_and_named() -> None:
    connector = MysqlConnector(TARGET, {"dsn_env": DSN_ENV}, {})
    with pytest.raises(PermanentTargetError, match=DSN_ENV):
        connector.observe(Scope(TARGET, MODEL, frozenset({"app"})))


@pytest.mark.parametrize("dsn", ["postgres://u:secretpw@h:1/", "mysql://u:secretpw@h:99999999/", "secretpw",
                                 "mysql://u:secretpw@h/db?ssl=1", "mysql://:secretpw@h/"])
def test_malformed_dsn_is_permanent_and_not_echoed(dsn: str) -> None:
    connector = MysqlConnector(TARGET, {"dsn_env": DSN_ENV}, {DSN_ENV: dsn})
    with pytest.raises(PermanentTargetError) as info:
        connector.observe(Scope(TARGET, MODEL, frozenset({"app"})))
    assert "secretpw" not in str(info.value)


def test_closed_port_is_temporary_and_keeps_the_dsn_secret() -> None:
    connector = MysqlConnector(TARGET, {"dsn_env": DSN_ENV, "connect_timeout": 2},
                               {DSN_ENV: f"mysql://root:s3cr3t-pw@127.0.0.1:{closed_port()}/"})
    with pytest.raises(TargetUnavailable) as info:
        connector.observe(Scope(TARGET, MODEL, frozenset({"app"})))
    assert "s3cr3t-pw" not in str(info.value)


def test_capabilities_match_the_registry() -> None:
    assert MysqlConnector.capabilities.models == TYPES["mysql"].models
    assert TYPES["mysql"].secret_models == {"ephemeral-account", "credential-checkout"}


# -- on a real server --------------------------------------------------------------------------


def test_wrong_password_is_temporary_and_keeps_it_secret(mysql_sandbox: MysqlSandbox) -> None:
    connector = mysql_sandbox.connector(dsn=mysql_sandbox.server.dsn(password="Wr0ng-s3cret"))
    with pytest.raises(TargetUnavailable) as info:
        connector.observe(Scope(TARGET, MODEL, frozenset({"app"})))
    assert "Wr0ng-s3cret" not in str(info.value)
    assert "Access denied" in str(info.value)


def test_a_hostile_but_allowed_name_works_quoted(mysql_sandbox: MysqlSandbox) -> None:
    role = mysql_sandbox.role(name=mysql_sandbox.name("App.Read-x"))
    principal = mysql_sandbox.account(name=mysql_sandbox.name("o.brien-x"), host="127.0.0.%")
    connector = mysql_sandbox.connector()
    outcome = connector.apply(action("grant", principal, role))
    user, host = principal.split("@")
    assert outcome.operations == (f"GRANT '{role}' TO '{user}'@'{host}'",
                                  f"SET DEFAULT ROLE '{role}' FOR '{user}'@'{host}'")
    assert mysql_sandbox.roles_of(principal) == {role}
    assert connector.observe(Scope(TARGET, MODEL, frozenset({role}))) == {Assignment(TARGET, MODEL, principal, role)}
    connector.apply(action("revoke", principal, role))
    assert mysql_sandbox.roles_of(principal) == set()


def test_an_80_character_name_is_used_whole(mysql_sandbox: MysqlSandbox) -> None:
    role = mysql_sandbox.role(name=mysql_sandbox.name("r").ljust(80, "q"))
    principal = mysql_sandbox.account(name=mysql_sandbox.name("u").ljust(80, "z"))
    mysql_sandbox.connector().apply(action("grant", principal, role))
    assert mysql_sandbox.roles_of(principal) == {role}


def test_a_grant_is_active_at_login_and_gone_after_revoke(mysql_sandbox: MysqlSandbox) -> None:
    role = mysql_sandbox.role()
    mysql_sandbox.execute(f"GRANT SELECT ON mysql.roles_mapping TO {mysql_sandbox.lit(role)}")
    principal = mysql_sandbox.account()
    connector = mysql_sandbox.connector()
    connector.apply(action("grant", principal, role))
    assert mysql_sandbox.default_role(principal) == role
    with mysql_sandbox.login(principal) as conn, conn.cursor() as cur:
        cur.execute("SELECT CURRENT_ROLE()")
        assert cur.fetchone() == (role,)
        cur.execute("SELECT COUNT(*) FROM mysql.roles_mapping")  # the role's privilege works
    connector.apply(action("revoke", principal, role))
    assert mysql_sandbox.default_role(principal) == ""
    with mysql_sandbox.login(principal) as conn, conn.cursor() as cur:
        cur.execute("SELECT CURRENT_ROLE()")
        assert cur.fetchone() == (None,)
        with pytest.raises(pymysql.err.OperationalError):
            cur.execute(f"SET ROLE {mysql_sandbox.lit(role)}")


def test_revoke_kills_the_accounts_connections(mysql_sandbox: MysqlSandbox) -> None:
    role = mysql_sandbox.role()
    principal = mysql_sandbox.account()
    connector = mysql_sandbox.connector()
    connector.apply(action("grant", principal, role))
    session = mysql_sandbox.login(principal)
    with session.cursor() as cur:
        cur.execute(f"SET ROLE {mysql_sandbox.lit(role)}")
    outcome = connector.apply(action("revoke", principal, role))
    assert outcome.operations[-1] == f"KILL CONNECTION <each connection of user '{principal.split('@')[0]}'>"
    assert mysql_sandbox.sessions(principal.split("@")[0]) == 0
    with pytest.raises((pymysql.err.OperationalError, pymysql.err.InterfaceError)), session.cursor() as cur:
        cur.execute("SELECT CURRENT_ROLE()")


def test_without_termination_an_open_connection_keeps_the_role(mysql_sandbox: MysqlSandbox) -> None:
    """Why terminate_sessions defaults to true: REVOKE does not reach a connection that activated
    the role."""
    role = mysql_sandbox.role()
    mysql_sandbox.execute(f"GRANT SELECT ON mysql.roles_mapping TO {mysql_sandbox.lit(role)}")
    principal = mysql_sandbox.account()
    connector = mysql_sandbox.connector(terminate_sessions=False)
    connector.apply(action("grant", principal, role))
    with mysql_sandbox.login(principal) as session, session.cursor() as cur:
        cur.execute(f"SET ROLE {mysql_sandbox.lit(role)}")
        outcome = connector.apply(action("revoke", principal, role))
        assert not any(op.startswith("KILL") for op in outcome.operations)
        cur.execute("SELECT CURRENT_ROLE()")
        assert cur.fetchone() == (role,)


def test_check_mode_revoke_writes_and_kills_nothing(mysql_sandbox: MysqlSandbox) -> None:
    role = mysql_sandbox.role()
    principal = mysql_sandbox.account()
    connector = mysql_sandbox.connector()
    connector.apply(action("grant", principal, role))
    with mysql_sandbox.login(principal) as session, session.cursor() as cur:
        outcome = connector.apply(action("revoke", principal, role), check=True)
        assert outcome.changed and not outcome.after
        cur.execute("SELECT 1")  # still connected
    assert mysql_sandbox.roles_of(principal) == {role}
    assert mysql_sandbox.default_role(principal) == role


def test_standing_access_is_left_alone(mysql_sandbox: MysqlSandbox) -> None:
    role = mysql_sandbox.role()
    principal = mysql_sandbox.account()
    mysql_sandbox.grant(role, principal)  # someone else's grant
    connector = mysql_sandbox.connector()
    outcome = connector.apply(action("grant", principal, role))
    assert not outcome.changed and outcome.operations == ()
    assert mysql_sandbox.default_role(principal) == ""  # not touched
    observed = connector.observe(Scope(TARGET, MODEL, frozenset({role})))
    assert {(a.principal, a.owned) for a in observed} == {(principal, None)}  # no marker: unknown, never False
    # a revoke that only a marker would back (drift with no resource) takes nothing: memberships carry none
    outcome = connector.apply(action("revoke", principal, role, drift=True, resource=""))
    assert not outcome.changed
    assert mysql_sandbox.roles_of(principal) == {role}


def test_mariadb_keeps_a_default_role_someone_chose(mysql_sandbox: MysqlSandbox) -> None:
    """MariaDB has one default role per account: jitpol's role does not replace a chosen one, and
    its revoke leaves that one in place."""
    chosen, ours = mysql_sandbox.role("chosen"), mysql_sandbox.role("ours")
    principal = mysql_sandbox.account()
    mysql_sandbox.grant(chosen, principal)
    mysql_sandbox.execute(f"SET DEFAULT ROLE {mysql_sandbox.lit(chosen)} FOR {mysql_sandbox.acct(principal)}")
    connector = mysql_sandbox.connector()
    outcome = connector.apply(action("grant", principal, ours))
    assert outcome.operations == (f"GRANT '{ours}' TO {mysql_sandbox.acct(principal)}",)
    connector.apply(action("revoke", principal, ours))
    assert mysql_sandbox.roles_of(principal) == {chosen}
    assert mysql_sandbox.default_role(principal) == chosen


def test_observe_reports_direct_member_accounts_only(mysql_sandbox: MysqlSandbox) -> None:
    role, inner = mysql_sandbox.role(), mysql_sandbox.role("inner")
    mysql_sandbox.grant(role, inner)  # a role in the role: not an account
    member = mysql_sandbox.account()
    mysql_sandbox.grant(inner, member)  # holds `role` only through `inner`
    direct = mysql_sandbox.account()
    mysql_sandbox.grant(role, direct)
    connector = mysql_sandbox.connector()
    observed = connector.observe(Scope(TARGET, MODEL, frozenset({role, "no_such_role", "x'y"})))
    assert {(a.principal, a.privilege) for a in observed} == {(direct, role)}
    assert connector.observe(Scope(TARGET, MODEL, frozenset())) == frozenset()


def test_missing_roles_and_accounts_are_named(mysql_sandbox: MysqlSandbox) -> None:
    role, principal = mysql_sandbox.role(), mysql_sandbox.account()
    connector = mysql_sandbox.connector()
    with pytest.raises(PermanentTargetError, match="role 'no_such_role' does not exist"):
        connector.apply(action("grant", principal, "no_such_role"))
    with pytest.raises(PermanentTargetError, match="account 'nobody_here@%' does not exist"):
        connector.apply(action("grant", "nobody_here@%", role))


def test_its_own_login_super_accounts_and_roles_are_never_touched(mysql_sandbox: MysqlSandbox) -> None:
    role, other_role = mysql_sandbox.role(), mysql_sandbox.role()
    admin = mysql_sandbox.account("admin")
    mysql_sandbox.execute(f"GRANT SUPER ON *.* TO {mysql_sandbox.acct(admin)}")
    jitpol_login = mysql_sandbox.account("jitpol")
    mysql_sandbox.execute(f"GRANT SELECT ON *.* TO {mysql_sandbox.acct(jitpol_login)}")
    as_root = mysql_sandbox.connector()
    as_login = mysql_sandbox.connector(dsn=mysql_sandbox.server.dsn(user=jitpol_login.split("@")[0],
                                                                    password=PASSWORD))
    # the login's user name at another host: KILL works by user name and would end jitpol's own runs
    same_name = mysql_sandbox.account(name=jitpol_login.split("@")[0], host="localhost")
    for connector, principal in ((as_root, admin), (as_login, jitpol_login), (as_login, same_name),
                                 (as_root, f"{other_role}@")):
        for op in ("grant", "revoke"):
            assert op in ("grant", "revoke")
            with pytest.raises(PermanentTargetError, match=r"never changes|not an allowed account host"):
                connector.apply(action(op, principal, role))
    with pytest.raises(PermanentTargetError, match="reserved by the server"):
        as_root.apply(action("grant", "root@127.0.0.1", role))


def test_roles_that_reach_super_or_root_equivalent_privileges(mysql_sandbox: MysqlSandbox) -> None:
    principal = mysql_sandbox.account()
    connector = mysql_sandbox.connector()
    superish, top = mysql_sandbox.role("super"), mysql_sandbox.role("top")
    mysql_sandbox.execute(f"GRANT SUPER ON *.* TO {mysql_sandbox.lit(superish)}")
    mysql_sandbox.grant(superish, top)  # top -> superish
    for role in (superish, top):
        with pytest.raises(PermanentTargetError, match="never hands out SUPER"):
            connector.apply(action("grant", principal, role, privileged=True))
    filer, via = mysql_sandbox.role("file"), mysql_sandbox.role("via")
    mysql_sandbox.execute(f"GRANT FILE ON *.* TO {mysql_sandbox.lit(filer)}")
    mysql_sandbox.grant(filer, via)
    grants = mysql_sandbox.role("grants")
    mysql_sandbox.execute(f"GRANT UPDATE ON mysql.* TO {mysql_sandbox.lit(grants)}")
    for role, why in ((filer, "it holds FILE"), (via, f"it reaches '{filer}'"), (grants, "the grant tables")):
        with pytest.raises(PermanentTargetError, match="allowPrivileged") as info:
            connector.apply(action("grant", principal, role))
        assert why in str(info.value)
        with pytest.raises(PermanentTargetError, match="allowPrivileged"):
            connector.apply(action("grant", principal, role), check=True)
    assert mysql_sandbox.roles_of(principal) == set()
    connector.apply(action("grant", principal, via, privileged=True))  # the resource opted in
    assert mysql_sandbox.roles_of(principal) == {via}
    connector.apply(action("revoke", principal, via))  # revocations are never refused
    assert mysql_sandbox.roles_of(principal) == set()


def test_a_statement_failing_half_way_is_finished_by_the_next_run(mysql_sandbox: MysqlSandbox, now: Now) -> None:
    """jitpol's login may create accounts but not (yet) grant the role: the account statements
    commit one by one, so the first run fails after the marker event and the account exist; once
    the login may grant the role, the next run adopts its own account and finishes."""
    role = mysql_sandbox.role()
    jitpol_login = mysql_sandbox.account("jitpol")
    login = mysql_sandbox.acct(jitpol_login)
    mysql_sandbox.execute(f"GRANT CREATE USER, CONNECTION ADMIN, SELECT ON *.* TO {login}")
    mysql_sandbox.execute(f"GRANT UPDATE ON mysql.* TO {login}")  # SET DEFAULT ROLE FOR another account
    mysql_sandbox.execute(f"GRANT CREATE, EVENT ON `{mysql_sandbox.event_schema}`.* TO {login}")
    connector = mysql_sandbox.connector(dsn=mysql_sandbox.server.dsn(user=jitpol_login.split("@")[0],
                                                                     password=PASSWORD))
    name = mysql_sandbox.ephemeral_name()
    create = Action(op="create-account", assignment=Assignment(TARGET, "ephemeral-account", name, f'["{role}"]'),
                    resource="db-jit", grants=("g1",), until=now.plus(hours=1),
                    details=(("grant", "g1"), ("password", "Half-way-s3cret"), ("person", "alice")))
    with pytest.raises(PermanentTargetError, match="refused") as info:
        connector.apply(create)
    assert "Half-way-s3cret" not in str(info.value) and native_password_hash("Half-way-s3cret") not in str(info.value)
    assert mysql_sandbox.exists(name) and mysql_sandbox.roles_of(f"{name}@%") == set()
    assert f"jitpol_end_{name}" in mysql_sandbox.events()  # the marker came first
    mysql_sandbox.execute(f"GRANT {mysql_sandbox.lit(role)} TO {login} WITH ADMIN OPTION")
    outcome = connector.apply(create)
    assert outcome.changed
    assert outcome.operations == (f"GRANT '{role}' TO '{name}'@'%'", f"SET DEFAULT ROLE '{role}' FOR '{name}'@'%'")
    assert mysql_sandbox.roles_of(f"{name}@%") == {role}
    assert not connector.apply(create).changed
    with mysql_sandbox.login(f"{name}@%", "Half-way-s3cret") as conn, conn.cursor() as cur:
        cur.execute("SELECT CURRENT_ROLE()")
        assert cur.fetchone() == (role,)
