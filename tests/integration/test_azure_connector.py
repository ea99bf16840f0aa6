"""AzureConnector through the real azure-mgmt-authorization SDK against the local HTTPS ARM double:
name checks, lazy SDK import, role-name resolution, paging, idempotency and the 409 race, drift,
unrelated assignments left alone, the ownership marker (description; PIM request justification)
and standing access left unmarked, PIM schedules with the end Azure enforces following the grant
both ways and PIM's five-minute floor, and errors
(unreachable, 401, 403, 5xx, ARM error bodies) without tokens in messages."""

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
from jitpol.connectors.azure import ASSIGNMENT_NAMESPACE, AzureConnector, check_name, parse_privilege
from jitpol.errors import InvalidInput, PermanentTargetError, TargetUnavailable
from jitpol.model.assignment import Action, Assignment, Op, Scope
from jitpol.model.canonical import canonical_json
from tests.azure_fixtures import *  # noqa: F403 - the fixtures
from tests.azure_fixtures import (
    CONTRIBUTOR,
    READER,
    RG_SCOPE,
    SUB_SCOPE,
    SUBSCRIPTION,
    TARGET,
    TENANT,
    AzureConnect,
    StaticTokenCredential,
)
from tests.doubles.arm import ArmError, FakeArm
from tests.doubles.server import closed_port
from tests.helpers.clock import HoursFromNow, Now, iso

MODEL = "idp-elevation"
REPO = Path(__file__).resolve().parents[2]
READER_BY_NAME = canonical_json({"scope": RG_SCOPE, "role": "Reader"})
READER_BY_GUID = canonical_json({"scope": RG_SCOPE, "role": READER})
ROLE_IDS = "/providers/Microsoft.Authorization/roleDefinitions"


def action(op: Op, principal: str, privilege: str = READER_BY_NAME, *, until: datetime | None = None,
           drift: bool = False, extend: bool = False, grant: str = "alice-orders") -> Action:
    """`extend`: the end of access already present moves (the diff's ("mode", "extend"))."""
    details = (("grant", grant), ("mode", "extend")) if extend else (("grant", grant),)
    return Action(op=op, assignment=Assignment(TARGET, MODEL, principal, privilege), resource="orders",
                  grants=(grant,), until=until, drift=drift, details=details)


def scope_of(*privileges: str) -> Scope:
    return Scope(TARGET, MODEL, frozenset(privileges))


in_hours = HoursFromNow()


@pytest.fixture(autouse=True)
def _read_the_clock_once(now: Now) -> None:
    in_hours.now = now


# -- names and imports -------------------------------------------------------------------------


def test_importing_the_module_and_checking_names_does_not_import_the_sdk() -> None:
    code = (
        "import sys, jitpol.connectors.azure as m\n"
        "m.check_name('0f8fad5b-d9cb-469f-a165-70867728950e', 'principal')\n"
        "m.check_name('{\"role\":\"Reader\",\"scope\":\"/subscriptions/" + SUBSCRIPTION + "\"}', 'privilege')\n"
        "print(sorted(k for k in sys.modules if k == 'azure' or k.startswith('azure.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("value", [
    "0f8fad5b-d9cb-469f-a165-70867728950e",
])
def test_check_name_accepts_object_ids(value: str) -> None:
    check_name(value, "principal")


@pytest.mark.parametrize("value", [
    "0F8FAD5B-D9CB-469F-A165-70867728950E",  # Azure reports lower case; equality must hold
    "alice@example.com", "", "0f8fad5b-d9cb-469f-a165-70867728950e\n", 42, None,
])
def test_check_name_refuses_other_principals(value: object) -> None:
    with pytest.raises(InvalidInput, match="object id"):
        check_name(value, "principal")


@pytest.mark.parametrize("value", [
    {"scope": RG_SCOPE, "role": "Reader"},
    READER_BY_GUID,
    canonical_json({"scope": SUB_SCOPE, "role": f"{SUB_SCOPE}{ROLE_IDS}/{READER}"}),
    canonical_json({"scope": f"{RG_SCOPE}/providers/Microsoft.Storage/storageAccounts/ordersdata",
                    "role": "Storage Blob Data Contributor"}),
    canonical_json({"scope": "/providers/Microsoft.Management/managementGroups/platform", "role": "Reader"}),
])
def test_check_name_accepts_privileges(value: object) -> None:
    check_name(value, "privilege")


