"""The connector contract for Entra, through the real msgraph-sdk against the local HTTPS Graph
double: plain group membership (no marker, no end of its own), PIM for Groups (end enforced by
Entra, marker in the request's justification), and directory roles by display name, tenant-wide
and in an administrative unit (schedule requests: end and marker)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from jitpol.connectors.base import Connector
from jitpol.model.assignment import Action, Assignment, Op, Scope
from jitpol.model.canonical import canonical_json
from tests.doubles.graph import FakeGraph
from tests.entra_fixtures import *  # noqa: F403 - the fixtures
from tests.entra_fixtures import GROUPS_ADMIN, TARGET, USER_ADMIN, EntraConnect

from .suite import ConnectorContract, MakeAction

MODEL = "idp-elevation"


def _make(principal: str, privilege: str) -> MakeAction:
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)

    def make(op: Op) -> Action:
        return Action(op=op, assignment=Assignment(TARGET, MODEL, principal, privilege), resource="ops",
                      grants=("g",), until=until if op == "grant" else None, details=(("grant", "g"),))

    return make


class _Groups(ConnectorContract):
    @pytest.fixture
    def group(self, fake_graph: FakeGraph) -> str:
        """A group with more members than a page (someone else's), and another group the
        principal is in."""
        group = fake_graph.add_group("ops")
        for _ in range(3):
            fake_graph.add_member(group, fake_graph.add_user())
        return group

    @pytest.fixture
    def principal(self, fake_graph: FakeGraph) -> str:
        principal = fake_graph.add_user()
        fake_graph.add_member(fake_graph.add_group("other"), principal)
        return principal

    @pytest.fixture
    def scope(self, group: str) -> Scope:
        return Scope(TARGET, MODEL, frozenset({canonical_json({"group": group}),
                                               canonical_json({"group": str(uuid.uuid4())})}))

    @pytest.fixture
    def make_action(self, principal: str, group: str) -> MakeAction:
        return _make(principal, canonical_json({"group": group}))


class TestEntraGroupContract(_Groups):
    marks = False  # a plain membership has no place for a marker
    native_end = False  # and no end of its own: jitpol's revocation ends it

    @pytest.fixture
    def connector(self, entra_connect: EntraConnect) -> Iterator[Connector]:
        yield entra_connect()


class TestEntraPimGroupContract(_Groups):
    marks = True  # the schedule request's justification, found through the schedule's createdUsing
    native_end = True  # Entra ends the membership at the schedule's endDateTime

    @pytest.fixture
    def connector(self, entra_connect: EntraConnect, fake_graph: FakeGraph, group: str) -> Iterator[Connector]:
        fake_graph.add_member(group, fake_graph.add_user(), end=datetime.now(UTC) + timedelta(hours=5),
                              justification="Quarterly audit")
        # the suite revokes within a second of granting, which PIM refuses for five minutes
        # (ActiveDurationTooShort); the integration tests hold the connector to that rule
        fake_graph.min_active = timedelta(0)
        yield entra_connect(pim_groups=True)


class TestEntraDirectoryRoleContract(ConnectorContract):
    marks = True
    native_end = True

    @pytest.fixture
    def principal(self, fake_graph: FakeGraph) -> str:
        principal = fake_graph.add_user()
        for _ in range(3):  # other holders, more than a page
            fake_graph.add_role_assignment(USER_ADMIN, fake_graph.add_user())
        fake_graph.add_role_assignment(GROUPS_ADMIN, principal)  # the principal's other role
        fake_graph.add_role_assignment(USER_ADMIN, principal, member_type="Group")  # held through a group
        fake_graph.min_active = timedelta(0)
        return principal

    @pytest.fixture
    def connector(self, entra_connect: EntraConnect) -> Iterator[Connector]:
        yield entra_connect(pim_groups=True)

    @pytest.fixture
    def scope(self) -> Scope:
        return Scope(TARGET, MODEL, frozenset({
            canonical_json({"directoryRole": "User Administrator", "scope": "/"}),
            canonical_json({"directoryRole": "No Such Role", "scope": "/"}),
            canonical_json({"directoryRole": GROUPS_ADMIN, "scope": "/"}),
        }))

    @pytest.fixture
    def make_action(self, principal: str) -> MakeAction:
        return _make(principal, canonical_json({"directoryRole": "User Administrator", "scope": "/"}))


class TestEntraAdministrativeUnitRoleContract(ConnectorContract):
    marks = True
    native_end = True

    @pytest.fixture
    def unit(self, fake_graph: FakeGraph) -> str:
        unit = str(uuid.uuid4())
        fake_graph.units.add(unit)
        return unit

    @pytest.fixture
    def principal(self, fake_graph: FakeGraph, unit: str) -> str:
        principal = fake_graph.add_user()
        fake_graph.add_role_assignment(USER_ADMIN, principal)  # tenant-wide: another privilege
        fake_graph.add_role_assignment(USER_ADMIN, fake_graph.add_user(), scope=f"/administrativeUnits/{unit}",
                                       end=datetime.now(UTC) + timedelta(hours=3), justification="helpdesk rota")
        fake_graph.min_active = timedelta(0)
        return principal

    @pytest.fixture
    def connector(self, entra_connect: EntraConnect) -> Iterator[Connector]:
        yield entra_connect(pim_groups=True)

    @pytest.fixture
    def scope(self, unit: str) -> Scope:
        return Scope(TARGET, MODEL, frozenset({
            canonical_json({"directoryRole": USER_ADMIN, "scope": f"/administrativeUnits/{unit}"}),
            canonical_json({"directoryRole": USER_ADMIN, "scope": "/"}),
        }))

    @pytest.fixture
    def make_action(self, principal: str, unit: str) -> MakeAction:
        return _make(principal, canonical_json({"directoryRole": USER_ADMIN, "scope": f"/administrativeUnits/{unit}"}))
