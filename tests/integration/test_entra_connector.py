"""EntraConnector through the real msgraph-sdk (and the real azure-identity ClientSecretCredential)
against the local HTTPS Graph double: name checks, lazy SDK import, settings, the exact requests
sent, paging, idempotency and races, groups whose members Graph cannot change, PIM for Groups and
directory roles (end enforced by Entra following the grant both ways, the five-minute floor, the
marker in the request's justification, standing access left alone), sign-in sessions revoked
and what cannot be, throttling with Retry-After honoured by the SDK's retry middleware, and
errors (unreachable, 401, 403, 400 and 5xx Graph bodies) without tokens or secrets in messages."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jitpol.clock import FixedClock
from jitpol.connectors.entra import EntraConnector, check_name, parse_privilege
from jitpol.connectors.entra.names import GroupPrivilege, RolePrivilege
from jitpol.errors import InvalidInput, PermanentTargetError, TargetUnavailable
from jitpol.model.assignment import PRIVILEGED_OPT_IN, Action, Assignment, Op, Scope
from jitpol.model.canonical import canonical_json
from tests.doubles.graph import ROLE_PATH, FakeGraph
from tests.doubles.server import closed_port
from tests.entra_fixtures import *  # noqa: F403 - the fixtures
from tests.entra_fixtures import (
    GLOBAL_ADMIN,
    GROUPS_ADMIN,
    TARGET,
    TENANT,
    USER_ADMIN,
    EntraConnect,
    StaticTokenCredential,
    trust,
)
from tests.helpers.clock import Now

MODEL = "idp-elevation"
REPO = Path(__file__).resolve().parents[2]
GUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
USER_ADMIN_BY_NAME = canonical_json({"directoryRole": "User Administrator", "scope": "/"})
PIM_REQUESTS = "/identityGovernance/privilegedAccess/group/assignmentScheduleRequests"
ROLE_REQUESTS = f"{ROLE_PATH}/roleAssignmentScheduleRequests"


def group_of(group: str) -> str:
    return canonical_json({"group": group})


def action(op: Op, principal: str, privilege: str, *, until: datetime | None = None, drift: bool = False,
           grant: str = "alice-ops") -> Action:
    return Action(op=op, assignment=Assignment(TARGET, MODEL, principal, privilege), resource="" if drift else "ops",
                  grants=(grant,), until=until, drift=drift, details=(("grant", grant),))


def scope_of(*privileges: str) -> Scope:
    return Scope(TARGET, MODEL, frozenset(privileges))


def observed(connector: EntraConnector, privilege: str) -> dict[str, Assignment]:
    return {a.principal: a for a in connector.observe(scope_of(privilege))}


# -- names and imports -------------------------------------------------------------------------


def test_importing_the_package_and_checking_names_does_not_import_the_sdk() -> None:
    code = (
        "import sys, jitpol.connectors.entra as m\n"
        f"m.check_name('{GUID}', 'principal')\n"
        f"m.check_name('{{\"group\":\"{GUID}\"}}', 'privilege')\n"
        "m.check_name({'directoryRole': 'User Administrator', 'scope': '/'}, 'privilege')\n"
        "print(sorted(k for k in sys.modules if k.split('.')[0] in ('msgraph', 'msgraph_core', 'kiota_http',\n"
        "      'kiota_abstractions', 'azure', 'httpx', 'msal')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("value", [
    {"group": GUID},
    group_of(GUID),
    {"directoryRole": "User Administrator", "scope": "/"},
    {"directoryRole": USER_ADMIN, "scope": f"/administrativeUnits/{GUID}"},
    {"directoryRole": "Microsoft 365 Migration Administrator", "scope": "/"},
])
def test_check_name_accepts_privileges(value: object) -> None:
    check_name(value, "privilege")


@pytest.mark.parametrize(("value", "match"), [
    ("ops-admins", "not valid"),  # a group by name: only ids
    ({"group": GUID.upper()}, "lower case"),
    ({"group": "not-a-guid"}, "group object id"),
    ({"group": GUID, "scope": "/"}, "not valid"),
    ({"directoryRole": "User Administrator"}, "not valid"),
    ({"directoryRole": "User Administrator", "scope": "/", "extra": 1}, "not valid"),
    ({"directoryRole": "User Administrator", "scope": "/administrativeUnits/x"}, "directory scope"),
    ({"directoryRole": "User Administrator", "scope": f"/administrativeUnits/{GUID}/../x"}, "directory scope"),
    ({"directoryRole": "User Administrator", "scope": "/groups"}, "directory scope"),
    ({"directoryRole": "Global Administrator' or displayName eq 'x", "scope": "/"}, "no quotes"),
    ({"directoryRole": "Admin\nistrator", "scope": "/"}, "no quotes"),
    ({"directoryRole": USER_ADMIN.upper(), "scope": "/"}, "lower case"),
    ({"directoryRole": 7, "scope": "/"}, "not valid"),
])
def test_check_name_refuses_other_privileges(value: object, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        check_name(value, "privilege")


@pytest.mark.parametrize("value", [GUID.upper(), "alice@contoso.com", "", f"{GUID}\n", 42, None])
def test_check_name_refuses_other_principals(value: object) -> None:
    with pytest.raises(InvalidInput, match="user object id"):
        check_name(value, "principal")


def test_parse_privilege_knows_ids_without_io() -> None:
    assert parse_privilege(canonical_json({"directoryRole": USER_ADMIN, "scope": "/"})) == RolePrivilege(
        USER_ADMIN, "/", USER_ADMIN)
    assert parse_privilege(USER_ADMIN_BY_NAME) == RolePrivilege("User Administrator", "/", None)
    assert parse_privilege({"group": GUID}) == GroupPrivilege(GUID)


# -- settings and credentials ------------------------------------------------------------------


@pytest.mark.parametrize(("settings", "match"), [
    ({}, "tenant_id"),
    ({"tenant_id": "bad tenant"}, "tenant_id"),
    ({"tenant_id": TENANT, "graph_url": "http://127.0.0.1:1"}, "https"),
    ({"tenant_id": TENANT, "graph_url": "https://graph.microsoft.com/v1.0"}, "without /v1.0"),
    ({"tenant_id": TENANT, "graph_url": "https://user:pw@graph.microsoft.com"}, "graph_url"),
    ({"tenant_id": TENANT, "authority_url": "https://login.microsoftonline.com/x?y"}, "authority_url"),
    ({"tenant_id": TENANT, "client_id_env": "ENTRA_ID"}, "both"),
    ({"tenant_id": TENANT, "client_id_env": "bad name", "client_secret_env": "S"}, "client_id_env"),
    ({"tenant_id": TENANT, "pim_groups": "yes"}, "pim_groups"),
    ({"tenant_id": TENANT, "revoke_sessions": 1}, "revoke_sessions"),
    ({"tenant_id": TENANT, "page_size": 0}, "page_size"),
])
def test_bad_settings_are_permanent_errors(settings: dict[str, Any], match: str, now: Now) -> None:
    with pytest.raises(PermanentTargetError, match=match):
        EntraConnector(TARGET, settings, {}, clock=FixedClock(now.at))


def test_missing_client_secret_variable_is_named_and_nothing_is_sent(fake_graph: FakeGraph, now: Now) -> None:
    connector = EntraConnector(TARGET, {"tenant_id": TENANT, "graph_url": fake_graph.url,
                                        "client_id_env": "ENTRA_ID", "client_secret_env": "ENTRA_SECRET"},
                               {"ENTRA_ID": str(uuid.uuid4())}, clock=FixedClock(now.at))
    with pytest.raises(PermanentTargetError, match="ENTRA_SECRET is not set"):
        connector.observe(scope_of(group_of(fake_graph.add_group())))
    connector.close()
    connector.close()  # safe twice
    assert fake_graph.log == []


def _secret_connector(fake_graph: FakeGraph, cert: Path, client: str, secret: str, now: Now) -> EntraConnector:
    """The real ClientSecretCredential (MSAL) asking the double's token endpoint."""
    return EntraConnector(
        TARGET,
        {"tenant_id": TENANT, "graph_url": fake_graph.url, "authority_url": fake_graph.url,
         "client_id_env": "ENTRA_ID", "client_secret_env": "ENTRA_SECRET"},
        {"ENTRA_ID": client, "ENTRA_SECRET": secret},
        clock=FixedClock(now.at),
        client_options={"verify": trust(cert), "retry_delay": 0,
                        "credential_options": {"connection_verify": str(cert)}},
    )


