"""LdapConnector against a real OpenLDAP slapd: the server's own answers (20/16, the last member
of a groupOfNames), hostile DNs and filter values, ephemeral accounts that can bind only inside
their window, entries that are not jitpol's, connection errors without secrets. The Active
Directory request values are checked as built; test_ad_connector.py runs them against a real
Samba DC, except TTL-linked membership (Samba has no PAM feature)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ldap3
import pytest
from ldap3.utils.dn import escape_rdn

from jitpol.connectors.ldap import (
    MARKER_PREFIX,
    PLACEHOLDER_DN,
    Change,
    LdapConnector,
    Request,
    _Account,
    _Group,
    _Member,
    ad_account_request,
    ad_domain,
    ad_password_value,
    ad_sam_account_name,
    ad_ttl_member,
    canonical_dn,
    check_name,
    end_request,
    escape_value,
    filetime,
    from_filetime,
    generalized_time,
    member_add_request,
    member_delete_request,
    member_extend_request,
    pam_enabled,
    parse_dn,
    parse_generalized_time,
    parse_ttl_member,
    password_request,
    ssha,
    ssha_matches,
    ttl_seconds,
    wire_value,
)
from jitpol.errors import InvalidInput, PermanentTargetError, TargetUnavailable
from jitpol.model.assignment import Action, Assignment, Op, Scope
from jitpol.model.canonical import canonical_json
from tests.doubles.server import closed_port
from tests.helpers.clock import Now
from tests.ldap_fixtures import *  # noqa: F403 (the fixtures: ldap_server, ldap_tls_server, ldap_sandbox)
from tests.ldap_fixtures import PASSWORD_ENV, TARGET, LdapSandbox, unreachable
from tests.services import require_service
from tools.throwaway_slapd import SlapdNotFound, ThrowawaySlapd, process_gone

ROLE = "role-membership"
EPHEMERAL = "ephemeral-account"
REPO = Path(__file__).resolve().parents[2]


def role_action(op: Op, principal: str, group: str) -> Action:
    return Action(op=op, assignment=Assignment(TARGET, ROLE, principal, group), resource="r", grants=("g",))


def account_action(
    op: Op,
    principal: str,
    groups: list[str],
    *,
    until: datetime | None = None,
    password: str = "",
    grant: str = "alice-dba-1",
) -> Action:
    details = [("grant", grant), ("person", "alice")]
    if password:
        details.append(("password", password))
    return Action(
        op=op,
        assignment=Assignment(TARGET, EPHEMERAL, principal, canonical_json(sorted(groups))),
        resource="r",
        grants=(grant,),
        until=until if until is not None else datetime.now(UTC) + timedelta(hours=1),
        details=tuple(sorted(details)),
    )


def role_scope(*groups: str) -> Scope:
    return Scope(TARGET, ROLE, frozenset(groups))


ALL_ACCOUNTS = Scope(TARGET, EPHEMERAL, frozenset())


# -- the throwaway server -------------------------------------------------------------------


def test_throwaway_slapd_starts_fast_stops_fast_and_leaves_nothing(tmp_path: Path) -> None:
    server = ThrowawaySlapd(tmp_path / "s")
    started = time.monotonic()
    try:
        server.start()
    except SlapdNotFound as exc:
        require_service(False, "slapd", str(exc))
    start_seconds = time.monotonic() - started
    pid = int((server.run_dir / "slapd.pid").read_text())
    conn: Any = ldap3.Connection(ldap3.Server(server.url, get_info=ldap3.NONE), server.bind_dn, server.password)
    assert conn.bind()
    conn.search(server.base_dn, "(objectClass=organizationalUnit)", attributes=["ou"])
    assert {e["attributes"]["ou"][0] for e in conn.response} == {"people", "groups", "policies"}
    conn.unbind()
    assert server.env_file.stat().st_mode & 0o777 == 0o600

    started = time.monotonic()
    ThrowawaySlapd(tmp_path / "s").stop()  # a fresh object stops it through DIR/env
    stop_seconds = time.monotonic() - started
    assert process_gone(pid)  # a zombie counts as gone
    assert not server.run_dir.exists() and not server.env_file.exists()
    server.stop()  # idempotent
    assert start_seconds < 5 and stop_seconds < 5, (start_seconds, stop_seconds)


def test_the_tools_placeholder_is_the_connectors() -> None:
    from tools import throwaway_slapd

    assert throwaway_slapd.PLACEHOLDER_DN == PLACEHOLDER_DN


# -- names ----------------------------------------------------------------------------------

GOOD_DNS = [
    "uid=alice,ou=people,dc=example,dc=org",
    "cn=db-admins,ou=groups,dc=example,dc=org",
    "cn=smith\\, john,ou=people,dc=example,dc=org",  # an escaped comma is part of the value
    "cn=x)(uid\\=*,ou=groups,dc=example,dc=org",  # legal in a DN; escaped whenever it enters a filter
    "cn=müller,dc=example,dc=org",
    "cn=a+uid=b,dc=example,dc=org",
]

HOSTILE_DNS = [
    "",
    "alice",
    "uid=alice\x00,ou=people,dc=example,dc=org",
    "uid=alice\\00,ou=people,dc=example,dc=org",  # NUL, hex-escaped
    "uid=alice\n,ou=people,dc=example,dc=org",
    "uid=alice\r\ndn: cn=admin,ou=people,dc=example,dc=org",
    "uid=al\u202eice,ou=people,dc=example,dc=org",  # bidi override
    "uid=#04024869,dc=example,dc=org",  # BER value
    "uid=a;b,dc=example,dc=org",
    "uid=a\\zz,dc=example,dc=org",
    "uid=,dc=example,dc=org",
    "=x,dc=example,dc=org",
    "u id=x,dc=example,dc=org",
    "uid=x,dc=example,dc=org," + "ou=x," * 200,  # > 1024 characters
    PLACEHOLDER_DN,
]


@pytest.mark.parametrize("dn", GOOD_DNS)
def test_canonical_dns_pass(dn: str) -> None:
    check_name(dn, "principal")
    check_name(dn, "privilege")
    assert canonical_dn(dn) == dn


@pytest.mark.parametrize("dn", HOSTILE_DNS)
def test_hostile_dns_are_refused(dn: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_name(dn, "principal")
    message = str(info.value)
    assert "\n" not in message and "\x00" not in message and len(message) < 500


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("UID=Alice,OU=People,DC=example,DC=org", "uid=alice,ou=people,dc=example,dc=org"),
        ("uid=alice, ou=people, dc=example, dc=org", "uid=alice,ou=people,dc=example,dc=org"),
        ("uid=b+cn=a,dc=x", "cn=a+uid=b,dc=x"),
        ("cn=a\\2cb,dc=x", "cn=a\\,b,dc=x"),
        ("cn=x)(uid=*,dc=x", "cn=x)(uid\\=*,dc=x"),  # '=' escaped, as ldap3's escape_rdn does
    ],
)
def test_non_canonical_spellings_are_refused_with_the_spelling_to_use(written: str, canonical: str) -> None:
    assert canonical_dn(written, lenient=True) == canonical
    with pytest.raises(InvalidInput, match="canonical") as info:
        check_name(written, "principal")
    assert repr(canonical) in str(info.value)


@pytest.mark.parametrize("dn", ["cn=db-admins", "dc=example", "cn=a\\,b"])
def test_a_single_rdn_is_refused_with_the_yaml_flow_list_hint(dn: str) -> None:
    """`grants: [cn=db-admins,cn=users,dc=example]` is a YAML list of three single RDNs: refused at
    validate (before, only apply said "not below base_dn")."""
    with pytest.raises(InvalidInput, match=r"single RDN.*flow list"):
        check_name(dn, "privilege")


def test_check_name_refuses_non_strings() -> None:
    with pytest.raises(InvalidInput, match="string"):
        check_name({"dn": "x"}, "privilege")


@pytest.mark.parametrize(
    "value", ["a,b", "a+b", 'a"b', "a<b>", "a;b", "a=b", "\\", " a", "a ", "#a", "x)(uid=*", "a\x00b"]
)
def test_value_escaping_matches_ldap3(value: str) -> None:
    assert escape_value(value) == escape_rdn(value)
    if "\x00" not in value:
        assert parse_dn(f"cn={escape_value(value)}") == ((("cn", value),),)


def test_module_imports_and_checks_names_without_ldap3() -> None:
    code = (
        "import sys; sys.modules['ldap3'] = None\n"  # any `import ldap3` now fails
        "from jitpol.connectors.registry import name_check\n"
        "check = name_check('ldap')\n"
        "check('uid=alice,ou=people,dc=example,dc=org', 'principal')\n"
        "from jitpol.errors import InvalidInput\n"
        "try:\n"
        "    check('uid=a\\x00,dc=x', 'principal')\n"
        "except InvalidInput:\n"
        "    print('refused')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "refused"


@pytest.mark.parametrize(
    ("principal", "group"),
    [
        ("uid=alice\x00,ou=people,dc=example,dc=org", "cn=g,ou=groups,dc=example,dc=org"),
        ("uid=alice,ou=people,dc=example,dc=org", "cn=g\n,ou=groups,dc=example,dc=org"),
        ("UID=alice,ou=people,dc=example,dc=org", "cn=g,ou=groups,dc=example,dc=org"),
        ("uid=alice,ou=people,dc=evil,dc=org", "cn=g,ou=groups,dc=example,dc=org"),  # outside base_dn
        ("uid=alice,ou=people,dc=example,dc=org", "cn=g,dc=other"),
        ("uid=alice,ou=people,dc=example,dc=org", "dc=example,dc=org"),  # the base itself
        ("uid=alice,ou=people,dc=example,dc=org", "ou=people,dc=example,dc=org"),  # people_base
        ("uid=alice,ou=people,dc=example,dc=org", "cn=admin,dc=example,dc=org"),  # our bind DN
        ("uid=alice,ou=people,dc=example,dc=org", "not a dn"),
        ("uid=alice,ou=people,dc=example,dc=org", PLACEHOLDER_DN),
    ],
)
@pytest.mark.parametrize("op", ["grant", "revoke"])
def test_hostile_role_names_are_refused_before_any_request(principal: str, group: str, op: Op) -> None:
    connector = unreachable()
    with pytest.raises(PermanentTargetError):
        connector.apply(role_action(op, principal, group))
    with pytest.raises(PermanentTargetError):
        connector.apply(role_action(op, principal, group), check=True)


@pytest.mark.parametrize(
    "principal",
    ["jit-a,uid=admin", "jit-a+cn=b", "jit-a)(uid=*", "alice", "jit-A", "jit-", "jit-a\x00", "jit-" + "a" * 40],
)
@pytest.mark.parametrize("op", ["create-account", "delete-account"])
def test_hostile_account_names_are_refused_before_any_request(principal: str, op: Op) -> None:
    action = account_action(op, principal, ["cn=g,ou=groups,dc=example,dc=org"])
    with pytest.raises(PermanentTargetError, match="account name"):
        unreachable().apply(action)


@pytest.mark.parametrize(
    "privilege",
    [
        '["cn=b,dc=example,dc=org","cn=a,dc=example,dc=org"]',  # not sorted
        '["cn=a,dc=example,dc=org","cn=a,dc=example,dc=org"]',  # duplicate
        '[ "cn=a,dc=example,dc=org"]',  # not canonical JSON
        '"cn=a,dc=example,dc=org"',
        '["cn=a\\u0000,dc=example,dc=org"]',
        '["cn=a,dc=other"]',
        "not json",
    ],
)
def test_bad_account_privileges_are_refused_before_any_request(privilege: str) -> None:
    action = account_action("create-account", "jit-alice-1", [])
    action = Action(
        op=action.op, assignment=Assignment(TARGET, EPHEMERAL, "jit-alice-1", privilege), resource="r",
        grants=action.grants, until=action.until, details=action.details,
    )  # fmt: skip
    with pytest.raises(PermanentTargetError):
        unreachable().apply(action)


def test_marker_details_must_be_jitpol_names() -> None:
    action = account_action("create-account", "jit-alice-1", [], grant="x; person=mallory")
    with pytest.raises(PermanentTargetError, match="grant"):
        unreachable().apply(action)


# -- settings and connections -----------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        {"url": "http://example.org"},
        {"url": "ldap://host/dc=example?x"},
        {"bind_dn": ""},
        {"base_dn": "not a dn"},
        {"password_env": ""},
        {"flavor": "389ds"},
        {"start_tls": "yes"},
        {"people_base": "ou=people,dc=elsewhere"},
    ],
)
def test_bad_settings_are_refused_by_the_constructor(settings: dict[str, object]) -> None:
    with pytest.raises(PermanentTargetError):
        unreachable(**settings)


def test_the_constructor_does_no_io_and_close_is_safe_twice() -> None:
    connector = unreachable()
    connector.close()
    connector.close()
    assert connector.people_base == "ou=people,dc=example,dc=org"


def test_an_unreachable_server_is_temporary() -> None:
    with pytest.raises(TargetUnavailable, match="cannot reach"):
        unreachable().observe(role_scope("cn=g,ou=groups,dc=example,dc=org"))


def test_a_server_that_goes_away_is_temporary_and_the_connector_reconnects(tmp_path: Path) -> None:
    server = ThrowawaySlapd(tmp_path / "s")
    try:
        server.start()
    except SlapdNotFound as exc:
        require_service(False, "slapd", str(exc))
    try:
        settings = {"url": server.url, "bind_dn": server.bind_dn, "password_env": "P", "base_dn": server.base_dn}
        connector = LdapConnector(TARGET, settings, {"P": server.password})
        scope = role_scope(f"cn=g,ou=groups,{server.base_dn}")
        assert connector.observe(scope) == frozenset()
    finally:
        server.stop()
    with pytest.raises(TargetUnavailable):
        connector.observe(scope)
    with pytest.raises(TargetUnavailable):
        connector.observe(scope)  # reconnecting fails the same way, not with a stale socket
    connector.close()


def test_a_wrong_bind_password_is_permanent_and_never_shown(ldap_sandbox: LdapSandbox) -> None:
    wrong = "Wr0ng-but-secret-pw"
    connector = ldap_sandbox.connector(env={PASSWORD_ENV: wrong})
    with pytest.raises(PermanentTargetError) as info:
        connector.observe(role_scope(f"cn=g,{ldap_sandbox.groups}"))
    message = str(info.value)
    assert "invalid credentials" in message and PASSWORD_ENV in message
    assert wrong not in message and ldap_sandbox.server.password not in message
    error = info.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__), "nothing chained"


def test_a_missing_password_variable_is_permanent(ldap_sandbox: LdapSandbox) -> None:
    with pytest.raises(PermanentTargetError, match=PASSWORD_ENV):
        ldap_sandbox.connector(env={}).observe(ALL_ACCOUNTS)


def test_start_tls_on_a_server_without_tls_is_permanent(ldap_sandbox: LdapSandbox) -> None:
    connector = ldap_sandbox.connector(start_tls=True)
    with pytest.raises(PermanentTargetError, match="StartTLS"):
        connector.observe(ALL_ACCOUNTS)


def test_unsupported_models_and_ops_are_refused(ldap_sandbox: LdapSandbox) -> None:
    connector = ldap_sandbox.connector()
    with pytest.raises(PermanentTargetError, match="model"):
        connector.observe(Scope(TARGET, "sudo-rule", frozenset()))
    with pytest.raises(PermanentTargetError, match="operation"):
        connector.apply(role_action("create-account", f"uid=a,{ldap_sandbox.people}", f"cn=g,{ldap_sandbox.groups}"))


# -- role-membership on the real server --------------------------------------------------------


def test_the_server_answers_20_and_16_as_the_connector_expects(ldap_sandbox: LdapSandbox) -> None:
    """The facts the connector relies on, straight from slapd."""
    sb = ldap_sandbox
    alice, bob = sb.person("alice"), sb.person("bob")
    group = sb.group("g", [alice])
    conn: Any = ldap3.Connection(ldap3.Server(sb.server.url, get_info=ldap3.NONE), sb.server.bind_dn,
                                 sb.server.password, auto_bind=True)  # fmt: skip
    conn.modify(group, {"member": [(ldap3.MODIFY_ADD, [alice.upper()])]})
    assert conn.result["result"] == 20  # attributeOrValueExists, whatever the spelling
    conn.modify(group, {"member": [(ldap3.MODIFY_DELETE, [bob])]})
    assert conn.result["result"] == 16  # noSuchAttribute
    conn.modify(group, {"member": [(ldap3.MODIFY_DELETE, [alice])]})
    assert conn.result["result"] == 65  # objectClassViolation: the last member of a groupOfNames
    conn.unbind()


class StaleConnector(LdapConnector):
    """Reads a group as it was before another writer changed it: the write then meets the
    server's 20/16/65 answers, which the connector must take as "already so" (or retry)."""

    stale: dict[str, _Group | None]

    def _read_group(self, dn: str, *, ttl: bool = False) -> _Group | None:
        return self.stale.get(dn) or super()._read_group(dn, ttl=ttl)


