"""The connector contract for Azure, through the real azure-mgmt-authorization SDK against the
local HTTPS ARM double: plain role assignments (role named by NAME, resolved through
roleDefinitions; marked in their description) and PIM schedule requests (role named by GUID, with
an enforced end that follows the grant both ways; marked in the request's justification)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from jitpol.connectors.base import Connector
from jitpol.model.assignment import Action, Assignment, Op, Scope
from jitpol.model.canonical import canonical_json
from tests.azure_fixtures import *  # noqa: F403 - the fixtures
from tests.azure_fixtures import (
    CONTRIBUTOR,
    READER,
    RG_SCOPE,
    SUB_SCOPE,
    TARGET,
    AzureConnect,
)
from tests.doubles.arm import FakeArm

from .suite import ConnectorContract, MakeAction

MODEL = "idp-elevation"


def _bystanders(arm: FakeArm, principal: str) -> None:
    """Standing access that is not ours: other holders of the role in scope (more than a page
    of them), the principal's other role, and the same role inherited from the subscription."""
    for _ in range(3):
        arm.add_assignment(RG_SCOPE, READER, str(uuid.uuid4()))
    arm.add_assignment(RG_SCOPE, CONTRIBUTOR, principal)
    arm.add_assignment(SUB_SCOPE, READER, principal)


class TestAzurePlainContract(ConnectorContract):
    marks = True  # the role assignment's description carries "jitpol: grant=<name>"
    native_end = False  # plain role assignments last until jitpol revokes them

    @pytest.fixture
    def principal(self, fake_arm: FakeArm) -> str:
        principal = str(uuid.uuid4())
        _bystanders(fake_arm, principal)
        return principal

    @pytest.fixture
    def connector(self, azure_connect: AzureConnect) -> Iterator[Connector]:
        yield azure_connect()

    @pytest.fixture
    def scope(self) -> Scope:
        return Scope(TARGET, MODEL, frozenset({
            canonical_json({"scope": RG_SCOPE, "role": "Reader"}),
            canonical_json({"scope": RG_SCOPE, "role": "No Such Role"}),
        }))

    @pytest.fixture
    def make_action(self, principal: str) -> MakeAction:
        def make(op: Op) -> Action:
            privilege = canonical_json({"scope": RG_SCOPE, "role": "Reader"})
            return Action(op=op, assignment=Assignment(TARGET, MODEL, principal, privilege), resource="orders",
                          grants=("g",), until=datetime.now(UTC) + timedelta(hours=2) if op == "grant" else None)

        return make


class TestAzurePimContract(ConnectorContract):
    marks = True  # the schedule request's justification, found through the assignment's schedule
    native_end = True  # PIM ends the assignment at its endDateTime

    @pytest.fixture
    def principal(self, fake_arm: FakeArm) -> str:
        principal = str(uuid.uuid4())
        _bystanders(fake_arm, principal)
        fake_arm.add_assignment(RG_SCOPE, READER, str(uuid.uuid4()), end=datetime.now(UTC) + timedelta(hours=5),
                                justification="Quarterly audit")
        # the suite revokes within a second of granting, which PIM refuses for five minutes
        # (ActiveDurationTooShort); the integration tests hold the connector to that rule
        fake_arm.min_active = timedelta(0)
        return principal

    @pytest.fixture
    def connector(self, azure_connect: AzureConnect) -> Iterator[Connector]:
        yield azure_connect(pim=True)

    @pytest.fixture
    def scope(self) -> Scope:
        return Scope(TARGET, MODEL, frozenset({
            canonical_json({"scope": RG_SCOPE, "role": READER}),
            canonical_json({"scope": RG_SCOPE, "role": CONTRIBUTOR}),
        }))

    @pytest.fixture
    def make_action(self, principal: str) -> MakeAction:
        until = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)

        def make(op: Op) -> Action:
            privilege = canonical_json({"scope": RG_SCOPE, "role": READER})
            return Action(op=op, assignment=Assignment(TARGET, MODEL, principal, privilege), resource="orders",
                          grants=("g",), until=until if op == "grant" else None)

        return make
