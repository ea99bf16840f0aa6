"""PostgresConnector.apply_batch (BatchApply) and the executor's batches, on a real server: the
exact statements a batch sends (one GRANT / REVOKE per role, one query that ends every revoked
principal's sessions), per-action outcomes when some actions of a batch are refused or one
statement fails, and the ledger: every addition's intent durable before the batch that applies
it, each action's own result after it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg import sql

import tests.contract.test_postgres_contract as contract
from jitpol.clock import FixedClock
from jitpol.connectors.base import BatchApply
from jitpol.connectors.postgres import GRANTOR_ROLE, PostgresConnector
from jitpol.errors import PermanentTargetError, TargetUnavailable
from jitpol.execute.apply import BATCH_MAX, Result, execute
from jitpol.ledger.store import Ledger
from jitpol.model.assignment import Action, Assignment, Op, Outcome
from jitpol.model.documents import Source, Target
from jitpol.observe.targets import Connections
from jitpol.plan.diff import Plan
from tests.doubles.server import closed_port
from tests.helpers.batch import WrappedBatch
from tests.helpers.clock import Now
from tests.integration.test_postgres_connector import ensure_grantor, grantors, login_and_set_role, server_version

if TYPE_CHECKING:
    from tests.conftest import PgDatabase, PgRoles

pytestmark = pytest.mark.postgres

TARGET = "pg-batch"
MODEL = "role-membership"
DSN_ENV = "PG_BATCH_DSN"


def act(op: Op, principal: str, role: str, *, drift: bool = False) -> Action:
    """drift=True: a revoke only jitpol's marker backs (no grant, no resource)."""
    return Action(op=op, assignment=Assignment(TARGET, MODEL, principal, role), resource="" if drift else "r",
                  grants=() if drift else (f"g-{principal}",), drift=drift)


@pytest.fixture
def connector(pg_roles: PgRoles) -> Iterator[PostgresConnector]:
    ensure_grantor(pg_roles)
    made = PostgresConnector(TARGET, {"dsn_env": DSN_ENV}, {DSN_ENV: pg_roles.server.superuser_dsn})
    yield made
    made.close()


def admin_setup(ops: Sequence[str]) -> list[str]:
    """The grantor role's ADMIN OPTION statements (PostgreSQL 16 and later need them)."""
    return [op for op in ops if "WITH ADMIN TRUE" in op]


def all_operations(results: Sequence[Outcome | Exception]) -> list[str]:
    return [op for r in results if isinstance(r, Outcome) for op in r.operations]


# -- the connector ---------------------------------------------------------------------------


def test_postgres_connector_is_a_batch_connector(connector: PostgresConnector) -> None:
    assert isinstance(connector, BatchApply)


def test_grants_go_out_as_one_statement_per_role(pg_roles: PgRoles, connector: PostgresConnector) -> None:
    g1, g2 = pg_roles.create("grp"), pg_roles.create("grp")
    a, b, c = (pg_roles.create("usr", login=True) for _ in range(3))
    pg_roles.grant(g2, c)  # standing access: present already, never marked or touched
    batch = [act("grant", a, g1), act("grant", b, g1), act("grant", a, g2), act("grant", c, g2),
             act("grant", b, g2)]

    results = connector.apply_batch(batch)

    assert [(r.changed, r.before) if isinstance(r, Outcome) else r for r in results] == [
        (True, False), (True, False), (True, False), (False, True), (True, False)]
    ops = all_operations(results)
    assert ops == [*admin_setup(ops),
                   f'GRANT "{g1}" TO "{a}", "{b}" GRANTED BY "{GRANTOR_ROLE}"',
                   f'GRANT "{g2}" TO "{a}", "{b}" GRANTED BY "{GRANTOR_ROLE}"']
    assert len(admin_setup(ops)) == (2 if server_version(pg_roles) >= 160000 else 0)
    # each statement is shown once, by the first action it served
    first, second, third, _, fifth = results
    assert isinstance(first, Outcome) and first.operations[-1].startswith(f'GRANT "{g1}"')
    assert isinstance(second, Outcome) and second.operations == ()
    assert isinstance(third, Outcome) and third.operations[-1].startswith(f'GRANT "{g2}"')
    assert isinstance(fifth, Outcome) and fifth.operations == ()
    assert pg_roles.members(g1) == {a, b} and pg_roles.members(g2) == {a, b, c}
    assert grantors(pg_roles, g1, a) == [GRANTOR_ROLE] and grantors(pg_roles, g2, b) == [GRANTOR_ROLE]
    assert GRANTOR_ROLE not in grantors(pg_roles, g2, c)

    again = connector.apply_batch(batch)
    assert [r.changed for r in again if isinstance(r, Outcome)] == [False] * 5


