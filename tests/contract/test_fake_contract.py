"""The connector contract on the in-memory twin."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from jitpol.connectors.base import Connector
from jitpol.connectors.fake import FakeConnector
from jitpol.model.assignment import Action, Assignment, Op, Scope

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
