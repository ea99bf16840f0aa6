"""credential-checkout on a real OpenLDAP slapd: rotate replaces a shared entry's password (the
old one stops working at once), ppolicy's pwdEndTime ends a checked-out password by itself,
rotating to nobody leaves a password nobody knows and no end, unsafe account DNs are refused,
and no secret reaches an Outcome, an exception or a log. The Active Directory requests are
checked as built here and run against a real Samba DC in test_ad_connector.py."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import ldap3
import pytest

from jitpol.connectors import registry
from jitpol.connectors.ldap import (
    MARKER_PREFIX,
    PLACEHOLDER_DN,
    Change,
    LdapConnector,
    Request,
    filetime,
    from_filetime,
    generalized_time,
    parse_generalized_time,
    rotate_request,
    ssha_matches,
    wire_value,
)
from jitpol.connectors.ldap.requests import AD_EXPIRED, ad_flush_request, discarded_password
from jitpol.errors import JitpolError, PermanentTargetError
from jitpol.model.assignment import Action, Assignment, Op, Outcome, Scope
from jitpol.model.canonical import canonical_json
from tests.ldap_fixtures import *  # noqa: F403 (the fixtures: ldap_server, ldap_sandbox)
from tests.ldap_fixtures import TARGET, LdapSandbox, unreachable

CHECKOUT = "credential-checkout"
NOBODY = "[]"


def account_action(principal: str, *, password: str) -> Action:
    """create-account of an ephemeral account without groups."""
    return Action(
        op="create-account",
        assignment=Assignment(TARGET, "ephemeral-account", principal, "[]"),
        resource="r",
        grants=("alice-dba-1",),
        until=datetime.now(UTC) + timedelta(hours=1),
        details=(("grant", "alice-dba-1"), ("password", password), ("person", "alice")),
    )


def rotate(
    account: str,
    holders: list[str],
    *,
    password: str = "",
    until: datetime | None = None,
    op: Op = "rotate",
    privilege: str | None = None,
) -> Action:
    """The action the core sends: holders' grant names as canonical JSON, the end only when
    someone holds the secret."""
    if until is None and holders:
        until = datetime.now(UTC) + timedelta(hours=1)
    if privilege is None:
        privilege = canonical_json(sorted(holders))
    return Action(
        op=op,
        assignment=Assignment(TARGET, CHECKOUT, account, privilege),
        resource="shared-admin",
        grants=tuple(sorted(holders)),
        until=until if holders else None,
        details=(("password", password),) if password else (),
    )


def pwd_end_time(sb: LdapSandbox, dn: str) -> datetime | None:
    entry = sb.entry(dn, ["pwdEndTime"])
    assert entry is not None, f"{dn} does not exist"
    values = entry["raw_attributes"].get("pwdEndTime", [])
    return parse_generalized_time(values[0].decode()) if values else None


def user_passwords(sb: LdapSandbox, dn: str) -> list[str]:
    entry = sb.entry(dn, ["userPassword"])
    assert entry is not None, f"{dn} does not exist"
    return [v.decode() for v in entry["raw_attributes"].get("userPassword", [])]


# -- the model is known ---------------------------------------------------------------------------


def test_the_model_is_supported_and_validated_as_such() -> None:
    assert CHECKOUT in LdapConnector.capabilities.models
    assert LdapConnector.capabilities.models == registry.TYPES["ldap"].models
    assert CHECKOUT in registry.TYPES["ldap"].secret_models
    assert CHECKOUT in LdapConnector.capabilities.native_expiry
    assert not LdapConnector.capabilities.ends_sessions, "LDAP cannot end another client's bind"


def test_observe_reports_nothing_and_sends_nothing() -> None:
    # an unreachable server: any request would raise TargetUnavailable
    connector = unreachable()
    scope = Scope(TARGET, CHECKOUT, frozenset({'["alice-admin-1"]', NOBODY}))
    assert connector.observe(scope) == frozenset()


# -- rotation on the real server --------------------------------------------------------------


def test_rotate_sets_the_new_password_and_the_old_one_fails_at_once(ldap_sandbox: LdapSandbox) -> None:
    sb = ldap_sandbox
    shared = sb.person("app-admin", password="standing-old", description="the shared admin")
    connector = sb.connector()
    until = datetime(2099, 3, 4, 5, 6, 7, 500_000, tzinfo=UTC)
    outcome = connector.apply(rotate(shared, ["alice-admin-1"], password="holder-secret-1", until=until))
    assert outcome == Outcome(
        changed=True,
        before=False,
        after=True,
        operations=(f"modify {shared}: replace userPassword: ***; replace pwdEndTime: 20990304050608Z",),
    )
    assert sb.can_bind(shared, "holder-secret-1")
    assert not sb.can_bind(shared, "standing-old")
    (stored,) = user_passwords(sb, shared)
    assert stored.startswith("{SSHA}") and ssha_matches([stored], "holder-secret-1"), "stored hashed"
    assert pwd_end_time(sb, shared) == datetime(2099, 3, 4, 5, 6, 8, tzinfo=UTC), "rounded up, never early"
    entry = sb.entry(shared, ["description"])
    assert entry is not None and entry["raw_attributes"]["description"] == [b"the shared admin"], "left alone"

    # the next holder: a new secret, the previous holder's stops working
    connector.apply(rotate(shared, ["bob-admin-2"], password="holder-secret-2"))
    assert sb.can_bind(shared, "holder-secret-2")
    assert not sb.can_bind(shared, "holder-secret-1")


def test_rotate_to_nobody_leaves_no_known_password_and_no_end(ldap_sandbox: LdapSandbox) -> None:
    sb = ldap_sandbox
    shared = sb.person("app-admin", password="standing-old")
    connector = sb.connector()
    connector.apply(rotate(shared, ["alice-admin-1"], password="holder-secret"))
    assert pwd_end_time(sb, shared) is not None

    outcome = connector.apply(rotate(shared, [], password="nobody-knows-this"))
    assert outcome.changed and outcome.after
    assert outcome.operations == (f"modify {shared}: replace userPassword: ***; replace pwdEndTime: (none)",)
    assert not sb.can_bind(shared, "holder-secret")
    assert not sb.can_bind(shared, "standing-old")
    assert pwd_end_time(sb, shared) is None, "the holder's end is gone: the entry is usable for the next one"
    assert sb.can_bind(shared, "nobody-knows-this"), "only the secret no person holds works"

    # rotating to nobody again (no pwdEndTime left to remove) is no error either; an end sent
    # along with nobody is ignored, since no person holds the secret it would end
    again = rotate(shared, [], password="nobody-knows-this-either")
    with_end = Action(again.op, again.assignment, again.resource, again.grants,
                      until=datetime.now(UTC) - timedelta(hours=1), details=again.details)  # fmt: skip
    assert connector.apply(with_end).changed
    assert not sb.can_bind(shared, "nobody-knows-this")
    assert pwd_end_time(sb, shared) is None
    assert sb.can_bind(shared, "nobody-knows-this-either")


def test_pwd_end_time_ends_a_checked_out_password_without_another_run(ldap_sandbox: LdapSandbox) -> None:
    sb = ldap_sandbox
    shared = sb.person("app-admin", password="standing-old")
    connector = sb.connector()
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    connector.apply(rotate(shared, ["alice-admin-1"], password="short-lived", until=until))
    assert sb.can_bind(shared, "short-lived")
    time.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 1.1)
    assert not sb.can_bind(shared, "short-lived"), "ppolicy refuses binds after pwdEndTime"
    assert ssha_matches(user_passwords(sb, shared), "short-lived"), "no rotation happened: the server ended it"

    # the next holder's rotation replaces the stale end: a past end never locks the next one out
    connector.apply(rotate(shared, ["bob-admin-2"], password="next-holder"))
    assert sb.can_bind(shared, "next-holder")


def test_a_bound_connection_survives_a_rotation(ldap_sandbox: LdapSandbox) -> None:
    """A fact the documentation states: LDAP cannot end another client's session."""
    sb = ldap_sandbox
    shared = sb.person("app-admin", password="holder-secret")
    holder = ldap3.Connection(ldap3.Server(sb.server.url, get_info=ldap3.NONE), shared, "holder-secret",
                              auto_bind=True, raise_exceptions=True)  # fmt: skip
    try:
        sb.connector().apply(rotate(shared, [], password="nobody-knows-this"))
        assert not sb.can_bind(shared, "holder-secret"), "new binds fail"
        assert holder.extend.standard.who_am_i() == f"dn:{shared}", "the open bind lives on until it closes"
    finally:
        holder.unbind()


