"""Identity hygiene through the command line: an alias Person file is refused (so it cannot approve
its own human's grant), and `request --name` is a grant name that stays inside grants/."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from jitpol.cli.main import cli
from tests.helpers.repo import RepoBuilder

T0 = "1998-12-01T10:00:00Z"


def run(rb: RepoBuilder, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--repo", str(rb.root)], catch_exceptions=False)


@pytest.fixture
def rb(tmp_path: Path) -> RepoBuilder:
    return RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()


def pub(rb: RepoBuilder, person: str) -> str:
    return Path(str(rb.key(person)) + ".pub").read_text().strip()


# -- an alias approving its own human's grant ------------------------------------------------------

def test_alias_with_the_requesters_key_cannot_approve_her_grant(rb: RepoBuilder) -> None:
    # alice adds "ally", a second Person with her own key, to the approvers, and approves as ally
    rb.person("ally", keys=[pub(rb, "alice")], email="ally@example.com", accounts={"fake": "ally"})
    rb.team("leads", ["lead", "bob", "ally"])
    path = rb.grant("g1", "alice", T0)
    data = json.loads(path.read_text())
    signed = rb.sign(data, "alice")
    data["spec"]["approvals"] = [{**signed, "by": "ally"}]
    path.write_text(json.dumps(data))
    res = run(rb, "validate")
    assert res.exit_code == 1
    assert "people/ally.yaml:" in res.output and "is also person alice's (people/alice.yaml:" in res.output
    res = run(rb, "apply", "--at", "1998-12-01T10:10:00Z", "--no-commit")
    assert res.exit_code == 1 and rb.members("app_read") == []


@pytest.mark.parametrize(("field", "alias_spec", "says"), [
    ("email", {"email": "ALICE@example.com"}, "email ALICE@example.com is also person alice's"),
    ("github", {"accounts": {"fake": "ally", "github": "ALICE"}}, "git-host login 'ALICE'"),
    ("account", {"accounts": {"db": "alice"}}, "accounts.db (target db) 'alice' is also person alice's"),
])
def test_validate_names_file_line_and_column_of_each_shared_identity(
        rb: RepoBuilder, field: str, alias_spec: dict[str, Any], says: str) -> None:
    rb.person("alice", accounts={"fake": "alice", "github": "alice"})
    rb.person("ally", **alias_spec)
    res = run(rb, "validate")
    assert res.exit_code == 1
    (line,) = [ln for ln in res.output.splitlines() if ln.startswith("people/ally.yaml:")]
    where, message = line.split(": ", 1)
    _, lineno, col = where.split(":")
    keys = {"email": ["email"], "github": ["accounts", "github"], "account": ["accounts", "db"]}[field]
    text = (rb.root / "people/ally.yaml").read_text().splitlines()[int(lineno) - 1]
    assert f'"{keys[-1]}"' in text and int(col) > text.index(f'"{keys[-1]}"')
    assert says in message and "remove" in message


# -- request --name -----------------------------------------------------------------------------

def request(rb: RepoBuilder, *extra: str) -> Result:
    return run(rb, "request", "--resource", "db-prod", "--role", "read", "--for", "1h", "--start", T0,
               "--reason", "INC-1", "--no-branch", *extra)


@pytest.mark.parametrize("name", ["../../x", "a/b", "/tmp/x", ".hidden", "-x", "UPPER", "a.b", "", "x" * 64,
                                  "ok\n", "..", "grants/../../x"])
def test_request_refuses_anything_but_a_grant_name(rb: RepoBuilder, name: str) -> None:
    before = sorted(p for p in rb.root.parent.rglob("*"))
    res = request(rb, "--as", "alice", "--name", name)
    assert res.exit_code == 1, res.output
    assert "--name" in res.output and "is not a valid grant name" in res.output
    assert sorted(p for p in rb.root.parent.rglob("*")) == before


def test_request_refuses_a_made_up_name_that_is_not_a_grant_name(rb: RepoBuilder) -> None:
    res = request(rb, "--as", "../../../x")
    assert res.exit_code == 1 and "is not a valid grant name" in res.output and "pass --name" in res.output
    assert not (rb.root / "grants").exists()


def test_request_with_a_good_name_still_works(rb: RepoBuilder) -> None:
    res = request(rb, "--as", "alice", "--name", "alice-inc-1")
    assert res.exit_code == 0, res.output
    assert (rb.root / "grants" / "alice-inc-1.yaml").is_file()


def test_request_never_writes_through_a_link_out_of_the_repository(rb: RepoBuilder, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (rb.root / "grants").symlink_to(outside, target_is_directory=True)
    res = request(rb, "--as", "alice", "--name", "g1")
    assert res.exit_code == 1 and "symbolic link" in res.output
    assert list(outside.iterdir()) == []
    # a dangling link in grants/ named like the new file
    (rb.root / "grants").unlink()
    (rb.root / "grants").mkdir()
    target = outside / "planted.yaml"
    os.symlink(target, rb.root / "grants" / "g1.yaml")
    res = request(rb, "--as", "alice", "--name", "g1")
    assert res.exit_code == 1 and "already exists" in res.output
    assert not target.exists()
