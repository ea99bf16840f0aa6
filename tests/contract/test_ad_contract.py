"""The connector contract for the LDAP connector's `flavor: active-directory` on a real Samba AD
domain controller (one per test session, tests/ad_fixtures.py), for every model the connector
declares: role-membership, ephemeral-account and credential-checkout (its counterpart: a
rotation is an event, never "already true").

Samba implements no TTL-linked membership, so role-membership has no native end here (an AD
forest with the PAM feature would end memberships itself; that path is tested as built in
tests/integration/test_ldap_connector.py). AD's unicodePwd cannot be read back, so a
create-account carrying a password always sets it (a re-delivered secret): the idempotency
proof uses actions without one, which create the account disabled."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from jitpol.connectors.base import Connector
from jitpol.connectors.ldap import filetime
from jitpol.model.assignment import Action, Assignment, Op, Scope
from jitpol.model.canonical import canonical_json
from tests.ad_fixtures import *  # noqa: F403 (the fixtures: ad_server, ad_sandbox)
from tests.ad_fixtures import TARGET, AdSandbox
from tests.helpers.clock import Now

from .suite import ConnectorContract, MakeAction

ROLE = "role-membership"
EPHEMERAL = "ephemeral-account"
CHECKOUT = "credential-checkout"


class TestAdRoleMembershipContract(ConnectorContract):
    # a `member` value cannot carry jitpol's marker; Samba has no TTL links (no native end)
    marks = False
    native_end = False

    @pytest.fixture
    def entries(self, ad_sandbox: AdSandbox) -> tuple[str, str]:
        """(group, principal): an AD group with a bystander, and a user not yet in it."""
        sb = ad_sandbox
        principal = sb.user("alice")
        group = sb.group("db-admins", [sb.user("bob")])
        sb.group("unrelated", [principal])  # standing access out of scope
        return group, principal

    @pytest.fixture
    def connector(self, ad_sandbox: AdSandbox) -> Iterator[Connector]:
        connector = ad_sandbox.connector()
        yield connector
        connector.close()

    @pytest.fixture
    def scope(self, entries: tuple[str, str], ad_sandbox: AdSandbox) -> Scope:
        missing = f"cn=contract-missing,{ad_sandbox.groups}"
        return Scope(target=TARGET, model=ROLE, privileges=frozenset({entries[0], missing}))

    @pytest.fixture
    def make_action(self, entries: tuple[str, str]) -> MakeAction:
        group, principal = entries

        def make(op: Op) -> Action:
            return Action(
                op=op, assignment=Assignment(TARGET, ROLE, principal, group), resource="corp-ad", grants=("g",)
            )

        return make


class TestAdEphemeralAccountContract(ConnectorContract):
    """create-account/delete-account; observe finds accounts by jitpol's marker, whatever the
    scope's privileges (restated below as for OpenLDAP); the DC enforces accountExpires, which
    follows the grant both ways."""

    add_op = "create-account"
    remove_op = "delete-account"
    observe_filters_by_privileges = False
    marks = True
    native_end = True

    @pytest.fixture
    def groups(self, ad_sandbox: AdSandbox) -> list[str]:
        sb = ad_sandbox
        bystander = sb.user("bob")
        return sorted([sb.group("db-admins", [bystander]), sb.group("db-readers", [bystander])])

    @pytest.fixture
    def connector(self, ad_sandbox: AdSandbox) -> Iterator[Connector]:
        ad_sandbox.user(f"jit-not-ours-{ad_sandbox.tag[:6]}", description="an account someone else made")
        connector = ad_sandbox.connector()
        yield connector
        connector.close()

    @pytest.fixture
    def privilege(self, groups: list[str]) -> str:
        return canonical_json(sorted(groups))

    @pytest.fixture
    def scope(self, privilege: str) -> Scope:
        return Scope(target=TARGET, model=EPHEMERAL, privileges=frozenset({privilege}))

    @pytest.fixture
    def make_action(self, privilege: str, ad_sandbox: AdSandbox) -> MakeAction:
        until = datetime.now(UTC) + timedelta(hours=1)
        principal = f"jit-alice-{ad_sandbox.tag[:8]}"

        def make(op: Op) -> Action:
            return Action(
                op=op,
                assignment=Assignment(TARGET, EPHEMERAL, principal, privilege),
                resource="corp-ad-jit",
                grants=("alice-dba-1",),
                until=until if op == "create-account" else None,
                details=(("grant", "alice-dba-1"), ("person", "alice")),
            )

        return make


class TestAdCredentialCheckoutContract:
    """The contract's counterpart for a model whose only operation is an event."""

    @pytest.fixture
    def shared(self, ad_sandbox: AdSandbox) -> str:
        return ad_sandbox.user("svc-admin", password="Standing-old-1")

    @pytest.fixture
    def connector(self, ad_sandbox: AdSandbox) -> Iterator[Connector]:
        connector = ad_sandbox.connector()
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
        assert CHECKOUT in connector.capabilities.native_expiry, "accountExpires ends a checked-out password"
        assert CHECKOUT not in connector.capabilities.marks, "the ledger knows the holders"

    def test_the_end_follows_the_checkout_both_ways(
        self, connector: Connector, shared: str, ad_sandbox: AdSandbox
    ) -> None:
        now = Now.read()
        for hours in (3, 1, 2):  # set, shorten, lengthen
            until = now.plus(hours=hours)
            connector.apply(replace(self.rotate(shared, ["alice-admin-1"], f"Secret-{hours}-xyz"), until=until))
            assert ad_sandbox.attribute(shared, "accountExpires") == [str(filetime(until))]

    def test_check_says_changed_and_writes_nothing(
        self, connector: Connector, shared: str, ad_sandbox: AdSandbox
    ) -> None:
        outcome = connector.apply(self.rotate(shared, ["alice-admin-1"], "Holder-secret-1"), check=True)
        assert outcome.changed and not outcome.before and not outcome.after
        assert len(outcome.operations) == 2, "check mode lists both requests it would send"
        assert ad_sandbox.can_bind(shared, "Standing-old-1")
        assert not ad_sandbox.can_bind(shared, "Holder-secret-1")

    def test_every_apply_changes_and_leaves_only_the_last_password(
        self, connector: Connector, shared: str, ad_sandbox: AdSandbox
    ) -> None:
        rotations: list[tuple[list[str], str]] = [
            (["alice-admin-1"], "Holder-secret-1"),
            (["alice-admin-1"], "Holder-secret-1"),
            ([], "Nobody-knows-1"),
        ]
        for holders, password in rotations:
            outcome = connector.apply(self.rotate(shared, holders, password))
            assert outcome.changed and not outcome.before and outcome.after
            assert outcome.operations
            assert ad_sandbox.can_bind(shared, password)
        for earlier in ("Holder-secret-1", "Standing-old-1"):
            assert not ad_sandbox.can_bind(shared, earlier), earlier

    def test_observe_reports_nothing(self, connector: Connector, shared: str) -> None:
        connector.apply(self.rotate(shared, ["alice-admin-1"], "Holder-secret-1"))
        scope = Scope(TARGET, CHECKOUT, frozenset({canonical_json(["alice-admin-1"]), "[]"}))
        assert connector.observe(scope) == frozenset(), "the ledger knows the holders"