def test_ppolicy_clears_a_lock_when_the_password_changes(ldap_sandbox: LdapSandbox) -> None:
    """A fact the documentation states: a rotation (any password change) ends a lockout."""
    sb = ldap_sandbox
    shared = sb.person("app-admin", password="standing-old")
    sb.admin.modify(shared, {"pwdAccountLockedTime": [(ldap3.MODIFY_REPLACE, ["000001010000Z"])]})
    sb.connector().apply(rotate(shared, ["alice-admin-1"], password="holder-secret"))
    entry = sb.entry(shared, ["pwdAccountLockedTime", "pwdChangedTime"])
    assert entry is not None
    assert not entry["raw_attributes"].get("pwdAccountLockedTime"), "cleared by ppolicy"
    assert entry["raw_attributes"].get("pwdChangedTime"), "ppolicy saw a password change"


def test_a_rotation_always_changes_and_check_mode_writes_nothing(ldap_sandbox: LdapSandbox) -> None:
    sb = ldap_sandbox
    shared = sb.person("app-admin", password="standing-old")
    connector = sb.connector()
    action = rotate(shared, ["alice-admin-1"], password="holder-secret")

    checked = connector.apply(action, check=True)
    assert checked.changed and not checked.before and not checked.after
    assert checked.operations == connector.apply(action, check=True).operations
    assert len(checked.operations) == 1 and "replace userPassword: ***" in checked.operations[0]
    assert sb.can_bind(shared, "standing-old") and pwd_end_time(sb, shared) is None, "nothing written"

    # an event, never "already true": the same action twice changes twice
    assert connector.apply(action).changed
    assert connector.apply(action).changed
    assert sb.can_bind(shared, "holder-secret")