def test_revokes_end_every_principals_sessions_in_one_query(
    pg_db: PgDatabase, pg_roles: PgRoles, connector: PostgresConnector
) -> None:
    group = pg_roles.create("grp")
    password = "Batch-Sess10n"
    alice, bob = (pg_roles.create("usr", login=True, password=password) for _ in range(2))
    connector.apply_batch([act("grant", alice, group), act("grant", bob, group)])
    sessions = [login_and_set_role(pg_db, pg_roles, who, password, group) for who in (alice, bob)]
    bystander = psycopg.connect(pg_db.dsn, autocommit=True)

    results = connector.apply_batch([act("revoke", alice, group), act("revoke", bob, group)])

    assert [r.changed for r in results if isinstance(r, Outcome)] == [True, True]
    assert all_operations(results) == [
        f'REVOKE "{group}" FROM "{alice}", "{bob}" GRANTED BY "{GRANTOR_ROLE}"',
        "SELECT pg_catalog.pg_terminate_backend(pid, 5000) FROM pg_catalog.pg_stat_activity "  # noqa: S608
        f"WHERE usename IN ('{alice}', '{bob}') AND pid <> pg_catalog.pg_backend_pid()",
    ]
    for session in sessions:
        with pytest.raises(psycopg.OperationalError):
            session.execute("SELECT 1")
        session.close()
    assert bystander.execute("SELECT 1").fetchone() == (1,)
    bystander.close()
    assert pg_roles.members(group) == set()


def test_a_revoke_only_the_marker_backs_leaves_standing_access(
    pg_roles: PgRoles, connector: PostgresConnector
) -> None:
    group = pg_roles.create("grp")
    ours, standing, ledger_named = (pg_roles.create("usr", login=True) for _ in range(3))
    connector.apply_batch([act("grant", ours, group)])
    pg_roles.grant(group, standing)  # by hand: not jitpol's
    pg_roles.grant(group, ledger_named)  # unmarked, but the ledger says jitpol gave it

    results = connector.apply_batch([
        act("revoke", ours, group), act("revoke", standing, group, drift=True), act("revoke", ledger_named, group)])

    assert [(r.changed, r.before) if isinstance(r, Outcome) else r for r in results] == [
        (True, False), (False, True), (True, False)]
    # each statement in the outcome of the first action it served
    first, _, third = results
    assert isinstance(first, Outcome) and isinstance(third, Outcome)
    assert first.operations[0] == f'REVOKE "{group}" FROM "{ours}" GRANTED BY "{GRANTOR_ROLE}"'
    assert f"usename IN ('{ours}', '{ledger_named}')" in first.operations[1]
    assert third.operations == (f'REVOKE "{group}" FROM "{ledger_named}"',)
    assert pg_roles.members(group) == {standing}


def test_refused_actions_fail_alone_and_the_others_are_applied(
    pg_roles: PgRoles, connector: PostgresConnector
) -> None:
    group = pg_roles.create("grp")
    powerful = pg_roles.create("admin_grp")
    pg_roles.admin.execute(sql.SQL("ALTER ROLE {} CREATEROLE").format(sql.Identifier(powerful)))
    root = pg_roles.create("root", login=True, superuser=True)
    a, b, c = (pg_roles.create("usr", login=True) for _ in range(3))
    batch = [act("grant", a, group), act("grant", b, "batch_no_such_role"), act("grant", root, group),
             act("grant", c, powerful), act("grant", 'x"; DROP ROLE postgres; --', group), act("grant", c, group)]

    results = connector.apply_batch(batch)

    assert len(results) == len(batch)
    ok_a, missing, superuser, privileged, hostile, ok_c = results
    assert isinstance(ok_a, Outcome) and ok_a.changed and isinstance(ok_c, Outcome) and ok_c.changed
    assert isinstance(missing, PermanentTargetError) and "does not exist" in str(missing)
    assert isinstance(superuser, PermanentTargetError) and "superusers" in str(superuser)
    assert isinstance(privileged, PermanentTargetError) and "root-equivalent" in str(privileged)
    assert isinstance(hostile, PermanentTargetError) and "not an allowed PostgreSQL role name" in str(hostile)
    ops = all_operations(results)
    assert ops == [*admin_setup(ops), f'GRANT "{group}" TO "{a}", "{c}" GRANTED BY "{GRANTOR_ROLE}"']
    assert pg_roles.members(group) == {a, c} and pg_roles.members(powerful) == set()