@pytest.mark.parametrize("value", [
    "Reader",  # not a mapping
    {"scope": RG_SCOPE},
    {"scope": RG_SCOPE, "role": "Reader", "extra": 1},
    {"scope": "/subscriptions/not-a-guid", "role": "Reader"},
    {"scope": RG_SCOPE + "/../../x", "role": "Reader"},
    {"scope": RG_SCOPE + "?api-version=1", "role": "Reader"},
    {"scope": RG_SCOPE, "role": "Reader' or roleName eq 'Owner"},
    {"scope": RG_SCOPE, "role": "/subscriptions/x/providers/Other/roleDefinitions/y"},
    {"scope": RG_SCOPE, "role": 7},
])
def test_check_name_refuses_other_privileges(value: object) -> None:
    with pytest.raises(InvalidInput, match="privilege"):
        check_name(value, "privilege")


def test_parse_privilege_knows_guids_without_io() -> None:
    assert parse_privilege(READER_BY_GUID).role_guid == READER
    upper = canonical_json({"scope": RG_SCOPE, "role": f"{ROLE_IDS}/{READER.upper()}"})
    assert parse_privilege(upper).role_guid == READER
    assert parse_privilege(READER_BY_NAME).role_guid is None


# -- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("settings", "match"), [
    ({"tenant_id": TENANT}, "subscription_id"),
    ({"subscription_id": SUBSCRIPTION}, "tenant_id"),
    ({"subscription_id": SUBSCRIPTION, "tenant_id": TENANT, "base_url": "http://127.0.0.1:1"}, "https"),
    ({"subscription_id": SUBSCRIPTION, "tenant_id": TENANT, "client_id_env": "AZ_ID"}, "both"),
    ({"subscription_id": SUBSCRIPTION, "tenant_id": TENANT, "pim": "yes"}, "pim"),
])
def test_bad_settings_are_permanent_errors(settings: dict[str, Any], match: str) -> None:
    with pytest.raises(PermanentTargetError, match=match):
        AzureConnector(TARGET, settings, {}, clock=FixedClock(in_hours(0)))


def test_missing_client_secret_variable_is_named_and_its_value_never_shown(fake_arm: FakeArm) -> None:
    connector = AzureConnector(
        TARGET,
        {"subscription_id": SUBSCRIPTION, "tenant_id": TENANT, "base_url": fake_arm.url,
         "client_id_env": "AZ_ID", "client_secret_env": "AZ_SECRET"},
        {"AZ_ID": "11111111-2222-3333-4444-555555555555"},
        clock=FixedClock(in_hours(0)),
    )
    with pytest.raises(PermanentTargetError, match="AZ_SECRET is not set"):
        connector.observe(scope_of(READER_BY_NAME))
    connector.close()
    connector.close()  # safe twice
    assert fake_arm.log == []  # nothing was sent


# -- reading -----------------------------------------------------------------------------------


def test_observe_pages_through_next_links_and_reports_only_this_scope_and_role(
    fake_arm: FakeArm, azure_connect: AzureConnect
) -> None:
    holders = {str(uuid.uuid4()) for _ in range(5)}
    for p in holders:
        fake_arm.add_assignment(RG_SCOPE, READER, p)
    inherited = fake_arm.add_assignment(SUB_SCOPE, READER, str(uuid.uuid4())).principal
    other_role = fake_arm.add_assignment(RG_SCOPE, CONTRIBUTOR, str(uuid.uuid4())).principal
    other_rg = fake_arm.add_assignment(SUB_SCOPE + "/resourceGroups/rg-other", READER, str(uuid.uuid4())).principal

    observed = azure_connect().observe(scope_of(READER_BY_NAME))

    assert {a.principal for a in observed} == holders
    assert {inherited, other_role, other_rg}.isdisjoint(a.principal for a in observed)
    assert all(a.privilege == READER_BY_NAME and a.expires is None for a in observed)
    pages = [q for m, p, q in fake_arm.log if p.endswith("/roleAssignments") and m == "GET"]
    assert len(pages) >= 3 and all(q.get("$filter") == "atScope()" for q in pages)
    assert any("$skipToken" in q for q in pages)


