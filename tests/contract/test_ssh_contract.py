"""The connector contract on a real sshd (one per test session, in a private mount namespace),
for each of the ssh connector's three models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest

from jitpol.connectors.base import Connector
from jitpol.connectors.ssh import SshConnector
from jitpol.model.assignment import Action, Assignment, Op, Scope
from jitpol.model.canonical import canonical_json
from tests.ssh_fixtures import (  # noqa: F401 - pytest finds the fixtures in this module
    TARGET,
    SshHost,
    ssh_host_fixture,
    ssh_root_fixture,
    sshd_server_fixture,
    unique,
)

from .suite import ConnectorContract, MakeAction

# far enough ahead that nothing expires during a test
WINDOW = timedelta(hours=1)


class TestSshRoleMembershipContract(ConnectorContract):
    """A line of /etc/group has no room for a marker (owned None) and membership has no end."""

    MODEL = "role-membership"
    marks: ClassVar[bool] = False
    native_end: ClassVar[bool] = False

    @pytest.fixture
    def connector(self, ssh_host: SshHost, ssh_root: SshConnector) -> Connector:
        # the session's connector (one SSH connection); ssh_host removes what the test made
        return ssh_root

    @pytest.fixture
    def roles(self, ssh_host: SshHost) -> tuple[str, str]:
        """(group, principal): a group and a login user, not yet a member."""
        group = ssh_host.group()
        principal = ssh_host.user()
        # standing memberships that are not ours, in scope and out of it
        ssh_host.add_member(group, ssh_host.user("by"))
        ssh_host.add_member(ssh_host.group("un"), principal)
        return group, principal

    @pytest.fixture
    def scope(self, roles: tuple[str, str]) -> Scope:
        return Scope(TARGET, self.MODEL, frozenset({roles[0], "contract_missing_group"}))

    @pytest.fixture
    def make_action(self, roles: tuple[str, str]) -> MakeAction:
        group, principal = roles

        def make(op: Op) -> Action:
            return Action(op=op, assignment=Assignment(TARGET, self.MODEL, principal, group),
                          resource="web-docker", grants=("g-contract",))

        return make


class TestSshSudoRuleContract(ConnectorContract):
    """jitpol's header marks its drop-ins; NOTAFTER is the native end."""

    MODEL = "sudo-rule"
    marks: ClassVar[bool] = True
    native_end: ClassVar[bool] = True

    @pytest.fixture
    def connector(self, ssh_host: SshHost, ssh_root: SshConnector) -> Connector:
        # the session's connector (one SSH connection); ssh_host removes what the test made
        return ssh_root

    @pytest.fixture
    def principal(self, ssh_host: SshHost) -> str:
        return ssh_host.user()

    @pytest.fixture
    def privilege(self) -> str:
        return canonical_json({"command": "/usr/bin/id -u", "runAs": "root"})

    @pytest.fixture
    def scope(self, privilege: str) -> Scope:
        other = canonical_json({"command": "/usr/bin/true", "runAs": "root"})
        return Scope(TARGET, self.MODEL, frozenset({privilege, other}))

    @pytest.fixture
    def make_action(self, principal: str, privilege: str) -> MakeAction:
        until = datetime.now(UTC) + WINDOW  # one end for every action: another end would move it

        def make(op: Op) -> Action:
            return Action(
                op=op, assignment=Assignment(TARGET, self.MODEL, principal, privilege), resource="web-sudo",
                grants=("g-contract",), until=until if op == "grant" else None,
                details=(("grant", "g-contract"), ("person", "alice")),
            )

        return make


class TestSshEphemeralAccountContract(ConnectorContract):
    """Operations create-account / delete-account; observe reports every account carrying
    jitpol's marker (the GECOS comment), whatever scope.privileges names. Native ends: the
    keys' expiry-time and the account's expiry day."""

    MODEL = "ephemeral-account"
    marks: ClassVar[bool] = True
    native_end: ClassVar[bool] = True
    add_op: ClassVar[Op] = "create-account"
    remove_op: ClassVar[Op] = "delete-account"
    observe_filters_by_privileges: ClassVar[bool] = False

    @pytest.fixture
    def connector(self, ssh_host: SshHost, ssh_root: SshConnector) -> Connector:
        return ssh_root

    @pytest.fixture
    def groups(self, ssh_host: SshHost) -> list[str]:
        return sorted([ssh_host.group(), ssh_host.group()])

    @pytest.fixture
    def scope(self, groups: list[str]) -> Scope:
        return Scope(TARGET, self.MODEL, frozenset({canonical_json(groups)}))

    @pytest.fixture
    def make_action(self, ssh_host: SshHost, groups: list[str]) -> MakeAction:
        account = unique("jit-alice-")
        keys = ssh_host.public_key + " alice@laptop\n"
        until = datetime.now(UTC) + WINDOW  # one end for every action: another end would move it

        def make(op: Op) -> Action:
            return Action(
                op=op, assignment=Assignment(TARGET, self.MODEL, account, canonical_json(groups)),
                resource="web-shell", grants=("g-contract",),
                until=until if op == self.add_op else None,
                details=(("grant", "g-contract"), ("person", "alice"), ("ssh_keys", keys)),
            )

        return make