def stale_connector(sb: LdapSandbox) -> StaleConnector:
    connector = StaleConnector(TARGET, sb.settings(), sb.env)
    connector.stale = {}
    sb._connectors.append(connector)
    return connector


def test_a_member_added_meanwhile_makes_grant_a_no_change(ldap_sandbox: LdapSandbox) -> None:
    sb = ldap_sandbox
    alice, bob = sb.person("alice"), sb.person("bob")
    group = sb.group("g", [bob])
    connector = stale_connector(sb)
    connector.stale[group] = connector._read_group(group)
    sb.add_member(group, alice)  # another writer, after our read
    outcome = connector.apply(role_action("grant", alice, group))
    assert not outcome.changed and outcome.before and outcome.after
    assert outcome.operations == (f"modify {group}: add member: {alice}",)  # what was sent, answered 20
    assert sb.members(group) == {alice, bob}


def test_a_member_removed_meanwhile_makes_revoke_a_no_change(ldap_sandbox: LdapSandbox) -> None:
    sb = ldap_sandbox
    alice, bob = sb.person("alice"), sb.person("bob")
    group = sb.group("g", [alice, bob])
    connector = stale_connector(sb)
    connector.stale[group] = connector._read_group(group)
    sb.admin.modify(group, {"member": [(ldap3.MODIFY_DELETE, [alice])]})
    outcome = connector.apply(role_action("revoke", alice, group))
    assert not outcome.changed and outcome.after
    assert sb.members(group) == {bob}


