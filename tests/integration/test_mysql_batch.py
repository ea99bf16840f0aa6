"""MysqlConnector.apply_batch (BatchApply) on a real MariaDB (tests/mysql_fixtures.py): the exact
statements a batch sends and their order (one GRANT / REVOKE per role naming every account, a
SET DEFAULT ROLE per account that needs one, the revoked accounts' connections KILLed), the
checks of one action at a time applied per action (a refused action fails alone), a statement
that fails half-way (MariaDB's GRANT and REVOKE are not transactional) reported exactly, and the
connector contract run through apply_batch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pymysql
import pytest

import tests.contract.test_mysql_contract as contract
from jitpol.clock import FixedClock
from jitpol.connectors.base import BatchApply
from jitpol.connectors.mysql import MysqlConnector
from jitpol.errors import PermanentTargetError, TargetUnavailable
from jitpol.execute.apply import execute
from jitpol.ledger.store import Ledger
from jitpol.model.assignment import PRIVILEGED_OPT_IN, Action, Assignment, Op, Outcome
from jitpol.model.documents import Source, Target
from jitpol.observe.targets import Connections
from jitpol.plan.diff import Plan
from tests.doubles.server import closed_port
from tests.helpers.batch import WrappedBatch
from tests.helpers.clock import Now
from tests.mysql_fixtures import *  # noqa: F403 (the fixture mysql_sandbox)
from tests.mysql_fixtures import DSN_ENV, PASSWORD, TARGET, MysqlSandbox

MODEL = "role-membership"


def act(op: Op, principal: str, role: str, *, drift: bool = False, privileged: bool = False) -> Action:
    """drift=True: a revoke only a marker would back (no grant, no resource)."""
    return Action(op=op, assignment=Assignment(TARGET, MODEL, principal, role), resource="" if drift else "app-db",
                  grants=() if drift else (f"g-{principal}",), drift=drift,
                  details=(PRIVILEGED_OPT_IN,) if privileged else ())


def ops(result: Outcome | Exception) -> tuple[str, ...]:
    assert isinstance(result, Outcome), result
    return result.operations


def q(account: str) -> str:
    """`user@host` as the connector quotes it."""
    user, host = account.split("@")
    return f"'{user}'@'{host}'"


def changed(results: Sequence[Outcome | Exception]) -> list[bool | str]:
    return [r.changed if isinstance(r, Outcome) else type(r).__name__ for r in results]


# -- the batch ---------------------------------------------------------------------------------


def test_mysql_connector_is_a_batch_connector(mysql_sandbox: MysqlSandbox) -> None:
    assert isinstance(mysql_sandbox.connector(), BatchApply)


def test_grants_go_out_as_one_statement_per_role_then_the_default_roles(mysql_sandbox: MysqlSandbox) -> None:
    g1, g2, chosen = mysql_sandbox.role("grp"), mysql_sandbox.role("grp"), mysql_sandbox.role("chosen")
    a, b, c = (mysql_sandbox.account("usr") for _ in range(3))
    mysql_sandbox.grant(g2, c)  # standing access: present already, never touched
    mysql_sandbox.grant(chosen, b)
    mysql_sandbox.execute(f"SET DEFAULT ROLE {mysql_sandbox.lit(chosen)} FOR {mysql_sandbox.acct(b)}")
    connector = mysql_sandbox.connector()
    batch = [act("grant", a, g1), act("grant", b, g1), act("grant", a, g2), act("grant", c, g2),
             act("grant", b, g2)]
    sent: list[str] = []
    real_execute = connector._execute

    def execute(stmt: str, secrets: Sequence[str] = ()) -> None:
        sent.append(stmt)
        real_execute(stmt, secrets)

    connector._execute = execute  # type: ignore[method-assign]  # records what is sent, sends it

    results = connector.apply_batch(batch)

    assert [(r.changed, r.before) if isinstance(r, Outcome) else r for r in results] == [
        (True, False), (True, False), (True, False), (False, True), (True, False)]
    # one GRANT per role, then one SET DEFAULT ROLE for the one account without a default role:
    # the first role the batch gives it; b's chosen default role is left alone
    assert sent == [f"GRANT '{g1}' TO {q(a)}, {q(b)}", f"GRANT '{g2}' TO {q(a)}, {q(b)}",
                    f"SET DEFAULT ROLE '{g1}' FOR {q(a)}"]
    # each statement shown once, by the first action it served
    assert [ops(r) for r in results] == [(sent[0], sent[2]), (), (sent[1],), (), ()]
    assert mysql_sandbox.roles_of(a) == {g1, g2} and mysql_sandbox.roles_of(b) == {g1, g2, chosen}
    assert mysql_sandbox.roles_of(c) == {g2}
    assert (mysql_sandbox.default_role(a), mysql_sandbox.default_role(b), mysql_sandbox.default_role(c)) == (
        g1, chosen, "")
    with mysql_sandbox.login(a) as conn, conn.cursor() as cur:
        cur.execute("SELECT CURRENT_ROLE()")
        assert cur.fetchone() == (g1,)

    sent.clear()
    again = connector.apply_batch(batch)
    assert changed(again) == [False] * 5 and sent == []


def test_revokes_kill_every_revoked_accounts_connections_together(mysql_sandbox: MysqlSandbox) -> None:
    group, chosen = mysql_sandbox.role("grp"), mysql_sandbox.role("chosen")
    alice, bob, carol = (mysql_sandbox.account("usr") for _ in range(3))
    connector = mysql_sandbox.connector()
    assert changed(connector.apply_batch([act("grant", who, group) for who in (alice, bob, carol)])) == [True] * 3
    mysql_sandbox.grant(chosen, carol)  # carol's default role is changed by hand to another one
    mysql_sandbox.execute(f"SET DEFAULT ROLE {mysql_sandbox.lit(chosen)} FOR {mysql_sandbox.acct(carol)}")
    sessions = []
    for who in (alice, bob, bob):
        session = mysql_sandbox.login(who)
        with session.cursor() as cur:
            cur.execute(f"SET ROLE {mysql_sandbox.lit(group)}")
        sessions.append(session)
    bystander = mysql_sandbox.login(mysql_sandbox.account("bystander"))

    results = connector.apply_batch([act("revoke", who, group) for who in (alice, bob, carol)])

    users = [who.split("@")[0] for who in (alice, bob, carol)]
    assert [ops(r) for r in results] == [
        (f"SET DEFAULT ROLE NONE FOR {q(alice)}", f"REVOKE '{group}' FROM {q(alice)}, {q(bob)}, {q(carol)}",
         f"KILL CONNECTION <each connection of users {', '.join(repr(u) for u in users)}>"),
        (f"SET DEFAULT ROLE NONE FOR {q(bob)}",),
        (),  # carol's default role is not the one revoked: left alone
    ]
    for session in sessions:
        with pytest.raises((pymysql.err.OperationalError, pymysql.err.InterfaceError)), session.cursor() as cur:
            cur.execute("SELECT CURRENT_ROLE()")
        session.close()
    with bystander.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    bystander.close()
    assert all(mysql_sandbox.sessions(u) == 0 for u in users)
    assert [mysql_sandbox.roles_of(who) for who in (alice, bob, carol)] == [set(), set(), {chosen}]
    assert [mysql_sandbox.default_role(who) for who in (alice, bob, carol)] == ["", "", chosen]
    assert changed(connector.apply_batch([act("revoke", who, group) for who in (alice, bob)])) == [False, False]


def test_an_action_given_twice_sends_each_statement_once(mysql_sandbox: MysqlSandbox) -> None:
    group = mysql_sandbox.role("grp")
    alice = mysql_sandbox.account("usr")
    connector = mysql_sandbox.connector()
    first, second = connector.apply_batch([act("grant", alice, group)] * 2)
    assert ops(first) == (f"GRANT '{group}' TO {q(alice)}", f"SET DEFAULT ROLE '{group}' FOR {q(alice)}")
    assert ops(second) == () and isinstance(second, Outcome) and second.changed
    first, second = connector.apply_batch([act("revoke", alice, group)] * 2)
    user = alice.split("@")[0]
    assert ops(first) == (f"SET DEFAULT ROLE NONE FOR {q(alice)}", f"REVOKE '{group}' FROM {q(alice)}",
                          f"KILL CONNECTION <each connection of users '{user}'>")
    assert ops(second) == () and isinstance(second, Outcome) and second.changed
    assert mysql_sandbox.roles_of(alice) == set() and mysql_sandbox.default_role(alice) == ""


def test_without_termination_no_connection_is_killed(mysql_sandbox: MysqlSandbox) -> None:
    group = mysql_sandbox.role("grp")
    alice = mysql_sandbox.account("usr")
    connector = mysql_sandbox.connector(terminate_sessions=False)
    connector.apply_batch([act("grant", alice, group)])
    with mysql_sandbox.login(alice) as session, session.cursor() as cur:
        (result,) = connector.apply_batch([act("revoke", alice, group)])
        assert ops(result) == (f"SET DEFAULT ROLE NONE FOR {q(alice)}", f"REVOKE '{group}' FROM {q(alice)}")
        cur.execute("SELECT 1")  # still connected
    assert mysql_sandbox.roles_of(alice) == set()


def test_a_revoke_only_a_marker_backs_takes_nothing(mysql_sandbox: MysqlSandbox) -> None:
    group = mysql_sandbox.role("grp")
    standing, ours = mysql_sandbox.account("usr"), mysql_sandbox.account("usr")
    mysql_sandbox.grant(group, standing)
    connector = mysql_sandbox.connector()
    connector.apply_batch([act("grant", ours, group)])
    results = connector.apply_batch([act("revoke", standing, group, drift=True), act("revoke", ours, group)])
    assert changed(results) == [False, True]
    assert mysql_sandbox.roles_of(standing) == {group} and mysql_sandbox.roles_of(ours) == set()


def test_refused_actions_fail_alone_and_the_others_are_applied(mysql_sandbox: MysqlSandbox) -> None:
    group = mysql_sandbox.role("grp")
    superish, filer = mysql_sandbox.role("super"), mysql_sandbox.role("file")
    reaches_super = mysql_sandbox.role("top")
    mysql_sandbox.execute(f"GRANT SUPER ON *.* TO {mysql_sandbox.lit(superish)}")
    mysql_sandbox.grant(superish, reaches_super)
    mysql_sandbox.execute(f"GRANT FILE ON *.* TO {mysql_sandbox.lit(filer)}")
    admin = mysql_sandbox.account("admin")
    mysql_sandbox.execute(f"GRANT SUPER ON *.* TO {mysql_sandbox.acct(admin)}")
    a, b, c = (mysql_sandbox.account("usr") for _ in range(3))
    connector = mysql_sandbox.connector()
    batch = [
        act("grant", a, group),
        act("grant", b, "batch_no_such_role"),
        act("grant", admin, group),  # an account with SUPER
        act("grant", b, reaches_super, privileged=True),  # reaches SUPER: refused even with the opt-in
        act("grant", c, filer),  # root-equivalent without allowPrivileged
        act("grant", "x'; DROP USER root; --@%", group),
        act("grant", "nobody_here@%", group),
        act("grant", f"{group}@", group),  # a role is not an account
        act("grant", a, filer, privileged=True),  # the resource opted in
        act("grant", c, group),
    ]

    results = connector.apply_batch(batch)

    assert len(results) == len(batch)
    ok_a, missing, superuser, super_role, privileged, hostile, nobody, a_role, opted_in, ok_c = results
    assert isinstance(missing, PermanentTargetError) and f"role {'batch_no_such_role'!r} does not exist" in str(
        missing)
    assert isinstance(superuser, PermanentTargetError) and "never changes" in str(superuser)
    assert isinstance(super_role, PermanentTargetError) and "never hands out SUPER" in str(super_role)
    assert isinstance(privileged, PermanentTargetError) and "allowPrivileged" in str(privileged)
    assert isinstance(hostile, PermanentTargetError) and "not an allowed" in str(hostile)
    assert isinstance(nobody, PermanentTargetError) and "account 'nobody_here@%' does not exist" in str(nobody)
    assert isinstance(a_role, PermanentTargetError)
    assert ops(ok_a) == (f"GRANT '{group}' TO {q(a)}, {q(c)}", f"SET DEFAULT ROLE '{group}' FOR {q(a)}")
    assert ops(opted_in) == (f"GRANT '{filer}' TO {q(a)}",)
    assert ops(ok_c) == (f"SET DEFAULT ROLE '{group}' FOR {q(c)}",)
    assert mysql_sandbox.roles_of(a) == {group, filer} and mysql_sandbox.roles_of(c) == {group}
    assert mysql_sandbox.roles_of(b) == set() and mysql_sandbox.roles_of(admin) == set()


def login_connector(mysql_sandbox: MysqlSandbox, *admin_of: str) -> tuple[MysqlConnector, str]:
    """A connector logged in as an account that may grant only `admin_of` (and read, set default
    roles and KILL); returns it and the login's account."""
    login = mysql_sandbox.account("jitpol")
    acct = mysql_sandbox.acct(login)
    mysql_sandbox.execute(f"GRANT SELECT, CONNECTION ADMIN ON *.* TO {acct}")
    mysql_sandbox.execute(f"GRANT UPDATE ON mysql.* TO {acct}")  # SET DEFAULT ROLE FOR another account
    for role in admin_of:
        mysql_sandbox.execute(f"GRANT {mysql_sandbox.lit(role)} TO {acct} WITH ADMIN OPTION")
    dsn = mysql_sandbox.server.dsn(user=login.split("@")[0], password=PASSWORD)
    return mysql_sandbox.connector(dsn=dsn), login


