"""The LDAP connector's `flavor: active-directory` against a real Samba AD domain controller (one
per test session, tests/ad_fixtures.py): group membership with AD's own answers, ephemeral
accounts whose `accountExpires` the DC enforces, sAMAccountName, hostile names, LDAPS and
StartTLS with a verified certificate, and credential checkout whose rotation leaves no earlier
password valid although AD keeps the previous password of an administrative reset valid for an
hour (KB 906305). Samba implements no TTL-linked membership (the PAM feature): those requests
are tested as built in test_ldap_connector.py."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import ldap3
import pytest

from jitpol.connectors.ldap import (
    MARKER_PREFIX,
    LdapConnector,
    ad_sam_account_name,
    check_name,
    filetime,
    from_filetime,
)
from jitpol.connectors.ldap.requests import AD_EXPIRED
from jitpol.errors import JitpolError, PermanentTargetError
from jitpol.model.assignment import Action, Assignment, Op, Scope
from jitpol.model.canonical import canonical_json
from tests.ad_fixtures import *  # noqa: F403 (the fixtures: ad_server, ad_sandbox)
from tests.ad_fixtures import (
    EXPIRED,
    TARGET,
    WRONG_PASSWORD,
    AdSandbox,
    ad_password,
    admin_connection,
    bind_result,
    password_settings,
)
from tests.helpers.clock import Now
from tools.throwaway_samba import ThrowawaySamba

ROLE = "role-membership"
EPHEMERAL = "ephemeral-account"
CHECKOUT = "credential-checkout"
ALL_ACCOUNTS = Scope(TARGET, EPHEMERAL, frozenset())


def role_action(op: Op, principal: str, group: str) -> Action:
    return Action(op=op, assignment=Assignment(TARGET, ROLE, principal, group), resource="r", grants=("g",))


def account_action(op: Op, principal: str, groups: list[str], *, until: datetime, password: str = "",
                   grant: str = "alice-dba-1") -> Action:  # fmt: skip
    details = [("grant", grant), ("person", "alice")]
    if password:
        details.append(("password", password))
    return Action(
        op=op,
        assignment=Assignment(TARGET, EPHEMERAL, principal, canonical_json(sorted(groups))),
        resource="r",
        grants=(grant,),
        until=until if op == "create-account" else None,
        details=tuple(sorted(details)),
    )


def rotate(account: str, holders: list[str], password: str, *, until: datetime | None = None) -> Action:
    return Action(
        op="rotate",
        assignment=Assignment(TARGET, CHECKOUT, account, canonical_json(sorted(holders))),
        resource="shared-admin",
        grants=tuple(sorted(holders)),
        until=until if holders else None,
        details=(("password", password),),
    )


def account_expires(sb: AdSandbox, dn: str) -> int:
    (value,) = sb.attribute(dn, "accountExpires")
    return int(value)


def wait_until(t: datetime) -> None:
    time.sleep(max(0.0, (t - datetime.now(UTC)).total_seconds()) + 1.1)


# -- the domain controller ------------------------------------------------------------------------


def test_the_dc_takes_simple_binds_only_encrypted_and_its_certificate_verifies(ad_sandbox: AdSandbox) -> None:
    sb = ad_sandbox
    server = sb.server
    assert server.version().startswith("Version 4.")
    plain = ldap3.Connection(ldap3.Server(server.url, get_info=ldap3.NONE), server.bind_dn, server.password)
    assert not plain.bind() and plain.result["result"] == 8, "strongerAuthRequired: Samba's default"
    plain.unbind()
    scope = Scope(TARGET, ROLE, frozenset({sb.group("g")}))
    # LDAPS and StartTLS, the certificate verified against the test CA (SSL_CERT_FILE)
    for connector in (sb.connector(), sb.connector(url=server.url, start_tls=True)):
        assert connector.observe(scope) == frozenset()
        assert connector._conn is not None and (connector._conn.tls_started or connector._conn.server.ssl)


def test_an_untrusted_certificate_is_refused(ad_sandbox: AdSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    sb = ad_sandbox
    scope = Scope(TARGET, ROLE, frozenset({sb.group("g")}))
    monkeypatch.setenv("SSL_CERT_FILE", str(sb.server.run_dir / "nothing-trusted.pem"))
    for connector in (sb.connector(), sb.connector(url=sb.server.url, start_tls=True)):
        with pytest.raises(PermanentTargetError, match="CERTIFICATE_VERIFY_FAILED"):
            connector.observe(scope)


def test_a_wrong_bind_password_is_permanent_and_never_shown(ad_sandbox: AdSandbox) -> None:
    sb = ad_sandbox
    scope = Scope(TARGET, ROLE, frozenset({sb.group("g")}))
    with pytest.raises(PermanentTargetError, match="invalid credentials") as info:
        sb.connector(env={"AD_TEST_PASSWORD": "Wr0ng-secret-xyz"}).observe(scope)
    assert "Wr0ng-secret-xyz" not in str(info.value)


def test_samba_has_no_pam_feature_so_memberships_carry_no_ttl(ad_sandbox: AdSandbox) -> None:
    """Samba does not implement TTL-linked membership: the connector finds the feature off and
    adds plain members (observe reports no end), as on an AD forest without PAM."""
    sb = ad_sandbox
    alice = sb.user("alice")
    group = sb.group("ops")
    connector = sb.connector()
    assert connector._pam_enabled() is False
    action = replace(role_action("grant", alice, group), until=datetime.now(UTC) + timedelta(hours=1))
    outcome = connector.apply(action)
    assert outcome.operations == (f"modify {group}: add member: {alice}",), "no <TTL=...> value"
    (observed,) = connector.observe(Scope(TARGET, ROLE, frozenset({group})))
    assert observed.expires is None


# -- role-membership ------------------------------------------------------------------------------


def test_grant_and_revoke_on_an_ad_group(ad_sandbox: AdSandbox) -> None:
    sb = ad_sandbox
    alice, bob = sb.user("alice"), sb.user("bob")
    group = sb.group("db-admins", [bob])
    connector = sb.connector()
    scope = Scope(TARGET, ROLE, frozenset({group}))
    assert connector.observe(scope) == {Assignment(TARGET, ROLE, bob, group)}

    assert connector.apply(role_action("grant", alice, group), check=True).changed
    assert sb.members(group) == {bob}, "check mode writes nothing"
    assert connector.apply(role_action("grant", alice, group)).changed
    assert not connector.apply(role_action("grant", alice, group)).changed
    assert sb.members(group) == {alice, bob}
    assert connector.observe(scope) == {Assignment(TARGET, ROLE, p, group) for p in (alice, bob)}

    assert connector.apply(role_action("revoke", alice, group)).changed
    assert not connector.apply(role_action("revoke", alice, group)).changed
    assert sb.members(group) == {bob}
    # AD groups may be empty: no placeholder
    assert connector.apply(role_action("revoke", bob, group)).changed
    assert sb.members(group) == set()
    assert connector.observe(scope) == frozenset()


class StaleConnector(LdapConnector):
    """Reads a group as it was before another writer changed it: the write then meets AD's own
    answers (68 entryAlreadyExists on an add, 53 with 00000561 on a delete)."""

    stale: dict[str, Any]

    def _read_group(self, dn: str, *, ttl: bool = False) -> Any:
        return self.stale.get(dn) or super()._read_group(dn, ttl=ttl)


def test_ad_answers_to_a_group_changed_meanwhile_mean_already_so(ad_sandbox: AdSandbox) -> None:
    sb = ad_sandbox
    alice, bob = sb.user("alice"), sb.user("bob")
    group = sb.group("g", [bob])
    connector = StaleConnector(TARGET, sb.settings(), sb.env)
    connector.stale = {}
    sb._connectors.append(connector)
    connector.stale = {group: connector._read_group(group)}
    sb.admin.modify(group, {"member": [(ldap3.MODIFY_ADD, [alice])]})  # another writer, after our read
    outcome = connector.apply(role_action("grant", alice, group))
    assert not outcome.changed and outcome.after
    assert outcome.operations == (f"modify {group}: add member: {alice}",), "sent, and answered 'already'"

    connector.stale = {group: connector._read_group(group)}
    sb.admin.modify(group, {"member": [(ldap3.MODIFY_DELETE, [alice])]})
    outcome = connector.apply(role_action("revoke", alice, group))
    assert not outcome.changed and outcome.after
    assert sb.members(group) == {bob}


def test_grant_needs_an_existing_group_and_principal_and_never_the_bind_dn(ad_sandbox: AdSandbox) -> None:
    sb = ad_sandbox
    alice = sb.user("alice")
    group = sb.group("g")
    connector = sb.connector()
    with pytest.raises(PermanentTargetError, match="does not exist"):
        connector.apply(role_action("grant", alice, f"cn=missing,{sb.groups}"))
    with pytest.raises(PermanentTargetError, match="does not exist"):
        connector.apply(role_action("grant", f"cn=nobody,{sb.people}", group))
    with pytest.raises(PermanentTargetError, match="not a groupOfNames"):
        connector.apply(role_action("grant", alice, sb.user("not-a-group")))
    own = sb.connector(bind_dn=sb.user("jitpol-bind", password="B1nd-secret-xyz"),
                       env={"AD_TEST_PASSWORD": "B1nd-secret-xyz"})  # fmt: skip
    with pytest.raises(PermanentTargetError, match="bind DN"):
        own.apply(role_action("grant", own.bind_dn, group))


def test_hostile_but_legal_names_are_used_literally(ad_sandbox: AdSandbox) -> None:
    """`x)(cn=*` is a legal RDN value: it reaches the DC as data, never as filter syntax; `a,b`
    and `a+b` stay one RDN; quotes, `#`, `\\` and non-ASCII pass through escaped."""
    sb = ad_sandbox
    names = ["x)(cn=*", "smith, john", "a+b", 'say "hi"', "#hash", "back\\slash", "zoë ñ 名前"]
    people = [sb.user(n) for n in names]
    assert people[1] == f"cn=smith\\, john,{sb.people}"
    bystander = sb.user("bob")
    group = sb.group("ops)(cn=*", [bystander])
    connector = sb.connector()
    for principal in people:
        check_name(principal, "principal")
        assert connector.apply(role_action("grant", principal, group)).changed
    assert connector.observe(Scope(TARGET, ROLE, frozenset({group}))) == {
        Assignment(TARGET, ROLE, p, group) for p in [*people, bystander]
    }
    for principal in people:
        assert connector.apply(role_action("revoke", principal, group)).changed
    assert sb.members(group) == {bystander}


# -- ephemeral accounts -----------------------------------------------------------------------------


def test_an_ephemeral_account_binds_inside_its_window_and_not_after_delete(ad_sandbox: AdSandbox, now: Now) -> None:
    sb = ad_sandbox
    group = sb.group("g", [sb.user("bob")])
    connector = sb.connector()
    until = now.plus(hours=1)
    action = account_action("create-account", "jit-alice-1", [group], until=until, password="Correct-h0rse-x")
    outcome = connector.apply(action)
    assert outcome.changed
    assert all("Correct-h0rse-x" not in op for op in outcome.operations)
    assert any("unicodePwd: ***" in op for op in outcome.operations)
    dn = f"cn=jit-alice-1,{sb.people}"
    assert sb.bind(dn, "Correct-h0rse-x") == (True, "")
    assert WRONG_PASSWORD in sb.bind(dn, "wrong")[1]
    assert sb.attribute(dn, "sAMAccountName") == ["jit-alice-1"]
    assert sb.attribute(dn, "description") == [f"{MARKER_PREFIX} grant=alice-dba-1; person=alice"]
    assert sb.attribute(dn, "userAccountControl") == ["512"]
    assert account_expires(sb, dn) == filetime(until)
    assert dn in sb.members(group)
    observed = connector.observe(ALL_ACCOUNTS)
    assert observed == {Assignment(TARGET, EPHEMERAL, "jit-alice-1", canonical_json([group]), expires=until,
                                   owned=True)}  # fmt: skip
    # the same action again, without a new secret: nothing to do
    assert not connector.apply(replace(action, details=(("grant", "alice-dba-1"), ("person", "alice")))).changed

    assert connector.apply(account_action("delete-account", "jit-alice-1", [group], until=until)).changed
    assert not sb.can_bind(dn, "Correct-h0rse-x")
    assert sb.entry(dn, ["cn"]) is None
    assert sb.members(group) == {f"cn=bob,{sb.people}"}, "the DC drops a deleted object's links"
    assert not connector.apply(account_action("delete-account", "jit-alice-1", [group], until=until)).changed


def test_the_dc_refuses_binds_after_account_expires(ad_sandbox: AdSandbox, now: Now) -> None:
    sb = ad_sandbox
    connector = sb.connector()
    until = now.plus(seconds=2)
    connector.apply(account_action("create-account", "jit-alice-2", [], until=until, password="Sh0rt-lived-x"))
    dn = f"cn=jit-alice-2,{sb.people}"
    assert sb.can_bind(dn, "Sh0rt-lived-x")
    wait_until(until)
    bound, message = sb.bind(dn, "Sh0rt-lived-x")
    assert not bound and EXPIRED in message, f"the DC ends the account itself: {message}"
    assert sb.entry(dn, ["cn"]) is not None, "no run happened: the account still exists"


def test_the_end_follows_the_grant_both_ways(ad_sandbox: AdSandbox, now: Now) -> None:
    sb = ad_sandbox
    connector = sb.connector()
    dn = f"cn=jit-alice-3,{sb.people}"
    for hours in (2, 5, 1):  # create, extend, shorten
        until = now.plus(hours=hours)
        connector.apply(account_action("create-account", "jit-alice-3", [], until=until))
        assert account_expires(sb, dn) == filetime(until)
        (account,) = connector.observe(ALL_ACCOUNTS)
        assert account.expires == until
    # an end moved into the past ends the account at once
    connector.apply(account_action("create-account", "jit-alice-3", [], until=now.plus(seconds=-5),
                                   password="N0w-ended-secret"))  # fmt: skip
    assert EXPIRED in sb.bind(dn, "N0w-ended-secret")[1]


def test_an_account_without_a_password_is_disabled_until_one_is_delivered(ad_sandbox: AdSandbox, now: Now) -> None:
    sb = ad_sandbox
    connector = sb.connector()
    dn = f"cn=jit-alice-4,{sb.people}"
    connector.apply(account_action("create-account", "jit-alice-4", [], until=now.plus(hours=1)))
    assert sb.attribute(dn, "userAccountControl") == ["514"]
    # a re-delivered secret (the first one was lost with a run that died): set and enabled
    outcome = connector.apply(account_action("create-account", "jit-alice-4", [], until=now.plus(hours=1),
                                             password="Re-delivered-1x"))  # fmt: skip
    assert outcome.operations == (f"modify {dn}: replace unicodePwd: ***; replace userAccountControl: 512",)
    assert sb.can_bind(dn, "Re-delivered-1x")


def test_sam_account_name_rules_on_the_dc(ad_sandbox: AdSandbox, now: Now) -> None:
    """sAMAccountName: at most 20 characters (a longer name gets `jit-` and 16 hex digits,
    distinct for names sharing a prefix), unique in the whole domain (a taken one is refused by
    the DC and nothing is left behind). jitpol's names (jit- and [a-z0-9-]) never contain a
    character AD forbids in it ("/\\[]:;|=,+*?<>@)."""
    sb = ad_sandbox
    connector = sb.connector()
    long_a, long_b = "jit-" + "a" * 24 + "-1", "jit-" + "a" * 24 + "-2"
    for name in (long_a, long_b):
        connector.apply(account_action("create-account", name, [], until=now.plus(hours=1), password="L0ng-name-pw"))
        dn = f"cn={name},{sb.people}"
        (sam,) = sb.attribute(dn, "sAMAccountName")
        assert sam == ad_sam_account_name(name) and len(sam) == 20 and sam.startswith("jit-")
        assert sb.can_bind(dn, "L0ng-name-pw"), "the holder binds by DN, whatever the short name"
    assert ad_sam_account_name(long_a) != ad_sam_account_name(long_b)
    assert {a.principal for a in connector.observe(ALL_ACCOUNTS)} == {long_a, long_b}

    # someone else's account (elsewhere in the domain) already has the short name
    tag = sb.tag[:8]
    sb.admin.add(f"cn=squatter-{tag},{sb.groups}", ["top", "person", "organizationalPerson", "user"],
                 {"sAMAccountName": f"jit-bob-{tag}"})  # fmt: skip
    with pytest.raises(PermanentTargetError, match="add cn=jit-bob"):
        connector.apply(account_action("create-account", f"jit-bob-{tag}", [], until=now.plus(hours=1),
                                       password="Taken-name-pw1"))  # fmt: skip
    assert sb.entry(f"cn=jit-bob-{tag},{sb.people}", ["cn"]) is None


def test_accounts_without_the_marker_are_never_touched(ad_sandbox: AdSandbox, now: Now) -> None:
    sb = ad_sandbox
    theirs = sb.user("jit-alice-5", password="Their-own-pw1")
    connector = sb.connector()
    assert connector.observe(ALL_ACCOUNTS) == frozenset()
    ops: tuple[Op, ...] = ("create-account", "delete-account")
    for op in ops:
        with pytest.raises(PermanentTargetError, match="marker"):
            connector.apply(account_action(op, "jit-alice-5", [], until=now.plus(hours=1)))
    assert sb.can_bind(theirs, "Their-own-pw1")


# -- credential checkout: rotation leaves no earlier password valid -----------------------------------


def test_ad_keeps_the_previous_password_after_one_reset(ad_sandbox: AdSandbox) -> None:
    """The fact the rotation design rests on, straight from the DC (default settings): after
    an administrative unicodePwd reset the replaced password still binds (the "old password
    allowed period", 60 minutes); after a second reset the first no longer does (one slot)."""
    sb = ad_sandbox
    shared = sb.user("svc-admin", password="First-pw-1x")
    sb.admin.modify(shared, {"unicodePwd": [(ldap3.MODIFY_REPLACE, [ad_password("Second-pw-2x")])]})
    assert sb.can_bind(shared, "Second-pw-2x")
    assert sb.can_bind(shared, "First-pw-1x"), "one reset: the previous password still binds"
    sb.admin.modify(shared, {"unicodePwd": [(ldap3.MODIFY_REPLACE, [ad_password("Third-pw-3x")])]})
    assert sb.can_bind(shared, "Second-pw-2x"), "it is the previous one now"
    assert WRONG_PASSWORD in sb.bind(shared, "First-pw-1x")[1], "two resets: out of the one-deep slot"


def test_after_a_rotation_no_earlier_password_binds(ad_sandbox: AdSandbox, now: Now) -> None:
    sb = ad_sandbox
    shared = sb.user("svc-admin", password="Standing-old-1")
    connector = sb.connector()
    until = now.plus(hours=1)
    outcome = connector.apply(rotate(shared, ["alice-admin-1"], "Holder-one-1x", until=until))
    assert outcome.changed and outcome.after
    assert outcome.operations == (
        f"modify {shared}: replace unicodePwd: ***; replace accountExpires: {AD_EXPIRED}",
        f"modify {shared}: replace unicodePwd: ***; replace accountExpires: {filetime(until)}",
    )
    assert sb.can_bind(shared, "Holder-one-1x")
    assert WRONG_PASSWORD in sb.bind(shared, "Standing-old-1")[1]
    assert account_expires(sb, shared) == filetime(until)

    # the next holder: the previous holder's password stops at once
    connector.apply(rotate(shared, ["bob-admin-2"], "Holder-two-2x", until=now.plus(hours=2)))
    assert sb.can_bind(shared, "Holder-two-2x")
    for earlier in ("Holder-one-1x", "Standing-old-1"):
        assert WRONG_PASSWORD in sb.bind(shared, earlier)[1], earlier

    # rotating to nobody at the end: the account never expires again, and the holder's password
    # does not come back with it (the one slot holds the discarded intermediate password)
    connector.apply(rotate(shared, [], "Nobody-knows-3x"))
    assert from_filetime(account_expires(sb, shared)) is None, "never: usable by the next holder"
    for earlier in ("Holder-two-2x", "Holder-one-1x", "Standing-old-1"):
        assert WRONG_PASSWORD in sb.bind(shared, earlier)[1], earlier
    assert sb.can_bind(shared, "Nobody-knows-3x"), "only the secret no person holds"


def test_a_checked_out_password_ends_at_account_expires_without_a_run(ad_sandbox: AdSandbox, now: Now) -> None:
    sb = ad_sandbox
    shared = sb.user("svc-admin", password="Standing-old-1")
    connector = sb.connector()
    until = now.plus(seconds=2)
    connector.apply(rotate(shared, ["alice-admin-1"], "Short-lived-1x", until=until))
    assert sb.can_bind(shared, "Short-lived-1x")
    wait_until(until)
    assert EXPIRED in sb.bind(shared, "Short-lived-1x")[1]
    # the next rotation replaces the stale end: a past end never locks the next holder out
    connector.apply(rotate(shared, ["bob-admin-2"], "Next-holder-2x", until=now.plus(hours=1)))
    assert sb.can_bind(shared, "Next-holder-2x")


def test_starttls_carries_the_rotation_too(ad_sandbox: AdSandbox, now: Now) -> None:
    sb = ad_sandbox
    shared = sb.user("svc-admin", password="Standing-old-1")
    connector = sb.connector(url=sb.server.url, start_tls=True)
    connector.apply(rotate(shared, ["alice-admin-1"], "Over-starttls-1x", until=now.plus(hours=1)))
    assert bind_result(sb.server, shared, "Over-starttls-1x")[0]
    assert not sb.can_bind(shared, "Standing-old-1")
    with pytest.raises(PermanentTargetError, match="encrypted"):
        sb.connector(url=sb.server.url).apply(rotate(shared, [], "Never-sent-1x"))


def test_a_rotation_refused_half_way_fails_closed(ad_sandbox: AdSandbox, now: Now) -> None:
    """The DC takes the discarded password (long) and refuses the holder's (too short for the
    account's password policy): the action fails, and the previous holder's password, still
    the DC's previous one, does not bind, because the first step expired the account."""
    sb = ad_sandbox
    shared = sb.user("svc-admin", password="Holder-old-pw-with-enough-length-to-pass-40")
    pso = password_settings(sb, shared, 40)
    try:
        connector = sb.connector()
        with pytest.raises(PermanentTargetError, match=r"constraintViolation|Constraint") as info:
            connector.apply(rotate(shared, ["bob-admin-2"], "Too-short-1x", until=now.plus(hours=1)))
        assert "Too-short-1x" not in str(info.value)
        assert EXPIRED in sb.bind(shared, "Holder-old-pw-with-enough-length-to-pass-40")[1]
        assert not sb.can_bind(shared, "Too-short-1x"), "never set: the target did not accept it"
        # the next rotation with an acceptable secret puts it right
        connector.apply(rotate(shared, ["bob-admin-2"], "Long-enough-" + "x" * 30, until=now.plus(hours=1)))
        assert sb.can_bind(shared, "Long-enough-" + "x" * 30)
    finally:
        sb.admin.delete(pso)


def test_a_rotation_without_the_right_to_reset_changes_nothing(ad_sandbox: AdSandbox, now: Now) -> None:
    sb = ad_sandbox
    shared = sb.user("svc-admin", password="Standing-old-1")
    weak = sb.user("weak-bind", password="Weak-bind-pw-1")
    connector = sb.connector(bind_dn=weak, env={"AD_TEST_PASSWORD": "Weak-bind-pw-1"})
    with pytest.raises(PermanentTargetError, match=r"insufficientAccessRights|unicodePwd"):
        connector.apply(rotate(shared, ["alice-admin-1"], "Never-set-1x", until=now.plus(hours=1)))
    assert sb.can_bind(shared, "Standing-old-1")
    assert from_filetime(account_expires(sb, shared)) is None
    assert not sb.can_bind(shared, "Never-set-1x")


def test_rotation_refusals_before_any_write(ad_sandbox: AdSandbox) -> None:
    sb = ad_sandbox
    connector = sb.connector()
    marked = sb.user("lookalike", password="Theirs-pw-1x", description=f"{MARKER_PREFIX} grant=g; person=p")
    with pytest.raises(PermanentTargetError, match="marker"):
        connector.apply(rotate(marked, ["a"], "Never-set-1x"))
    with pytest.raises(PermanentTargetError, match="does not exist"):
        connector.apply(rotate(f"cn=nobody,{sb.people}", ["a"], "Never-set-1x"))
    with pytest.raises(PermanentTargetError, match="ephemeral"):
        connector.apply(rotate(f"cn=jit-alice-1,{sb.people}", ["a"], "Never-set-1x"))
    assert sb.can_bind(marked, "Theirs-pw-1x")


def test_no_secret_in_outcomes_exceptions_or_logs(ad_sandbox: AdSandbox, now: Now,
                                                  caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    sb = ad_sandbox
    secrets = [f"S3cret-{n}-{sb.tag}" for n in range(4)]
    shared = sb.user("svc-admin", password="Standing-old-1")
    group = sb.group("not-an-account")
    connector = sb.connector()
    seen = [
        repr(connector.apply(rotate(shared, ["a"], secrets[0], until=now.plus(hours=1)), check=True)),
        repr(connector.apply(rotate(shared, ["a"], secrets[0], until=now.plus(hours=1)))),
        repr(
            connector.apply(
                account_action("create-account", "jit-alice-6", [], until=now.plus(hours=1), password=secrets[1])
            )
        ),
    ]
    for action in (rotate(group, ["a"], secrets[2], until=now.plus(hours=1)),  # the DC refuses unicodePwd
                   rotate(shared, ["a"], secrets[3] + "\x00")):  # fmt: skip
        with pytest.raises(JitpolError) as info:
            connector.apply(action)
        seen.extend([str(info.value), repr(info.value)])
    seen.append(caplog.text)
    for text in seen:
        for secret in [*secrets, sb.server.password]:
            assert secret not in text


def test_the_admin_fixture_is_what_it_says(ad_server: ThrowawaySamba) -> None:
    conn = admin_connection(ad_server)
    try:
        conn.search(ad_server.base_dn, "(sAMAccountName=administrator)", attributes=["cn"])
        assert [e["dn"].lower() for e in conn.response if e.get("type") == "searchResEntry"] == [ad_server.bind_dn]
    finally:
        conn.unbind()


def test_a_long_named_account_logs_on_with_its_user_principal_name(ad_sandbox: AdSandbox, now: Now) -> None:
    """With a base_dn of dc= components only, the account gets userPrincipalName
    <name>@<that domain>, the way to log on by name when sAMAccountName had to be shortened."""
    sb = ad_sandbox
    connector = sb.connector(base_dn=sb.server.base_dn, people_base=sb.people)
    name = f"jit-{sb.tag}-with-a-long-name"
    connector.apply(account_action("create-account", name, [], until=now.plus(hours=1), password="Upn-logon-pw1"))
    dn = f"cn={name},{sb.people}"
    assert sb.attribute(dn, "userPrincipalName") == [f"{name}@example.test"]
    assert len(sb.attribute(dn, "sAMAccountName")[0]) == 20
    assert sb.can_bind(f"{name}@example.test", "Upn-logon-pw1")
    assert sb.can_bind(f"{sb.server.realm.split('.')[0]}\\{ad_sam_account_name(name)}", "Upn-logon-pw1")