def test_the_other_members_removed_meanwhile_makes_revoke_use_the_placeholder(ldap_sandbox: LdapSandbox) -> None:
    sb = ldap_sandbox
    alice, bob = sb.person("alice"), sb.person("bob")
    group = sb.group("g", [alice, bob])
    connector = stale_connector(sb)
    connector.stale[group] = connector._read_group(group)
    sb.admin.modify(group, {"member": [(ldap3.MODIFY_DELETE, [bob])]})  # alice is now the last one
    outcome = connector.apply(role_action("revoke", alice, group))
    assert outcome.changed
    assert len(outcome.operations) == 2  # the plain delete (refused: 65), then the swap
    assert sb.members(group) == {PLACEHOLDER_DN}


def test_a_placeholder_removed_meanwhile_makes_grant_add_plainly(ldap_sandbox: LdapSandbox) -> None:
    sb = ldap_sandbox
    alice, bob = sb.person("alice"), sb.person("bob")
    group = sb.group("g", [PLACEHOLDER_DN])
    connector = stale_connector(sb)
    connector.stale[group] = connector._read_group(group)
    sb.admin.modify(group, {"member": [(ldap3.MODIFY_REPLACE, [bob])]})  # someone filled the group
    outcome = connector.apply(role_action("grant", alice, group))
    assert outcome.changed
    assert outcome.operations == (
        f"modify {group}: add member: {alice}; delete member: {PLACEHOLDER_DN}",  # answered 16
        f"modify {group}: add member: {alice}",
    )
    assert sb.members(group) == {alice, bob}


def test_a_placeholder_put_in_meanwhile_makes_revoke_delete_plainly(ldap_sandbox: LdapSandbox) -> None:
    sb = ldap_sandbox
    alice = sb.person("alice")
    group = sb.group("g", [alice])
    connector = stale_connector(sb)
    connector.stale[group] = connector._read_group(group)
    sb.add_member(group, PLACEHOLDER_DN)  # e.g. refint or another jitpol run
    outcome = connector.apply(role_action("revoke", alice, group))
    assert outcome.changed and len(outcome.operations) == 2  # the swap (answered 20), then the delete
    assert sb.members(group) == {PLACEHOLDER_DN}


def test_the_last_member_is_swapped_for_the_placeholder_and_back(ldap_sandbox: LdapSandbox) -> None:
    sb = ldap_sandbox
    alice = sb.person("alice")
    group = sb.group("g", [alice])
    connector = sb.connector()
    outcome = connector.apply(role_action("revoke", alice, group))
    assert outcome.changed and outcome.operations == (
        f"modify {group}: add member: {PLACEHOLDER_DN}; delete member: {alice}",
    )
    assert sb.members(group) == {PLACEHOLDER_DN}
    assert connector.observe(role_scope(group)) == frozenset(), "the placeholder is never reported"
    assert not connector.apply(role_action("revoke", alice, group)).changed

    assert connector.apply(role_action("grant", alice, group)).changed
    assert sb.members(group) == {alice}, "the placeholder goes as soon as there is a real member"
    assert connector.observe(role_scope(group)) == {Assignment(TARGET, ROLE, alice, group)}