def test_role_names_are_resolved_once_and_unknown_names_have_no_holders(
    fake_arm: FakeArm, azure_connect: AzureConnect
) -> None:
    p = fake_arm.add_assignment(RG_SCOPE, READER, str(uuid.uuid4())).principal
    connector = azure_connect()
    nobody = canonical_json({"scope": RG_SCOPE, "role": "No Such Role"})
    for _ in range(3):
        observed = connector.observe(scope_of(READER_BY_NAME, READER_BY_GUID, nobody))
        assert {(a.principal, a.privilege) for a in observed} == {(p, READER_BY_NAME), (p, READER_BY_GUID)}
    lookups = [q["$filter"] for m, path, q in fake_arm.log if path.endswith("/roleDefinitions")]
    assert lookups.count("roleName eq 'Reader'") == 1
    with pytest.raises(PermanentTargetError, match="No Such Role"):
        connector.apply(action("grant", str(uuid.uuid4()), nobody))


def test_ambiguous_role_names_are_refused(fake_arm: FakeArm, azure_connect: AzureConnect) -> None:
    fake_arm.add_role("Reader")  # a custom role with a built-in's name
    with pytest.raises(PermanentTargetError, match="GUID instead"):
        azure_connect().apply(action("grant", str(uuid.uuid4())))


# -- plain role assignments --------------------------------------------------------------------


def test_grant_creates_a_deterministically_named_assignment_and_revoke_deletes_it(
    fake_arm: FakeArm, azure_connect: AzureConnect
) -> None:
    principal = str(uuid.uuid4())
    connector = azure_connect()
    outcome = connector.apply(action("grant", principal))
    name = str(uuid.uuid5(ASSIGNMENT_NAMESPACE, f"{RG_SCOPE.lower()}|{READER}|{principal}"))
    assert outcome.operations == (
        f"PUT {RG_SCOPE}/providers/Microsoft.Authorization/roleAssignments/{name} "
        + canonical_json({"description": "jitpol: grant=alice-orders", "principalId": principal,
                          "roleDefinitionId": f"{SUB_SCOPE}{ROLE_IDS}/{READER}"}),
    )
    assert fake_arm.records[name].principal == principal
    assert fake_arm.records[name].description == "jitpol: grant=alice-orders"
    revoked = connector.apply(action("revoke", principal))
    assert revoked.operations == (f"DELETE {RG_SCOPE}/providers/Microsoft.Authorization/roleAssignments/{name}",)
    assert name not in fake_arm.records


def test_409_role_assignment_exists_means_already_true(fake_arm: FakeArm, azure_connect: AzureConnect) -> None:
    # another run (or a person) creates it between our read and our PUT
    fake_arm.fail_next.append(("PUT", 409, {"error": {"code": "RoleAssignmentExists",
                                                      "message": "The role assignment already exists."}}))
    outcome = azure_connect().apply(action("grant", str(uuid.uuid4())))
    assert not outcome.changed and outcome.before and outcome.after
    assert len(outcome.operations) == 1  # the PUT was sent, and is reported


def test_other_409s_are_permanent_errors(fake_arm: FakeArm, azure_connect: AzureConnect) -> None:
    fake_arm.fail_next.append(("PUT", 409, {"error": {"code": "RoleAssignmentUpdateNotPermitted",
                                                      "message": "Tenant ID, application ID ... cannot be updated."}}))
    with pytest.raises(PermanentTargetError, match="RoleAssignmentUpdateNotPermitted"):
        azure_connect().apply(action("grant", str(uuid.uuid4())))


def test_assignment_made_elsewhere_counts_as_held_and_drift_revoke_removes_only_it(
    fake_arm: FakeArm, azure_connect: AzureConnect
) -> None:
    principal = str(uuid.uuid4())
    standing = fake_arm.add_assignment(RG_SCOPE, READER, principal)  # not jitpol's name
    inherited = fake_arm.add_assignment(SUB_SCOPE, READER, principal)
    other_role = fake_arm.add_assignment(RG_SCOPE, CONTRIBUTOR, principal)
    bystander = fake_arm.add_assignment(RG_SCOPE, READER, str(uuid.uuid4()))
    connector = azure_connect()

    assert Assignment(TARGET, MODEL, principal, READER_BY_NAME) in connector.observe(scope_of(READER_BY_NAME))
    again = connector.apply(action("grant", principal))
    assert not again.changed and again.operations == ()

    drift = connector.apply(action("revoke", principal, drift=True))
    assert drift.changed and drift.operations == (f"DELETE {standing.id}",)
    assert set(fake_arm.records) == {inherited.name, other_role.name, bystander.name}
    assert connector.observe(scope_of(READER_BY_NAME)) == {Assignment(TARGET, MODEL, bystander.principal,
                                                                      READER_BY_NAME)}


