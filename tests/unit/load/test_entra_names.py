"""`jitpol validate` on an Entra target: group ids, directory roles and scopes in a resource's
grants, and user object ids in people's accounts, are checked by the connector's name check
(without its SDK) and refused with path:line:col and the form to use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from jitpol.cli.main import cli
from jitpol.load.repository import load_repository
from jitpol.load.yamlstrict import load_yaml_file
from tests.helpers.repo import RepoBuilder

GUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
GROUP = "68e55cce-cf7e-4a2d-9046-3e4e75c4bfa7"
GOOD: list[Any] = [{"group": GROUP}, {"directoryRole": "User Administrator", "scope": "/"},
                   {"directoryRole": "fe930be7-5e62-47db-91af-98c3a49a38b1", "scope": f"/administrativeUnits/{GUID}"}]


@pytest.fixture
def rb(tmp_path: Path) -> RepoBuilder:
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    rb.config({"entra": {"type": "entra", "tenant_id": "contoso.onmicrosoft.com", "pim_groups": True}})
    rb.person("alice", accounts={"entra": GUID})
    rb.resource("db-prod", target="entra", model="idp-elevation", roles={"admin": {"grants": GOOD}})
    return rb


def messages(rb: RepoBuilder) -> list[tuple[str, int, int, str]]:
    return [(d.path, d.line, d.col, d.message) for d in load_repository(rb.root).diagnostics]


def at(rb: RepoBuilder, rel: str, *keys: str | int) -> tuple[str, int, int]:
    line, col = load_yaml_file(rb.root / rel, display_path=rel).mark(*keys)
    return rel, line, col


def test_a_valid_entra_repository_validates(rb: RepoBuilder) -> None:
    assert messages(rb) == []


@pytest.mark.parametrize(("entry", "says"), [
    ({"group": GROUP.upper()}, "write it in lower case"),
    ({"group": "prod-admins"}, "is not a group object id"),
    ({"directoryRole": "User Administrator"}, "is not valid"),
    ({"directoryRole": "User Administrator", "scope": "/administrativeUnits/prod"}, "is not a directory scope"),
    ({"directoryRole": "x' or displayName eq 'Global Administrator", "scope": "/"}, "no quotes"),
    ("Global Administrator", "is not valid"),
])
def test_bad_grants_entries_are_refused_at_their_line(rb: RepoBuilder, entry: Any, says: str) -> None:
    rb.resource("db-prod", target="entra", model="idp-elevation", roles={"admin": {"grants": [*GOOD, entry]}})
    found = messages(rb)
    assert len(found) == 1, found
    path, line, col, message = found[0]
    assert (path, line, col) == at(rb, "resources/db-prod.yaml", "spec", "roles", "admin", "grants", 3)
    assert says in message


@pytest.mark.parametrize("account", [GUID.upper(), "alice@contoso.com", f"{{{GUID}}}"])
def test_bad_accounts_are_refused_at_their_line(rb: RepoBuilder, account: str) -> None:
    rb.person("alice", accounts={"entra": account})
    found = messages(rb)
    assert len(found) == 1, found
    path, line, col, message = found[0]
    assert (path, line, col) == at(rb, "people/alice.yaml", "spec", "accounts", "entra")
    assert "Entra user object id" in message


def test_the_command_exits_1_naming_file_and_line(rb: RepoBuilder) -> None:
    rb.resource("db-prod", target="entra", model="idp-elevation", roles={"admin": {"grants": [{"group": "admins"}]}})
    result = CliRunner().invoke(cli, ["validate", "--repo", str(rb.root)], catch_exceptions=False)
    assert result.exit_code == 1
    path, line, col = at(rb, "resources/db-prod.yaml", "spec", "roles", "admin", "grants", 0)
    assert f"{path}:{line}:{col}:" in result.output and "is not a group object id" in result.output


@pytest.mark.parametrize(("settings", "field"), [
    ({"type": "entra"}, "tenant_id"),
    ({"type": "entra", "tenant_id": "contoso.onmicrosoft.com", "pim_groups": "yes"}, "pim_groups"),
    ({"type": "entra", "tenant_id": "contoso.onmicrosoft.com", "client_secret": "x"}, "client_secret"),
])
def test_bad_settings_are_refused_by_the_schema(rb: RepoBuilder, settings: dict[str, Any], field: str) -> None:
    rb.config({"entra": settings})
    found = messages(rb)
    assert found and any(field in m and p == "jitpol.yaml" for p, _, _, m in found), found