def test_refint_leaves_the_placeholder_when_the_last_member_is_deleted(ldap_sandbox: LdapSandbox) -> None:
    sb = ldap_sandbox
    alice = sb.person("alice")
    group = sb.group("g", [alice])
    sb.admin.delete(alice)
    assert sb.members(group) == {PLACEHOLDER_DN}
    assert sb.connector().observe(role_scope(group)) == frozenset()


def test_unmanaged_members_are_never_touched(ldap_sandbox: LdapSandbox) -> None:
    sb = ldap_sandbox
    alice, bob, carol = sb.person("alice"), sb.person("bob"), sb.person("carol")
    group = sb.group("g", [bob, carol.upper()])  # stored in another spelling
    connector = sb.connector()
    observed = connector.observe(role_scope(group))
    assert observed == {Assignment(TARGET, ROLE, bob, group), Assignment(TARGET, ROLE, carol, group)}
    connector.apply(role_action("grant", alice, group))
    connector.apply(role_action("revoke", alice, group))
    assert sb.members(group) == {bob, carol}


def test_a_standing_member_is_left_as_it_is_and_no_member_is_marked(ldap_sandbox: LdapSandbox) -> None:
    """A `member` value cannot carry jitpol's marker: observe says owned None for every member,
    the standing one and the one jitpol added alike (only the ledger knows). A grant that finds
    the person a member already answers unchanged and sends nothing."""
    sb = ldap_sandbox
    alice, bob = sb.person("alice"), sb.person("bob")
    group = sb.group("g", [bob])
    connector = sb.connector()
    assert ROLE not in connector.capabilities.marks
    (standing,) = connector.observe(role_scope(group))
    assert standing == Assignment(TARGET, ROLE, bob, group) and standing.owned is None
    before = sb.entry(group, ["member", "modifyTimestamp", "entryCSN"])
    grant = connector.apply(role_action("grant", bob, group))
    assert not grant.changed and grant.before and grant.operations == ()
    assert sb.entry(group, ["member", "modifyTimestamp", "entryCSN"]) == before, "nothing written"

    assert connector.apply(role_action("grant", alice, group)).changed
    observed = connector.observe(role_scope(group))
    assert observed == {Assignment(TARGET, ROLE, bob, group), Assignment(TARGET, ROLE, alice, group)}
    assert all(a.owned is None and a.expires is None for a in observed), "OpenLDAP: no marker, no end"


def test_a_member_in_another_spelling_is_recognised(ldap_sandbox: LdapSandbox) -> None:
    sb = ldap_sandbox
    alice = sb.person("alice")
    spelled = "UID=Alice, OU=People, " + sb.base_dn.upper()
    group = sb.group("g", [sb.person("bob"), spelled])
    connector = sb.connector()
    assert not connector.apply(role_action("grant", alice, group)).changed
    assert connector.apply(role_action("revoke", alice, group)).changed
    assert alice not in sb.members(group) and spelled.lower() not in sb.members(group)


def test_grant_needs_an_existing_group_and_principal(ldap_sandbox: LdapSandbox) -> None:
    sb = ldap_sandbox
    alice = sb.person("alice")
    person_not_group = sb.person("bob")
    group = sb.group("g", [person_not_group])
    connector = sb.connector()
    with pytest.raises(PermanentTargetError, match="does not exist"):
        connector.apply(role_action("grant", alice, f"cn=missing,{sb.groups}"))
    with pytest.raises(PermanentTargetError, match="does not exist"):
        connector.apply(role_action("grant", f"uid=ghost,{sb.people}", group))
    with pytest.raises(PermanentTargetError, match="not a groupOfNames"):
        connector.apply(role_action("grant", alice, person_not_group))
    # a revoke of someone who is not there is fine whether or not the entry exists
    assert not connector.apply(role_action("revoke", f"uid=ghost,{sb.people}", group)).changed


def test_jitpol_never_changes_its_own_bind_dn(ldap_sandbox: LdapSandbox) -> None:
    sb = ldap_sandbox
    group = sb.group("g", [sb.person("bob")])
    connector = sb.connector(base_dn=sb.server.base_dn)
    with pytest.raises(PermanentTargetError, match="own bind DN"):
        connector.apply(role_action("grant", sb.server.bind_dn, group))


def test_hostile_but_legal_dns_are_used_literally(ldap_sandbox: LdapSandbox) -> None:
    """`x)(uid=*` is a legal RDN value: it must reach the server as data, never as filter syntax,
    and `a,b` in a value must stay one RDN."""
    sb = ldap_sandbox
    injector = sb.person("x)(uid=*")
    comma = sb.person("smith, john")
    assert injector == f"uid=x)(uid\\=*,{sb.people}" and comma == f"uid=smith\\, john,{sb.people}"
    bystander = sb.person("bob")
    group = sb.group("ops)(cn=*", [bystander])
    connector = sb.connector()
    for principal in (injector, comma):
        check_name(principal, "principal")
        assert connector.apply(role_action("grant", principal, group)).changed
    assert connector.observe(role_scope(group)) == {
        Assignment(TARGET, ROLE, p, group) for p in (injector, comma, bystander)
    }
    for principal in (injector, comma):
        assert connector.apply(role_action("revoke", principal, group)).changed
    assert sb.members(group) == {bystander}


def test_observe_ignores_names_that_cannot_be_groups(ldap_sandbox: LdapSandbox) -> None:
    sb = ldap_sandbox
    group = sb.group("g", [sb.person("bob")])
    connector = sb.connector()
    observed = connector.observe(role_scope(group, "not a dn", "cn=*)(objectClass=*", f"cn=missing,{sb.groups}"))
    assert {a.privilege for a in observed} == {group}


# -- ephemeral accounts on the real server -----------------------------------------------------


def test_an_ephemeral_account_binds_inside_its_window_and_not_after_delete(ldap_sandbox: LdapSandbox) -> None:
    sb = ldap_sandbox
    group = sb.group("g", [sb.person("bob")])
    connector = sb.connector()
    action = account_action("create-account", "jit-alice-1", [group], password="correct horse")
    outcome = connector.apply(action)
    assert outcome.changed
    assert all("correct horse" not in op for op in outcome.operations)
    assert any("userPassword: ***" in op for op in outcome.operations)
    dn = f"uid=jit-alice-1,{sb.people}"
    entry = sb.entry(dn, ["userPassword", "description", "pwdEndTime"])
    assert entry is not None
    assert entry["raw_attributes"]["userPassword"][0].startswith(b"{SSHA}"), "stored hashed"
    assert entry["raw_attributes"]["description"] == [f"{MARKER_PREFIX} grant=alice-dba-1; person=alice".encode()]
    assert sb.can_bind(dn, "correct horse")
    assert not sb.can_bind(dn, "wrong")
    assert sb.members(group) >= {dn}

    assert connector.apply(account_action("delete-account", "jit-alice-1", [group])).changed
    assert not sb.can_bind(dn, "correct horse")
    assert sb.entry(dn, ["uid"]) is None
    assert dn not in sb.members(group)


def test_the_server_refuses_binds_after_pwd_end_time(ldap_sandbox: LdapSandbox) -> None:
    sb = ldap_sandbox
    group = sb.group("g", [sb.person("bob")])
    connector = sb.connector()
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    connector.apply(account_action("create-account", "jit-alice-2", [group], until=until, password="pw-2"))
    (account,) = connector.observe(ALL_ACCOUNTS)
    assert account.expires == until
    dn = f"uid=jit-alice-2,{sb.people}"
    assert sb.can_bind(dn, "pw-2")
    time.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 1.1)
    assert not sb.can_bind(dn, "pw-2"), "ppolicy enforces pwdEndTime: the entry still exists"
    assert sb.entry(dn, ["uid"]) is not None