def marker_revoke(principal: str, privilege: str = READER_BY_NAME) -> Action:
    """plan.diff's revoke of marked access that no grant or ledger entry backs: drift, no resource."""
    return dataclasses.replace(action("revoke", principal, privilege, drift=True), resource="", grants=(), details=())


def test_a_marker_driven_revoke_takes_only_what_still_carries_the_marker(
    fake_arm: FakeArm, azure_connect: AzureConnect
) -> None:
    standing = fake_arm.add_assignment(RG_SCOPE, READER, str(uuid.uuid4()))  # appeared since observe
    marked = fake_arm.add_assignment(RG_SCOPE, READER, str(uuid.uuid4()), description="jitpol: grant=g")
    connector = azure_connect()
    assert not connector.apply(marker_revoke(standing.principal)).changed
    outcome = connector.apply(marker_revoke(marked.principal))
    assert outcome.changed and outcome.operations == (f"DELETE {marked.id}",)
    assert set(fake_arm.records) == {standing.name}


def test_pim_a_marker_driven_revoke_leaves_standing_access(fake_arm: FakeArm, azure_connect: AzureConnect) -> None:
    permanent = fake_arm.add_assignment(RG_SCOPE, READER, str(uuid.uuid4()))  # plain, no end
    foreign = fake_arm.add_assignment(RG_SCOPE, READER, str(uuid.uuid4()), end=in_hours(1), justification="ops")
    ours = fake_arm.add_assignment(RG_SCOPE, READER, str(uuid.uuid4()), end=in_hours(1),
                                   justification="jitpol: grant=g")
    fake_arm.min_active = timedelta(0)  # not the five-minute floor's test
    connector = azure_connect(pim=True)
    assert not connector.apply(marker_revoke(permanent.principal, READER_BY_GUID)).changed
    assert not connector.apply(marker_revoke(foreign.principal, READER_BY_GUID)).changed
    assert '"requestType":"AdminRemove"' in connector.apply(marker_revoke(ours.principal, READER_BY_GUID)).operations[0]
    assert set(fake_arm.holders(RG_SCOPE, READER)) == {permanent.principal, foreign.principal}


def test_check_mode_sends_no_writes(fake_arm: FakeArm, azure_connect: AzureConnect) -> None:
    principal = str(uuid.uuid4())
    connector = azure_connect()
    assert connector.apply(action("grant", principal), check=True).changed
    fake_arm.add_assignment(RG_SCOPE, READER, principal)
    assert connector.apply(action("revoke", principal), check=True).changed
    assert fake_arm.writes() == []


def test_unknown_principals_surface_arm_error_bodies(fake_arm: FakeArm, azure_connect: AzureConnect) -> None:
    fake_arm.directory = set()
    with pytest.raises(PermanentTargetError, match="PrincipalNotFound"):
        azure_connect().apply(action("grant", str(uuid.uuid4())))


def test_hostile_names_never_reach_arm(fake_arm: FakeArm, azure_connect: AzureConnect) -> None:
    connector = azure_connect()
    bad_scope = '{"role":"Reader","scope":"/subscriptions/' + SUBSCRIPTION + '/resourceGroups/rg/../../x"}'
    with pytest.raises(PermanentTargetError, match="scope"):
        connector.apply(action("grant", str(uuid.uuid4()), bad_scope))
    with pytest.raises(PermanentTargetError, match="object id"):
        connector.apply(action("grant", "ALICE"))
    with pytest.raises(PermanentTargetError, match="not supported"):
        connector.apply(Action("create-account", Assignment(TARGET, MODEL, str(uuid.uuid4()), READER_BY_NAME),
                               "orders", ("g",)))
    with pytest.raises(PermanentTargetError, match="model"):
        connector.observe(Scope(TARGET, "role-membership", frozenset({READER_BY_NAME})))
    assert fake_arm.log == []


# -- PIM ---------------------------------------------------------------------------------------