def test_its_own_login_is_never_touched_and_a_refused_statement_fails_only_its_actions(
    mysql_sandbox: MysqlSandbox
) -> None:
    mine, theirs = mysql_sandbox.role("grp"), mysql_sandbox.role("grp")
    connector, login = login_connector(mysql_sandbox, mine)
    same_name = mysql_sandbox.account(name=login.split("@")[0], host="localhost")
    a, b = mysql_sandbox.account("usr"), mysql_sandbox.account("usr")
    batch = [act("grant", a, theirs), act("grant", a, mine), act("grant", login, mine), act("grant", b, theirs),
             act("grant", same_name, mine), act("grant", b, mine)]

    results = connector.apply_batch(batch)

    own = (results[2], results[4])
    assert all(isinstance(r, PermanentTargetError) and "its own login" in str(r) for r in own)
    # the server refuses `GRANT theirs TO a, b` (no ADMIN OPTION): each of its actions is then
    # applied alone and gets the server's refusal of its own statement
    for r in (results[0], results[3]):
        assert isinstance(r, PermanentTargetError) and "refused" in str(r)
    assert ops(results[1]) == (f"GRANT '{mine}' TO {q(a)}, {q(b)}", f"SET DEFAULT ROLE '{mine}' FOR {q(a)}")
    assert ops(results[5]) == (f"SET DEFAULT ROLE '{mine}' FOR {q(b)}",)
    assert mysql_sandbox.roles_of(a) == {mine} and mysql_sandbox.roles_of(b) == {mine}
    assert mysql_sandbox.roles_of(login) == {mine}  # what root gave it, nothing more
    assert mysql_sandbox.roles_of(same_name) == set()


