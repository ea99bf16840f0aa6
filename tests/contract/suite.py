"""The contract every connector passes: DESIGN.md's four-step idempotency proof.

Subclass ConnectorContract as `Test<Something>Contract` and provide three fixtures:

    connector    a Connector instance (closed by the subclass afterwards)
    scope        a Scope whose privileges include make_action's privilege
    make_action  op -> Action for ONE assignment that does not exist yet on the target, whose
                 principal and privilege do exist there (and whose target is connector.name)

Models whose operations are not "grant"/"revoke" set the class attributes `add_op` and
`remove_op` (ephemeral accounts: "create-account"/"delete-account"); the tests then ask
make_action for those. A model whose observe() reports every object jitpol manages whatever
scope.privileges names (ephemeral accounts, found by jitpol's marker) sets
`observe_filters_by_privileges = False`.

Two more class attributes state what the connector promises, and the suite holds it to them:
`marks` (the model's assignments carry jitpol's ownership marker, so observe reports `owned`
True for what jitpol granted; otherwise `owned` is None, never False) and `native_end` (the
target enforces the action's `until` itself, and it follows the grant's live end both ways:
a later end extends it, an earlier one shortens it).

The tests follow the proof in order: check says "would change" and writes nothing -> check of
the opposite says nothing to do -> apply changes -> apply again changes nothing -> observe shows
it; then the same for revoke. Every test starts from the fresh fixtures, so each can fail alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import ClassVar

import pytest

from jitpol.connectors.base import Connector
from jitpol.model.assignment import Action, Assignment, Op, Scope
from jitpol.plan.diff import END_SLACK
from tests.helpers.clock import Now

MakeAction = Callable[[Op], Action]


class ConnectorContract:
    add_op: ClassVar[Op] = "grant"
    remove_op: ClassVar[Op] = "revoke"
    observe_filters_by_privileges: ClassVar[bool] = True
    marks: ClassVar[bool] = False
    native_end: ClassVar[bool] = False

    # -- fixtures the subclass provides -----------------------------------------------------

    @pytest.fixture
    def connector(self) -> Connector:
        raise NotImplementedError("the contract subclass must provide a `connector` fixture")

    @pytest.fixture
    def scope(self) -> Scope:
        raise NotImplementedError("the contract subclass must provide a `scope` fixture")

    @pytest.fixture
    def make_action(self) -> MakeAction:
        raise NotImplementedError("the contract subclass must provide a `make_action` fixture")

    # -- the fixtures agree with each other -------------------------------------------------

    def test_fixtures_describe_a_new_assignment_in_scope(
        self, connector: Connector, scope: Scope, make_action: MakeAction
    ) -> None:
        action = make_action(self.add_op)
        assert action.op == self.add_op
        assert action.assignment.privilege in scope.privileges
        assert action.assignment.model == scope.model
        assert action.assignment.model in connector.capabilities.models
        assert action.assignment not in connector.observe(scope)

    # -- granting ---------------------------------------------------------------------------

    def test_check_grant_says_changed_and_writes_nothing(
        self, connector: Connector, scope: Scope, make_action: MakeAction
    ) -> None:
        before = connector.observe(scope)
        outcome = connector.apply(make_action(self.add_op), check=True)
        assert outcome.changed
        assert not outcome.before
        assert outcome.operations, "check mode lists the statements it would send"
        assert connector.observe(scope) == before

    def test_check_revoke_of_absent_assignment_says_not_changed(
        self, connector: Connector, scope: Scope, make_action: MakeAction
    ) -> None:
        before = connector.observe(scope)
        outcome = connector.apply(make_action(self.remove_op), check=True)
        assert not outcome.changed
        assert outcome.before and outcome.after
        assert outcome.operations == ()
        assert connector.observe(scope) == before

    def test_apply_grant_says_changed_with_operations(
        self, connector: Connector, scope: Scope, make_action: MakeAction
    ) -> None:
        outcome = connector.apply(make_action(self.add_op))
        assert outcome.changed
        assert not outcome.before
        assert outcome.after
        assert outcome.operations

    def test_apply_grant_again_changes_nothing(
        self, connector: Connector, scope: Scope, make_action: MakeAction
    ) -> None:
        connector.apply(make_action(self.add_op))
        again = connector.apply(make_action(self.add_op))
        assert not again.changed
        assert again.before and again.after
        assert again.operations == ()
        in_check_mode = connector.apply(make_action(self.add_op), check=True)
        assert not in_check_mode.changed
        assert in_check_mode.operations == ()

    def test_observe_shows_granted_assignment(
        self, connector: Connector, scope: Scope, make_action: MakeAction
    ) -> None:
        action = make_action(self.add_op)
        before = connector.observe(scope)
        connector.apply(action)
        # the granted assignment, and nothing else, is new
        assert connector.observe(scope) == before | {action.assignment}

    # -- revoking ---------------------------------------------------------------------------

    def test_check_revoke_says_changed_and_writes_nothing(
        self, connector: Connector, scope: Scope, make_action: MakeAction
    ) -> None:
        connector.apply(make_action(self.add_op))
        before = connector.observe(scope)
        outcome = connector.apply(make_action(self.remove_op), check=True)
        assert outcome.changed
        assert not outcome.before
        assert outcome.operations
        assert connector.observe(scope) == before
        assert make_action(self.remove_op).assignment in before

    def test_apply_revoke_says_changed_with_operations(
        self, connector: Connector, scope: Scope, make_action: MakeAction
    ) -> None:
        connector.apply(make_action(self.add_op))
        outcome = connector.apply(make_action(self.remove_op))
        assert outcome.changed
        assert not outcome.before
        assert outcome.after
        assert outcome.operations

    def test_apply_revoke_again_changes_nothing(
        self, connector: Connector, scope: Scope, make_action: MakeAction
    ) -> None:
        connector.apply(make_action(self.add_op))
        connector.apply(make_action(self.remove_op))
        again = connector.apply(make_action(self.remove_op))
        assert not again.changed
        assert again.before and again.after
        assert again.operations == ()

    def test_observe_no_longer_shows_revoked_assignment(
        self, connector: Connector, scope: Scope, make_action: MakeAction
    ) -> None:
        before = connector.observe(scope)
        connector.apply(make_action(self.add_op))
        connector.apply(make_action(self.remove_op))
        after = connector.observe(scope)
        assert make_action(self.remove_op).assignment not in after
        assert after == before

    # -- observing --------------------------------------------------------------------------

    def test_observe_reports_only_privileges_in_scope(
        self, connector: Connector, scope: Scope, make_action: MakeAction
    ) -> None:
        action = make_action(self.add_op)
        connector.apply(action)
        observed = connector.observe(scope)
        assert observed, "the granted assignment at least"
        for a in observed:
            assert a.target == action.target
            assert a.model == scope.model
        if not self.observe_filters_by_privileges:
            # found by jitpol's marker: the same answer whatever privileges the scope names
            assert action.assignment in observed
            empty = Scope(target=scope.target, model=scope.model, privileges=frozenset())
            assert connector.observe(empty) == observed
            return
        for a in observed:
            assert a.privilege in scope.privileges

        # the same target asked about other privileges only must not mention this one
        others = Scope(
            target=scope.target,
            model=scope.model,
            privileges=(scope.privileges - {action.assignment.privilege}) | {"contract_absent_privilege"},
        )
        assert all(a.privilege != action.assignment.privilege for a in connector.observe(others))
        empty = Scope(target=scope.target, model=scope.model, privileges=frozenset())
        assert connector.observe(empty) == frozenset()


    # -- who gave it, and until when (SPEC section 6) ----------------------------------------

    def test_observe_says_whether_jitpol_gave_it(
        self, connector: Connector, scope: Scope, make_action: MakeAction
    ) -> None:
        action = make_action(self.add_op)
        model = action.assignment.model
        assert (model in connector.capabilities.marks) == self.marks, "the class states what the connector declares"
        connector.apply(action)
        mine = _observed(connector, scope, action.assignment)
        if self.marks:
            assert mine.owned is True, "what jitpol granted carries its ownership marker"
        else:
            assert mine.owned is None, "a target that cannot carry a marker says unknown (None), never False"

    def test_native_end_follows_the_grant_both_ways(
        self, connector: Connector, scope: Scope, make_action: MakeAction
    ) -> None:
        action = make_action(self.add_op)
        assert (action.assignment.model in connector.capabilities.native_expiry) == self.native_end
        if not self.native_end:
            connector.apply(replace(action, until=Now.read().plus(hours=3)))
            assert _observed(connector, scope, action.assignment).expires is None, (
                "a target that does not enforce ends reports none")
            return
        now = Now.read()
        extend = tuple(sorted({**dict(action.details), "mode": "extend"}.items()))
        for hours, first in ((3, True), (1, False), (2, False)):  # set, shorten, lengthen
            until = now.plus(hours=hours)
            step = replace(action, until=until) if first else replace(action, until=until, details=extend)
            outcome = connector.apply(step)
            assert outcome.changed, f"setting the end to +{hours}h changes the target"
            _assert_near(_observed(connector, scope, action.assignment).expires, until)
            again = connector.apply(step)
            assert not again.changed, f"the end +{hours}h is already in place"


def _observed(connector: Connector, scope: Scope, assignment: Assignment) -> Assignment:
    found = [a for a in connector.observe(scope) if a == assignment]
    assert len(found) == 1, f"observe shows {assignment} once"
    return found[0]


def _assert_near(enforced: datetime | None, until: datetime) -> None:
    assert enforced is not None, "the target enforces an end"
    assert abs(enforced - until) <= END_SLACK, f"the target enforces {enforced}, the grant ends {until}"