def test_the_end_is_rounded_up_and_follows_the_grant_both_ways(ldap_sandbox: LdapSandbox) -> None:
    """The end is the grant's live end, not the latest one ever asked for: a later end extends
    pwdEndTime, an earlier one (a schedule, a restriction, a break-glass deadline) shortens it."""
    sb = ldap_sandbox
    group = sb.group("g", [sb.person("bob")])
    connector = sb.connector()
    now = Now.read()
    until = now.plus(hours=6) + timedelta(microseconds=250_000)
    connector.apply(account_action("create-account", "jit-alice-3", [group], until=until))
    (account,) = connector.observe(ALL_ACCOUNTS)
    assert account.expires == now.plus(hours=6, seconds=1)  # rounded up: never before `until`
    assert not connector.apply(account_action("create-account", "jit-alice-3", [group], until=until)).changed

    later = until + timedelta(days=1)
    outcome = connector.apply(account_action("create-account", "jit-alice-3", [group], until=later))
    assert outcome.changed
    assert outcome.operations == (
        f"modify uid=jit-alice-3,{sb.people}: replace pwdEndTime: {generalized_time(later)}",
    )
    earlier = now.plus(hours=2)
    outcome = connector.apply(account_action("create-account", "jit-alice-3", [group], until=earlier))
    assert outcome.changed, "an earlier end is written too"
    assert outcome.operations == (
        f"modify uid=jit-alice-3,{sb.people}: replace pwdEndTime: {generalized_time(earlier)}",
    )
    (account,) = connector.observe(ALL_ACCOUNTS)
    assert account.expires == earlier and account.owned is True
    assert not connector.apply(account_action("create-account", "jit-alice-3", [group], until=earlier)).changed


def test_a_shortened_end_is_enforced_by_the_server(ldap_sandbox: LdapSandbox) -> None:
    """An account created for an hour, then cut to two seconds from now (an extend action with
    an earlier end): slapd refuses its binds after the new end, without another run."""
    sb = ldap_sandbox
    group = sb.group("g", [sb.person("bob")])
    connector = sb.connector()
    now = Now.read()
    dn = f"uid=jit-alice-14,{sb.people}"
    connector.apply(account_action("create-account", "jit-alice-14", [group], until=now.plus(hours=1),
                                   password="pw-14"))  # fmt: skip
    cut = now.plus(seconds=3)
    shorten = account_action("create-account", "jit-alice-14", [group], until=cut)
    shorten = replace(shorten, details=tuple(sorted({**dict(shorten.details), "mode": "extend"}.items())))
    outcome = connector.apply(shorten)
    assert outcome.operations == (f"modify {dn}: replace pwdEndTime: {generalized_time(cut)}",)
    (account,) = connector.observe(ALL_ACCOUNTS)
    assert account.expires == cut
    assert sb.can_bind(dn, "pw-14"), "the delivered password is kept: only the end moved"
    time.sleep(max(0.0, (cut - datetime.now(UTC)).total_seconds()) + 1.1)
    assert not sb.can_bind(dn, "pw-14"), "ppolicy enforces the shortened pwdEndTime"
    assert sb.entry(dn, ["uid"]) is not None, "the entry is there until a run deletes it"


def test_create_account_puts_the_groups_right(ldap_sandbox: LdapSandbox) -> None:
    sb = ldap_sandbox
    bob = sb.person("bob")
    a, b, c = sb.group("a", [bob]), sb.group("b", [bob]), sb.group("c", [bob])
    connector = sb.connector()
    connector.apply(account_action("create-account", "jit-alice-4", [a, b]))
    dn = f"uid=jit-alice-4,{sb.people}"
    sb.add_member(c, dn)  # someone puts jitpol's account into another group
    sb.admin.modify(b, {"member": [(ldap3.MODIFY_DELETE, [dn])]})  # and takes it out of one
    (drifted,) = connector.observe(ALL_ACCOUNTS)
    assert drifted.privilege == canonical_json(sorted([a, c]))
    outcome = connector.apply(account_action("create-account", "jit-alice-4", [a, b]))
    assert outcome.changed and len(outcome.operations) == 2
    (account,) = connector.observe(ALL_ACCOUNTS)
    assert account.privilege == canonical_json(sorted([a, b]))
    assert sb.members(c) == {bob} and sb.members(a) == sb.members(b) == {bob, dn}


def test_an_account_that_is_the_last_member_leaves_the_placeholder(ldap_sandbox: LdapSandbox) -> None:
    sb = ldap_sandbox
    bob = sb.person("bob")
    group = sb.group("g", [bob])
    sb.admin.modify(group, {"member": [(ldap3.MODIFY_REPLACE, [PLACEHOLDER_DN])]})  # an emptied group
    connector = sb.connector()
    connector.apply(account_action("create-account", "jit-alice-5", [group]))
    dn = f"uid=jit-alice-5,{sb.people}"
    assert sb.members(group) == {dn}
    outcome = connector.apply(account_action("delete-account", "jit-alice-5", [group]))
    assert outcome.operations == (
        f"modify {group}: add member: {PLACEHOLDER_DN}; delete member: {dn}",
        f"delete {dn}",
    )
    assert sb.members(group) == {PLACEHOLDER_DN}


def test_entries_without_the_marker_are_never_touched(ldap_sandbox: LdapSandbox) -> None:
    sb = ldap_sandbox
    group = sb.group("g", [sb.person("bob")])
    theirs = sb.person("jit-alice-6", password="theirs", description="made by hand")
    sb.add_member(group, theirs)
    # a marked entry outside people_base is not an account of this target either
    sb.person("jit-elsewhere-1", parent=sb.groups, description=f"{MARKER_PREFIX} grant=x; person=y")
    connector = sb.connector()
    assert connector.observe(ALL_ACCOUNTS) == frozenset()
    before = sb.entry(theirs, ["description", "userPassword", "pwdEndTime", "entryCSN"])
    ops: tuple[Op, ...] = ("create-account", "delete-account")
    for op in ops:
        for check in (True, False):
            with pytest.raises(PermanentTargetError, match="marker"):
                connector.apply(account_action(op, "jit-alice-6", [group], password="ours"), check=check)
    assert sb.can_bind(theirs, "theirs") and theirs in sb.members(group)
    assert sb.entry(theirs, ["description", "userPassword", "pwdEndTime", "entryCSN"]) == before, (
        "not marked, no end written, nothing changed")
    assert connector.observe(ALL_ACCOUNTS) == frozenset(), "an entry without the marker is not jitpol's account"


def test_what_jitpol_creates_carries_its_marker_and_is_owned(ldap_sandbox: LdapSandbox) -> None:
    sb = ldap_sandbox
    group = sb.group("g", [sb.person("bob")])
    connector = sb.connector()
    assert EPHEMERAL in connector.capabilities.marks
    until = Now.read().plus(hours=1)
    connector.apply(account_action("create-account", "jit-alice-15", [group], until=until))
    (account,) = connector.observe(ALL_ACCOUNTS)
    assert account.owned is True and account.expires == until
    entry = sb.entry(f"uid=jit-alice-15,{sb.people}", ["description"])
    assert entry is not None
    assert entry["raw_attributes"]["description"] == [f"{MARKER_PREFIX} grant=alice-dba-1; person=alice".encode()]