def test_a_rotation_without_an_end_removes_a_stale_one(ldap_sandbox: LdapSandbox) -> None:
    sb = ldap_sandbox
    shared = sb.person("app-admin", password="standing-old")
    sb.admin.modify(shared, {"pwdEndTime": [(ldap3.MODIFY_REPLACE, ["20000101000000Z"])]})
    assert not sb.can_bind(shared, "standing-old"), "a past end locks the entry"
    action = rotate(shared, ["alice-admin-1"], password="holder-secret")
    open_ended = Action(action.op, action.assignment, action.resource, action.grants, until=None,
                        details=action.details)  # fmt: skip
    connector = sb.connector()
    assert connector.apply(open_ended).operations == (
        f"modify {shared}: replace userPassword: ***; replace pwdEndTime: (none)",
    )
    assert sb.can_bind(shared, "holder-secret")


# -- refusals -----------------------------------------------------------------------------------

HOSTILE_ACCOUNTS = [
    ("UID=App,ou=people,dc=example,dc=org", "canonical"),
    ("uid=app, ou=people,dc=example,dc=org", "canonical"),
    ("uid=x)(uid=*,ou=people,dc=example,dc=org", "canonical"),
    ("uid=app,dc=other,dc=org", "not below base_dn"),
    ("dc=example,dc=org", "not below base_dn"),
    (PLACEHOLDER_DN, "reserved|not below"),
    ("uid=a\\00b,ou=people,dc=example,dc=org", "control"),
    ("uid=a\nb,ou=people,dc=example,dc=org", "control"),
    ("uid=a\u202eb,ou=people,dc=example,dc=org", "control"),
    ("#04616263,ou=people,dc=example,dc=org", "attribute type|hex"),
    ("uid=#6162,ou=people,dc=example,dc=org", "hex"),
    ("", "empty|acceptable"),
    ("cn=admin,dc=example,dc=org", "bind DN"),
    ("uid=jit-alice-1,ou=people,dc=example,dc=org", "ephemeral"),
]


