"""The connector contract on a real MariaDB server (one per test session): role-membership and
ephemeral-account (credential-checkout's rotate is an event, never "already true", so the
idempotency proof does not apply to it; tests/integration/test_mysql_accounts.py covers it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest

from jitpol.connectors.base import Connector
from jitpol.model.assignment import Action, Assignment, Op, Scope
from jitpol.model.canonical import canonical_json
from tests.mysql_fixtures import *  # noqa: F403 (the fixture mysql_sandbox)
from tests.mysql_fixtures import TARGET, MysqlSandbox

from .suite import ConnectorContract, MakeAction

MODEL = "role-membership"
EPHEMERAL = "ephemeral-account"


class TestMysqlContract(ConnectorContract):
    """GRANT role TO user@host (+ default role) / REVOKE; a membership carries no marker on MySQL
    or MariaDB (owned is None) and the server enforces no end for it (revoked by a run)."""

    @pytest.fixture
    def roles(self, mysql_sandbox: MysqlSandbox) -> tuple[str, str]:
        """(role, account): a role and a login account `user@%`, not yet a member."""
        role = mysql_sandbox.role("grp")
        principal = mysql_sandbox.account("usr")
        # standing access that is not ours, in scope and out of it
        mysql_sandbox.grant(role, mysql_sandbox.account("bystander"))
        mysql_sandbox.grant(mysql_sandbox.role("unrelated"), principal)
        return role, principal

    @pytest.fixture
    def connector(self, mysql_sandbox: MysqlSandbox) -> Iterator[Connector]:
        yield mysql_sandbox.connector()

    @pytest.fixture
    def scope(self, roles: tuple[str, str]) -> Scope:
        return Scope(target=TARGET, model=MODEL, privileges=frozenset({roles[0], "contract_missing_role"}))

    @pytest.fixture
    def make_action(self, roles: tuple[str, str]) -> MakeAction:
        role, principal = roles

        def make(op: Op) -> Action:
            return Action(op=op, assignment=Assignment(TARGET, MODEL, principal, role), resource="app-db",
                          grants=("g",))

        return make


class TestMysqlEphemeralAccountContract(ConnectorContract):
    """create-account / delete-account of a `jit-...` account; observe() finds accounts by
    jitpol's marker (the comment of the event that locks the account at its end), whatever the
    scope's privileges."""

    add_op: ClassVar[Op] = "create-account"
    remove_op: ClassVar[Op] = "delete-account"
    observe_filters_by_privileges: ClassVar[bool] = False
    marks: ClassVar[bool] = True  # the event's comment
    native_end: ClassVar[bool] = True  # the event locks the account at the end, moved both ways

    @pytest.fixture
    def privilege(self, mysql_sandbox: MysqlSandbox) -> str:
        bystander = mysql_sandbox.account("bystander")
        groups = [mysql_sandbox.role("grp"), mysql_sandbox.role("grp")]
        for group in groups:
            mysql_sandbox.grant(group, bystander)
        return canonical_json(sorted(groups))

    @pytest.fixture
    def principal(self, mysql_sandbox: MysqlSandbox) -> str:
        # an account with a jit- name that is not jitpol's (no marker): never reported or touched
        mysql_sandbox.account(name=mysql_sandbox.ephemeral_name())
        return mysql_sandbox.ephemeral_name()

    @pytest.fixture
    def connector(self, mysql_sandbox: MysqlSandbox) -> Iterator[Connector]:
        yield mysql_sandbox.connector()

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
                resource="app-db-jit",
                grants=("alice-dba-1",),
                until=until if op == "create-account" else None,
                details=(("grant", "alice-dba-1"), ("password", "correct horse"), ("person", "alice")),
            )

        return make

    def test_observe_reports_the_end_and_not_unmarked_accounts(
        self, connector: Connector, scope: Scope, make_action: MakeAction
    ) -> None:
        action = make_action(self.add_op)
        connector.apply(action)
        observed = {a.principal: a for a in connector.observe(scope)}
        assert set(observed) == {action.principal}, "only the marked account, not the unmarked jit- one"
        account = observed[action.principal]
        assert account == action.assignment
        assert action.until is not None
        assert account.expires is not None and abs(account.expires - action.until) <= timedelta(seconds=1)