class RaceAfterRead:
    """Runs `race` once, right after the batch's first read of the memberships (between the
    read and the statements): a change made behind jitpol's back at the worst moment."""

    def __init__(self, connector: MysqlConnector, race: str, sandbox: MysqlSandbox) -> None:
        self.real = connector._read_members
        self.race: str | None = race
        self.sandbox = sandbox

    def __call__(self, items: Any) -> set[tuple[str, str, str]]:
        found = self.real(items)
        if self.race is not None:
            self.sandbox.execute(self.race)
            self.race = None
        return found


def test_a_grant_that_fails_half_way_is_read_back_and_the_rest_applied_alone(mysql_sandbox: MysqlSandbox) -> None:
    group = mysql_sandbox.role("grp")
    a, b, c = (mysql_sandbox.account("usr") for _ in range(3))
    connector = mysql_sandbox.connector()
    connector._read_members = RaceAfterRead(  # type: ignore[method-assign]
        connector, f"DROP USER {mysql_sandbox.acct(b)}", mysql_sandbox)

    results = connector.apply_batch([act("grant", who, group) for who in (a, b, c)])

    ok_a, dropped, ok_c = results
    # MariaDB granted a and c before it reported b: the read-back says so, and b's own GRANT fails
    assert isinstance(dropped, PermanentTargetError) and "(1133)" in str(dropped)
    shared = f"GRANT '{group}' TO {q(a)}, {q(b)}, {q(c)}"
    assert ops(ok_a) == (shared, f"SET DEFAULT ROLE '{group}' FOR {q(a)}")
    assert ops(ok_c) == (f"SET DEFAULT ROLE '{group}' FOR {q(c)}",)
    assert mysql_sandbox.roles_of(a) == {group} and mysql_sandbox.roles_of(c) == {group}
    assert mysql_sandbox.default_role(a) == group and mysql_sandbox.default_role(c) == group