@pytest.mark.parametrize(("account", "why"), HOSTILE_ACCOUNTS)
def test_unsafe_account_dns_are_refused_before_any_request(account: str, why: str) -> None:
    # the server does not exist: a PermanentTargetError proves the refusal came before the network
    connector = unreachable()
    for check in (True, False):
        with pytest.raises(PermanentTargetError, match=why):
            connector.apply(rotate(account, ["alice-admin-1"], password="holder-secret"), check=check)


@pytest.mark.parametrize(
    ("action", "why"),
    [
        (rotate("uid=app,ou=people,dc=example,dc=org", ["alice-admin-1"]), "needs a password"),
        (rotate("uid=app,ou=people,dc=example,dc=org", [], password="a\x00b"), "NUL"),
        (rotate("uid=app,ou=people,dc=example,dc=org", [], password="pw", privilege="alice"), "JSON list"),
        (rotate("uid=app,ou=people,dc=example,dc=org", [], password="pw", privilege='{"a": 1}'), "JSON list"),
        (rotate("uid=app,ou=people,dc=example,dc=org", [], password="pw", privilege="[1]"), "JSON list"),
        (rotate("uid=app,ou=people,dc=example,dc=org", ["a"], password="pw", op="grant"), "operation"),
        (rotate("uid=app,ou=people,dc=example,dc=org", ["a"], password="pw", op="create-account"), "operation"),
    ],
)
def test_bad_rotations_are_refused_before_any_request(action: Action, why: str) -> None:
    with pytest.raises(PermanentTargetError, match=why):
        unreachable().apply(action)


def test_entries_that_are_not_shared_accounts_are_refused(ldap_sandbox: LdapSandbox) -> None:
    sb = ldap_sandbox
    connector = sb.connector()
    with pytest.raises(PermanentTargetError, match="does not exist"):
        connector.apply(rotate(f"uid=nobody-here,{sb.people}", ["a"], password="pw"))
    # an entry carrying jitpol's marker is an ephemeral account, wherever it is
    for parent in (sb.people, sb.groups):
        marked = sb.person("shared-lookalike", parent=parent, password="theirs",
                           description=f"{MARKER_PREFIX} grant=g; person=p")  # fmt: skip
        for check in (True, False):
            with pytest.raises(PermanentTargetError, match="marker"):
                connector.apply(rotate(marked, ["a"], password="pw"), check=check)
        assert sb.can_bind(marked, "theirs")
    # jitpol's own ephemeral account, made by jitpol
    connector.apply(account_action("jit-alice-1", password="eph-secret"))
    with pytest.raises(PermanentTargetError, match="ephemeral"):
        connector.apply(rotate(f"uid=jit-alice-1,{sb.people}", ["a"], password="pw"))
    assert sb.can_bind(f"uid=jit-alice-1,{sb.people}", "eph-secret")


def test_a_refused_write_is_permanent(ldap_sandbox: LdapSandbox) -> None:
    sb = ldap_sandbox
    group = sb.group("not-an-account", [sb.person("bob")])  # groupOfNames allows no userPassword
    with pytest.raises(PermanentTargetError, match=r"modify .*userPassword: \*\*\*"):
        sb.connector().apply(rotate(group, ["a"], password="holder-secret"))


# -- secrets ------------------------------------------------------------------------------------


