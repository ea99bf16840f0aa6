"""Root-equivalent privileges are handed out only by a resource that opts in (issue 11, item 5).

On a real PostgreSQL server and a real sshd (private mount namespace): a role that reaches a
superuser, CREATEROLE, REPLICATION, BYPASSRLS or a server-file/program role through memberships,
a Linux group such as docker or one that sudoers names, and a sudo rule for a file writer are
refused before anything is written, unless the action carries the "privileged" detail that the
policy evaluation sets for resources with `spec.allowPrivileged: true`. Revocations are never
refused. End to end: the flag reaches the connector from the resource through the policy.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner, Result
from psycopg import sql

from jitpol.cli.main import cli
from jitpol.connectors import sudoers
from jitpol.connectors.postgres import EPHEMERAL, PostgresConnector
from jitpol.connectors.ssh import PRIVILEGED_GROUPS, SshConnector
from jitpol.errors import PermanentTargetError
from jitpol.model.assignment import PRIVILEGED_OPT_IN, Action, Assignment, Op
from jitpol.model.canonical import canonical_json
from tests.helpers.repo import RepoBuilder
from tests.ssh_fixtures import TARGET as SSH_TARGET
from tests.ssh_fixtures import (  # noqa: F401 - pytest finds the fixtures in this module
    SshHost,
    ssh_host_fixture,
    ssh_root_fixture,
    sshd_server_fixture,
)

if TYPE_CHECKING:
    from tests.conftest import PgRoles
    from tests.helpers.clock import Now

PG_TARGET = "pg-priv"
DSN_ENV = "PG_PRIV_DSN"
BASE_DETAILS = (("grant", "g-priv"), ("person", "alice"))


def details(opt_in: bool, *extra: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((*BASE_DETAILS, *extra, *((PRIVILEGED_OPT_IN,) if opt_in else ()))))


def pg_action(op: Op, principal: str, role: str, *, opt_in: bool = False) -> Action:
    return Action(op=op, assignment=Assignment(PG_TARGET, "role-membership", principal, role), resource="db-ops",
                  grants=("g-priv",), details=details(opt_in))


Connect = Callable[[], PostgresConnector]


@pytest.fixture
def connect(pg_roles: PgRoles) -> Iterator[Connect]:
    made: list[PostgresConnector] = []

    def make() -> PostgresConnector:
        connector = PostgresConnector(PG_TARGET, {"dsn_env": DSN_ENV}, {DSN_ENV: pg_roles.server.superuser_dsn})
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


def chain_to(pg_roles: PgRoles, top: str) -> tuple[str, str]:
    """(role, team): `role` is a member of `team`, which is a member of `top`."""
    team = pg_roles.create("team")
    role = pg_roles.create("ops")
    pg_roles.grant(top, team)
    pg_roles.grant(team, role)
    return role, team


def with_attribute(pg_roles: PgRoles, attribute: str) -> str:
    role = pg_roles.create("attr")
    pg_roles.admin.execute(sql.SQL("ALTER ROLE {} {}").format(sql.Identifier(role), sql.SQL(attribute)))
    return role


# -- PostgreSQL: role-membership ----------------------------------------------------------------


@pytest.mark.postgres
def test_a_role_reaching_pg_execute_server_program_is_refused(pg_roles: PgRoles, connect: Connect) -> None:
    role, team = chain_to(pg_roles, "pg_execute_server_program")
    alice = pg_roles.create("alice", login=True)
    connector = connect()
    for check in (True, False):
        with pytest.raises(PermanentTargetError) as info:
            connector.apply(pg_action("grant", alice, role), check=check)
        message = str(info.value)
        assert f"{role} -> {team} -> pg_execute_server_program" in message
        assert "runs programs on the database server" in message
        assert "db-ops" in message and "allowPrivileged: true" in message
    assert pg_roles.members(role) == set()


@pytest.mark.postgres
def test_with_opt_in_the_privileged_role_is_granted_and_revoked_without(pg_roles: PgRoles, connect: Connect) -> None:
    role, _team = chain_to(pg_roles, "pg_execute_server_program")
    alice = pg_roles.create("alice", login=True)
    connector = connect()
    outcome = connector.apply(pg_action("grant", alice, role, opt_in=True))
    assert outcome.changed and pg_roles.members(role) == {alice}
    # a revocation never asks
    connector.apply(pg_action("revoke", alice, role))
    assert pg_roles.members(role) == set()


@pytest.mark.postgres
def test_a_standing_privileged_membership_is_revoked_without_opt_in(pg_roles: PgRoles, connect: Connect) -> None:
    role, _team = chain_to(pg_roles, "pg_write_server_files")
    alice = pg_roles.create("alice", login=True)
    pg_roles.grant(role, alice)
    assert connect().apply(pg_action("revoke", alice, role)).changed
    assert pg_roles.members(role) == set()


@pytest.mark.postgres
def test_a_harmless_role_still_works(pg_roles: PgRoles, connect: Connect) -> None:
    role, _team = chain_to(pg_roles, "pg_signal_backend")  # disruption, not escalation: not privileged
    reader = pg_roles.create("reader")
    pg_roles.grant("pg_read_all_data", reader)  # data, not the server
    alice = pg_roles.create("alice", login=True)
    connector = connect()
    for granted in (role, reader):
        assert connector.apply(pg_action("grant", alice, granted)).changed
        assert alice in pg_roles.members(granted)


@pytest.mark.postgres
@pytest.mark.parametrize("top", ["pg_write_server_files", "pg_read_server_files"])
def test_the_server_file_roles_are_privileged(pg_roles: PgRoles, connect: Connect, top: str) -> None:
    alice = pg_roles.create("alice", login=True)
    connector = connect()
    with pytest.raises(PermanentTargetError, match=f"it is '{top}'"):
        connector.apply(pg_action("grant", alice, top))
    role, team = chain_to(pg_roles, top)
    with pytest.raises(PermanentTargetError, match=f"{role} -> {team} -> {top}"):
        connector.apply(pg_action("grant", alice, role))
    assert pg_roles.members(role) == set() and alice not in pg_roles.members(top)


@pytest.mark.postgres
@pytest.mark.parametrize(("attribute", "said"), [("CREATEROLE", "CREATEROLE"), ("REPLICATION", "REPLICATION"),
                                                 ("BYPASSRLS", "BYPASSRLS")])
def test_roles_with_root_equivalent_attributes_are_privileged(
    pg_roles: PgRoles, connect: Connect, attribute: str, said: str
) -> None:
    top = with_attribute(pg_roles, attribute)
    role, team = chain_to(pg_roles, top)
    alice = pg_roles.create("alice", login=True)
    connector = connect()
    with pytest.raises(PermanentTargetError, match=rf"{role} -> {team} -> {top}\), which has {said}"):
        connector.apply(pg_action("grant", alice, role))
    with pytest.raises(PermanentTargetError, match=f"it is '{top}', which has {said}"):
        connector.apply(pg_action("grant", alice, top))
    assert connector.apply(pg_action("grant", alice, role, opt_in=True)).changed


@pytest.mark.postgres
def test_a_role_reaching_a_superuser_is_refused_even_with_opt_in(pg_roles: PgRoles, connect: Connect) -> None:
    root_like = pg_roles.create("su", superuser=True)
    role, team = chain_to(pg_roles, root_like)
    alice = pg_roles.create("alice", login=True)
    for opt_in in (False, True):
        with pytest.raises(PermanentTargetError, match=rf"superuser '{root_like}' \({role} -> {team} -> {root_like}\)"):
            connect().apply(pg_action("grant", alice, role, opt_in=opt_in))
    assert pg_roles.members(role) == set()


# -- PostgreSQL: ephemeral-account ----------------------------------------------------------------


def account_action(name: str, roles: list[str], until: datetime, *, opt_in: bool) -> Action:
    return Action(op="create-account", assignment=Assignment(PG_TARGET, EPHEMERAL, name, canonical_json(sorted(roles))),
                  resource="db-jit", grants=("g-priv",), until=until,
                  details=details(opt_in, ("password", "Eph3meral-S3cret-pw")))


@pytest.mark.postgres
def test_an_ephemeral_account_with_a_privileged_role_is_refused_unless_opted_in(
    pg_roles: PgRoles, connect: Connect, now: Now
) -> None:
    role, team = chain_to(pg_roles, "pg_execute_server_program")
    harmless = pg_roles.create("app")
    name = f"jit-priv-{uuid.uuid4().hex[:10]}"
    connector = connect()
    for check in (True, False):
        with pytest.raises(PermanentTargetError, match=f"{role} -> {team} -> pg_execute_server_program"):
            connector.apply(account_action(name, [harmless, role], now.plus(hours=1), opt_in=False), check=check)
    exists = pg_roles.admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
    assert exists is None, "the refused account was created anyway"
    pg_roles.created.append(name)  # dropped after the test
    assert connector.apply(account_action(name, [harmless, role], now.plus(hours=1), opt_in=True)).changed
    assert name in pg_roles.members(role) and name in pg_roles.members(harmless)
    # the account's extension without opt-in is an addition too: refused, nothing changed
    with pytest.raises(PermanentTargetError, match="allowPrivileged"):
        connector.apply(account_action(name, [harmless, role], now.plus(hours=2), opt_in=False))
    connector.apply(Action(op="delete-account", assignment=Assignment(PG_TARGET, EPHEMERAL, name, "[]"),
                           resource="", grants=("g-priv",)))


# -- Linux hosts ----------------------------------------------------------------------------------


def ssh_action(op: Op, model: str, principal: str, privilege: str, *, opt_in: bool = False, until: Any = None,
               keys: str = "") -> Action:
    extra = (("ssh_keys", keys),) if keys else ()
    return Action(op=op, assignment=Assignment(SSH_TARGET, model, principal, privilege), resource="web-ops",
                  grants=("g-priv",), until=until, details=details(opt_in, *extra))


@pytest.mark.parametrize("group", sorted(PRIVILEGED_GROUPS))
def test_privileged_groups_are_refused_before_connecting(group: str) -> None:
    # nothing listens on the port: a PermanentTargetError proves the refusal came first
    host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHWNlkGAIq7dISMMazr/Pk0B4Sp6Zw9Kx9gmvl+CyKsu"
    settings = {"host": "127.0.0.1", "port": 9, "user": "root", "key_env": "K", "host_key": host_key}
    offline = SshConnector(SSH_TARGET, settings, {"K": "unused"})
    with pytest.raises(PermanentTargetError, match=rf"'{group}' \(.*allowPrivileged: true"):
        offline.apply(ssh_action("grant", "role-membership", "alice", group))


def test_a_docker_membership_needs_opt_in(ssh_host: SshHost, ssh_root: SshConnector) -> None:
    ssh_host.run("groupadd", "-f", "docker")  # the namespace's own /etc: the host is not touched
    alice = ssh_host.user("al")
    with pytest.raises(PermanentTargetError, match="Docker daemon runs containers as root"):
        ssh_root.apply(ssh_action("grant", "role-membership", alice, "docker"))
    assert alice not in ssh_host.members("docker")
    assert ssh_root.apply(ssh_action("grant", "role-membership", alice, "docker", opt_in=True)).changed
    assert alice in ssh_host.members("docker")
    assert ssh_root.apply(ssh_action("revoke", "role-membership", alice, "docker")).changed  # never refused
    assert alice not in ssh_host.members("docker")


@pytest.mark.parametrize("how", ["name", "gid", "name-in-alias", "jitpol-name"])
def test_a_group_that_sudoers_names_needs_opt_in(ssh_host: SshHost, ssh_root: SshConnector, how: str) -> None:
    group, alice = ssh_host.group("ops"), ssh_host.user("al")
    gid = ssh_host.run("getent", "group", group).stdout.split(":")[2]
    line = {"name": f"%{group} ALL=(root) NOPASSWD: /usr/bin/id\n",
            "gid": f"%#{gid} ALL=(root) NOPASSWD: /usr/bin/id\n",
            "name-in-alias": f"User_Alias OPS = bob, %{group}\nOPS ALL=(root) NOPASSWD: /usr/bin/id\n",
            "jitpol-name": f"%{group} ALL=(root) NOPASSWD: /usr/bin/id\n"}[how]
    # a file at a name of jitpol's drop-ins that jitpol did not write gives rights like any other
    drop_in = "/etc/sudoers.d/jitpol-" + "1" * 16 if how == "jitpol-name" else f"/etc/sudoers.d/zz{group}"
    ssh_host.write_file(drop_in, f"# rights of the ops team\n{line}")
    with pytest.raises(PermanentTargetError, match=f"sudoers gives it rights: '{drop_in}'"):
        ssh_root.apply(ssh_action("grant", "role-membership", alice, group))
    assert ssh_host.members(group) == set()
    assert ssh_root.apply(ssh_action("grant", "role-membership", alice, group, opt_in=True)).changed
    assert ssh_host.members(group) == {alice}


def test_a_group_only_a_sudoers_comment_names_is_not_privileged(ssh_host: SshHost, ssh_root: SshConnector) -> None:
    group, alice = ssh_host.group("web"), ssh_host.user("al")
    ssh_host.write_file(f"/etc/sudoers.d/zz{group}", f"# %{group} ALL=(ALL) ALL was removed\n")
    assert ssh_root.apply(ssh_action("grant", "role-membership", alice, group)).changed
    assert ssh_host.members(group) == {alice}


def test_an_ephemeral_account_in_a_privileged_group_needs_opt_in(
    ssh_host: SshHost, ssh_root: SshConnector, now: Now
) -> None:
    ssh_host.run("groupadd", "-f", "docker")
    web = ssh_host.group("web")
    name = f"jit-{web[-10:]}"
    privilege = canonical_json(sorted(["docker", web]))
    before = ssh_host.jitpol_accounts()
    with pytest.raises(PermanentTargetError, match="'docker'"):
        ssh_root.apply(ssh_action("create-account", "ephemeral-account", name, privilege, until=now.plus(hours=1),
                                  keys=ssh_host.public_key))
    assert ssh_host.jitpol_accounts() == before and ssh_host.passwd(name) is None
    assert ssh_root.apply(ssh_action("create-account", "ephemeral-account", name, privilege, opt_in=True,
                                     until=now.plus(hours=1), keys=ssh_host.public_key)).changed
    assert name in ssh_host.members("docker") and name in ssh_host.members(web)
    assert ssh_root.apply(ssh_action("delete-account", "ephemeral-account", name, privilege)).changed
    assert ssh_host.passwd(name) is None


def test_a_sudo_rule_for_a_file_writer_needs_opt_in(ssh_host: SshHost, ssh_root: SshConnector, now: Now) -> None:
    alice = ssh_host.user("al")
    privilege = sudoers.privilege_text("/usr/bin/tee /etc/motd", "root")
    before = ssh_host.sudoers_files()
    with pytest.raises(PermanentTargetError, match="tee writes"):
        ssh_root.apply(ssh_action("grant", "sudo-rule", alice, privilege, until=now.plus(hours=1)))
    assert ssh_host.sudoers_files() == before
    assert ssh_root.apply(ssh_action("grant", "sudo-rule", alice, privilege, opt_in=True,
                                     until=now.plus(hours=1))).changed
    assert len(ssh_host.jitpol_rule_files()) == len([f for f in before if f.startswith("jitpol-")]) + 1
    assert ssh_root.apply(ssh_action("revoke", "sudo-rule", alice, privilege)).changed  # never refused
    assert ssh_host.sudoers_files() == before


def test_a_file_writer_under_another_name_is_found_on_the_host(
    ssh_host: SshHost, ssh_root: SshConnector, now: Now
) -> None:
    alice = ssh_host.user("al")
    alias = f"/etc/jitpol-test-{uuid.uuid4().hex[:10]}-copy"  # a symlink in the namespace's own /etc
    ssh_host.run("ln", "-s", "/bin/cp", alias)
    ssh_host.extra_files.append(alias)
    privilege = sudoers.privilege_text(f"{alias} /tmp/x /etc/y", "root")
    before = ssh_host.sudoers_files()
    with pytest.raises(PermanentTargetError, match=r"is '/usr/bin/cp': cp writes"):
        ssh_root.apply(ssh_action("grant", "sudo-rule", alice, privilege, until=now.plus(hours=1)))
    assert ssh_host.sudoers_files() == before


# -- end to end: the flag comes from the resource ---------------------------------------------------

T = "1998-12-01T10:30:00Z"


def run(rb: RepoBuilder, dsn: str, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--repo", str(rb.root)], env={"JITPOL_TEST_DSN": dsn},
                              catch_exceptions=False)


def set_opt_in(rb: RepoBuilder, value: bool) -> None:
    path = rb.root / "resources" / "db-ops.yaml"
    data = json.loads(path.read_text())
    data["spec"]["allowPrivileged"] = value
    path.write_text(json.dumps(data))


@pytest.mark.postgres
def test_the_opt_in_comes_from_the_resource_through_the_policy_evaluation(pg_roles: PgRoles, tmp_path: Path) -> None:
    role, _team = chain_to(pg_roles, "pg_execute_server_program")
    alice = pg_roles.create("alice", login=True)
    dsn = pg_roles.server.superuser_dsn
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys")
    rb.config(targets={"pg": {"type": "postgres", "dsn_env": "JITPOL_TEST_DSN"}})
    rb.person("alice", accounts={"postgres": alice})
    for p in ("lead", "admin"):
        rb.person(p, accounts={})
    rb.team("eng", ["alice"])
    rb.team("leads", ["lead"])
    rb.team("admins", ["admin"])
    rb.workflow("prod")
    rb.resource("db-ops", target="pg", roles={"ops": {"grants": [role]}})
    rb.grant("alice-ops", "alice", "1998-12-01T10:00:00Z", "4h", resource="db-ops", role="ops", approvers=("lead",))

    res = run(rb, dsn, "apply", "--at", T)  # adopts this policy (first use); the server refuses the grant
    assert res.exit_code == 1, res.output
    assert "pg_execute_server_program" in res.output and "allowPrivileged" in res.output
    assert pg_roles.members(role) == set()

    set_opt_in(rb, True)  # merged without the admins: the opt-in waits for them
    res = run(rb, dsn, "apply", "--at", T)
    assert res.exit_code == 1 and "allowPrivileged" in res.output, res.output
    assert pg_roles.members(role) == set()

    # the admins approve the opt-in: now the role is handed out
    assert run(rb, dsn, "approve", "--policy", "--as", "admin", "--key", str(rb.key("admin"))).exit_code == 0
    res = run(rb, dsn, "apply", "--at", T)
    assert res.exit_code == 0, res.output
    assert pg_roles.members(role) == {alice}