def test_a_client_secret_credential_gets_its_token_from_the_authority_and_graph_accepts_it(
    fake_graph: FakeGraph, graph_cert: tuple[Path, Path], now: Now
) -> None:
    client, secret = str(uuid.uuid4()), "s3cr3t-client-secret-value"
    fake_graph.clients[client] = secret
    fake_graph.tokens.clear()  # only what the token endpoint issues is accepted
    group = fake_graph.add_group()
    member = fake_graph.add_user()
    fake_graph.add_member(group, member)
    connector = _secret_connector(fake_graph, graph_cert[0], client, secret, now)
    assert set(observed(connector, group_of(group))) == {member}
    connector.close()
    assert [r["client_id"] for r in fake_graph.token_requests] == [client]
    assert fake_graph.token_requests[0]["scope"].split() == ["https://127.0.0.1/.default"]  # the host, no port


def test_a_wrong_client_secret_is_a_permanent_error_that_never_shows_it(
    fake_graph: FakeGraph, graph_cert: tuple[Path, Path], now: Now
) -> None:
    client = str(uuid.uuid4())
    fake_graph.clients[client] = "the-right-secret"
    connector = _secret_connector(fake_graph, graph_cert[0], client, "w r o n g-secret-value", now)
    with pytest.raises(PermanentTargetError, match="authentication failed") as info:
        connector.observe(scope_of(group_of(fake_graph.add_group())))
    connector.close()
    assert "w r o n g-secret-value" not in str(info.value) and "the-right-secret" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert fake_graph.log == []  # no token, no Graph call


