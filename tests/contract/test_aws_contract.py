"""The connector contract on AWS APIs served by moto (through tests/aws_fixtures.py's shim, so
account assignment requests start IN_PROGRESS and are polled, as on AWS)."""

from __future__ import annotations

import pytest

from jitpol.connectors.base import Connector
from jitpol.model.assignment import Action, Assignment, Op, Scope
from jitpol.model.canonical import canonical_json
from tests.aws_fixtures import *  # noqa: F403 (the fixtures: moto_server, aws_shim, aws)
from tests.aws_fixtures import AWS_TARGET, AwsWorld

from .suite import ConnectorContract, MakeAction

MODEL = "idp-elevation"


class _AwsContract(ConnectorContract):
    """What both AWS privilege forms share: `world` is (privilege, principal)."""

    @pytest.fixture
    def make_action(self, world: tuple[str, str]) -> MakeAction:
        privilege, principal = world

        def make(op: Op) -> Action:
            assignment = Assignment(AWS_TARGET, MODEL, principal, privilege)
            return Action(op=op, assignment=assignment, resource="r", grants=("g",))

        return make


class TestAwsAccountAssignmentContract(_AwsContract):
    """Privilege {"account", "permissionSet"}, principal {"userId"}."""

    @pytest.fixture
    def world(self, aws: AwsWorld) -> tuple[str, str]:
        """(privilege, principal): a permission set in an account, and a user not assigned."""
        permission_set = aws.permission_set()
        user = aws.user("alice")
        aws.assign(permission_set, "USER", aws.user("bystander"))  # standing access, not ours
        aws.assign(permission_set, "GROUP", aws.group("bystanders"))
        privilege = canonical_json({"account": aws.ACCOUNT, "permissionSet": permission_set})
        return privilege, canonical_json({"userId": user})

    @pytest.fixture
    def connector(self, aws: AwsWorld) -> Connector:
        return aws.connector()  # closed by the aws fixture

    @pytest.fixture
    def scope(self, aws: AwsWorld, world: tuple[str, str]) -> Scope:
        missing = canonical_json({"account": aws.ACCOUNT, "permissionSet": aws.missing_permission_set()})
        return Scope(target=AWS_TARGET, model=MODEL, privileges=frozenset({world[0], missing}))


class TestAwsIamGroupContract(_AwsContract):
    """Privilege {"iamGroup"}, principal {"iamUser"}."""

    @pytest.fixture
    def world(self, aws: AwsWorld) -> tuple[str, str]:
        group = aws.iam_group("admins")
        user = aws.iam_user("alice")
        bystander = aws.iam_user("bystander")
        aws.iam.add_user_to_group(GroupName=group, UserName=bystander)
        aws.iam.add_user_to_group(GroupName=aws.iam_group("unrelated"), UserName=user)
        return canonical_json({"iamGroup": group}), canonical_json({"iamUser": user})

    @pytest.fixture
    def connector(self, aws: AwsWorld) -> Connector:
        return aws.connector(page_size=1)  # every list comes in pages of one

    @pytest.fixture
    def scope(self, aws: AwsWorld, world: tuple[str, str]) -> Scope:
        missing = canonical_json({"iamGroup": aws.unique("missing")})
        return Scope(target=AWS_TARGET, model=MODEL, privileges=frozenset({world[0], missing}))