def test_a_revoke_that_fails_half_way_reports_what_holds(mysql_sandbox: MysqlSandbox) -> None:
    group = mysql_sandbox.role("grp")
    a, b, c = (mysql_sandbox.account("usr") for _ in range(3))
    connector = mysql_sandbox.connector()
    connector.apply_batch([act("grant", who, group) for who in (a, b, c)])
    connector._read_members = RaceAfterRead(  # type: ignore[method-assign]
        connector, f"REVOKE {mysql_sandbox.lit(group)} FROM {mysql_sandbox.acct(b)}", mysql_sandbox)

    results = connector.apply_batch([act("revoke", who, group) for who in (a, b, c)])

    # MariaDB revoked a and c and then reported b (revoked meanwhile); read back, every membership
    # is gone, as each action asked: all three hold, and the shared statement is shown once
    assert changed(results) == [True, True, True]
    assert ops(results[0])[1] == f"REVOKE '{group}' FROM {q(a)}, {q(b)}, {q(c)}"
    assert all(mysql_sandbox.roles_of(who) == set() for who in (a, b, c))


def test_other_models_in_a_batch_are_applied_alone_in_their_place(mysql_sandbox: MysqlSandbox) -> None:
    group = mysql_sandbox.role("grp")
    a = mysql_sandbox.account("usr")
    connector = mysql_sandbox.connector()
    rotate = Action(op="rotate", assignment=Assignment(TARGET, "credential-checkout", a, "[]"), resource="r",
                    grants=())
    wrong = Action(op="grant", assignment=Assignment(TARGET, "no-such-model", a, group), resource="r", grants=())

    granted, unknown, rotated = connector.apply_batch([act("grant", a, group), wrong, rotate])

    assert isinstance(granted, Outcome) and granted.changed
    assert isinstance(unknown, Exception) and "no-such-model" in str(unknown)
    assert isinstance(rotated, PermanentTargetError) and "password" in str(rotated)