def test_observe_escapes_account_dns_in_its_member_filter(ldap_sandbox: LdapSandbox) -> None:
    """A marked entry whose uid is filter syntax: the (member=...) search must match only it."""
    sb = ldap_sandbox
    bob = sb.person("bob")
    odd = sb.person("x)(uid=*", description=f"{MARKER_PREFIX} grant=x; person=y")
    a, b = sb.group("a", [bob, odd]), sb.group("b", [bob])
    observed = sb.connector().observe(ALL_ACCOUNTS)
    assert observed == {Assignment(TARGET, EPHEMERAL, "x)(uid=*", canonical_json([a]))}
    assert b not in next(iter(observed)).privilege
    # and jitpol would refuse to act on such a name
    with pytest.raises(PermanentTargetError, match="account name"):
        sb.connector().apply(account_action("delete-account", "x)(uid=*", [a]))


def test_create_account_needs_existing_groups(ldap_sandbox: LdapSandbox) -> None:
    sb = ldap_sandbox
    connector = sb.connector()
    with pytest.raises(PermanentTargetError, match="does not exist"):
        connector.apply(account_action("create-account", "jit-alice-7", [f"cn=missing,{sb.groups}"]))
    assert connector.observe(ALL_ACCOUNTS) == frozenset(), "nothing half-made"


def test_check_mode_writes_nothing_for_accounts(ldap_sandbox: LdapSandbox) -> None:
    sb = ldap_sandbox
    group = sb.group("g", [sb.person("bob")])
    connector = sb.connector()
    outcome = connector.apply(account_action("create-account", "jit-alice-8", [group], password="pw"), check=True)
    assert outcome.changed and not outcome.after and len(outcome.operations) == 2
    assert connector.observe(ALL_ACCOUNTS) == frozenset()
    connector.apply(account_action("create-account", "jit-alice-8", [group]))
    outcome = connector.apply(account_action("delete-account", "jit-alice-8", [group]), check=True)
    assert outcome.changed and len(outcome.operations) == 2
    assert len(connector.observe(ALL_ACCOUNTS)) == 1


def test_a_re_delivered_password_replaces_the_lost_one(ldap_sandbox: LdapSandbox) -> None:
    """After a run died between creating an account and recording its delivery, the core sends
    create-account again with a NEW secret (the first is lost): the account must take it."""
    sb = ldap_sandbox
    group = sb.group("g", [sb.person("bob")])
    connector = sb.connector()
    until = datetime(2099, 1, 1, tzinfo=UTC)
    dn = f"uid=jit-alice-11,{sb.people}"
    connector.apply(account_action("create-account", "jit-alice-11", [group], until=until, password="lost-one"))
    before = sb.entry(dn, ["description", "pwdEndTime", "uid"])

    # the same action again (a retried run): the stored hash verifies it, nothing to do
    again = connector.apply(account_action("create-account", "jit-alice-11", [group], until=until,
                                           password="lost-one"))  # fmt: skip
    assert not again.changed and again.operations == ()

    redelivery = account_action("create-account", "jit-alice-11", [group], until=until, password="new-one")
    checked = connector.apply(redelivery, check=True)
    assert checked.changed and checked.operations == (f"modify {dn}: replace userPassword: ***",)
    assert sb.can_bind(dn, "lost-one") and not sb.can_bind(dn, "new-one"), "check mode writes nothing"

    outcome = connector.apply(redelivery)
    assert outcome.changed and outcome.after
    assert outcome.operations == (f"modify {dn}: replace userPassword: ***",)
    assert sb.can_bind(dn, "new-one")
    assert not sb.can_bind(dn, "lost-one")
    assert sb.entry(dn, ["description", "pwdEndTime", "uid"]) == before, "marker and end untouched"
    assert sb.members(group) >= {dn}
    assert not connector.apply(redelivery).changed

    # an extension carries no password: the delivered one stays
    extended = connector.apply(account_action("create-account", "jit-alice-11", [group], until=until))
    assert not extended.changed
    assert sb.can_bind(dn, "new-one")


def test_a_re_delivery_that_also_repairs_groups_does_both(ldap_sandbox: LdapSandbox) -> None:
    sb = ldap_sandbox
    bob = sb.person("bob")
    a, b = sb.group("a", [bob]), sb.group("b", [bob])
    connector = sb.connector()
    dn = f"uid=jit-alice-12,{sb.people}"
    connector.apply(account_action("create-account", "jit-alice-12", [a], password="lost-one"))
    outcome = connector.apply(account_action("create-account", "jit-alice-12", [a, b], password="new-one"))
    assert outcome.operations == (
        f"modify {dn}: replace userPassword: ***",
        f"modify {b}: add member: {dn}",
    )
    assert sb.can_bind(dn, "new-one") and not sb.can_bind(dn, "lost-one")
    assert dn in sb.members(b)


def test_a_password_the_entry_holds_otherwise_is_set_again(ldap_sandbox: LdapSandbox) -> None:
    """Only a single {SSHA} value that verifies counts as "already set": a second value (someone
    added their own) or another scheme is replaced, so no other password keeps working."""
    sb = ldap_sandbox
    connector = sb.connector()
    dn = f"uid=jit-alice-13,{sb.people}"
    connector.apply(account_action("create-account", "jit-alice-13", [], password="delivered"))
    sb.admin.modify(dn, {"userPassword": [(ldap3.MODIFY_ADD, ["backdoor"])]})
    assert sb.can_bind(dn, "backdoor")
    outcome = connector.apply(account_action("create-account", "jit-alice-13", [], password="delivered"))
    assert outcome.changed
    assert sb.can_bind(dn, "delivered") and not sb.can_bind(dn, "backdoor")

    sb.admin.modify(dn, {"userPassword": [(ldap3.MODIFY_REPLACE, ["delivered"])]})  # cleartext
    assert connector.apply(account_action("create-account", "jit-alice-13", [], password="delivered")).changed
    entry = sb.entry(dn, ["userPassword"])
    assert entry is not None and entry["raw_attributes"]["userPassword"][0].startswith(b"{SSHA}")


def test_ssha_matches() -> None:
    stored = ssha("pw", salt=b"12345678")
    assert ssha_matches([stored], "pw")
    assert ssha_matches(["{ssha}" + stored[6:]], "pw"), "the scheme name is case-insensitive"
    assert not ssha_matches([stored], "pw ")
    assert not ssha_matches([stored, stored], "pw"), "a second value is another way in"
    assert not ssha_matches([], "pw")
    assert not ssha_matches(["pw"], "pw"), "cleartext is set again, hashed"
    assert not ssha_matches(["{SHA}" + stored[6:]], "pw")
    assert not ssha_matches(["{SSHA}not base64!"], "pw")
    assert not ssha_matches(["{SSHA}" + "QUJD"], "pw"), "too short to hold a digest and a salt"


def test_an_account_without_groups_is_allowed(ldap_sandbox: LdapSandbox) -> None:
    connector = ldap_sandbox.connector()
    connector.apply(account_action("create-account", "jit-alice-9", []))
    assert connector.observe(ALL_ACCOUNTS) == {Assignment(TARGET, EPHEMERAL, "jit-alice-9", "[]")}


