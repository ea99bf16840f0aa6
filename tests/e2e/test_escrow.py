"""Checked-out secrets escrowed in AWS Secrets Manager (moto), rotated by jitpol itself:
AWSCURRENT is always the live secret, AWSPREVIOUS the one before."""

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


def test_escrow_follows_every_rotation(tmp_path: Path, aws: AwsWorld) -> None:
    import boto3

    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    rb.config(targets={"db": {"type": "fake", "state_file": str(tmp_path / "fake-db.json")},
                       "vault": {"type": "aws", "region": "us-east-1", "endpoint_url": aws.shim.endpoint_url}})
    rb.set_fake_state({"members": {}, "shared": {"app_admin": {"password": "unknown"}}})
    rb.workflow("prod", approvals={"required": 0})
    name = AwsWorld.unique("jitpol/db/app_admin")
    rb.resource("shared", model="credential-checkout", account="app_admin", roles=None,
                options={"escrow": {"target": "vault", "secret": name}})
    rb.grant("alice-co", "alice", "1998-12-01T10:00:00Z", "1h", resource="shared", role=None)
    assert run(rb, "validate").exit_code == 0
    sm = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=aws.shim.endpoint_url,
                      aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"])

    def escrowed(stage: str = "AWSCURRENT") -> dict[str, object]:
        # the stage is named on purpose: AWS reads AWSCURRENT by default, but moto's default stays on
        # the first version after update_secret_version_stage
        value: dict[str, object] = json.loads(sm.get_secret_value(SecretId=name, VersionStage=stage)["SecretString"])
        return value

    def live() -> str:
        password: str = rb.fake_state()["shared"]["app_admin"]["password"]
        return password

    assert run(rb, "apply", "--at", "1998-12-01T10:10:00Z", "--no-commit").exit_code == 0
    first = escrowed()
    assert first["password"] == live() and first["holders"] == ["alice-co"]
    assert run(rb, "apply", "--at", "1998-12-01T11:10:00Z", "--no-commit").exit_code == 0  # rotated to nobody
    current, previous = escrowed(), escrowed("AWSPREVIOUS")
    assert current["password"] == live() != first["password"] and current["holders"] == []
    assert previous["password"] == first["password"]
    events = [json.loads(x) for x in (rb.root / "audit" / "ledger.jsonl").read_text().splitlines()]
    escrows = [e["escrow"]["secret"] for e in events if e["event"] == "credential.rotated"]
    assert escrows == [name, name]
    assert live() not in (rb.root / "audit" / "ledger.jsonl").read_text()
