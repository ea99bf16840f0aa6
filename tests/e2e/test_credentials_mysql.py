"""MySQL/MariaDB end to end on a real MariaDB through the command line: a role granted to a
person's account and revoked, a shared account checked out, an ephemeral account; the holder logs
in with the delivered secret inside the window; after it nobody can, and open connections are
gone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pymysql
import pytest
from click.testing import CliRunner, Result

from jitpol.cli.main import cli
from tests.helpers.clock import Now
from tests.helpers.repo import RepoBuilder
from tests.mysql_fixtures import *  # noqa: F403 (the fixture mysql_sandbox)
from tests.mysql_fixtures import PASSWORD, MysqlSandbox

GONE = (pymysql.err.OperationalError, pymysql.err.InterfaceError)


@pytest.fixture
def world(tmp_path: Path, mysql_sandbox: MysqlSandbox) -> dict[str, Any]:
    shared = mysql_sandbox.account("app_admin", password="initial-secret-unknown-to-all")
    reader = mysql_sandbox.role("reader")
    alice = mysql_sandbox.account("alice")
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys")
    rb.config(targets={"db": {"type": "mysql", "dsn_env": "JITPOL_TEST_DSN",
                              "event_schema": mysql_sandbox.event_schema}})
    rb.person("alice", accounts={"mysql": alice})
    for p in ("bob", "lead", "admin"):
        rb.person(p, accounts={})
    rb.team("eng", ["alice", "bob"])
    rb.team("leads", ["lead"])
    rb.team("admins", ["admin"])
    rb.workflow("prod", approvals={"required": 0}, checkout="exclusive")
    rb.resource("db-read", target="db", model="role-membership", roles={"read": {"grants": [reader]}})
    rb.resource("db-admin", target="db", model="credential-checkout", account=shared, roles=None)
    rb.resource("db-scratch", target="db", model="ephemeral-account", roles={"read": {"grants": [reader]}})
    return {"rb": rb, "sandbox": mysql_sandbox, "shared": shared, "reader": reader, "alice": alice}


def run(w: dict[str, Any], *args: str) -> Result:
    rb: RepoBuilder = w["rb"]
    return CliRunner().invoke(cli, [*args, "--repo", str(rb.root)],
                              env={"JITPOL_TEST_DSN": w["sandbox"].server.dsn()}, catch_exceptions=False)


def creds(w: dict[str, Any], grant: str, person: str) -> dict[str, str]:
    res = run(w, "credentials", grant, "--key", str(w["rb"].key(person)), "--format", "json")
    assert res.exit_code == 0, res.output
    got: dict[str, str] = json.loads(res.stdout)
    return got


def test_a_role_for_a_person_s_account(world: dict[str, Any], now: Now) -> None:
    rb: RepoBuilder = world["rb"]
    sandbox: MysqlSandbox = world["sandbox"]
    rb.grant("alice-read", "alice", now.text(minutes=-10), "1h", resource="db-read", role="read")
    res = run(world, "apply", "--at", now.text(), "--no-commit")
    assert res.exit_code == 0, res.output
    assert sandbox.roles_of(world["alice"]) == {world["reader"]}
    session = sandbox.login(world["alice"], PASSWORD)
    with session.cursor() as cur:
        cur.execute("SELECT CURRENT_ROLE()")
        assert cur.fetchone() == (world["reader"],)
    res = run(world, "apply", "--at", now.text(minutes=60), "--no-commit")
    assert res.exit_code == 0, res.output
    assert sandbox.roles_of(world["alice"]) == set()
    with pytest.raises(GONE), session.cursor() as cur:
        cur.execute("SELECT 1")  # her connection did not survive the end of the window


def test_checkout_of_a_shared_account(world: dict[str, Any], now: Now) -> None:
    rb: RepoBuilder = world["rb"]
    sandbox: MysqlSandbox = world["sandbox"]
    rb.grant("alice-admin", "alice", now.text(minutes=-10), "1h", resource="db-admin", role=None)
    res = run(world, "apply", "--at", now.text(), "--no-commit")
    assert res.exit_code == 0, res.output
    got = creds(world, "alice-admin", "alice")
    assert got["username"] == world["shared"]
    user = got["username"].split("@")[0]
    session = sandbox.connect(user, got["password"])
    assert run(world, "credentials", "alice-admin", "--key", str(rb.key("bob"))).exit_code == 1
    assert run(world, "apply", "--at", now.text(minutes=60), "--no-commit").exit_code == 0
    with pytest.raises(GONE), session.cursor() as cur:
        cur.execute("SELECT 1")
    with pytest.raises(pymysql.err.OperationalError):
        sandbox.connect(user, got["password"])  # her secret no longer works


def test_an_ephemeral_account(world: dict[str, Any], now: Now) -> None:
    rb: RepoBuilder = world["rb"]
    sandbox: MysqlSandbox = world["sandbox"]
    rb.grant("bob-tmp", "bob", now.text(minutes=-10), "1h", resource="db-scratch", role="read")
    res = run(world, "apply", "--at", now.text(), "--no-commit")
    assert res.exit_code == 0, res.output
    got = creds(world, "bob-tmp", "bob")
    sandbox.register(got["username"])
    session = sandbox.connect(got["username"], got["password"])
    with session.cursor() as cur:
        cur.execute("SELECT CURRENT_ROLE()")
        assert cur.fetchone() == (world["reader"],)
    assert run(world, "apply", "--at", now.text(minutes=60), "--no-commit").exit_code == 0
    with pytest.raises(GONE), session.cursor() as cur:
        cur.execute("SELECT 1")
    assert not sandbox.exists(got["username"]) and sandbox.events() == {}