def test_pim_grant_sets_the_end_azure_enforces_and_azure_ends_it(
    fake_arm: FakeArm, azure_connect: AzureConnect
) -> None:
    principal = str(uuid.uuid4())
    until = in_hours(2) + timedelta(microseconds=250)  # rounded UP to the second
    connector = azure_connect(pim=True)

    outcome = connector.apply(action("grant", principal, READER_BY_GUID, until=until))

    assert outcome.changed
    request = fake_arm.requests[-1]["properties"]
    assert request["requestType"] == "AdminAssign"
    assert request["principalId"] == principal
    assert request["roleDefinitionId"] == f"{SUB_SCOPE}/providers/Microsoft.Authorization/roleDefinitions/{READER}"
    assert request["scheduleInfo"]["expiration"]["type"] == "AfterDateTime"
    end = until.replace(microsecond=0) + timedelta(seconds=1)
    assert datetime.fromisoformat(request["scheduleInfo"]["expiration"]["endDateTime"].replace("Z", "+00:00")) == end
    assert request["scheduleInfo"]["startDateTime"]
    assert request["justification"] == "jitpol: grant=alice-orders"  # the ownership marker
    (observed,) = connector.observe(scope_of(READER_BY_GUID))
    assert observed.principal == principal and observed.expires == end

    # Azure ends it by itself: no revoke needed
    fake_arm.now = lambda: end + timedelta(seconds=1)
    assert connector.observe(scope_of(READER_BY_GUID)) == frozenset()


def test_pim_end_follows_the_grant_both_ways_with_admin_update(
    fake_arm: FakeArm, azure_connect: AzureConnect
) -> None:
    principal = str(uuid.uuid4())
    connector = azure_connect(pim=True)
    connector.apply(action("grant", principal, READER_BY_GUID, until=in_hours(2)))

    for hours in (4, 3, 1):  # later, then earlier twice: Azure must end it at the grant's end
        moved = connector.apply(action("grant", principal, READER_BY_GUID, until=in_hours(hours), extend=True))
        assert moved.changed and '"requestType":"AdminUpdate"' in moved.operations[0]
        assert fake_arm.holders(RG_SCOPE, READER)[principal] == in_hours(hours)
        (observed,) = connector.observe(scope_of(READER_BY_GUID))
        assert observed.expires == in_hours(hours) and observed.owned is True
        again = connector.apply(action("grant", principal, READER_BY_GUID, until=in_hours(hours), extend=True))
        assert not again.changed and again.operations == ()
    # Azure ends it at the shortened end by itself
    fake_arm.now = lambda: in_hours(1) + timedelta(seconds=1)
    assert fake_arm.holders(RG_SCOPE, READER) == {}


def test_pim_an_end_under_five_minutes_away_removes_the_assignment(
    fake_arm: FakeArm, azure_connect: AzureConnect
) -> None:
    principal = str(uuid.uuid4())
    azure_connect(pim=True).apply(action("grant", principal, READER_BY_GUID, until=in_hours(2)))
    later = in_hours(0) + timedelta(minutes=10)  # ten minutes on: past PIM's removal floor
    fake_arm.now = lambda: later
    connector = azure_connect(pim=True, clock=FixedClock(later))
    until = later + timedelta(minutes=3)  # PIM makes no assignment this short: remove it now
    outcome = connector.apply(action("grant", principal, READER_BY_GUID, until=until, extend=True))
    assert outcome.changed and '"requestType":"AdminRemove"' in outcome.operations[0]
    assert "under five minutes" in outcome.operations[0]
    assert fake_arm.holders(RG_SCOPE, READER) == {}


def test_pim_reads_the_run_clock_not_the_wall_clock(fake_arm: FakeArm, azure_connect: AzureConnect) -> None:
    """The run's time (`--at`; registry.create(clock=...) hands it to the connector) is when a
    PIM schedule starts and what PIM's five-minute floor counts from."""
    from jitpol.connectors import registry

    assert registry.TYPES["azure"].takes_clock
    run_now = in_hours(0) + timedelta(minutes=30)  # the run evaluates half an hour ahead of the wall clock
    connector = azure_connect(pim=True, clock=FixedClock(run_now))
    principal = str(uuid.uuid4())
    outcome = connector.apply(action("grant", principal, READER_BY_GUID, until=in_hours(2)))
    assert outcome.changed and '"requestType":"AdminAssign"' in outcome.operations[0]
    (record,) = fake_arm.records.values()
    assert record.start == run_now
    # 32 minutes from the wall clock but two from the run's time: under the floor, so removed now
    fake_arm.now = lambda: in_hours(0) + timedelta(minutes=6)  # past ARM's removal floor for the record
    short = connector.apply(action("grant", principal, READER_BY_GUID, until=run_now + timedelta(minutes=2),
                                   extend=True))
    assert '"requestType":"AdminRemove"' in short.operations[0] and "under five minutes" in short.operations[0]
    assert fake_arm.holders(RG_SCOPE, READER) == {}


