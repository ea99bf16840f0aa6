"""idp-elevation through the CLI against moto (AWS) — a person with both an Identity Center user
and an IAM user gets each privilege under the right identity, converges, and is revoked."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from jitpol.cli.main import cli
from tests.aws_fixtures import *  # noqa: F403
from tests.aws_fixtures import AWS_ENV, AwsWorld
from tests.helpers.repo import RepoBuilder


def run(rb: RepoBuilder, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--repo", str(rb.root)], env=dict(AWS_ENV), catch_exceptions=False)


def test_aws_identity_center_and_iam_group(tmp_path: Path, aws: AwsWorld) -> None:
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    rb.config(targets={"db": {"type": "fake", "state_file": str(tmp_path / "fake.json")},
                       "cloud": {"type": "aws", "region": "us-east-1", "endpoint_url": aws.shim.endpoint_url}})
    user_id, iam_user = aws.user(), aws.iam_user()
    ps, group = aws.permission_set(), aws.iam_group()
    rb.person("alice", accounts={"fake": "alice", "aws": {"userId": user_id, "iamUser": iam_user}})
    rb.resource("cloud-admin", target="cloud", model="idp-elevation", roles={
        "admin": {"grants": [{"account": AwsWorld.ACCOUNT, "permissionSet": ps}, {"iamGroup": group}]}})
    rb.grant("alice-cloud", "alice", "1998-12-01T10:00:00Z", "1h", resource="cloud-admin", role="admin",
             approvers=("lead",))
    assert run(rb, "validate").exit_code == 0
    res = run(rb, "apply", "--at", "1998-12-01T10:10:00Z")
    assert res.exit_code == 0, res.output
    assert ("USER", user_id) in aws.holders(ps) and aws.iam_members(group) == {iam_user}
    res = run(rb, "plan", "--at", "1998-12-01T10:20:00Z", "--format", "json")
    assert json.loads(res.stdout)["actions"] == []  # desired and observed principals agree
    assert run(rb, "apply", "--at", "1998-12-01T11:10:00Z").exit_code == 0
    assert ("USER", user_id) not in aws.holders(ps) and aws.iam_members(group) == set()