# -- plain group membership --------------------------------------------------------------------


def test_plain_membership_sends_the_documented_requests_and_is_idempotent(
    fake_graph: FakeGraph, entra_connect: EntraConnect, now: Now
) -> None:
    group, user = fake_graph.add_group(), fake_graph.add_user()
    for _ in range(3):
        fake_graph.add_member(group, fake_graph.add_user())  # two pages with the double's page size
    connector = entra_connect()
    grant = connector.apply(action("grant", user, group_of(group), until=now.plus(hours=2)))
    assert grant.changed and grant.after
    assert fake_graph.bodies[-1] == ("POST", f"/groups/{group}/members/$ref",
                                     {"@odata.id": f"{fake_graph.url}/v1.0/directoryObjects/{user}"})
    assert not connector.apply(action("grant", user, group_of(group), until=now.plus(hours=2))).changed
    seen = observed(connector, group_of(group))
    assert len(seen) == 4 and seen[user].owned is None and seen[user].expires is None
    pages = [q for m, p, q in fake_graph.log if m == "GET" and p == f"/groups/{group}/members"]
    assert any("$skiptoken" in q for q in pages), "the second page is read through @odata.nextLink"
    revoke = connector.apply(action("revoke", user, group_of(group)))
    assert revoke.changed and revoke.operations[0] == f"DELETE /groups/{group}/members/{user}/$ref"
    assert user not in fake_graph.members(group)
    assert not connector.apply(action("revoke", user, group_of(group))).changed


def test_plain_membership_races_are_already_true(fake_graph: FakeGraph, entra_connect: EntraConnect,
                                                  now: Now) -> None:
    group, user = fake_graph.add_group(), fake_graph.add_user()
    connector = entra_connect()
    already = ("One or more added object references already exist for the following modified properties: "
               "'members'.")
    fake_graph.fail_next.append(("POST", "/members/$ref", 400, {"error": {"code": "Request_BadRequest",
                                                                           "message": already}}, {}))
    outcome = connector.apply(action("grant", user, group_of(group), until=now.plus(hours=1)))
    assert not outcome.changed and outcome.after
    fake_graph.add_member(group, user)
    fake_graph.fail_next.append(("DELETE", None, 404, {"error": {"code": "Request_ResourceNotFound",
                                                                  "message": "does not exist"}}, {}))
    outcome = connector.apply(action("revoke", user, group_of(group)))
    assert not outcome.changed and outcome.after


def test_check_mode_and_marker_driven_revokes_write_nothing(fake_graph: FakeGraph, entra_connect: EntraConnect,
                                                           now: Now) -> None:
    group, user = fake_graph.add_group(), fake_graph.add_user()
    connector = entra_connect()
    assert connector.apply(action("grant", user, group_of(group), until=now.plus(hours=1)), check=True).changed
    fake_graph.add_member(group, user)
    check = connector.apply(action("revoke", user, group_of(group)), check=True)
    assert check.changed and check.operations[-1] == f"POST /users/{user}/revokeSignInSessions"
    # a plain membership carries no marker: nothing there is provably jitpol's
    assert not connector.apply(action("revoke", user, group_of(group), drift=True)).changed
    assert fake_graph.writes() == [] and user in fake_graph.members(group)