def test_pim_refuses_a_removal_in_the_first_five_minutes_and_the_next_run_does_it(
    fake_arm: FakeArm, azure_connect: AzureConnect
) -> None:
    principal = str(uuid.uuid4())
    connector = azure_connect(pim=True)
    connector.apply(action("grant", principal, READER_BY_GUID, until=in_hours(2)))
    with pytest.raises(TargetUnavailable, match="first five minutes"):
        connector.apply(action("revoke", principal, READER_BY_GUID))
    assert principal in fake_arm.holders(RG_SCOPE, READER)
    fake_arm.now = lambda: in_hours(0) + timedelta(minutes=6)
    assert connector.apply(action("revoke", principal, READER_BY_GUID)).changed
    assert fake_arm.holders(RG_SCOPE, READER) == {}


def test_pim_refuses_assignments_shorter_than_five_minutes(fake_arm: FakeArm, azure_connect: AzureConnect) -> None:
    connector = azure_connect(pim=True)
    with pytest.raises(PermanentTargetError, match="ActiveDurationTooShort"):
        connector.apply(action("grant", str(uuid.uuid4()), READER_BY_GUID, until=in_hours(0.05)))
    assert fake_arm.records == {}


def test_the_double_lets_admin_extend_only_lengthen_and_admin_update_go_both_ways(fake_arm: FakeArm) -> None:
    # Microsoft: AdminUpdate is "for administrators to change existing role assignments",
    # AdminExtend "for administrators to extend expiring assignments"
    principal = str(uuid.uuid4())
    record = fake_arm.add_assignment(RG_SCOPE, READER, principal, end=in_hours(3))
    role_id = f"{SUB_SCOPE}{ROLE_IDS}/{READER}"

    def request(kind: str, end: datetime) -> tuple[int, Any]:
        body = {"properties": {"principalId": principal, "roleDefinitionId": role_id, "requestType": kind,
                               "scheduleInfo": {"expiration": {"type": "AfterDateTime", "endDateTime": iso(end)}}}}
        path = f"{RG_SCOPE}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{uuid.uuid4()}"
        return fake_arm.handle("PUT", path, {"api-version": "2020-10-01"}, body)  # not a time

    with pytest.raises(ArmError, match="after the assignment's current end"):
        request("AdminExtend", in_hours(1))
    assert request("AdminExtend", in_hours(4))[0] == 201 and record.end == in_hours(4)
    assert request("AdminUpdate", in_hours(1))[0] == 201 and record.end == in_hours(1)
    with pytest.raises(ArmError, match="Miniumum Required is 5 minutes"):
        request("AdminUpdate", in_hours(0.05))


def test_pim_treats_a_permanent_assignment_as_held_and_revokes_with_admin_remove(
    fake_arm: FakeArm, azure_connect: AzureConnect
) -> None:
    principal = str(uuid.uuid4())
    fake_arm.add_assignment(RG_SCOPE, READER, principal)  # plain, no end
    bystander = fake_arm.add_assignment(RG_SCOPE, READER, str(uuid.uuid4()), end=in_hours(1))
    connector = azure_connect(pim=True)
    observed = {a.principal: a.expires for a in connector.observe(scope_of(READER_BY_GUID))}
    assert observed == {principal: None, bystander.principal: bystander.end}
    assert not connector.apply(action("grant", principal, READER_BY_GUID, until=in_hours(2))).changed

    revoked = connector.apply(action("revoke", principal, READER_BY_GUID, drift=True))
    assert '"requestType":"AdminRemove"' in revoked.operations[0]
    assert fake_arm.holders(RG_SCOPE, READER) == {bystander.principal: bystander.end}
    assert not connector.apply(action("revoke", principal, READER_BY_GUID)).changed


def test_pim_check_mode_sends_nothing(fake_arm: FakeArm, azure_connect: AzureConnect) -> None:
    outcome = azure_connect(pim=True).apply(action("grant", str(uuid.uuid4()), READER_BY_GUID, until=in_hours(2)),
                                            check=True)
    assert outcome.changed and "<new GUID>" in outcome.operations[0]
    assert fake_arm.writes() == [] and fake_arm.requests == []


def test_pim_policy_refusals_and_missing_ends_are_permanent(fake_arm: FakeArm, azure_connect: AzureConnect) -> None:
    connector = azure_connect(pim=True)
    with pytest.raises(PermanentTargetError, match="ExpirationRule"):
        connector.apply(action("grant", str(uuid.uuid4()), READER_BY_GUID, until=in_hours(24 * 365)))
    with pytest.raises(PermanentTargetError, match="needs an end"):
        connector.apply(action("grant", str(uuid.uuid4()), READER_BY_GUID))