def test_a_failing_statement_rolls_the_batch_back_and_each_action_is_applied_alone(
    pg_roles: PgRoles, connector: PostgresConnector
) -> None:
    group = pg_roles.create("grp")
    a, cyclic, b = (pg_roles.create("usr", login=True) for _ in range(3))
    pg_roles.grant(cyclic, group)  # the group is a member of `cyclic`: granting it to `cyclic` is a cycle
    batch = [act("grant", a, group), act("grant", cyclic, group), act("grant", b, group)]

    results = connector.apply_batch(batch)

    ok_a, refused, ok_b = results
    assert isinstance(refused, PermanentTargetError) and f'role "{group}" is a member of role "{cyclic}"' in str(
        refused)
    # the batch's GRANT was rolled back: what each action reports is what it did alone
    assert isinstance(ok_a, Outcome) and ok_a.operations[-1] == f'GRANT "{group}" TO "{a}" GRANTED BY "{GRANTOR_ROLE}"'
    assert isinstance(ok_b, Outcome) and ok_b.operations[-1] == f'GRANT "{group}" TO "{b}" GRANTED BY "{GRANTOR_ROLE}"'
    assert pg_roles.members(group) == {a, b}


def test_other_models_in_a_batch_are_applied_alone_in_their_place(
    pg_roles: PgRoles, connector: PostgresConnector
) -> None:
    group = pg_roles.create("grp")
    a = pg_roles.create("usr", login=True)
    rotate = Action(op="rotate", assignment=Assignment(TARGET, "credential-checkout", a, "[]"), resource="r",
                    grants=())
    wrong = Action(op="grant", assignment=Assignment(TARGET, "no-such-model", a, group), resource="r", grants=())

    results = connector.apply_batch([act("grant", a, group), wrong, rotate])

    granted, unknown, rotated = results
    assert isinstance(granted, Outcome) and granted.changed
    assert isinstance(unknown, Exception) and "no-such-model" in str(unknown)
    # a rotate without a password is refused by the checkout model itself, as by apply()
    assert isinstance(rotated, PermanentTargetError) and "password" in str(rotated)


def test_an_unreachable_server_fails_every_action_but_keeps_each_ones_own_refusal() -> None:
    dsn = f"host=127.0.0.1 port={closed_port()} user=postgres password=Batch-Secret-9 dbname=postgres connect_timeout=2"
    connector = PostgresConnector(TARGET, {"dsn_env": DSN_ENV}, {DSN_ENV: dsn})
    try:
        results = connector.apply_batch([act("grant", "alice", "grp"), act("grant", "postgres", "grp"),
                                         act("revoke", "bob", "grp")])
    finally:
        connector.close()
    unreachable, reserved, also_unreachable = results
    assert isinstance(unreachable, TargetUnavailable) and unreachable is also_unreachable
    assert "Batch-Secret-9" not in str(unreachable)
    assert isinstance(reserved, PermanentTargetError) and "reserved" in str(reserved)


# -- the executor ----------------------------------------------------------------------------


class Spy:
    """The real connector; each time a batch reaches it, it notes how many ledger lines are on
    disk (and checks that they were fsynced) and which actions it got."""

    def __init__(self, real: PostgresConnector, ledger: Path, fsyncs: list[int],
                 seen: list[tuple[int, list[str]]]) -> None:
        self.real, self._ledger, self._fsyncs, self.seen = real, ledger, fsyncs, seen

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def apply_batch(self, actions: Sequence[Action]) -> list[Outcome | Exception]:
        on_disk = self._ledger.read_bytes().count(b"\n") if self._ledger.exists() else 0
        assert self._fsyncs and self._fsyncs[-1] == on_disk, "the lines on disk were not fsynced first"
        self.seen.append((on_disk, [a.principal for a in actions]))
        return self.real.apply_batch(actions)


class Recording(Connections):
    """Connections to the test server whose connector is a Spy."""

    def __init__(self, pg_roles: PgRoles, ledger: Path, fsyncs: list[int]) -> None:
        target = Target(TARGET, "postgres", {"dsn_env": DSN_ENV}, Source("jitpol.yaml"))
        super().__init__({TARGET: target}, {DSN_ENV: pg_roles.server.superuser_dsn}, FixedClock(Now.read().at))
        self.seen: list[tuple[int, list[str]]] = []
        self._ledger, self._fsyncs = ledger, fsyncs

    def get(self, name: str) -> Any:
        real = super().get(name)
        assert isinstance(real, PostgresConnector)
        return Spy(real, self._ledger, self._fsyncs, self.seen)