def _texts_of(exc: BaseException) -> list[str]:
    out = [str(exc), repr(exc)]
    for linked in (exc.__cause__, exc.__context__):
        if linked is not None:
            out.extend(_texts_of(linked))
    return out


def test_no_secret_in_outcomes_exceptions_or_logs(ldap_sandbox: LdapSandbox, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sb = ldap_sandbox
    secrets = [f"S3cret-{n}-{sb.tag}" for n in range(6)]
    shared = sb.person("app-admin", password="standing-old")
    group = sb.group("not-an-account", [sb.person("bob")])
    connector = sb.connector()
    seen: list[str] = []

    seen.append(repr(connector.apply(rotate(shared, ["alice-admin-1"], password=secrets[0]), check=True)))
    seen.append(repr(connector.apply(rotate(shared, ["alice-admin-1"], password=secrets[0]))))
    hashes = user_passwords(sb, shared)
    seen.append(repr(connector.apply(rotate(shared, [], password=secrets[1]))))
    hashes += user_passwords(sb, shared)
    seen.append(repr(connector.apply(account_action("jit-alice-1", password=secrets[2]))))
    seen.append(repr(connector.apply(account_action("jit-alice-1", password=secrets[3]))))
    hashes += user_passwords(sb, f"uid=jit-alice-1,{sb.people}")
    failing = [
        rotate(group, ["a"], password=secrets[4]),  # refused by the server (objectClassViolation)
        rotate(f"uid=missing,{sb.people}", ["a"], password=secrets[4]),
        rotate(shared, ["a"], password=secrets[5] + "\x00"),
        rotate(shared, ["a"], password=secrets[5], privilege="not json"),
    ]
    for action in failing:
        with pytest.raises(JitpolError) as info:
            connector.apply(action)
        seen.extend(_texts_of(info.value))
    seen.append(caplog.text)

    assert len(hashes) == 3 and all(h.startswith("{SSHA}") for h in hashes)
    for text in seen:
        for secret in [*secrets, *hashes, sb.server.password]:
            assert secret not in text
    assert sb.can_bind(shared, secrets[1]) and sb.can_bind(f"uid=jit-alice-1,{sb.people}", secrets[3])


# -- Active Directory: the exact request (on a real DC: test_ad_connector.py) ---------------------

AD_SHARED = "cn=svc-admin,cn=users,dc=corp,dc=example"


def test_ad_rotate_request_values() -> None:
    end = datetime(2024, 1, 1, 8, 0, tzinfo=UTC)
    request = rotate_request(AD_SHARED, "active-directory", "S3cret!x", end=end, set_end=True)
    assert request == Request(
        "modify",
        AD_SHARED,
        (
            Change("replace", "unicodePwd", ("S3cret!x",)),  # an administrative reset: one replace
            Change("replace", "accountExpires", (str(filetime(end)),)),
        ),
    )
    assert filetime(end) == 133485696000000000
    assert wire_value("unicodePwd", "S3cret!x") == '"S3cret!x"'.encode("utf-16-le")
    assert request.describe() == (
        f"modify {AD_SHARED}: replace unicodePwd: ***; replace accountExpires: 133485696000000000"
    )
    assert request.secrets() == ("S3cret!x",)
    nobody = rotate_request(AD_SHARED, "active-directory", "S3cret!y", end=None, set_end=True)
    assert nobody.changes[1] == Change("replace", "accountExpires", ("0",)), "0: the account never expires"


def test_openldap_rotate_request_values() -> None:
    dn = "uid=app,ou=people,dc=example,dc=org"
    end = datetime(2095, 5, 6, 7, 8, 9, 1, tzinfo=UTC)
    request = rotate_request(dn, "openldap", "pw", end=end, set_end=True)
    assert [(c.op, c.attribute) for c in request.changes] == [("replace", "userPassword"), ("replace", "pwdEndTime")]
    assert ssha_matches(request.changes[0].values, "pw") and not ssha_matches(request.changes[0].values, "pw2")
    assert request.changes[1].values == (generalized_time(end),) == ("20950506070810Z",)
    assert rotate_request(dn, "openldap", "pw", end=None, set_end=True).changes[1].values == ()
    # without ppolicy the server enforces no end: none is written
    assert [c.attribute for c in rotate_request(dn, "openldap", "pw", end=end, set_end=False).changes] == [
        "userPassword"
    ]
    assert request.secrets() == request.changes[0].values


def test_ad_refuses_a_rotation_without_tls_before_any_request() -> None:
    ad = unreachable(flavor="active-directory", base_dn="dc=corp,dc=example", people_base="cn=users,dc=corp,dc=example")
    with pytest.raises(PermanentTargetError, match="encrypted"):
        ad.apply(rotate(AD_SHARED, ["alice-admin-1"], password="S3cret!x"))
    # AD's ephemeral namespace is cn=jit-...,<people_base>
    with pytest.raises(PermanentTargetError, match="ephemeral"):
        ad.apply(rotate("cn=jit-alice-1,cn=users,dc=corp,dc=example", ["a"], password="S3cret!x"))
    # a bind DN in the namespace's spelling is refused as the bind DN all the same
    ad_self = unreachable(flavor="active-directory", base_dn="dc=corp,dc=example", bind_dn=AD_SHARED)
    with pytest.raises(PermanentTargetError, match="bind DN"):
        ad_self.apply(rotate(AD_SHARED, ["a"], password="S3cret!x"))


def test_ad_flush_request_values() -> None:
    """The first of AD's two rotation modifies: a discarded password and an expired account (the
    real DC's behaviour is in test_ad_connector.py)."""
    request = ad_flush_request(AD_SHARED, "Thr0w-away!")
    assert request == Request(
        "modify",
        AD_SHARED,
        (Change("replace", "unicodePwd", ("Thr0w-away!",)), Change("replace", "accountExpires", (AD_EXPIRED,))),
    )
    assert request.describe() == f"modify {AD_SHARED}: replace unicodePwd: ***; replace accountExpires: 1"
    assert request.secrets() == ("Thr0w-away!",)
    expired = from_filetime(int(AD_EXPIRED))
    assert expired is not None and expired.year == 1601, "long past: not one of AD's 'never' values"
    drawn = {discarded_password() for _ in range(50)}
    assert len(drawn) == 50, "a new one every time"
    for password in drawn:
        assert len(password) >= 40 and any(c.isupper() for c in password)
        assert any(c.isdigit() for c in password) and any(c.islower() for c in password)
        assert any(not c.isalnum() for c in password)
    first = ad_flush_request(AD_SHARED).changes[0].values
    assert first != ad_flush_request(AD_SHARED).changes[0].values


def test_an_ad_rotation_plans_the_flush_first() -> None:
    """check mode lists both modifies (the DC is answered by the test: the entry exists)."""

    class Answered(LdapConnector):
        def _read_entry(self, dn: str, attributes: Any) -> dict[str, Any] | None:
            return {"dn": dn, "raw_attributes": {"objectClass": [b"user"]}}

    ad = Answered(TARGET, {"url": "ldaps://127.0.0.1:1", "bind_dn": "cn=admin,dc=corp,dc=example",
                           "password_env": "P", "base_dn": "dc=corp,dc=example", "flavor": "active-directory"},
                  {"P": "pw"})  # fmt: skip
    until = datetime(2099, 1, 2, 3, 4, 5, tzinfo=UTC)
    outcome = ad.apply(rotate(AD_SHARED, ["alice-admin-1"], password="S3cret!x", until=until), check=True)
    assert outcome.operations == (
        f"modify {AD_SHARED}: replace unicodePwd: ***; replace accountExpires: 1",
        f"modify {AD_SHARED}: replace unicodePwd: ***; replace accountExpires: {filetime(until)}",
    )
