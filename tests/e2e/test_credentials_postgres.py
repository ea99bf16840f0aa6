"""Credential checkout and ephemeral accounts end to end on a real PostgreSQL: the holder logs in
with the delivered secret inside the window; after it nobody can, and open sessions are gone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from jitpol.cli.main import cli
from tests.helpers.clock import Now
from tests.helpers.repo import RepoBuilder

if TYPE_CHECKING:
    from tests.conftest import PgRoles

pytestmark = pytest.mark.postgres


@pytest.fixture
def world(tmp_path: Path, pg_roles: PgRoles) -> dict[str, Any]:
    shared = pg_roles.create("app_admin", login=True, password="initial-secret-unknown-to-all")
    reader = pg_roles.create("reader")
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys")
    rb.config(targets={"pg": {"type": "postgres", "dsn_env": "JITPOL_TEST_DSN"}})
    for p in ("alice", "bob", "lead", "admin"):
        rb.person(p, accounts={})
    rb.team("eng", ["alice", "bob"])
    rb.team("leads", ["lead"])
    rb.team("admins", ["admin"])
    rb.workflow("prod", approvals={"required": 0}, checkout="exclusive")
    rb.resource("pg-admin", target="pg", model="credential-checkout", account=shared, roles=None)
    rb.resource("pg-scratch", target="pg", model="ephemeral-account", roles={"read": {"grants": [reader]}})
    return {"rb": rb, "server": pg_roles.server, "shared": shared, "roles": pg_roles}


def run(w: dict[str, Any], *args: str) -> Result:
    rb: RepoBuilder = w["rb"]
    return CliRunner().invoke(cli, [*args, "--repo", str(rb.root)],
                              env={"JITPOL_TEST_DSN": w["server"].superuser_dsn}, catch_exceptions=False)


def login(w: dict[str, Any], user: str, password: str) -> psycopg.Connection[Any]:
    return psycopg.connect(host="127.0.0.1", port=w["server"].port, user=user, password=password,
                           dbname="postgres", autocommit=True, connect_timeout=5)


def creds(w: dict[str, Any], grant: str, person: str) -> dict[str, str]:
    res = run(w, "credentials", grant, "--key", str(w["rb"].key(person)), "--format", "json")
    assert res.exit_code == 0, res.output
    got: dict[str, str] = json.loads(res.stdout)
    return got


def test_checkout_of_a_shared_postgres_account(world: dict[str, Any], now: Now) -> None:
    # PostgreSQL checks VALID UNTIL against its own clock: the window is built from now
    rb: RepoBuilder = world["rb"]
    rb.grant("alice-admin", "alice", now.text(minutes=-10), "1h", resource="pg-admin", role=None)
    assert run(world, "apply", "--at", now.text(), "--no-commit").exit_code == 0
    got = creds(world, "alice-admin", "alice")
    assert got["username"] == world["shared"]
    session = login(world, got["username"], got["password"])
    assert session.execute("SELECT current_user").fetchone() == (world["shared"],)
    res = run(world, "credentials", "alice-admin", "--key", str(rb.key("bob")))
    assert res.exit_code == 1  # only the holder's key opens it

    assert run(world, "apply", "--at", now.text(minutes=60), "--no-commit").exit_code == 0
    with pytest.raises(psycopg.OperationalError):
        session.execute("SELECT 1")  # her session did not survive the end of the window
    with pytest.raises(psycopg.OperationalError):
        login(world, got["username"], got["password"])  # and her secret no longer works


def test_ephemeral_postgres_account(world: dict[str, Any], now: Now) -> None:
    rb: RepoBuilder = world["rb"]
    rb.grant("bob-tmp", "bob", now.text(minutes=-10), "1h", resource="pg-scratch", role="read")
    res = run(world, "apply", "--at", now.text(), "--no-commit")
    assert res.exit_code == 0, res.output
    got = creds(world, "bob-tmp", "bob")
    session = login(world, got["username"], got["password"])
    assert session.execute("SELECT current_user").fetchone() == (got["username"],)
    assert run(world, "apply", "--at", now.text(minutes=60), "--no-commit").exit_code == 0
    with pytest.raises(psycopg.OperationalError):
        session.execute("SELECT 1")
    with psycopg.connect(world["server"].superuser_dsn) as admin:
        assert admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (got["username"],)).fetchone() is None
