"""The connector contract on a real PostgreSQL server (one per test session)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from jitpol.connectors.base import Connector
from jitpol.connectors.postgres import PostgresConnector
from jitpol.model.assignment import Action, Assignment, Op, Scope

from .suite import ConnectorContract, MakeAction

if TYPE_CHECKING:
    from conftest import PgRoles  # tests/conftest.py; pytest provides the fixture itself

pytestmark = pytest.mark.postgres

TARGET = "pg-test"
MODEL = "role-membership"


class TestPostgresContract(ConnectorContract):
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
