"""One human, one Person: validate refuses two people sharing a key, an email, a git-host login or
an account on the same target, pointing at the value in the later file and naming the earlier
person."""

from __future__ import annotations

from pathlib import Path

import pytest

from jitpol.load.repository import Diagnostic, load_repository
from jitpol.load.yamlstrict import load_yaml_file
from jitpol.model.sshkey import fingerprint
from tests.helpers.repo import RepoBuilder


@pytest.fixture
def rb(tmp_path: Path) -> RepoBuilder:
    return RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()


def pub(rb: RepoBuilder, person: str) -> str:
    return Path(str(rb.key(person)) + ".pub").read_text().strip()


def diagnostics(rb: RepoBuilder) -> list[Diagnostic]:
    return list(load_repository(rb.root).diagnostics)


def at(rb: RepoBuilder, rel: str, *keys: str | int) -> tuple[str, int, int]:
    line, col = load_yaml_file(rb.root / rel, display_path=rel).mark(*keys)
    return rel, line, col


def only(rb: RepoBuilder) -> Diagnostic:
    diags = diagnostics(rb)
    assert len(diags) == 1, diags
    return diags[0]


def test_distinct_people_are_valid(rb: RepoBuilder) -> None:
    assert diagnostics(rb) == []


def test_shared_ssh_key_by_fingerprint(rb: RepoBuilder) -> None:
    # the same key with another comment is the same key
    alice_key = pub(rb, "alice").rsplit(" ", 1)[0] + " alias@elsewhere"
    rb.person("zed", keys=[pub(rb, "zed"), alice_key])
    d = only(rb)
    assert (d.path, d.line, d.col) == at(rb, "people/zed.yaml", "spec", "keys", 1)
    assert f"SSH key {fingerprint(alice_key)} is also person alice's (people/alice.yaml:" in d.message
    assert "each person must have their own key; remove it from one of the files" in d.message


def test_shared_email_case_insensitive(rb: RepoBuilder) -> None:
    rb.person("zed", email="Alice@Example.COM")
    d = only(rb)
    assert (d.path, d.line, d.col) == at(rb, "people/zed.yaml", "spec", "email")
    assert "email Alice@Example.COM is also person alice's" in d.message
    assert "each person must have their own email address" in d.message


def test_shared_git_host_login_case_insensitive(rb: RepoBuilder) -> None:
    rb.person("alice", accounts={"fake": "alice", "github": "alice-gh"})
    rb.person("zed", accounts={"fake": "zed", "github": "Alice-GH"})
    d = only(rb)
    assert (d.path, d.line, d.col) == at(rb, "people/zed.yaml", "spec", "accounts", "github")
    assert "git-host login 'Alice-GH' (accounts.github) is also person alice's" in d.message
    assert "a git-host login belongs to one person" in d.message


def test_same_account_on_the_same_target_by_name_or_by_type(rb: RepoBuilder) -> None:
    # alice names the target `db` (type fake); zed gives the same principal by target type
    rb.person("alice", accounts={"db": "dba"})
    rb.person("zed", accounts={"fake": "dba"})
    d = only(rb)
    assert (d.path, d.line, d.col) == at(rb, "people/zed.yaml", "spec", "accounts", "fake")
    assert "accounts.fake (target db) 'dba' is also person alice's" in d.message
    assert "an account on a target belongs to one person; remove it from one of the files" in d.message


def test_same_account_value_on_different_targets_is_fine(rb: RepoBuilder) -> None:
    rb.config(targets={"db": {"type": "fake", "state_file": str(rb.root.parent / "a.json")},
                       "db2": {"type": "fake", "state_file": str(rb.root.parent / "b.json")}})
    rb.person("alice", accounts={"db": "svc"})
    rb.person("zed", accounts={"db2": "svc"})
    assert diagnostics(rb) == []


def test_mapping_accounts_compare_as_canonical_json_and_by_field(rb: RepoBuilder) -> None:
    rb.person("alice", accounts={"fake": "alice", "aws": {"userId": "u-1", "iamUser": "alice"}})
    rb.person("zed", accounts={"fake": "zed", "aws": {"iamUser": "alice", "userId": "u-1"}})
    d = only(rb)
    assert (d.path, d.line, d.col) == at(rb, "people/zed.yaml", "spec", "accounts", "aws")
    assert 'accounts.aws (aws targets) {"iamUser":"alice","userId":"u-1"} is also person alice\'s' in d.message
    # one shared field is enough: the same Identity Center user
    rb.person("zed", accounts={"fake": "zed", "aws": {"userId": "u-1", "iamUser": "zed"}})
    d = only(rb)
    assert (d.path, d.line, d.col) == at(rb, "people/zed.yaml", "spec", "accounts", "aws", "userId")
    assert "accounts.aws (aws targets) userId 'u-1' is also person alice's" in d.message


def test_each_clash_is_reported_once_and_in_the_later_file(rb: RepoBuilder) -> None:
    rb.person("aaron", email="bob@example.com", keys=[pub(rb, "bob")], accounts={"fake": "bob"})
    diags = diagnostics(rb)
    # aaron's file sorts before bob's: the errors are bob's, naming aaron
    assert {d.path for d in diags} == {"people/bob.yaml"}
    assert len(diags) == 3 and all("person aaron's (people/aaron.yaml:" in d.message for d in diags)
    assert str(diags[0]).startswith("people/bob.yaml:")


def test_validate_command_refuses_an_alias(rb: RepoBuilder) -> None:
    from click.testing import CliRunner

    from jitpol.cli.main import cli

    rb.person("zed", keys=[pub(rb, "lead")])
    res = CliRunner().invoke(cli, ["validate", "--repo", str(rb.root)])
    assert res.exit_code == 1
    assert "people/zed.yaml:" in res.output and "is also person lead's" in res.output