def test_pim_race_on_admin_assign_is_already_true_when_the_end_suffices(
    fake_arm: FakeArm, azure_connect: AzureConnect, monkeypatch: pytest.MonkeyPatch
) -> None:
    principal = str(uuid.uuid4())
    connector = azure_connect(pim=True)
    # the request meets an assignment made meanwhile: the double answers as Azure does, and the
    # connector reads again
    original = fake_arm.handle

    def racing(method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if method == "PUT" and "roleAssignmentScheduleRequests" in path and not fake_arm.holders(RG_SCOPE, READER):
            fake_arm.add_assignment(RG_SCOPE, READER, principal, end=in_hours(5))
        return original(method, path, query, body)

    monkeypatch.setattr(fake_arm, "handle", racing)
    outcome = connector.apply(action("grant", principal, READER_BY_GUID, until=in_hours(2)))
    assert not outcome.changed and outcome.before and len(outcome.operations) == 1


# -- the ownership marker ----------------------------------------------------------------------


def test_plain_what_jitpol_granted_is_owned_and_standing_access_is_not(
    fake_arm: FakeArm, azure_connect: AzureConnect
) -> None:
    mine, standing, described = (str(uuid.uuid4()) for _ in range(3))
    fake_arm.add_assignment(RG_SCOPE, READER, standing)
    fake_arm.add_assignment(RG_SCOPE, READER, described, description="jitpol: please keep")  # not the marker
    connector = azure_connect()
    connector.apply(action("grant", mine))
    owned = {a.principal: a.owned for a in connector.observe(scope_of(READER_BY_NAME))}
    assert owned == {mine: True, standing: False, described: False}


def test_plain_grant_finding_standing_access_writes_nothing_and_adds_no_marker(
    fake_arm: FakeArm, azure_connect: AzureConnect
) -> None:
    principal = str(uuid.uuid4())
    standing = fake_arm.add_assignment(RG_SCOPE, READER, principal, description="Granted by the platform team")
    connector = azure_connect()
    outcome = connector.apply(action("grant", principal, until=in_hours(2)))
    assert not outcome.changed and outcome.operations == () and fake_arm.writes() == []
    assert standing.description == "Granted by the platform team"
    (held,) = connector.observe(scope_of(READER_BY_NAME))
    assert held.owned is False and held.expires is None


def test_plain_revoke_works_whether_or_not_the_assignment_is_marked(
    fake_arm: FakeArm, azure_connect: AzureConnect
) -> None:
    # made by jitpol before markers existed: the ledger knows, the description does not
    principal = str(uuid.uuid4())
    fake_arm.add_assignment(RG_SCOPE, READER, principal)
    assert azure_connect().apply(action("revoke", principal)).changed
    assert fake_arm.holders(RG_SCOPE, READER) == {}


def test_the_marker_names_only_an_allow_listed_grant(fake_arm: FakeArm, azure_connect: AzureConnect) -> None:
    principal = str(uuid.uuid4())
    azure_connect().apply(action("grant", principal, grant="Not A Name; rm -rf"))
    (record,) = fake_arm.records.values()
    assert record.description == "jitpol"
    assert {a.owned for a in azure_connect().observe(scope_of(READER_BY_NAME))} == {True}


def test_pim_ownership_is_read_from_the_request_that_created_the_schedule(
    fake_arm: FakeArm, azure_connect: AzureConnect
) -> None:
    mine, permanent, someone, older = (str(uuid.uuid4()) for _ in range(4))
    fake_arm.add_assignment(RG_SCOPE, READER, permanent)  # outside PIM: no request
    fake_arm.add_assignment(RG_SCOPE, READER, someone, end=in_hours(5), justification="Quarterly audit")
    # a PIM assignment jitpol made before markers had their current form
    fake_arm.add_assignment(RG_SCOPE, READER, older, end=in_hours(5), justification="jitpol: alice-orders")
    connector = azure_connect(pim=True)
    connector.apply(action("grant", mine, READER_BY_GUID, until=in_hours(2)))
    for _ in range(2):
        owned = {a.principal: a.owned for a in connector.observe(scope_of(READER_BY_GUID))}
        assert owned == {mine: True, permanent: False, someone: False, older: True}
    # requests do not change: each is read once
    reads = [p for m, p, _ in fake_arm.log if m == "GET" and "/roleAssignmentScheduleRequests/" in p]
    assert len(reads) == len(set(reads)) == 3


def test_pim_grant_finding_someone_elses_assignment_leaves_its_end_alone(
    fake_arm: FakeArm, azure_connect: AzureConnect
) -> None:
    principal = str(uuid.uuid4())
    fake_arm.add_assignment(RG_SCOPE, READER, principal, end=in_hours(1), justification="Quarterly audit")
    connector = azure_connect(pim=True)
    for until in (in_hours(3), in_hours(0.5)):
        outcome = connector.apply(action("grant", principal, READER_BY_GUID, until=until, extend=True))
        assert not outcome.changed and outcome.operations == ()
    assert fake_arm.holders(RG_SCOPE, READER)[principal] == in_hours(1)
    assert not any(q["properties"].get("justification", "").startswith("jitpol") for q in fake_arm.requests)
    (held,) = connector.observe(scope_of(READER_BY_GUID))
    assert held.owned is False


def test_capabilities_follow_the_mode(azure_connect: AzureConnect) -> None:
    plain, pim = azure_connect().capabilities, azure_connect(pim=True).capabilities
    assert plain.marks == pim.marks == {MODEL}
    assert plain.native_expiry == frozenset() and pim.native_expiry == {MODEL}


# -- errors ------------------------------------------------------------------------------------


def test_unreachable_arm_is_temporary(arm_cert: tuple[Path, Path]) -> None:
    connector = AzureConnector(
        TARGET,
        {"subscription_id": SUBSCRIPTION, "tenant_id": TENANT, "base_url": f"https://127.0.0.1:{closed_port()}"},
        {},
        credential=StaticTokenCredential(),
        client_options={"connection_verify": str(arm_cert[0]), "retry_total": 0},
        clock=FixedClock(in_hours(0)),
    )
    with pytest.raises(TargetUnavailable, match="cannot reach"):
        connector.observe(scope_of(READER_BY_GUID))
    with pytest.raises(TargetUnavailable):
        connector.apply(action("grant", str(uuid.uuid4()), READER_BY_GUID))
    connector.close()


def test_rejected_token_is_permanent_and_never_shown(fake_arm: FakeArm, azure_connect: AzureConnect) -> None:
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzZWNyZXQifQ.c2lnbmF0dXJlLXNlY3JldA"
    connector = azure_connect(credential=StaticTokenCredential(token))
    with pytest.raises(PermanentTargetError) as info:
        connector.observe(scope_of(READER_BY_GUID))
    assert "InvalidAuthenticationToken" in str(info.value)
    assert token not in str(info.value) and "c2lnbmF0dXJl" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_forbidden_is_permanent_with_arm_message(fake_arm: FakeArm, azure_connect: AzureConnect) -> None:
    fake_arm.forbidden = {"PUT", "DELETE"}
    connector = azure_connect()
    with pytest.raises(PermanentTargetError, match="AuthorizationFailed"):
        connector.apply(action("grant", str(uuid.uuid4())))
    with pytest.raises(PermanentTargetError, match="AuthorizationFailed"):
        azure_connect(pim=True).apply(action("grant", str(uuid.uuid4()), READER_BY_GUID, until=in_hours(1)))


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_temporary(fake_arm: FakeArm, azure_connect: AzureConnect, status: int) -> None:
    """(429s are waited out: tests/integration/test_azure_batch.py)"""
    fake_arm.fail_next.append((None, status, {"error": {"code": "ServerBusy", "message": "try later"}}))
    with pytest.raises(TargetUnavailable, match="ServerBusy"):
        azure_connect().observe(scope_of(READER_BY_GUID))


def test_client_secret_is_redacted_from_messages(fake_arm: FakeArm, azure_connect: AzureConnect) -> None:
    secret = "s3cr3t-client-secret-value"
    echo = f"echo {secret} Bearer abc.def"
    fake_arm.fail_next.append((None, 400, {"error": {"code": "BadRequest", "message": echo}}))
    connector = azure_connect(env={"AZ_ID": "x", "AZ_SECRET": secret}, client_id_env="AZ_ID",
                              client_secret_env="AZ_SECRET")
    with pytest.raises(PermanentTargetError) as info:
        connector.observe(scope_of(READER_BY_GUID))
    assert secret not in str(info.value) and "abc.def" not in str(info.value)
    assert "BadRequest" in str(info.value)
