"""Active Directory end to end through the CLI on a real Samba AD DC (flavor active-directory):
group membership, an ephemeral account whose holder binds with the delivered secret, and a
shared-account checkout after which no earlier password binds; a rotation the DC refuses leaves
nothing for `jitpol credentials` to show."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from jitpol.cli.main import cli
from tests.ad_fixtures import *  # noqa: F403
from tests.ad_fixtures import EXPIRED, WRONG_PASSWORD, AdSandbox, password_settings
from tests.helpers.clock import Now
from tests.helpers.repo import RepoBuilder


def run(rb: RepoBuilder, sb: AdSandbox, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--repo", str(rb.root)], env=sb.env, catch_exceptions=False)


def credentials(rb: RepoBuilder, sb: AdSandbox, grant: str, person: str) -> Result:
    return run(rb, sb, "credentials", grant, "--key", str(rb.key(person)), "--format", "json")


def repo(tmp_path: Path, sb: AdSandbox) -> RepoBuilder:
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys")
    rb.config(targets={"corp": {"type": "ldap", **sb.settings()}})
    for p in ("bob", "carol", "lead", "admin"):
        rb.person(p, accounts={})
    rb.team("eng", ["alice", "bob", "carol"])
    rb.team("leads", ["lead"])
    rb.team("admins", ["admin"])
    rb.workflow("prod", approvals={"required": 0})
    return rb


def test_ad_models_end_to_end(tmp_path: Path, ad_sandbox: AdSandbox, now: Now) -> None:
    # the DC checks accountExpires against its own clock: the window is built from now
    sb = ad_sandbox
    alice_dn = sb.user("alice")
    owner = sb.user("owner")
    admins = sb.group("db-admins", [owner])
    shared = sb.user("svc-backup", password="Initial-unknown-1")
    rb = repo(tmp_path, sb)
    rb.person("alice", accounts={"ldap": alice_dn})
    rb.resource("db-admins", target="corp", roles={"admin": {"grants": [admins]}})
    rb.resource("scratch", target="corp", model="ephemeral-account", roles={"admin": {"grants": [admins]}})
    rb.resource("backup", target="corp", model="credential-checkout", account=shared, roles=None)
    start = now.text(minutes=-10)  # ends 50 minutes from now
    rb.grant("alice-group", "alice", start, "1h", resource="db-admins", role="admin")
    rb.grant("alice-tmp", "alice", start, "1h", resource="scratch", role="admin")
    rb.grant("bob-backup", "bob", start, "1h", resource="backup", role=None)
    res = run(rb, sb, "validate")
    assert res.exit_code == 0, res.output

    res = run(rb, sb, "apply", "--at", now.text(), "--no-commit")
    assert res.exit_code == 0, res.output
    assert alice_dn in sb.members(admins)
    tmp = json.loads(credentials(rb, sb, "alice-tmp", "alice").stdout)
    assert tmp["username"].startswith("cn=jit-alice-") and sb.can_bind(tmp["username"], tmp["password"])
    assert tmp["username"] in sb.members(admins)
    backup = json.loads(credentials(rb, sb, "bob-backup", "bob").stdout)
    assert backup["username"] == shared and sb.can_bind(shared, backup["password"])
    assert WRONG_PASSWORD in sb.bind(shared, "Initial-unknown-1")[1]

    res = run(rb, sb, "apply", "--at", now.text(minutes=60), "--no-commit")
    assert res.exit_code == 0, res.output
    assert sb.members(admins) == {owner}  # unmanaged member untouched
    assert not sb.can_bind(tmp["username"], tmp["password"])
    # rotated to nobody: the account never expires again, and bob's password, which AD would
    # keep valid for an hour after a single reset, does not bind
    assert WRONG_PASSWORD in sb.bind(shared, backup["password"])[1]
    assert credentials(rb, sb, "bob-backup", "bob").exit_code == 1


def test_a_rotation_the_dc_refuses_delivers_nothing(tmp_path: Path, ad_sandbox: AdSandbox, now: Now) -> None:
    sb = ad_sandbox
    shared = sb.user("svc-report", password="Standing-secret-long-enough-for-the-policy-1")
    rb = repo(tmp_path, sb)
    rb.person("alice", accounts={})
    rb.resource("report", target="corp", model="credential-checkout", account=shared, roles=None)
    rb.grant("carol-report", "carol", now.text(minutes=-10), "1h", resource="report", role=None)
    pso = password_settings(sb, shared, 40)  # jitpol's secrets have 32 characters: refused
    try:
        res = run(rb, sb, "apply", "--at", now.text(), "--no-commit")
        assert res.exit_code == 1, res.output
        assert "FAILED rotate" in res.output, res.output
        refused = credentials(rb, sb, "carol-report", "carol")
        assert refused.exit_code == 1 and "refused" in refused.output, refused.output
        assert "password" not in refused.stdout, "no secret is shown"
        assert not (rb.root / "audit" / "credentials" / "carol-report.age").exists()
        # half-way: the DC took the discarded password and expired the account, so the standing
        # password (now AD's "previous" one) does not bind either
        assert EXPIRED in sb.bind(shared, "Standing-secret-long-enough-for-the-policy-1")[1]
    finally:
        sb.admin.delete(pso)

    res = run(rb, sb, "apply", "--at", now.text(minutes=1), "--no-commit")
    assert res.exit_code == 0, res.output
    got = credentials(rb, sb, "carol-report", "carol")
    assert got.exit_code == 0, got.output
    assert sb.can_bind(shared, json.loads(got.stdout)["password"]), "what is shown is what the DC accepted"
    assert not (rb.root / "audit" / "credentials" / "carol-report.pending.age").exists()
