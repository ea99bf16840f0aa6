"""The reconciler end to end on a real PostgreSQL server, through the CLI, in a git repository."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from jitpol.cli.main import cli
from tests.helpers.repo import RepoBuilder

if TYPE_CHECKING:
    from tests.conftest import PgRoles

pytestmark = pytest.mark.postgres


def run(rb: RepoBuilder, dsn: str, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--repo", str(rb.root)], env={"JITPOL_TEST_DSN": dsn},
                              catch_exceptions=False)


@pytest.fixture
def world(tmp_path: Path, pg_roles: PgRoles) -> dict[str, Any]:
    r = pg_roles
    names = {
        "read": r.create("read_g"), "write": r.create("write_g"),
        "alice": r.create("alice", login=True, password="alice-pw-1"),
        "bob": r.create("bob", login=True), "legacy": r.create("legacy", login=True),
        "reporting": r.create("reporting", login=True),
    }
    r.grant(names["read"], names["legacy"])  # standing access on an exclusive resource: drift
    r.grant(names["write"], names["reporting"])  # standing access jitpol does not manage
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys")
    rb.config(targets={"pg": {"type": "postgres", "dsn_env": "JITPOL_TEST_DSN"}})
    rb.person("alice", accounts={"postgres": names["alice"]})
    rb.person("bob", accounts={"postgres": names["bob"]})
    rb.person("lead", accounts={})
    rb.person("admin", accounts={})
    rb.team("eng", ["alice", "bob"])
    rb.team("leads", ["lead"])
    rb.team("admins", ["admin"])
    rb.workflow("prod")
    rb.resource("db-ro", target="pg", exclusive=True, roles={"read": {"grants": [names["read"]]}})
    rb.resource("db-rw", target="pg", roles={"write": {"grants": [names["write"]]}})
    subprocess.run(["git", "init", "-q", "-b", "main", str(rb.root)], check=True)
    return {"rb": rb, "names": names, "roles": r, "dsn": r.server.superuser_dsn}


def commit_all(rb: RepoBuilder, message: str) -> None:
    git = ["git", "-C", str(rb.root), "-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", message], check=True)


def test_grant_drift_expiry_and_session_end(world: dict[str, Any]) -> None:
    rb, n, roles, dsn = world["rb"], world["names"], world["roles"], world["dsn"]
    rb.grant("alice-ro", "alice", "1998-12-01T10:00:00Z", "1h", resource="db-ro", approvers=("lead",))
    rb.grant("bob-rw", "bob", "1998-12-01T10:00:00Z", "1h", resource="db-rw", role="write", approvers=("lead",))
    commit_all(rb, "policies and grants")

    res = run(rb, dsn, "plan", "--at", "1998-12-01T10:15:00Z", "--format", "json")
    assert res.exit_code == 0, res.output
    ops = sorted((a["op"], a["principal"], a["drift"]) for a in json.loads(res.stdout)["actions"])
    assert ops == [("grant", n["alice"], False), ("grant", n["bob"], False), ("revoke", n["legacy"], True)]

    res = run(rb, dsn, "apply", "--at", "1998-12-01T10:15:00Z")
    assert res.exit_code == 0, res.output
    assert roles.members(n["read"]) == {n["alice"]}
    assert roles.members(n["write"]) == {n["reporting"], n["bob"]}
    log = subprocess.run(["git", "-C", str(rb.root), "log", "--format=%s"], capture_output=True, text=True,
                         check=True).stdout
    assert "jitpol: ledger for run at 1998-12-01T10:15:00Z" in log

    # alice logs in with her own password and uses the granted role
    port = roles.server.port
    session = psycopg.connect(host="127.0.0.1", port=port, user=n["alice"], password="alice-pw-1",
                              dbname="postgres", autocommit=True)
    session.execute(f'SET ROLE "{n["read"]}"')

    res = run(rb, dsn, "plan", "--at", "1998-12-01T10:30:00Z", "--detailed-exitcode")
    assert res.exit_code == 0, res.output  # converged

    res = run(rb, dsn, "apply", "--at", "1998-12-01T11:00:00Z")
    assert res.exit_code == 0, res.output
    assert roles.members(n["read"]) == set()
    assert roles.members(n["write"]) == {n["reporting"]}  # unmanaged member untouched
    with pytest.raises(psycopg.OperationalError):
        session.execute("SELECT 1")  # her session that held the role is gone
    session.close()

    res = run(rb, dsn, "apply", "--at", "1998-12-01T11:05:00Z")
    assert res.exit_code == 0 and "No changes" in res.output
    assert run(rb, dsn, "audit", "verify").exit_code == 0
    events = [json.loads(x)["event"] for x in (rb.root / "audit" / "ledger.jsonl").read_text().splitlines()]
    assert events.count("grant.activated") == 2 and events.count("grant.revoked") == 2
    assert events.count("drift.corrected") == 1


def test_hostile_names_never_reach_the_server(world: dict[str, Any]) -> None:
    rb, dsn = world["rb"], world["dsn"]
    rb.person("alice", accounts={"postgres": 'x"; DROP ROLE postgres; --'})
    rb.resource("db-evil", target="pg", roles={"read": {"grants": ["app'; DROP TABLE x; --"]}})
    res = run(rb, dsn, "validate")
    assert res.exit_code == 1
    assert "people/alice.yaml:" in res.output and "resources/db-evil.yaml:" in res.output
    rb.grant("alice-ro", "alice", "1998-12-01T10:00:00Z", "1h", resource="db-ro", approvers=("lead",))
    res = run(rb, dsn, "apply", "--at", "1998-12-01T10:15:00Z", "--no-commit")
    assert res.exit_code == 1
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'postgres'").fetchone() is not None


def test_unreachable_server_is_temporary_and_reported(world: dict[str, Any]) -> None:
    rb = world["rb"]
    rb.grant("alice-ro", "alice", "1998-12-01T10:00:00Z", "1h", resource="db-ro", approvers=("lead",))
    res = run(rb, "host=127.0.0.1 port=1 user=x password=secret-pw dbname=x connect_timeout=2", "apply",
              "--at", "1998-12-01T10:15:00Z", "--no-commit")
    assert res.exit_code == 1
    assert "could not be observed" in res.output
    assert "secret-pw" not in res.output