def test_people_base_setting_is_used(ldap_sandbox: LdapSandbox) -> None:
    sb = ldap_sandbox
    jit = f"ou=jit,{sb.people}"
    sb.admin.add(jit, ["organizationalUnit"], {"ou": "jit"})
    connector = sb.connector(people_base=jit)
    connector.apply(account_action("create-account", "jit-alice-10", []))
    assert sb.entry(f"uid=jit-alice-10,{jit}", ["uid"]) is not None
    assert len(connector.observe(ALL_ACCOUNTS)) == 1
    assert sb.connector().observe(ALL_ACCOUNTS) == frozenset(), "the default people_base holds none"


# -- Active Directory: the exact request values (no AD server can run here) ---------------------

AD_USER = "cn=jit-alice-1,cn=users,dc=corp,dc=example"
AD_GROUP = "cn=domain admins,cn=users,dc=corp,dc=example"


def test_filetime_matches_windows() -> None:
    assert filetime(datetime(1970, 1, 1, tzinfo=UTC)) == 116_444_736_000_000_000
    assert filetime(datetime(2024, 1, 1, tzinfo=UTC)) == 133_485_408_000_000_000
    assert filetime(datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC)) == 133_485_408_000_000_010
    assert from_filetime(133_485_408_000_000_000) == datetime(2024, 1, 1, tzinfo=UTC)
    assert from_filetime(0) is None and from_filetime(0x7FFFFFFFFFFFFFFF) is None


def test_ttl_members_are_built_and_read_as_ad_writes_them() -> None:
    assert ad_ttl_member(AD_USER, 3600) == f"<TTL=3600,{AD_USER}>"
    assert parse_ttl_member("<TTL=6987>,CN=PatColeman,CN=Users,DC=adatum,DC=com") == (
        "CN=PatColeman,CN=Users,DC=adatum,DC=com",
        6987,
    )
    assert parse_ttl_member(AD_USER) == (AD_USER, None)
    now = datetime(2024, 1, 1, tzinfo=UTC)
    assert ttl_seconds(now + timedelta(hours=2), now) == 7200
    assert ttl_seconds(now + timedelta(seconds=1, microseconds=1), now) == 2  # rounded up
    with pytest.raises(PermanentTargetError):
        ttl_seconds(now, now)


def test_membership_requests_for_ad() -> None:
    assert member_add_request(AD_GROUP, AD_USER, ttl=7200) == Request(
        "modify", AD_GROUP, (Change("add", "member", (f"<TTL=7200,{AD_USER}>",)),)
    )
    assert member_extend_request(AD_GROUP, AD_USER, 9000) == Request(
        "modify",
        AD_GROUP,
        (Change("delete", "member", (AD_USER,)), Change("add", "member", (f"<TTL=9000,{AD_USER}>",))),
    )
    assert member_delete_request(AD_GROUP, AD_USER) == Request(
        "modify", AD_GROUP, (Change("delete", "member", (AD_USER,)),)
    )


def test_pam_feature_detection() -> None:
    pam = (
        "CN=Privileged Access Management Feature,CN=Optional Features,CN=Directory Service,CN=Windows NT,"
        "CN=Services,CN=Configuration,DC=corp,DC=example"
    )
    recycle = pam.replace("Privileged Access Management Feature", "Recycle Bin Feature")
    assert pam_enabled([recycle, pam])
    assert not pam_enabled([recycle])
    assert not pam_enabled([])


def test_ad_account_request_values() -> None:
    end = datetime(2024, 1, 1, 8, 0, tzinfo=UTC)
    description = f"{MARKER_PREFIX} grant=g; person=alice"
    request = ad_account_request(AD_USER, "jit-alice-1", description, end=end, password="S3cret!x",
                                 domain=ad_domain(parse_dn("dc=corp,dc=example")))  # fmt: skip
    assert request == Request(
        "add",
        AD_USER,
        (
            Change("add", "objectClass", ("top", "person", "organizationalPerson", "user")),
            Change("add", "cn", ("jit-alice-1",)),
            Change("add", "sAMAccountName", ("jit-alice-1",)),
            Change("add", "description", (description,)),
            Change("add", "accountExpires", ("133485696000000000",)),
            Change("add", "userAccountControl", ("512",)),
            Change("add", "userPrincipalName", ("jit-alice-1@corp.example",)),
            Change("add", "unicodePwd", ("S3cret!x",)),
        ),
    )
    assert wire_value("unicodePwd", "S3cret!x") == '"S3cret!x"'.encode("utf-16-le") == ad_password_value("S3cret!x")
    assert "S3cret" not in request.describe() and "unicodePwd: ***" in request.describe()
    disabled = ad_account_request(AD_USER, "jit-alice-1", description, end=None, password=None, domain=None)
    values = {c.attribute: c.values for c in disabled.changes}
    assert values["userAccountControl"] == ("514",) and values["accountExpires"] == ("0",)
    assert "unicodePwd" not in values and "userPrincipalName" not in values
    assert end_request(AD_USER, "active-directory", end) == Request(
        "modify", AD_USER, (Change("replace", "accountExpires", ("133485696000000000",)),)
    )
    assert ad_domain(parse_dn("ou=x,dc=corp,dc=example")) is None


class AdAsRead(LdapConnector):
    """An Active Directory connector whose reads answer from the fields below and whose writes
    are recorded and succeed: the requests an AD would get, without an AD. A written
    accountExpires is read back as the DC would store it; group members are set by the test."""

    accounts: dict[str, _Account]
    groups: dict[str, _Group]
    server_now: datetime
    sent: list[Request]

    def _pam_enabled(self) -> bool:
        return True

    def _server_time(self) -> datetime:
        return self.server_now

    def _read_account(self, principal: str) -> _Account | None:
        return self.accounts.get(principal)

    def _read_group(self, dn: str, *, ttl: bool = False) -> _Group | None:
        return self.groups.get(dn)

    def _read_entry(self, dn: str, attributes: Any) -> dict[str, Any] | None:
        return {"dn": dn, "raw_attributes": {}}

    def _groups_of(self, member_dn: str) -> set[str]:
        return {g for g, group in self.groups.items() if group.find(member_dn) is not None}

    def _write(self, request: Request) -> tuple[int | None, Any]:
        self.sent.append(request)
        for c in request.changes:
            if c.attribute == "accountExpires":
                account = next(a for a in self.accounts.values() if a.dn == request.dn)
                self.accounts[account.principal] = replace(account, end=from_filetime(int(c.values[0])))
        return 0, {"result": 0}


def ad_as_read(now: datetime) -> AdAsRead:
    connector = AdAsRead(TARGET, {"url": f"ldaps://127.0.0.1:{closed_port()}", "bind_dn": "cn=admin,dc=corp,dc=example",
                                  "password_env": PASSWORD_ENV, "base_dn": "dc=corp,dc=example",
                                  "people_base": "cn=users,dc=corp,dc=example", "flavor": "active-directory"},
                         {PASSWORD_ENV: "pw"})  # fmt: skip
    connector.accounts, connector.groups, connector.server_now, connector.sent = {}, {}, now, []
    return connector


