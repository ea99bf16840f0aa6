"""The connector contract on a real PostgreSQL server (one per test session): role-membership and
ephemeral-account (credential-checkout's rotate is an event, never "already true", so the
idempotency proof does not apply to it; tests/integration/test_postgres_accounts.py covers it)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, ClassVar

import pytest
from psycopg import sql

from jitpol.connectors.base import Connector
from jitpol.connectors.postgres import PostgresConnector
from jitpol.model.assignment import Action, Assignment, Op, Scope
from jitpol.model.canonical import canonical_json

from .suite import ConnectorContract, MakeAction

if TYPE_CHECKING:
    from tests.conftest import PgRoles  # pytest provides the fixture itself

pytestmark = pytest.mark.postgres

TARGET = "pg-test"
MODEL = "role-membership"
EPHEMERAL = "ephemeral-account"


class TestPostgresContract(ConnectorContract):
    """GRANT ... GRANTED BY jitpol's grantor role (the ownership marker) / REVOKE; the server
    enforces no end for a membership (revoked by a run)."""

    marks: ClassVar[bool] = True

    @pytest.fixture
    def roles(self, pg_roles: PgRoles) -> tuple[str, str]:
        """(group, principal): a NOLOGIN group role and a LOGIN role, not yet a member."""
        group = pg_roles.create("grp")
        principal = pg_roles.create("usr", login=True)
        # standing access that is not ours, in scope and out of it
        bystander = pg_roles.create("bystander", login=True)
        pg_roles.grant(group, bystander)
        pg_roles.grant(pg_roles.create("unrelated"), principal)
        return group, principal

    @pytest.fixture
    def connector(self, pg_roles: PgRoles) -> Iterator[Connector]:
        env = {"PG_TEST_DSN": pg_roles.server.superuser_dsn}  # a mapping, not os.environ
        connector = PostgresConnector(TARGET, {"dsn_env": "PG_TEST_DSN"}, env)
        yield connector
        connector.close()

    @pytest.fixture
    def scope(self, roles: tuple[str, str]) -> Scope:
        return Scope(target=TARGET, model=MODEL, privileges=frozenset({roles[0], "contract_missing_role"}))

    @pytest.fixture
    def make_action(self, roles: tuple[str, str]) -> MakeAction:
        group, principal = roles

        def make(op: Op) -> Action:
            assignment = Assignment(TARGET, MODEL, principal, group)
            return Action(op=op, assignment=assignment, resource="prod-db", grants=("g",))

        return make


class TestPostgresEphemeralAccountContract(ConnectorContract):
    """create-account / delete-account of a `jit-...` login role; observe() finds accounts by
    jitpol's marker (COMMENT ON ROLE), whatever the scope's privileges."""

    add_op: ClassVar[Op] = "create-account"
    remove_op: ClassVar[Op] = "delete-account"
    observe_filters_by_privileges: ClassVar[bool] = False
    marks: ClassVar[bool] = True  # the COMMENT ON ROLE marker
    native_end: ClassVar[bool] = True  # VALID UNTIL, set to the window's end both ways

    @pytest.fixture
    def privilege(self, pg_roles: PgRoles) -> str:
        bystander = pg_roles.create("bystander", login=True)
        groups = [pg_roles.create("grp"), pg_roles.create("grp")]
        for group in groups:
            pg_roles.grant(group, bystander)
        return canonical_json(sorted(groups))

    @pytest.fixture
    def principal(self, pg_roles: PgRoles) -> Iterator[str]:
        name = f"jit-alice-{uuid.uuid4().hex[:10]}"
        # a role with a jit- name that is not jitpol's (no marker): never reported or touched
        pg_roles.create("jit", login=True, name=f"jit-not-ours-{uuid.uuid4().hex[:10]}")
        yield name
        # the account may exist if a test failed half-way; nothing it owns lives outside it
        pg_roles.admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))

    @pytest.fixture
    def connector(self, pg_roles: PgRoles) -> Iterator[Connector]:
        env = {"PG_TEST_DSN": pg_roles.server.superuser_dsn}
        connector = PostgresConnector(TARGET, {"dsn_env": "PG_TEST_DSN"}, env)
        yield connector
        connector.close()

    @pytest.fixture
    def scope(self, privilege: str) -> Scope:
        return Scope(target=TARGET, model=EPHEMERAL, privileges=frozenset({privilege}))

    @pytest.fixture
    def make_action(self, privilege: str, principal: str) -> MakeAction:
        until = datetime.now(UTC) + timedelta(hours=1)

        def make(op: Op) -> Action:
            return Action(
                op=op,
                assignment=Assignment(TARGET, EPHEMERAL, principal, privilege),
                resource="prod-db-jit",
                grants=("alice-dba-1",),
                until=until if op == "create-account" else None,
                details=(("grant", "alice-dba-1"), ("password", "correct horse"), ("person", "alice")),
            )

        return make

    def test_observe_reports_the_end_and_not_unmarked_roles(
        self, connector: Connector, scope: Scope, make_action: MakeAction
    ) -> None:
        action = make_action(self.add_op)
        connector.apply(action)
        observed = {a.principal: a for a in connector.observe(scope)}
        assert not any(p.startswith("jit-not-ours-") for p in observed)
        account = observed[action.principal]
        assert account == action.assignment
        assert account.expires == action.until