@pytest.mark.parametrize(("kind", "reason"), [
    ({"group_types": ["DynamicMembership"]}, "dynamic group"),
    ({"group_types": ["Unified", "DynamicMembership"], "mail_enabled": True}, "dynamic group"),
    ({"on_premises": True}, "on-premises Active Directory"),
    ({"mail_enabled": True}, "mail-enabled security group or distribution list"),
])
@pytest.mark.parametrize("pim", [False, True])
def test_groups_graph_cannot_change_are_refused_with_the_reason(
    fake_graph: FakeGraph, entra_connect: EntraConnect, now: Now, kind: dict[str, Any], reason: str, pim: bool
) -> None:
    group, user = fake_graph.add_group("synced", **kind), fake_graph.add_user()
    connector = entra_connect(pim_groups=pim)
    with pytest.raises(PermanentTargetError, match=reason):
        connector.observe(scope_of(group_of(group)))
    with pytest.raises(PermanentTargetError, match=reason):
        connector.apply(action("grant", user, group_of(group), until=now.plus(hours=1)))
    assert fake_graph.writes() == []


def test_microsoft_365_groups_are_managed(fake_graph: FakeGraph, entra_connect: EntraConnect, now: Now) -> None:
    group, user = fake_graph.add_group("m365", group_types=["Unified"], mail_enabled=True), fake_graph.add_user()
    assert entra_connect().apply(action("grant", user, group_of(group), until=now.plus(hours=1))).changed


def test_unknown_groups_have_no_holders_and_cannot_be_granted(fake_graph: FakeGraph, entra_connect: EntraConnect,
                                                              now: Now) -> None:
    connector, user = entra_connect(), fake_graph.add_user()
    assert connector.observe(scope_of(group_of(GUID))) == frozenset()
    with pytest.raises(PermanentTargetError, match="does not exist"):
        connector.apply(action("grant", user, group_of(GUID), until=now.plus(hours=1)))
    assert not connector.apply(action("revoke", user, group_of(GUID))).changed


def test_hostile_names_never_reach_graph(fake_graph: FakeGraph, entra_connect: EntraConnect, now: Now) -> None:
    connector = entra_connect()
    for principal, privilege in [
        ("x' or 1 eq 1", group_of(GUID)),
        (GUID, canonical_json({"group": "../users"})),
        (GUID, canonical_json({"directoryRole": "x' or displayName eq 'y", "scope": "/"})),
    ]:
        with pytest.raises(PermanentTargetError):
            connector.apply(action("grant", principal, privilege, until=now.plus(hours=1)))
    assert connector.observe(scope_of("not json", canonical_json({"group": "x/y"}))) == frozenset()
    assert fake_graph.log == []


# -- sign-in sessions --------------------------------------------------------------------------


def test_revocation_ends_sign_in_sessions_and_says_what_it_cannot(fake_graph: FakeGraph,
                                                                   entra_connect: EntraConnect) -> None:
    group = fake_graph.add_group()
    member, guest, guarded = fake_graph.add_user(), fake_graph.add_user("Guest"), fake_graph.add_user()
    fake_graph.sessions_forbidden.add(guarded)
    for user in (member, guest, guarded):
        fake_graph.add_member(group, user)
    connector = entra_connect()
    done = connector.apply(action("revoke", member, group_of(group))).operations[-1]
    assert done.startswith(f"POST /users/{member}/revokeSignInSessions") and "access tokens" in done
    skipped = connector.apply(action("revoke", guest, group_of(group))).operations[-1]
    assert "not sent" in skipped and "external" in skipped
    refused = connector.apply(action("revoke", guarded, group_of(group)))
    assert refused.changed and guarded not in fake_graph.members(group), "access is gone all the same"
    assert "not done" in refused.operations[-1] and "Authorization_RequestDenied" in refused.operations[-1]
    assert fake_graph.sessions_revoked == {member: 1}
    quiet = entra_connect(revoke_sessions=False)
    fake_graph.add_member(group, member)
    assert quiet.apply(action("revoke", member, group_of(group))).operations == (
        f"DELETE /groups/{group}/members/{member}/$ref",)
    assert not quiet.capabilities.ends_sessions and connector.capabilities.ends_sessions


# -- throttling and errors ---------------------------------------------------------------------


