"""The connector contract on a real OpenLDAP slapd (one per test session): role-membership and
ephemeral-account. credential-checkout's rotate is an event, never "already true", so the
idempotency proof does not apply to it; what holds instead (check writes nothing, every apply
changes, observe reports nothing) is restated below, and tests/integration/test_ldap_checkout.py
covers the rest."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from jitpol.connectors.base import Connector
from jitpol.connectors.ldap import generalized_time
from jitpol.model.assignment import Action, Assignment, Op, Scope
from jitpol.model.canonical import canonical_json
from tests.helpers.clock import Now
from tests.ldap_fixtures import *  # noqa: F403 (the fixtures: ldap_server, ldap_sandbox)
from tests.ldap_fixtures import TARGET, LdapSandbox

from .suite import ConnectorContract, MakeAction

ROLE = "role-membership"
EPHEMERAL = "ephemeral-account"
CHECKOUT = "credential-checkout"


class TestLdapRoleMembershipContract(ConnectorContract):
    # a `member` value cannot carry jitpol's marker (owned None: only the ledger knows), and
    # OpenLDAP enforces no end on a membership (AD with PAM does: see the integration tests)
    marks = False
    native_end = False

    @pytest.fixture
    def entries(self, ldap_sandbox: LdapSandbox) -> tuple[str, str]:
        """(group, principal): a groupOfNames with a bystander, and a person not yet in it."""
        sb = ldap_sandbox
        principal = sb.person("alice")
        bystander = sb.person("bob")
        group = sb.group("db-admins", [bystander])
        sb.group("unrelated", [principal])  # standing access out of scope
        return group, principal

    @pytest.fixture
    def connector(self, ldap_sandbox: LdapSandbox) -> Iterator[Connector]:
        connector = ldap_sandbox.connector()
        yield connector
        connector.close()

    @pytest.fixture
    def scope(self, entries: tuple[str, str], ldap_sandbox: LdapSandbox) -> Scope:
        missing = f"cn=contract-missing,{ldap_sandbox.groups}"
        return Scope(target=TARGET, model=ROLE, privileges=frozenset({entries[0], missing}))

    @pytest.fixture
    def make_action(self, entries: tuple[str, str]) -> MakeAction:
        group, principal = entries

        def make(op: Op) -> Action:
            return Action(op=op, assignment=Assignment(TARGET, ROLE, principal, group), resource="corp-ldap",
                          grants=("g",))  # fmt: skip

        return make


class TestLdapEphemeralAccountContract(ConnectorContract):
    """The suite speaks of "grant" and "revoke"; for this model they are create-account and
    delete-account. Two suite tests assume observe() filters by scope.privileges, which this
    model does not do (it reports every account carrying jitpol's marker): they are restated
    below for that semantics. The account carries jitpol's marker (owned True) and slapd's
    ppolicy enforces its end (pwdEndTime), which follows the grant both ways."""

    marks = True
    native_end = True

    @pytest.fixture
    def groups(self, ldap_sandbox: LdapSandbox) -> list[str]:
        sb = ldap_sandbox
        bystander = sb.person("bob")
        return sorted([sb.group("db-admins", [bystander]), sb.group("db-readers", [bystander])])

    @pytest.fixture
    def connector(self, ldap_sandbox: LdapSandbox) -> Iterator[Connector]:
        ldap_sandbox.person("jit-not-ours-1", description="an account someone else made")
        connector = ldap_sandbox.connector()
        yield connector
        connector.close()

    @pytest.fixture
    def privilege(self, groups: list[str]) -> str:
        return canonical_json(sorted(groups))

    @pytest.fixture
    def scope(self, privilege: str) -> Scope:
        return Scope(target=TARGET, model=EPHEMERAL, privileges=frozenset({privilege}))

    @pytest.fixture
    def make_action(self, privilege: str, ldap_sandbox: LdapSandbox) -> MakeAction:
        until = datetime.now(UTC) + timedelta(hours=1)
        principal = f"jit-alice-{ldap_sandbox.tag[:8]}"

        def make(op: Op) -> Action:
            accounts: dict[Op, Op] = {"grant": "create-account", "revoke": "delete-account"}
            real_op = accounts.get(op, op)
            return Action(
                op=real_op,
                assignment=Assignment(TARGET, EPHEMERAL, principal, privilege),
                resource="corp-ldap-jit",
                grants=("alice-dba-1",),
                until=until if real_op == "create-account" else None,
                details=(("grant", "alice-dba-1"), ("password", "correct horse"), ("person", "alice")),
            )

        return make

    def test_fixtures_describe_a_new_assignment_in_scope(
        self, connector: Connector, scope: Scope, make_action: MakeAction
    ) -> None:
        action = make_action("grant")
        assert action.op == "create-account"
        assert make_action("revoke").op == "delete-account"
        assert action.assignment.privilege in scope.privileges
        assert action.assignment.model == scope.model
        assert action.assignment.model in connector.capabilities.models
        assert action.assignment not in connector.observe(scope)

    def test_observe_reports_only_privileges_in_scope(
        self, connector: Connector, scope: Scope, make_action: MakeAction
    ) -> None:
        action = make_action("grant")
        connector.apply(action)
        observed = connector.observe(scope)
        assert observed == {action.assignment}, "jitpol's account, and not the unmarked one"
        (account,) = observed
        assert account.target == action.target and account.model == scope.model
        assert action.until is not None  # narrowing: a create-account action always carries its end
        assert account.expires is not None and account.expires >= action.until
        # accounts are found by jitpol's marker, whatever privileges the scope names
        empty = Scope(target=scope.target, model=scope.model, privileges=frozenset())
        assert connector.observe(empty) == observed


class TestLdapCredentialCheckoutContract:
    """The contract's counterpart for a model whose only operation is an event."""

    @pytest.fixture
    def shared(self, ldap_sandbox: LdapSandbox) -> str:
        return ldap_sandbox.person("app-admin", password="standing-old")

    @pytest.fixture
    def connector(self, ldap_sandbox: LdapSandbox) -> Iterator[Connector]:
        connector = ldap_sandbox.connector()
        yield connector
        connector.close()

    @staticmethod
    def rotate(shared: str, holders: list[str], password: str) -> Action:
        return Action(
            op="rotate",
            assignment=Assignment(TARGET, CHECKOUT, shared, canonical_json(sorted(holders))),
            resource="shared-admin",
            grants=tuple(sorted(holders)),
            until=datetime.now(UTC) + timedelta(hours=1) if holders else None,
            details=(("password", password),),
        )

    def test_the_model_is_declared(self, connector: Connector) -> None:
        assert CHECKOUT in connector.capabilities.models
        assert CHECKOUT in connector.capabilities.native_expiry, "pwdEndTime ends a checked-out password"
        assert CHECKOUT not in connector.capabilities.marks, "the ledger knows the holders"

    def test_the_end_follows_the_checkout_both_ways(
        self, connector: Connector, shared: str, ldap_sandbox: LdapSandbox
    ) -> None:
        """Every rotation replaces pwdEndTime with the action's until: later, then earlier."""
        now = Now.read()
        for hours in (3, 1, 2):  # set, shorten, lengthen
            action = self.rotate(shared, ["alice-admin-1"], f"secret-{hours}")
            until = now.plus(hours=hours)
            connector.apply(replace(action, until=until))
            entry = ldap_sandbox.entry(shared, ["pwdEndTime"])
            assert entry is not None
            assert entry["raw_attributes"]["pwdEndTime"] == [generalized_time(until).encode()]

    def test_check_says_changed_and_writes_nothing(
        self, connector: Connector, shared: str, ldap_sandbox: LdapSandbox
    ) -> None:
        outcome = connector.apply(self.rotate(shared, ["alice-admin-1"], "holder-secret"), check=True)
        assert outcome.changed and not outcome.before and not outcome.after
        assert outcome.operations, "check mode lists the request it would send"
        assert ldap_sandbox.can_bind(shared, "standing-old")
        assert not ldap_sandbox.can_bind(shared, "holder-secret")

    def test_every_apply_changes_with_operations(
        self, connector: Connector, shared: str, ldap_sandbox: LdapSandbox
    ) -> None:
        for holders, password in ((["alice-admin-1"], "holder-secret"), (["alice-admin-1"], "holder-secret"),
                                  ([], "nobody-knows")):  # fmt: skip
            outcome = connector.apply(self.rotate(shared, holders, password))
            assert outcome.changed and not outcome.before and outcome.after
            assert outcome.operations
            assert ldap_sandbox.can_bind(shared, password)
        assert not ldap_sandbox.can_bind(shared, "holder-secret")

    def test_observe_reports_nothing(self, connector: Connector, shared: str) -> None:
        connector.apply(self.rotate(shared, ["alice-admin-1"], "holder-secret"))
        scope = Scope(TARGET, CHECKOUT, frozenset({canonical_json(["alice-admin-1"]), "[]"}))
        assert connector.observe(scope) == frozenset(), "the ledger knows the holders"
