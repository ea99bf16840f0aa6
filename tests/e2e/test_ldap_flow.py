"""LDAP end to end through the CLI on a real slapd: group membership for a person, an
ephemeral account whose holder binds with the delivered secret, and a shared-account checkout."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from jitpol.cli.main import cli
from tests.helpers.clock import Now
from tests.helpers.repo import RepoBuilder
from tests.ldap_fixtures import *  # noqa: F403
from tests.ldap_fixtures import LdapSandbox


def run(rb: RepoBuilder, sb: LdapSandbox, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--repo", str(rb.root)], env=sb.env, catch_exceptions=False)


def test_ldap_models_end_to_end(tmp_path: Path, ldap_sandbox: LdapSandbox, now: Now) -> None:
    # slapd checks pwdEndTime and binds against its own clock: the window is built from now
    sb = ldap_sandbox
    alice_dn = sb.person("alice")
    owner = sb.person("owner")
    admins = sb.group("db-admins", [owner])
    shared = sb.person("svc-backup", password="initial-unknown")
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys")
    rb.config(targets={"dir": {"type": "ldap", **sb.settings()}})
    rb.person("alice", accounts={"ldap": alice_dn.lower()})
    for p in ("bob", "lead", "admin"):
        rb.person(p, accounts={})
    rb.team("eng", ["alice", "bob"])
    rb.team("leads", ["lead"])
    rb.team("admins", ["admin"])
    rb.workflow("prod", approvals={"required": 0})
    g = admins.lower()
    rb.resource("db-admins", target="dir", roles={"admin": {"grants": [g]}})
    rb.resource("scratch", target="dir", model="ephemeral-account", roles={"admin": {"grants": [g]}})
    rb.resource("backup", target="dir", model="credential-checkout", account=shared.lower(), roles=None)
    start = now.text(minutes=-10)  # ends 50 minutes from now
    rb.grant("alice-group", "alice", start, "1h", resource="db-admins", role="admin")
    rb.grant("alice-tmp", "alice", start, "1h", resource="scratch", role="admin")
    rb.grant("bob-backup", "bob", start, "1h", resource="backup", role=None)
    res = run(rb, sb, "validate")
    assert res.exit_code == 0, res.output

    res = run(rb, sb, "apply", "--at", now.text(), "--no-commit")
    assert res.exit_code == 0, res.output
    assert alice_dn.lower() in sb.members(admins)
    tmp = json.loads(run(rb, sb, "credentials", "alice-tmp", "--key", str(rb.key("alice")), "--format",
                         "json").stdout)
    assert tmp["username"].startswith("uid=jit-alice-") and sb.can_bind(tmp["username"], tmp["password"])
    assert tmp["username"].lower() in sb.members(admins)
    backup = json.loads(run(rb, sb, "credentials", "bob-backup", "--key", str(rb.key("bob")), "--format",
                            "json").stdout)
    assert sb.can_bind(backup["username"], backup["password"])

    res = run(rb, sb, "apply", "--at", now.text(minutes=60), "--no-commit")
    assert res.exit_code == 0, res.output
    assert sb.members(admins) == {owner.lower()}  # unmanaged member untouched
    assert not sb.can_bind(tmp["username"], tmp["password"])
    assert not sb.can_bind(backup["username"], backup["password"])
