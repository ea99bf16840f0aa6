"""The connector contract with the real okta SDK against the Okta HTTP double."""

from __future__ import annotations

import pytest

from jitpol.connectors.base import Connector
from jitpol.model.assignment import Action, Assignment, Op, Scope
from tests.doubles.okta import okta_id
from tests.okta_fixtures import *  # noqa: F403 (the `okta` fixture)
from tests.okta_fixtures import OKTA_TARGET, OktaWorld

from .suite import ConnectorContract, MakeAction

MODEL = "idp-elevation"


class TestOktaContract(ConnectorContract):
    @pytest.fixture
    def world(self, okta: OktaWorld) -> tuple[str, str]:
        """(group, user): an OKTA_GROUP with standing members, and a user not in it."""
        group = okta.double.add_group("prod-admins")
        user = okta.double.add_user("alice@example.com")
        for i in range(3):  # standing access that is not ours, over more than one page
            okta.double.add_member(group, okta.double.add_user(f"bystander{i}@example.com"))
        okta.double.add_member(okta.double.add_group("unrelated"), user)
        return group, user

    @pytest.fixture
    def connector(self, okta: OktaWorld) -> Connector:
        return okta.connector(page_size=2)  # closed by the okta fixture

    @pytest.fixture
    def scope(self, world: tuple[str, str]) -> Scope:
        return Scope(target=OKTA_TARGET, model=MODEL, privileges=frozenset({world[0], okta_id("00g")}))

    @pytest.fixture
    def make_action(self, world: tuple[str, str]) -> MakeAction:
        group, user = world

        def make(op: Op) -> Action:
            return Action(op=op, assignment=Assignment(OKTA_TARGET, MODEL, user, group), resource="r", grants=("g",))

        return make