def test_an_unreachable_server_fails_every_action_but_keeps_each_ones_own_refusal() -> None:
    dsn = f"mysql://root:Batch-Secret-9@127.0.0.1:{closed_port()}/"
    connector = MysqlConnector(TARGET, {"dsn_env": DSN_ENV, "connect_timeout": 2}, {DSN_ENV: dsn})
    try:
        unreachable, hostile, also = connector.apply_batch(
            [act("grant", "alice@%", "grp"), act("grant", "al'ice@%", "grp"), act("revoke", "bob@%", "grp")])
    finally:
        connector.close()
    assert isinstance(unreachable, TargetUnavailable) and unreachable is also
    assert "Batch-Secret-9" not in str(unreachable)
    assert isinstance(hostile, PermanentTargetError) and "not an allowed" in str(hostile)


# -- the executor ------------------------------------------------------------------------------


def run_execute(plan: Plan, mysql_sandbox: MysqlSandbox, ledger_path: Path) -> tuple[list[bool], list[dict[str, Any]]]:
    """The run's executor with the registry's mysql connector on the test server: (each action
    ok, the ledger's events)."""
    target = Target(TARGET, "mysql", {"dsn_env": DSN_ENV, "event_schema": mysql_sandbox.event_schema},
                    Source("jitpol.yaml"))
    conns = Connections({TARGET: target}, {DSN_ENV: mysql_sandbox.server.dsn()}, FixedClock(Now.read().at))
    base = {"time": "2000-01-01T00:00:00Z", "policy_commit": None}
    try:
        assert isinstance(conns.get(TARGET), BatchApply)
        with Ledger(ledger_path).appender() as add:
            results = execute(plan, conns, add, base, None, None,
                              append_many=lambda bodies, durable: add.many(bodies, durable=durable))
    finally:
        conns.close()
    return [r.ok for r in results], Ledger(ledger_path).events()


def test_execute_records_each_actions_own_result(mysql_sandbox: MysqlSandbox, tmp_path: Path) -> None:
    group = mysql_sandbox.role("grp")
    people = [mysql_sandbox.account("usr") for _ in range(3)]
    ledger = tmp_path / "audit" / "ledger.jsonl"
    ledger.parent.mkdir()
    plan = Plan(actions=(act("grant", people[0], group), act("grant", people[1], "batch_no_such_role"),
                         *(act("grant", p, group) for p in people[1:])))

    ok, events = run_execute(plan, mysql_sandbox, ledger)

    assert ok == [True, False, True, True]
    assert [e["event"] for e in events] == ["action.started"] * 4 + ["action.failed"]
    assert events[4]["privilege"] == "batch_no_such_role" and "does not exist" in events[4]["error"]
    assert all(mysql_sandbox.roles_of(p) == {group} for p in people)

    ok, events = run_execute(Plan(actions=tuple(act("revoke", p, group) for p in people)), mysql_sandbox, ledger)
    assert ok == [True] * 3 and len(events) == 5  # revocations: no intent, and no failure
    assert all(mysql_sandbox.roles_of(p) == set() for p in people)


# -- the contract, through apply_batch -----------------------------------------------------------


class TestMysqlContractThroughBatches(contract.TestMysqlContract):
    """The connector contract for role-membership with every grant and revoke sent through
    apply_batch."""

    @pytest.fixture
    def connector(self, mysql_sandbox: MysqlSandbox) -> Iterator[Any]:
        yield WrappedBatch(mysql_sandbox.connector())