def test_throttling_is_waited_out_as_retry_after_says(fake_graph: FakeGraph, entra_connect: EntraConnect,
                                                       now: Now) -> None:
    group, user = fake_graph.add_group(), fake_graph.add_user()
    connector = entra_connect()
    fake_graph.throttle_next("GET", f"/groups/{group}/members", retry_after=1, times=2)
    fake_graph.throttle_next("POST", "/members/$ref", retry_after=1)
    outcome = connector.apply(action("grant", user, group_of(group), until=now.plus(hours=1)))
    assert outcome.changed and user in fake_graph.members(group)
    assert [m for m, p, _ in fake_graph.log if p == f"/groups/{group}/members"] == ["GET"] * 3
    assert [m for m, p, _ in fake_graph.log if p.endswith("/members/$ref")] == ["POST"] * 2  # throttled, then done


def test_a_throttle_that_outlasts_the_retries_is_temporary(fake_graph: FakeGraph, entra_connect: EntraConnect) -> None:
    group = fake_graph.add_group()
    connector = entra_connect(client_options={"max_retries": 1})
    fake_graph.throttle_next("GET", "/members", retry_after=1, times=2)
    with pytest.raises(TargetUnavailable, match="HTTP 429 TooManyRequests"):
        connector.observe(scope_of(group_of(group)))
    # a Retry-After of 180 s or more is not waited for by the SDK: the next run retries
    fake_graph.throttle_next("GET", "/members", retry_after=600)
    with pytest.raises(TargetUnavailable, match="429"):
        connector.observe(scope_of(group_of(group)))
    assert connector.observe(scope_of(group_of(group))) == frozenset()


@pytest.mark.parametrize(("status", "error"), [(500, TargetUnavailable), (503, TargetUnavailable),
                                               (400, PermanentTargetError), (404, PermanentTargetError)])
def test_graph_error_bodies_reach_the_message(fake_graph: FakeGraph, entra_connect: EntraConnect,
                                              status: int, error: type[Exception]) -> None:
    group = fake_graph.add_group()
    connector = entra_connect(client_options={"max_retries": 0})
    fake_graph.fail_next.append(("GET", "/members", status, {"error": {"code": "SomethingWrong",
                                                                        "message": "Graph says no"}}, {}))
    with pytest.raises(error, match=f"HTTP {status} SomethingWrong: Graph says no"):
        connector.observe(scope_of(group_of(group)))


def test_forbidden_is_permanent_with_graph_message(fake_graph: FakeGraph, entra_connect: EntraConnect,
                                                   now: Now) -> None:
    fake_graph.forbidden = {"POST"}
    group, user = fake_graph.add_group(), fake_graph.add_user()
    with pytest.raises(PermanentTargetError, match="Authorization_RequestDenied"):
        entra_connect().apply(action("grant", user, group_of(group), until=now.plus(hours=1)))


def test_rejected_token_is_permanent_and_never_shown(fake_graph: FakeGraph, entra_connect: EntraConnect) -> None:
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzZWNyZXQifQ.c2lnbmF0dXJlLXNlY3JldA"
    connector = entra_connect(credential=StaticTokenCredential(token))
    with pytest.raises(PermanentTargetError, match=r"authentication failed.*InvalidAuthenticationToken") as info:
        connector.observe(scope_of(group_of(fake_graph.add_group())))
    assert token not in str(info.value) and "c2lnbmF0dXJl" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_unreachable_graph_is_temporary(graph_cert: tuple[Path, Path], now: Now) -> None:
    connector = EntraConnector(TARGET, {"tenant_id": TENANT, "graph_url": f"https://127.0.0.1:{closed_port()}"}, {},
                               clock=FixedClock(now.at), credential=StaticTokenCredential(),
                               client_options={"verify": trust(graph_cert[0])})
    with pytest.raises(TargetUnavailable, match="cannot reach"):
        connector.observe(scope_of(group_of(GUID)))
    with pytest.raises(TargetUnavailable):
        connector.apply(action("grant", GUID, group_of(GUID), until=now.plus(hours=1)))
    connector.close()


def test_the_client_secret_is_cut_from_messages(fake_graph: FakeGraph, entra_connect: EntraConnect) -> None:
    secret = "s3cr3t-client-secret-value"
    fake_graph.fail_next.append(("GET", None, 400, {"error": {"code": "BadRequest",
                                                              "message": f"echo {secret} Bearer abc.def"}}, {}))
    connector = entra_connect(env={"E_ID": "x", "E_SECRET": secret}, client_id_env="E_ID",
                              client_secret_env="E_SECRET")
    with pytest.raises(PermanentTargetError) as info:
        connector.observe(scope_of(group_of(fake_graph.add_group())))
    assert secret not in str(info.value) and "abc.def" not in str(info.value) and "BadRequest" in str(info.value)


# -- PIM for Groups ----------------------------------------------------------------------------


