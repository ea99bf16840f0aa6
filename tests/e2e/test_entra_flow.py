"""idp-elevation on Entra through the command line: the registry makes the connector from
jitpol.yaml alone (graph_url and authority_url pointing at the local Graph double, the client
secret by environment-variable name, TLS trusted through SSL_CERT_FILE / REQUESTS_CA_BUNDLE like
a corporate CA), the real ClientSecretCredential gets its token, a grant adds a group membership
and a directory role whose end Entra enforces, a second plan has nothing to do, and at the end
the membership is removed with the user's sign-in sessions while Entra has ended the role itself."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from click.testing import CliRunner, Result

from jitpol.cli.main import cli
from tests.doubles.graph import FakeGraph
from tests.entra_fixtures import *  # noqa: F403 - the fixtures
from tests.entra_fixtures import USER_ADMIN
from tests.helpers.clock import Now
from tests.helpers.repo import RepoBuilder


def test_entra_group_and_directory_role_through_the_cli(
    tmp_path: Path, fake_graph: FakeGraph, graph_cert: tuple[Path, Path], now: Now
) -> None:
    client, secret = str(uuid.uuid4()), "e2e-client-secret-value"
    fake_graph.clients[client] = secret
    fake_graph.tokens.clear()  # only a token the authority issued is accepted
    alice, group = fake_graph.add_user(), fake_graph.add_group("prod-admins")
    env = {"ENTRA_ID": client, "ENTRA_SECRET": secret,
           "SSL_CERT_FILE": str(graph_cert[0]), "REQUESTS_CA_BUNDLE": str(graph_cert[0])}

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, [*args, "--repo", str(rb.root)], env=env, catch_exceptions=False)

    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    rb.config(targets={"db": {"type": "fake", "state_file": str(tmp_path / "fake.json")},
                       "entra": {"type": "entra", "tenant_id": "contoso.onmicrosoft.com",
                                 "graph_url": fake_graph.url, "authority_url": fake_graph.url,
                                 "client_id_env": "ENTRA_ID", "client_secret_env": "ENTRA_SECRET"}})
    rb.person("alice", accounts={"fake": "alice", "entra": alice})
    rb.resource("entra-admin", target="entra", model="idp-elevation", roles={"admin": {"grants": [
        {"group": group}, {"directoryRole": "User Administrator", "scope": "/"}]}})
    rb.grant("alice-entra", "alice", now.text(), "1h", resource="entra-admin", role="admin", approvers=("lead",))
    res = run("validate")
    assert res.exit_code == 0, res.output

    res = run("apply", "--at", now.text(minutes=1))
    assert res.exit_code == 0, res.output
    assert set(fake_graph.members(group)) == {alice}
    assert fake_graph.role_holders(USER_ADMIN) == {alice: now.plus(hours=1)}, "Entra enforces the window's end"
    res = run("plan", "--at", now.text(minutes=2), "--format", "json")
    assert res.exit_code == 0 and json.loads(res.stdout)["actions"] == []

    fake_graph.now = lambda: now.plus(minutes=61)  # Entra's clock passes the end: it ends the role itself
    res = run("apply", "--at", now.text(minutes=61))
    assert res.exit_code == 0, res.output
    assert fake_graph.members(group) == {} and fake_graph.role_holders(USER_ADMIN) == {}
    assert fake_graph.sessions_revoked == {alice: 1}
    assert {r["client_id"] for r in fake_graph.token_requests} == {client}
    ledger = "\n".join(p.read_text() for p in (rb.root / "audit").rglob("*.jsonl"))
    assert secret not in ledger and secret not in res.output
