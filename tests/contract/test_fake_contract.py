"""The connector contract on the in-memory twin."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from jitpol.connectors.base import Connector
from jitpol.connectors.fake import FakeConnector
from jitpol.model.assignment import Action, Assignment, Op, Scope
from tests.helpers.clock import Now

from .suite import ConnectorContract, MakeAction

TARGET = "fake-1"
MODEL = "role-membership"


class TestFakeContract(ConnectorContract):
    marks = True
    @pytest.fixture
    def connector(self, tmp_path: Path) -> Iterator[Connector]:
        state = tmp_path / "state.json"
        # someone else's standing access, in and out of scope, so observe has more to filter
        state.write_text(json.dumps({"members": {"app_readonly": ["carol"], "unrelated": ["dave"]}}))
        connector = FakeConnector(TARGET, {"state_file": str(state)}, {})
        yield connector
        connector.close()

    @pytest.fixture
    def scope(self) -> Scope:
        return Scope(target=TARGET, model=MODEL, privileges=frozenset({"app_readonly", "app_writer"}))

    @pytest.fixture
    def make_action(self) -> MakeAction:
        def make(op: Op) -> Action:
            assignment = Assignment(TARGET, MODEL, "alice", "app_readonly")
            return Action(op=op, assignment=assignment, resource="prod-db", grants=("alice-prod-db",))

        return make


def test_a_marker_driven_revoke_never_takes_standing_access(tmp_path: Path) -> None:
    """A revoke of marked access no grant backs (drift, no resource) that finds the member
    unmarked when it runs (standing access, e.g. added since observe) leaves it, as the real
    connectors do; jitpol's own member goes."""
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"members": {"app_readonly": ["carol"]}}))
    connector = FakeConnector(TARGET, {"state_file": str(state)}, {})
    connector.apply(Action("grant", Assignment(TARGET, MODEL, "alice", "app_readonly"), resource="r", grants=("g",)))

    def marked(principal: str) -> Action:
        return Action("revoke", Assignment(TARGET, MODEL, principal, "app_readonly"), resource="", grants=(),
                      drift=True)

    assert not connector.apply(marked("carol")).changed
    assert connector.apply(marked("alice")).changed
    assert json.loads(state.read_text())["members"]["app_readonly"] == ["carol"]


class TestFakeEphemeralAccountContract(ConnectorContract):
    """The twin's ephemeral accounts: the suite's grant/revoke are create-account/delete-account;
    accounts carry jitpol's marker (owned True) and their end (`expires`) follows the grant both
    ways. observe() reports every account, whatever scope.privileges names."""

    add_op = "create-account"
    remove_op = "delete-account"
    observe_filters_by_privileges = False
    marks = True
    native_end = True

    @pytest.fixture
    def connector(self, tmp_path: Path) -> Iterator[Connector]:
        state = tmp_path / "state.json"
        state.write_text(json.dumps({"members": {"app_readonly": ["carol"]}}))
        connector = FakeConnector(TARGET, {"state_file": str(state)}, {})
        yield connector
        connector.close()

    @pytest.fixture
    def scope(self) -> Scope:
        return Scope(target=TARGET, model="ephemeral-account", privileges=frozenset({'["app_readonly"]'}))

    @pytest.fixture
    def make_action(self) -> MakeAction:
        def make(op: Op) -> Action:
            assignment = Assignment(TARGET, "ephemeral-account", "jit-alice-1", '["app_readonly"]')
            return Action(op=op, assignment=assignment, resource="scratch", grants=("alice-scratch",),
                          until=Now.read().plus(hours=1) if op == "create-account" else None)

        return make


class TestFakeCredentialCheckoutContract:
    """The contract's counterpart for the twin's credential checkout (its only operation is a
    rotation, an event: always a change, never observed; the ledger knows the holders)."""

    @pytest.fixture
    def state(self, tmp_path: Path) -> Path:
        path = tmp_path / "state.json"
        path.write_text(json.dumps({"members": {}, "shared": {"app_admin": {"password": "standing"}}}))
        return path

    @pytest.fixture
    def connector(self, state: Path) -> Iterator[FakeConnector]:
        connector = FakeConnector(TARGET, {"state_file": str(state)}, {})
        yield connector
        connector.close()

    @staticmethod
    def rotate(holders: list[str], password: str) -> Action:
        return Action(op="rotate", assignment=Assignment(TARGET, "credential-checkout", "app_admin",
                                                         json.dumps(sorted(holders))),
                      resource="shared-admin", grants=tuple(sorted(holders)),
                      until=Now.read().plus(hours=1) if holders else None, details=(("password", password),))

    @staticmethod
    def shared(state: Path) -> dict[str, str]:
        return dict(json.loads(state.read_text())["shared"]["app_admin"])

    def test_the_model_is_declared(self, connector: FakeConnector) -> None:
        assert "credential-checkout" in connector.capabilities.models
        assert "credential-checkout" not in connector.capabilities.marks

    def test_check_says_changed_and_writes_nothing(self, connector: FakeConnector, state: Path) -> None:
        outcome = connector.apply(self.rotate(["g1"], "holder-secret"), check=True)
        assert outcome.changed and not outcome.after and outcome.operations
        assert self.shared(state)["password"] == "standing"

    def test_every_rotation_changes_and_sets_the_end(self, connector: FakeConnector, state: Path) -> None:
        for holders, password in ((["g1"], "s1"), (["g1"], "s1"), ([], "nobody")):
            outcome = connector.apply(self.rotate(holders, password))
            assert outcome.changed and outcome.after
            assert self.shared(state)["password"] == password
            assert (self.shared(state)["until"] is None) == (not holders)

    def test_observe_reports_nothing(self, connector: FakeConnector) -> None:
        connector.apply(self.rotate(["g1"], "s1"))
        assert connector.observe(Scope(TARGET, "credential-checkout", frozenset({"app_admin"}))) == frozenset()

    def test_a_missing_account_or_password_is_refused(self, connector: FakeConnector) -> None:
        from jitpol.errors import PermanentTargetError

        with pytest.raises(PermanentTargetError, match="does not exist"):
            connector.apply(Action(op="rotate", assignment=Assignment(TARGET, "credential-checkout", "nope", "[]"),
                                   resource="r", grants=(), details=(("password", "x"),)))
        with pytest.raises(PermanentTargetError, match="needs a new password"):
            connector.apply(Action(op="rotate", assignment=Assignment(TARGET, "credential-checkout", "app_admin",
                                                                      "[]"), resource="r", grants=()))