def _request_bodies(fake_graph: FakeGraph, path: str) -> list[dict[str, Any]]:
    return [b for m, p, b in fake_graph.bodies if m == "POST" and p == path]


def test_pim_grant_sets_the_end_entra_enforces_and_entra_ends_it(fake_graph: FakeGraph,
                                                                 entra_connect: EntraConnect, now: Now) -> None:
    group, user = fake_graph.add_group(), fake_graph.add_user()
    connector = entra_connect(pim_groups=True)
    until = now.plus(hours=2, seconds=0.4)  # rounded up to the second: never earlier than asked
    assert connector.apply(action("grant", user, group_of(group), until=until)).changed
    body = _request_bodies(fake_graph, PIM_REQUESTS)[-1]
    assert body["accessId"] == "member" and body["action"] == "adminAssign" and body["groupId"] == group
    assert body["principalId"] == user and body["justification"] == "jitpol: grant=alice-ops"
    assert body["scheduleInfo"]["expiration"]["type"] == "afterDateTime"
    assert datetime.fromisoformat(body["scheduleInfo"]["expiration"]["endDateTime"]) == now.plus(hours=2, seconds=1)
    mine = observed(connector, group_of(group))[user]
    assert mine.owned is True and mine.expires == now.plus(hours=2, seconds=1)
    assert fake_graph.members(group) == {user: now.plus(hours=2, seconds=1)}, "an active PIM member is a member"
    fake_graph.now = lambda: now.plus(hours=3)  # Entra ends it by itself
    assert user not in observed(connector, group_of(group))


def test_pim_end_follows_the_grant_both_ways_and_under_five_minutes_removes(
    fake_graph: FakeGraph, entra_connect: EntraConnect, now: Now
) -> None:
    group, user = fake_graph.add_group(), fake_graph.add_user()
    connector = entra_connect(pim_groups=True, clock=FixedClock(now.at))
    connector.apply(action("grant", user, group_of(group), until=now.plus(hours=3)))
    for hours in (1, 4):
        assert connector.apply(action("grant", user, group_of(group), until=now.plus(hours=hours))).changed
        assert _request_bodies(fake_graph, PIM_REQUESTS)[-1]["action"] == "adminUpdate"
        assert fake_graph.members(group)[user] == now.plus(hours=hours)
    fake_graph.min_active = timedelta(0)  # removal in the first five minutes is tested below
    soon = connector.apply(action("grant", user, group_of(group), until=now.plus(minutes=3)))
    assert soon.changed and "under five minutes" in soon.operations[0]
    assert _request_bodies(fake_graph, PIM_REQUESTS)[-1]["action"] == "adminRemove"
    assert user not in fake_graph.members(group) and fake_graph.sessions_revoked == {user: 1}


def test_pim_five_minute_floor(fake_graph: FakeGraph, entra_connect: EntraConnect, now: Now) -> None:
    group, user = fake_graph.add_group(), fake_graph.add_user()
    connector = entra_connect(pim_groups=True)
    with pytest.raises(PermanentTargetError, match="shorter than five minutes"):
        connector.apply(action("grant", user, group_of(group), until=now.plus(minutes=4)))
    assert fake_graph.writes() == []
    connector.apply(action("grant", user, group_of(group), until=now.plus(hours=1)))
    with pytest.raises(TargetUnavailable, match="first five minutes"):
        connector.apply(action("revoke", user, group_of(group)))
    fake_graph.now = lambda: now.plus(minutes=6)  # the next run, later
    assert connector.apply(action("revoke", user, group_of(group))).changed
    assert user not in fake_graph.members(group)


def test_pim_standing_access_is_held_unmarked_and_left_alone(fake_graph: FakeGraph, entra_connect: EntraConnect,
                                                             now: Now) -> None:
    group = fake_graph.add_group()
    plain, theirs = fake_graph.add_user(), fake_graph.add_user()
    fake_graph.add_member(group, plain)
    fake_graph.add_member(group, theirs, end=now.plus(hours=5), justification="jitpol-like but not: quarterly")
    connector = entra_connect(pim_groups=True)
    seen = observed(connector, group_of(group))
    assert seen[plain].owned is False and seen[plain].expires is None
    assert seen[theirs].owned is False and seen[theirs].expires == now.plus(hours=5)
    for user in (plain, theirs):
        assert not connector.apply(action("grant", user, group_of(group), until=now.plus(hours=1))).changed
        assert not connector.apply(action("revoke", user, group_of(group), drift=True)).changed
    assert fake_graph.writes() == [] and fake_graph.members(group)[theirs] == now.plus(hours=5)
    # a revoke the ledger asks for takes it whoever made it
    fake_graph.min_active = timedelta(0)
    assert connector.apply(action("revoke", plain, group_of(group))).changed


