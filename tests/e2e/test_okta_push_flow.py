"""mfa: okta-push through the CLI: an approved grant activates only after the requester accepts
an Okta Verify push, sent by the reconciler through the real Okta SDK to the Okta double."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from jitpol.cli.main import cli
from tests.doubles.okta import OktaDouble
from tests.helpers.repo import RepoBuilder

TOKEN = "okta-test-token-secret"
AT = "1998-12-01T10:30:00Z"


@pytest.fixture
def okta(monkeypatch: pytest.MonkeyPatch) -> Iterator[OktaDouble]:
    monkeypatch.setenv("OKTA_TESTING_TESTINGDISABLEHTTPSCHECK", "true")
    with OktaDouble(TOKEN) as double:
        yield double


@pytest.fixture
def rb(tmp_path: Path, okta: OktaDouble) -> RepoBuilder:
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    rb.config(targets={"db": {"type": "fake", "state_file": str(tmp_path / "fake-db.json")},
                       "corp-okta": {"type": "okta", "org_url": okta.url, "token_env": "OKTA_TOKEN"}})
    rb.person("alice", accounts={"fake": "alice", "okta": okta.add_user("alice@example.com")})
    rb.workflow("prod", mfa="okta-push")
    rb.grant("alice-read", "alice", "1998-12-01T10:00:00Z", "2h", approvers=("lead",))
    return rb


def run(rb: RepoBuilder, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--repo", str(rb.root)], env={"OKTA_TOKEN": TOKEN},
                              catch_exceptions=False)


def state(rb: RepoBuilder) -> dict[str, str]:
    res = run(rb, "status", "--at", AT, "--format", "json")
    found: dict[str, str] = next(g for g in json.loads(res.stdout)["grants"] if g["name"] == "alice-read")
    return found


def test_accepted_push_activates(rb: RepoBuilder, okta: OktaDouble) -> None:
    assert "Okta Verify push" in state(rb)["reason"]
    res = run(rb, "apply", "--at", AT)
    assert res.exit_code == 0, res.output
    assert TOKEN not in res.output
    assert rb.members("app_read") == ["alice"]
    events = [json.loads(x) for x in (rb.root / "audit" / "ledger.jsonl").read_text().splitlines()]
    assert [e["result"] for e in events if e["event"] == "mfa.checked"] == ["SUCCESS"]
    run(rb, "apply", "--at", "1998-12-01T10:40:00Z")  # no second push once activated
    assert len([r for r in okta.state.requests if r.path.endswith("/verify")]) == 1


def test_rejected_push_rejects_the_grant(rb: RepoBuilder, okta: OktaDouble) -> None:
    uid = next(iter(okta.state.users))
    okta.set_push(uid, "reject")
    run(rb, "apply", "--at", AT)
    assert rb.members("app_read") == []
    st = state(rb)
    assert st["state"] == "rejected" and "rejected the Okta Verify push" in st["reason"]
