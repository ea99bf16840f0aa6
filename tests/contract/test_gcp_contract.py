"""The connector contract for GCP, through the real google-cloud-resource-manager SDK (REST) against
the local Cloud Resource Manager double, on a policy full of bindings that are not jitpol's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from jitpol.connectors.base import Connector
from jitpol.model.assignment import Action, Assignment, Op, Scope
from jitpol.model.canonical import canonical_json
from tests.gcp_fixtures import *  # noqa: F403 - the fixtures
from tests.gcp_fixtures import (
    PROJECT,
    TARGET,
    GcpConnect,
)

from .suite import ConnectorContract, MakeAction

MODEL = "idp-elevation"
PRIVILEGE = canonical_json({"resource": PROJECT, "role": "roles/cloudsql.admin"})


class TestGcpContract(ConnectorContract):
    marks = True  # the condition title "jitpol until END" marks jitpol's bindings
    native_end = True  # IAM evaluates the condition's END itself

    @pytest.fixture
    def connector(self, gcp_connect: GcpConnect) -> Iterator[Connector]:
        yield gcp_connect()

    @pytest.fixture
    def scope(self) -> Scope:
        return Scope(TARGET, MODEL, frozenset({
            PRIVILEGE,
            canonical_json({"resource": PROJECT, "role": "roles/cloudsql.viewer"}),
        }))

    @pytest.fixture
    def make_action(self) -> MakeAction:
        until = datetime.now(UTC) + timedelta(hours=2)

        def make(op: Op) -> Action:
            assignment = Assignment(TARGET, MODEL, "user:alice@example.com", PRIVILEGE)
            return Action(op=op, assignment=assignment, resource="orders", grants=("g",),
                          until=until if op == "grant" else None)

        return make