def run_execute(plan: Plan, conns: Connections, ledger_path: Path) -> tuple[list[Result], list[dict[str, Any]]]:
    base = {"time": "2000-01-01T00:00:00Z", "policy_commit": None}
    with Ledger(ledger_path).appender() as add:
        results = execute(plan, conns, add, base, None, None,
                          append_many=lambda bodies, durable: add.many(bodies, durable=durable))
    return results, Ledger(ledger_path).events()


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[int]:
    """The ledger's line count at each fsync of it (os.fsync still runs)."""
    seen: list[int] = []
    real = os.fsync
    ledger = tmp_path / "audit" / "ledger.jsonl"

    def fsync(fd: int) -> None:
        real(fd)
        if ledger.exists() and os.path.samestat(os.fstat(fd), ledger.stat()):
            seen.append(ledger.read_bytes().count(b"\n"))

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


def test_execute_makes_the_intents_durable_before_the_batch_and_records_each_result(
    pg_roles: PgRoles, tmp_path: Path, fsyncs: list[int]
) -> None:
    ensure_grantor(pg_roles)
    group = pg_roles.create("grp")
    people = sorted(pg_roles.create("usr", login=True) for _ in range(3))
    ledger = tmp_path / "audit" / "ledger.jsonl"
    ledger.parent.mkdir()
    conns = Recording(pg_roles, ledger, fsyncs)
    grants = [act("grant", p, group) for p in people]
    plan = Plan(actions=(*grants[:1], act("grant", people[1], "batch_no_such_role"), *grants[1:]))
    try:
        results, events = run_execute(plan, conns, ledger)
    finally:
        conns.close()

    # one batch, reached with all four intents on disk
    assert conns.seen == [(4, [people[0], people[1], people[1], people[2]])]
    assert [e["event"] for e in events] == ["action.started"] * 4 + ["action.failed"]
    assert [e["principal"] for e in events[:4]] == [people[0], people[1], people[1], people[2]]
    failed = events[4]
    assert failed["privilege"] == "batch_no_such_role" and "does not exist" in failed["error"]
    assert [r.ok for r in results] == [True, False, True, True]
    assert pg_roles.members(group) == set(people)

    # the revocations: no intent, one batch, one result event per failure (none here)
    revoke = Plan(actions=tuple(act("revoke", p, group) for p in people))
    conns = Recording(pg_roles, ledger, fsyncs)
    try:
        results, events = run_execute(revoke, conns, ledger)
    finally:
        conns.close()
    assert conns.seen == [(5, people)]
    assert len(events) == 5 and all(r.ok and r.outcome and r.outcome.changed for r in results)
    assert pg_roles.members(group) == set()


def test_execute_splits_long_runs_into_batches_of_at_most_batch_max(
    pg_roles: PgRoles, tmp_path: Path, fsyncs: list[int]
) -> None:
    ensure_grantor(pg_roles)
    group = pg_roles.create("grp")
    # principals that need not exist: each fails alone (no GRANT is sent for them)
    plan = Plan(actions=tuple(act("grant", f"batch_ghost_{i:05d}", group) for i in range(BATCH_MAX + 2)))
    ledger = tmp_path / "audit" / "ledger.jsonl"
    ledger.parent.mkdir()
    conns = Recording(pg_roles, ledger, fsyncs)
    try:
        results, events = run_execute(plan, conns, ledger)
    finally:
        conns.close()
    # the first batch's intents, then its failures, then the second batch's intents
    assert [(n, len(who)) for n, who in conns.seen] == [(BATCH_MAX, BATCH_MAX), (2 * BATCH_MAX + 2, 2)]
    assert not any(r.ok for r in results)
    assert [e["event"] for e in events[BATCH_MAX:2 * BATCH_MAX]] == ["action.failed"] * BATCH_MAX
    assert json.loads(json.dumps(events[-1]))["principal"] == f"batch_ghost_{BATCH_MAX + 1:05d}"


class TestPostgresContractThroughBatches(contract.TestPostgresContract):
    """The connector contract (the idempotency proof, observe, markers) with every grant and
    revoke sent through apply_batch."""

    @pytest.fixture
    def connector(self, pg_roles: PgRoles) -> Iterator[Any]:
        real = PostgresConnector(contract.TARGET, {"dsn_env": "PG_TEST_DSN"},
                                 {"PG_TEST_DSN": pg_roles.server.superuser_dsn})
        yield WrappedBatch(real)
        real.close()