def test_pim_race_on_admin_assign_is_already_true(fake_graph: FakeGraph, entra_connect: EntraConnect,
                                                   now: Now) -> None:
    group, user = fake_graph.add_group(), fake_graph.add_user()
    connector = entra_connect(pim_groups=True)

    def assigned_meanwhile(original: Any = fake_graph.handle) -> Any:
        def handle(method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
            if method == "POST" and path == PIM_REQUESTS and user not in fake_graph.groups[group].members:
                fake_graph.add_member(group, user, end=now.plus(hours=1), justification="jitpol: grant=alice-ops")
            return original(method, path, query, body)  # type: ignore[no-any-return]
        return handle

    fake_graph.handle = assigned_meanwhile()  # type: ignore[method-assign]
    outcome = connector.apply(action("grant", user, group_of(group), until=now.plus(hours=1)))
    assert not outcome.changed and outcome.after


# -- directory roles ---------------------------------------------------------------------------


def test_directory_role_names_are_resolved_once_and_unknown_names_have_no_holders(
    fake_graph: FakeGraph, entra_connect: EntraConnect, now: Now
) -> None:
    user = fake_graph.add_user()
    connector = entra_connect()
    connector.apply(action("grant", user, USER_ADMIN_BY_NAME, until=now.plus(hours=1)))
    connector.observe(scope_of(USER_ADMIN_BY_NAME))
    lookups = [q for m, p, q in fake_graph.log if p == f"{ROLE_PATH}/roleDefinitions"]
    assert lookups == [{"$filter": "displayName eq 'User Administrator'", "$select": "id,displayName,templateId"}]
    body = _request_bodies(fake_graph, ROLE_REQUESTS)[-1]
    assert (body["roleDefinitionId"], body["directoryScopeId"], body["action"]) == (USER_ADMIN, "/", "adminAssign")
    nobody = canonical_json({"directoryRole": "Chief Vibes Officer", "scope": "/"})
    assert connector.observe(scope_of(nobody)) == frozenset()
    with pytest.raises(PermanentTargetError, match="no directory role is named"):
        connector.apply(action("grant", user, nobody, until=now.plus(hours=1)))
    fake_graph.roles[str(uuid.uuid4())] = "Groups Administrator"  # a custom role named like a built-in
    with pytest.raises(PermanentTargetError, match="matches 2 role definitions"):
        connector.observe(scope_of(canonical_json({"directoryRole": "Groups Administrator", "scope": "/"})))


def test_directory_roles_report_only_direct_assignments_at_their_scope(
    fake_graph: FakeGraph, entra_connect: EntraConnect, now: Now
) -> None:
    unit = str(uuid.uuid4())
    fake_graph.units.add(unit)
    user, via_group, elsewhere = fake_graph.add_user(), fake_graph.add_user(), fake_graph.add_user()
    fake_graph.add_role_assignment(USER_ADMIN, user)  # plain: no end, no schedule request
    fake_graph.add_role_assignment(USER_ADMIN, via_group, member_type="Group")
    fake_graph.add_role_assignment(USER_ADMIN, elsewhere, scope=f"/administrativeUnits/{unit}")
    fake_graph.add_role_assignment(GROUPS_ADMIN, elsewhere)
    connector = entra_connect()
    seen = observed(connector, USER_ADMIN_BY_NAME)
    assert set(seen) == {user} and seen[user].owned is False and seen[user].expires is None
    in_unit = canonical_json({"directoryRole": USER_ADMIN, "scope": f"/administrativeUnits/{unit}"})
    assert set(observed(connector, in_unit)) == {elsewhere}
    # standing access: the grant writes nothing
    assert not connector.apply(action("grant", user, USER_ADMIN_BY_NAME, until=now.plus(hours=1))).changed
    unknown_unit = canonical_json({"directoryRole": USER_ADMIN, "scope": f"/administrativeUnits/{GUID}"})
    with pytest.raises(PermanentTargetError, match="InvalidDirectoryScope"):
        connector.apply(action("grant", user, unknown_unit, until=now.plus(hours=1)))


def test_directory_role_end_follows_the_grant_and_revoke_ends_sessions(
    fake_graph: FakeGraph, entra_connect: EntraConnect, now: Now
) -> None:
    user = fake_graph.add_user()
    privilege = canonical_json({"directoryRole": GROUPS_ADMIN, "scope": "/"})
    connector = entra_connect(clock=FixedClock(now.at))
    connector.apply(action("grant", user, privilege, until=now.plus(hours=2)))
    assert connector.apply(action("grant", user, privilege, until=now.plus(hours=1))).changed
    assert fake_graph.role_holders(GROUPS_ADMIN) == {user: now.plus(hours=1)}
    assert observed(connector, privilege)[user].owned is True
    fake_graph.min_active = timedelta(0)
    revoke = connector.apply(action("revoke", user, privilege))
    assert [b["action"] for b in _request_bodies(fake_graph, ROLE_REQUESTS)] == [
        "adminAssign", "adminUpdate", "adminRemove"]
    assert revoke.operations[-1].startswith(f"POST /users/{user}/revokeSignInSessions")
    assert fake_graph.role_holders(GROUPS_ADMIN) == {}
    assert not connector.apply(action("revoke", user, privilege)).changed


def test_capabilities_follow_the_settings(entra_connect: EntraConnect) -> None:
    plain, pim = entra_connect().capabilities, entra_connect(pim_groups=True).capabilities
    assert plain.models == pim.models == {MODEL}
    assert plain.marks == frozenset() and plain.native_expiry == frozenset()
    assert pim.marks == {MODEL} and pim.native_expiry == {MODEL}
    assert dataclasses.replace(pim, ends_sessions=False) == entra_connect(pim_groups=True,
                                                                          revoke_sessions=False).capabilities


def test_tenant_takeover_roles_need_the_resource_to_opt_in(fake_graph: FakeGraph, entra_connect: EntraConnect,
                                                           now: Now) -> None:
    user = fake_graph.add_user()
    connector = entra_connect()
    for privilege in (canonical_json({"directoryRole": GLOBAL_ADMIN, "scope": "/"}),
                      canonical_json({"directoryRole": "Privileged Role Administrator", "scope": "/"})):
        fake_graph.roles.setdefault("e8611ab8-c189-46e8-94e1-60213ab1f814", "Privileged Role Administrator")
        grant = action("grant", user, privilege, until=now.plus(hours=1))
        writes = len(fake_graph.writes())
        with pytest.raises(PermanentTargetError, match="allowPrivileged"):
            connector.apply(grant)
        assert len(fake_graph.writes()) == writes, "refused before any request"
        opted_in = dataclasses.replace(grant, details=(*grant.details, PRIVILEGED_OPT_IN))
        assert connector.apply(opted_in).changed
    fake_graph.min_active = timedelta(0)
    # revocations are never refused
    global_admin = canonical_json({"directoryRole": GLOBAL_ADMIN, "scope": "/"})
    assert connector.apply(action("revoke", user, global_admin)).changed


def test_a_throttled_schedule_request_and_a_503_are_retried_once_and_nothing_is_doubled(
    fake_graph: FakeGraph, entra_connect: EntraConnect, now: Now
) -> None:
    group, user = fake_graph.add_group(), fake_graph.add_user()
    connector = entra_connect(pim_groups=True)
    fake_graph.throttle_next("POST", PIM_REQUESTS, retry_after=1)
    fake_graph.fail_next.append(("GET", "assignmentScheduleInstances", 503,
                                 {"error": {"code": "ServiceUnavailable", "message": "try again"}}, {}))
    assert connector.apply(action("grant", user, group_of(group), until=now.plus(hours=1))).changed
    assert [m for m, p, _ in fake_graph.log if p == PIM_REQUESTS] == ["POST", "POST"]
    assert len(_request_bodies(fake_graph, PIM_REQUESTS)) == 1, "the throttled POST never reached Entra"
    assert fake_graph.members(group) == {user: now.plus(hours=1)}


def test_a_next_page_link_that_leaves_graph_is_refused(fake_graph: FakeGraph, entra_connect: EntraConnect) -> None:
    group = fake_graph.add_group()
    page = {"value": [{"@odata.type": "#microsoft.graph.user", "id": GUID}],
            "@odata.nextLink": f"https://graph.example.net/v1.0/groups/{group}/members?$skiptoken=x"}
    fake_graph.fail_next.append(("GET", "/members", 200, page, {}))
    with pytest.raises(PermanentTargetError, match=r"next page link that repeats or leaves 127\.0\.0\.1"):
        entra_connect().observe(scope_of(group_of(group)))
    assert not any(p.endswith("$skiptoken=x") for _, p, _ in fake_graph.log)