def test_ad_account_expires_follows_the_grant_both_ways() -> None:
    """An AD ephemeral account's accountExpires is replaced with the action's until whether that
    is later or earlier than the end in place; the same end again sends nothing."""
    now = Now.read()
    ad = ad_as_read(now.at)
    ad.groups[AD_GROUP] = _Group(frozenset({"group"}), (_Member(AD_USER, AD_USER),))
    ad.accounts["jit-alice-1"] = _Account(AD_USER, "jit-alice-1", marked=True, end=now.plus(hours=3))
    for hours in (1, 5, 2):  # shorten, lengthen, shorten
        until = now.plus(hours=hours) + timedelta(microseconds=7)
        action = account_action("create-account", "jit-alice-1", [AD_GROUP], until=until)
        checked = ad.apply(action, check=True)
        assert checked.operations == (f"modify {AD_USER}: replace accountExpires: {filetime(until)}",)
        assert ad.sent == [], "check mode sends nothing"
        outcome = ad.apply(action)
        assert outcome.changed
        assert ad.sent == [end_request(AD_USER, "active-directory", until)]
        assert ad.accounts["jit-alice-1"].end == until
        ad.sent.clear()
        assert not ad.apply(action).changed and ad.sent == [], "the end is in place"


def test_ad_ttl_link_follows_the_grant_both_ways() -> None:
    """AD with PAM: a member whose TTL link ends elsewhere than the grant gets a link with the
    grant's end (one modify: delete the value, add it with the new TTL), earlier or later; a
    link within TTL_SLACK of it, and a member without a TTL (standing), are left as they are."""
    now = Now.read()
    ad = ad_as_read(now.at)
    standing = "cn=bob,cn=users,dc=corp,dc=example"
    ad.groups[AD_GROUP] = _Group(frozenset({"group"}), (_Member(AD_USER, AD_USER, 3 * 3600),
                                                          _Member(standing, standing)))  # fmt: skip
    for hours in (1, 4):  # shorten, lengthen
        action = replace(role_action("grant", AD_USER, AD_GROUP), until=now.plus(hours=hours))
        outcome = ad.apply(action)
        assert outcome.changed
        assert ad.sent == [member_extend_request(AD_GROUP, AD_USER, hours * 3600)]
        assert outcome.operations == (
            f"modify {AD_GROUP}: delete member: {AD_USER}; add member: <TTL={hours * 3600},{AD_USER}>",
        )
        ad.sent.clear()
        ad.server_now = now.plus(seconds=2)  # the link counts down; read back two seconds later
        ttl = hours * 3600 - 2
        ad.groups[AD_GROUP] = replace(ad.groups[AD_GROUP], members=(_Member(AD_USER, AD_USER, ttl),
                                                                     _Member(standing, standing)))  # fmt: skip
        assert not ad.apply(action).changed and ad.sent == [], "within TTL_SLACK: the end is in place"
        ad.server_now = now.at
    grant_standing = replace(role_action("grant", standing, AD_GROUP), until=now.plus(hours=1))
    assert not ad.apply(grant_standing).changed and ad.sent == [], "a member for good stays one, no TTL added"


def test_ad_re_delivery_request_values() -> None:
    """AD's unicodePwd cannot be read back, so a re-delivered password is always set; the account
    is enabled with it (made without a password, it was created disabled)."""
    request = password_request(AD_USER, "active-directory", "S3cret!x")
    assert request == Request(
        "modify",
        AD_USER,
        (Change("replace", "unicodePwd", ("S3cret!x",)), Change("replace", "userAccountControl", ("512",))),
    )
    assert request.describe() == f"modify {AD_USER}: replace unicodePwd: ***; replace userAccountControl: 512"
    openldap = password_request("uid=jit-a,ou=people,dc=example,dc=org", "openldap", "pw")
    assert [(c.op, c.attribute) for c in openldap.changes] == [("replace", "userPassword")]
    assert ssha_matches(openldap.changes[0].values, "pw")


def test_long_ad_account_names_get_a_short_stable_sam_account_name() -> None:
    long_name = "jit-alexandra-maria-3f9c0a1b"
    sam = ad_sam_account_name(long_name)
    assert sam == "jit-" + hashlib.sha256(long_name.encode()).hexdigest()[:16] and len(sam) == 20
    assert ad_sam_account_name("jit-bo-3f9c0a1b") == "jit-bo-3f9c0a1b"
    request = ad_account_request(f"cn={long_name},cn=users,dc=corp,dc=example", long_name, "d", end=None,
                                 password=None, domain="corp.example")  # fmt: skip
    values = {c.attribute: c.values for c in request.changes}
    assert values["cn"] == (long_name,) and values["sAMAccountName"] == (sam,)
    assert values["userPrincipalName"] == (f"{long_name}@corp.example",)


def test_ad_refuses_passwords_without_tls_before_any_request() -> None:
    ad = unreachable(flavor="active-directory", base_dn="dc=corp,dc=example", people_base="cn=users,dc=corp,dc=example")
    group = "cn=g,cn=users,dc=corp,dc=example"
    with pytest.raises(PermanentTargetError, match="encrypted"):
        ad.apply(account_action("create-account", "jit-alice-1", [group], password="pw"))


def test_generalized_time_round_trip() -> None:
    t = datetime(2095, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert generalized_time(t) == "20950506070809Z"
    assert generalized_time(t + timedelta(microseconds=1)) == "20950506070810Z"
    assert parse_generalized_time("20950506070809Z") == t
    assert parse_generalized_time("20950506070809.5Z") == t + timedelta(milliseconds=500)  # AD currentTime
    with pytest.raises(ValueError, match="GeneralizedTime"):
        parse_generalized_time("20950506070809+0100")


# -- TLS (a second throwaway slapd with a self-signed certificate) ------------------------------


def tls_connector(server: ThrowawaySlapd, url: str, **settings: object) -> LdapConnector:
    base = {"url": url, "bind_dn": server.bind_dn, "password_env": "P", "base_dn": server.base_dn}
    return LdapConnector(TARGET, {**base, **settings}, {"P": server.password})


def test_start_tls_and_ldaps_verify_the_certificate(
    ldap_tls_server: ThrowawaySlapd, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = ldap_tls_server
    scope = role_scope(f"cn=g,ou=groups,{server.base_dn}")
    # not trusted: refused, and that is a configuration problem, not a passing one
    monkeypatch.setenv("SSL_CERT_FILE", str(server.run_dir / "nothing-trusted.pem"))
    for connector in (tls_connector(server, server.url, start_tls=True), tls_connector(server, server.ldaps_url)):
        with pytest.raises(PermanentTargetError, match="CERTIFICATE_VERIFY_FAILED"):
            connector.observe(scope)
        connector.close()

    monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))
    start_tls = tls_connector(server, server.url, start_tls=True)
    assert start_tls.observe(scope) == frozenset()
    assert start_tls._conn is not None and start_tls._conn.tls_started
    start_tls.close()
    ldaps = tls_connector(server, server.ldaps_url)
    assert ldaps.observe(scope) == frozenset()
    ldaps.close()

    # trusted certificate, wrong name: the certificate names 127.0.0.1, not localhost
    wrong_name = tls_connector(server, server.ldaps_url.replace("127.0.0.1", "localhost"))
    with pytest.raises(PermanentTargetError, match="certificate does not name localhost"):
        wrong_name.observe(scope)
