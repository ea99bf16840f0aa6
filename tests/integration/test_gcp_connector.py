"""GcpConnector through the real google-cloud-resource-manager SDK (REST) against the local Cloud
Resource Manager double: name checks, lazy SDK import, the IAM condition Google enforces, ends
that follow the grant both ways, the ownership marker (condition title) and standing access left
unmarked, unrelated bindings byte-for-byte untouched, etag conflicts retried, drift on
unconditional bindings, folders/organizations, and errors without credentials in messages."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jitpol.connectors.gcp import MAX_ATTEMPTS, GcpConnector, check_name, condition_end, rfc3339
from jitpol.errors import InvalidInput, PermanentTargetError, TargetUnavailable
from jitpol.model.assignment import Action, Assignment, Op, Scope
from jitpol.model.canonical import canonical_json
from tests.doubles.gcp_crm import FakeCrm
from tests.doubles.server import closed_port
from tests.gcp_fixtures import *  # noqa: F403 - the fixtures
from tests.gcp_fixtures import (
    AUDIT_CONFIGS,
    PROJECT,
    TARGET,
    UNRELATED_BINDINGS,
    GcpConnect,
    anonymous,
)
from tests.helpers.clock import HoursFromNow, Now
from tests.services import require_module

MODEL = "idp-elevation"
REPO = Path(__file__).resolve().parents[2]
ROLE = "roles/cloudsql.admin"
PRIVILEGE = canonical_json({"resource": PROJECT, "role": ROLE})
ALICE = "user:alice@example.com"
BOB = "user:bob@example.com"


def action(op: Op, principal: str = ALICE, privilege: str = PRIVILEGE, *, until: datetime | None = None,
           drift: bool = False, extend: bool = False) -> Action:
    """`extend`: the end of access already present moves (the diff's ("mode", "extend"))."""
    return Action(op=op, assignment=Assignment(TARGET, MODEL, principal, privilege), resource="orders",
                  grants=("g",), until=until, drift=drift,
                  details=(("grant", "g"), ("mode", "extend")) if extend else (("grant", "g"),))


def scope_of(*privileges: str) -> Scope:
    return Scope(TARGET, MODEL, frozenset(privileges))


in_hours = HoursFromNow()


@pytest.fixture(autouse=True)
def _read_the_clock_once(now: Now) -> None:
    in_hours.now = now


def canon(bindings: list[dict[str, Any]]) -> list[str]:
    """Bindings as sorted canonical JSON with sorted members: order-free comparison."""
    return sorted(canonical_json({**b, "members": sorted(b["members"])}) for b in bindings)


def ours(crm: FakeCrm, resource: str = PROJECT) -> list[dict[str, Any]]:
    return [b for b in crm.policy(resource)["bindings"]
            if "condition" in b and b["condition"]["title"].startswith("jitpol")]


def others(crm: FakeCrm, resource: str = PROJECT) -> list[dict[str, Any]]:
    return [b for b in crm.policy(resource)["bindings"] if b not in ours(crm, resource)]


# -- names and imports -------------------------------------------------------------------------


def test_importing_the_module_and_checking_names_does_not_import_the_sdk() -> None:
    code = (
        "import sys, jitpol.connectors.gcp as m\n"
        "m.check_name('user:alice@example.com', 'principal')\n"
        "m.check_name('{\"resource\":\"projects/my-proj\",\"role\":\"roles/browser\"}', 'privilege')\n"
        "print(sorted(k for k in sys.modules if k == 'google' or k.startswith(('google.', 'grpc', 'proto'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("value", [
    ALICE, "group:sre@example.com", "serviceAccount:ci@my-proj.iam.gserviceaccount.com",
    "principal://iam.googleapis.com/locations/global/workforcePools/staff/subject/alice",
])
def test_check_name_accepts_members(value: str) -> None:
    check_name(value, "principal")


@pytest.mark.parametrize("value", [
    "alice@example.com", "user:Alice@Example.com", "allUsers", "domain:example.com", "user:a@b",
    "user:alice@example.com\n", "deleted:user:alice@example.com?uid=1", 3, None,
])
def test_check_name_refuses_other_principals(value: object) -> None:
    with pytest.raises(InvalidInput, match="GCP principal"):
        check_name(value, "principal")


@pytest.mark.parametrize("value", [
    {"resource": "projects/my-proj", "role": "roles/browser"},
    canonical_json({"resource": "projects/123456789012", "role": "projects/my-proj/roles/dbOperator"}),
    canonical_json({"resource": "folders/1234", "role": "roles/resourcemanager.folderViewer"}),
    canonical_json({"resource": "organizations/42", "role": "organizations/42/roles/custom.audit"}),
])
def test_check_name_accepts_privileges(value: object) -> None:
    check_name(value, "privilege")


@pytest.mark.parametrize("value", [
    "roles/viewer", {"resource": "projects/my-proj"}, {"resource": "projects/my-proj", "role": "roles/viewer", "x": 1},
    {"resource": "projects/My_Proj", "role": "roles/viewer"},
    {"resource": "projects/p:setIamPolicy", "role": "roles/viewer"},
    {"resource": "buckets/b", "role": "roles/viewer"}, {"resource": "projects/my-proj", "role": "viewer"},
    {"resource": "projects/my-proj", "role": "roles/viewer_withcond_abc\""},
    # IAM conditions cannot be used with the basic roles, so jitpol cannot hand them out
    {"resource": "projects/my-proj", "role": "roles/owner"},
    {"resource": "projects/my-proj", "role": "roles/editor"},
    {"resource": "projects/my-proj", "role": "roles/viewer"},
])
def test_check_name_refuses_other_privileges(value: object) -> None:
    with pytest.raises(InvalidInput, match="privilege"):
        check_name(value, "privilege")


def test_condition_ends_are_recognised_only_in_jitpols_exact_form() -> None:
    expression = 'request.time < timestamp("2095-01-01T00:00:00Z")'
    assert condition_end(expression, "jitpol until 2095-01-01T00:00:00Z") == datetime(2095, 1, 1, tzinfo=UTC)
    assert condition_end(expression, "until new year") is None  # someone else's
    assert condition_end(expression + " && true", "jitpol x") is None
    assert condition_end(expression, "jitpol until 2096-01-01T00:00:00Z") is None  # title and end disagree
    assert condition_end(expression, "jitpol until 2095-01-01T00:00:00Z (copy)") is None
    assert rfc3339(datetime(2095, 1, 1, 0, 0, 0, 1, tzinfo=UTC)) == "2095-01-01T00:00:01Z"


# -- granting ----------------------------------------------------------------------------------


def test_grant_adds_a_conditional_binding_google_enforces(fake_crm: FakeCrm, gcp_connect: GcpConnect) -> None:
    until = in_hours(2)
    connector = gcp_connect()
    outcome = connector.apply(action("grant", until=until))

    assert outcome.changed and outcome.operations[0].startswith(f"{PROJECT}:setIamPolicy version=3 etag=")
    policy = fake_crm.policy(PROJECT)
    assert policy["version"] == 3
    end = until.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ours(fake_crm) == [{
        "role": ROLE, "members": [ALICE],
        "condition": {"expression": f'request.time < timestamp("{end}")', "title": f"jitpol until {end}",
                      "description": "Just-in-time access granted by jitpol; IAM stops honouring it at the time in "
                                     "the expression."},
    }]
    # the end is Google's to enforce: access stops at `until` with no further call from jitpol
    assert fake_crm.has_access(PROJECT, ROLE, ALICE, until - timedelta(seconds=1))
    assert not fake_crm.has_access(PROJECT, ROLE, ALICE, until)
    (observed,) = [a for a in connector.observe(scope_of(PRIVILEGE)) if a.principal == ALICE]
    assert observed.expires == until
    # reads ask for version 3, or conditional bindings would come back mangled
    assert all(body["options"]["requestedPolicyVersion"] == 3 for _, m, body in fake_crm.log if m == "getIamPolicy")


def test_unrelated_bindings_conditions_and_audit_configs_survive_everything(
    fake_crm: FakeCrm, gcp_connect: GcpConnect
) -> None:
    connector = gcp_connect()
    before = canon(fake_crm.policy(PROJECT)["bindings"])
    connector.apply(action("grant", until=in_hours(2)))
    connector.apply(action("grant", BOB, until=in_hours(2)))
    connector.apply(action("grant", until=in_hours(5), extend=True))
    connector.apply(action("grant", BOB, until=in_hours(1), extend=True))  # shorten
    assert canon(others(fake_crm)) == before
    connector.apply(action("revoke"))
    connector.apply(action("revoke", BOB))
    after = fake_crm.policy(PROJECT)
    assert canon(after["bindings"]) == before
    # the same audit configuration: the SDK sends enums as numbers (DATA_READ=3, ADMIN_READ=1)
    assert [c["logType"] for c in AUDIT_CONFIGS[0]["auditLogConfigs"]] == ["DATA_READ", "ADMIN_READ"]
    assert after["auditConfigs"] == [{"service": "allServices", "auditLogConfigs": [{"logType": 3}, {"logType": 1}]}]


def test_members_under_someone_elses_conditions_keep_them_through_grant_and_revoke(
    fake_crm: FakeCrm, gcp_connect: GcpConnect
) -> None:
    # carol: an unrelated condition; dave: jitpol's expression form, but not jitpol's title
    connector = gcp_connect()
    before = canon(fake_crm.policy(PROJECT)["bindings"])
    for member in ("user:carol@example.org", "user:dave@example.org"):
        assert connector.apply(action("grant", member, until=in_hours(2))).changed
        assert connector.apply(action("grant", member, until=in_hours(3), extend=True)).changed
        assert connector.apply(action("grant", member, until=in_hours(1), extend=True)).changed
    assert canon(others(fake_crm)) == before
    assert {a.principal for a in connector.observe(scope_of(PRIVILEGE))} >= {"user:carol@example.org",
                                                                             "user:dave@example.org"}
    for member in ("user:carol@example.org", "user:dave@example.org"):
        assert connector.apply(action("revoke", member)).changed
    assert canon(fake_crm.policy(PROJECT)["bindings"]) == before


def ends_of_ours(crm: FakeCrm) -> set[tuple[tuple[str, ...], datetime | None]]:
    return {(tuple(b["members"]), condition_end(b["condition"]["expression"], b["condition"]["title"]))
            for b in ours(crm)}


def test_the_end_follows_the_grant_both_ways_and_moves_only_that_member(
    fake_crm: FakeCrm, gcp_connect: GcpConnect
) -> None:
    connector = gcp_connect()
    connector.apply(action("grant", until=in_hours(2)))
    connector.apply(action("grant", BOB, until=in_hours(2)))  # shares the binding with alice

    longer = connector.apply(action("grant", until=in_hours(4), extend=True))
    assert longer.changed
    assert ends_of_ours(fake_crm) == {((BOB,), in_hours(2)), ((ALICE,), in_hours(4))}

    # a shorter live end (a schedule, a restriction, break-glass) is applied too: IAM must stop
    # honouring alice's access at the new end, not at the old later one
    shorter = connector.apply(action("grant", until=in_hours(3), extend=True))
    assert shorter.changed
    assert f"remove {ALICE} from {ROLE} if" in shorter.operations[0]
    assert ends_of_ours(fake_crm) == {((BOB,), in_hours(2)), ((ALICE,), in_hours(3))}
    assert fake_crm.has_access(PROJECT, ROLE, ALICE, in_hours(3) - timedelta(seconds=1))
    assert not fake_crm.has_access(PROJECT, ROLE, ALICE, in_hours(3))
    observed = {a.principal: a.expires for a in connector.observe(scope_of(PRIVILEGE))}
    assert observed[ALICE] == in_hours(3) and observed[BOB] == in_hours(2)

    again = connector.apply(action("grant", until=in_hours(3), extend=True))
    assert not again.changed and again.operations == ()


def test_shortening_joins_the_binding_of_that_end_and_leaves_one_jitpol_binding_per_member(
    fake_crm: FakeCrm, gcp_connect: GcpConnect
) -> None:
    connector = gcp_connect()
    connector.apply(action("grant", BOB, until=in_hours(1)))
    connector.apply(action("grant", until=in_hours(5)))
    assert connector.apply(action("grant", until=in_hours(1), extend=True)).changed
    assert [sorted(b["members"]) for b in ours(fake_crm)] == [[ALICE, BOB]]
    assert not fake_crm.has_access(PROJECT, ROLE, ALICE, in_hours(1))


def test_two_jitpol_bindings_left_by_an_older_version_become_one_with_the_grants_end(
    fake_crm: FakeCrm, gcp_connect: GcpConnect
) -> None:
    def jitpols(end: datetime) -> dict[str, Any]:
        text = rfc3339(end)
        return {"role": ROLE, "members": [ALICE],
                "condition": {"title": f"jitpol until {text}", "expression": f'request.time < timestamp("{text}")'}}

    fake_crm.set_bindings(PROJECT, [*UNRELATED_BINDINGS, jitpols(in_hours(2)), jitpols(in_hours(6))])
    connector = gcp_connect()
    (alice,) = [a for a in connector.observe(scope_of(PRIVILEGE)) if a.principal == ALICE]
    assert alice.expires == in_hours(6) and alice.owned is True  # the later one is what IAM honours
    # the same end as one of them still changes the policy: the other binding must go
    assert connector.apply(action("grant", until=in_hours(2), extend=True)).changed
    assert ends_of_ours(fake_crm) == {((ALICE,), in_hours(2))}
    assert not fake_crm.has_access(PROJECT, ROLE, ALICE, in_hours(2))


# -- the ownership marker ----------------------------------------------------------------------


def test_what_jitpol_granted_is_observed_as_owned_and_standing_access_is_not(
    fake_crm: FakeCrm, gcp_connect: GcpConnect
) -> None:
    connector = gcp_connect()
    connector.apply(action("grant", until=in_hours(2)))
    observed = {a.principal: a for a in connector.observe(scope_of(PRIVILEGE))}
    assert observed[ALICE].owned is True
    assert observed["user:standing@example.org"].owned is False  # an unconditional binding
    assert observed["group:dba@example.org"].owned is False
    assert "user:carol@example.org" not in observed  # someone else's condition: not reported
    # the marker is the condition's title, fixed text around the end jitpol computed
    (binding,) = ours(fake_crm)
    assert binding["condition"]["title"] == f"jitpol until {rfc3339(in_hours(2))}"


def test_a_grant_that_finds_standing_access_leaves_it_unmarked_and_unchanged(
    fake_crm: FakeCrm, gcp_connect: GcpConnect
) -> None:
    standing = "user:standing@example.org"
    connector = gcp_connect()
    before = fake_crm.policy(PROJECT)
    for step in (action("grant", standing, until=in_hours(1)),
                 action("grant", standing, until=in_hours(3), extend=True)):
        outcome = connector.apply(step)
        assert not outcome.changed and outcome.before and outcome.operations == ()
        assert not connector.apply(step, check=True).changed
    assert fake_crm.writes() == [] and fake_crm.policy(PROJECT) == before
    (held,) = [a for a in connector.observe(scope_of(PRIVILEGE)) if a.principal == standing]
    assert held.owned is False and held.expires is None


def test_a_member_holding_the_role_both_ways_is_standing(fake_crm: FakeCrm, gcp_connect: GcpConnect) -> None:
    # someone gave alice the role unconditionally after jitpol's grant: the end no longer ends her
    # access, and nothing may treat it as jitpol's alone
    connector = gcp_connect()
    connector.apply(action("grant", until=in_hours(2)))
    fake_crm.set_bindings(PROJECT, [*fake_crm.policy(PROJECT)["bindings"], {"role": ROLE, "members": [ALICE]}])
    (alice,) = [a for a in connector.observe(scope_of(PRIVILEGE)) if a.principal == ALICE]
    assert alice.owned is False and alice.expires is None
    assert not connector.apply(action("grant", until=in_hours(1), extend=True)).changed


@pytest.mark.parametrize("title", ["jitpol", "jitpol until 2095-01-01T00:00:00Z", "jitpolish rule",
                                   "Jitpol until 2096-01-01T00:00:00Z"])
def test_only_the_exact_marker_counts_as_jitpols(fake_crm: FakeCrm, gcp_connect: GcpConnect, title: str) -> None:
    expression = 'request.time < timestamp("2096-01-01T00:00:00Z")'
    fake_crm.set_bindings(PROJECT, [*UNRELATED_BINDINGS,
                                    {"role": ROLE, "members": [ALICE],
                                     "condition": {"title": title, "expression": expression}}])
    connector = gcp_connect()
    assert ALICE not in {a.principal for a in connector.observe(scope_of(PRIVILEGE))}
    assert not connector.apply(action("revoke")).changed  # someone else's condition is never touched


def test_observe_reports_standing_and_jitpol_holders_but_not_foreign_conditions(
    fake_crm: FakeCrm, gcp_connect: GcpConnect
) -> None:
    connector = gcp_connect()
    connector.apply(action("grant", until=in_hours(2)))
    fake_crm.set_bindings(PROJECT, [*fake_crm.policy(PROJECT)["bindings"],
                                    {"role": ROLE, "members": ["deleted:user:gone@example.org?uid=123"]}])
    observed = {a.principal: a.expires for a in connector.observe(scope_of(PRIVILEGE))}
    assert observed == {"group:dba@example.org": None, "user:standing@example.org": None, ALICE: in_hours(2)}


def test_expired_jitpol_bindings_are_reported_with_their_past_end_and_cleaned_by_revoke(
    fake_crm: FakeCrm, gcp_connect: GcpConnect
) -> None:
    past = datetime(2020, 1, 1, tzinfo=UTC)
    expression = 'request.time < timestamp("2020-01-01T00:00:00Z")'
    fake_crm.set_bindings(PROJECT, [*UNRELATED_BINDINGS, {
        "role": ROLE, "members": [ALICE],
        "condition": {"title": "jitpol until 2020-01-01T00:00:00Z", "expression": expression}}])
    connector = gcp_connect()
    assert {a.principal: a.expires for a in connector.observe(scope_of(PRIVILEGE))}[ALICE] == past
    assert not fake_crm.has_access(PROJECT, ROLE, ALICE, datetime(2020, 1, 2, tzinfo=UTC))
    assert connector.apply(action("revoke")).changed
    assert ours(fake_crm) == []


def test_check_mode_sends_no_writes(fake_crm: FakeCrm, gcp_connect: GcpConnect) -> None:
    connector = gcp_connect()
    outcome = connector.apply(action("grant", until=in_hours(1)), check=True)
    assert outcome.changed and f"add {ALICE} to {ROLE}" in outcome.operations[0]
    assert fake_crm.writes() == []


# -- concurrency -------------------------------------------------------------------------------


def test_etag_conflicts_are_retried_and_the_other_writers_change_is_kept(
    fake_crm: FakeCrm, gcp_connect: GcpConnect
) -> None:
    fake_crm.conflicts = 2
    outcome = gcp_connect().apply(action("grant", until=in_hours(1)))
    assert outcome.changed and outcome.after
    assert len(outcome.operations) == 3 and "409 ABORTED" in outcome.operations[0]
    members = {m for b in fake_crm.policy(PROJECT)["bindings"] for m in b["members"]}
    assert {"user:concurrent1@example.org", "user:concurrent2@example.org", ALICE} <= members
    assert len(fake_crm.writes()) == 3


def test_a_policy_that_keeps_changing_is_temporary_after_bounded_attempts(
    fake_crm: FakeCrm, gcp_connect: GcpConnect
) -> None:
    fake_crm.conflicts = 100
    with pytest.raises(TargetUnavailable, match="changed concurrently"):
        gcp_connect().apply(action("grant", until=in_hours(1)))
    assert len(fake_crm.writes()) == MAX_ATTEMPTS


def test_conflict_after_which_the_grant_is_already_true_changes_nothing(
    fake_crm: FakeCrm, gcp_connect: GcpConnect, monkeypatch: pytest.MonkeyPatch
) -> None:
    connector = gcp_connect()
    original = fake_crm.handle

    def other_run_wins(resource: str, method: str, body: dict[str, Any]) -> dict[str, Any]:
        if method == "setIamPolicy" and not ours(fake_crm):  # another jitpol run gets there first
            fake_crm.set_bindings(resource, [*fake_crm.policy(resource)["bindings"], *body["policy"]["bindings"][-1:]])
        return original(resource, method, body)

    monkeypatch.setattr(fake_crm, "handle", other_run_wins)
    outcome = connector.apply(action("grant", until=in_hours(1)))
    assert not outcome.changed and outcome.before and outcome.after
    assert len(outcome.operations) == 1 and "409 ABORTED" in outcome.operations[0]


# -- revoking and drift ------------------------------------------------------------------------


def test_revoke_leaves_standing_bindings_alone_and_says_access_remains(
    fake_crm: FakeCrm, gcp_connect: GcpConnect
) -> None:
    connector = gcp_connect()
    with pytest.raises(PermanentTargetError, match="unconditional binding"):
        connector.apply(action("revoke", "user:standing@example.org"))
    assert fake_crm.writes() == []
    # holding both: jitpol's binding goes, the standing one stays, and the error says so
    jitpols = {"title": "jitpol until 2096-01-01T00:00:00Z",
               "expression": 'request.time < timestamp("2096-01-01T00:00:00Z")'}
    fake_crm.set_bindings(PROJECT, [*UNRELATED_BINDINGS,
                                    {"role": ROLE, "members": ["user:standing@example.org"], "condition": jitpols}])
    with pytest.raises(PermanentTargetError, match="removed jitpol's conditional binding"):
        connector.apply(action("revoke", "user:standing@example.org"))
    assert canon(fake_crm.policy(PROJECT)["bindings"]) == canon(UNRELATED_BINDINGS)


def test_drift_revoke_removes_a_member_from_unconditional_bindings_only(
    fake_crm: FakeCrm, gcp_connect: GcpConnect
) -> None:
    connector = gcp_connect()
    outcome = connector.apply(action("revoke", "user:standing@example.org", drift=True))
    assert outcome.changed
    bindings = fake_crm.policy(PROJECT)["bindings"]
    assert {"role": ROLE, "members": ["group:dba@example.org"]} in bindings
    expected = [b for b in UNRELATED_BINDINGS if not (b["role"] == ROLE and "condition" not in b)]
    assert canon([b for b in bindings if b["members"] != ["group:dba@example.org"]]) == canon(expected)
    # a group on an exclusive resource can be drift too; the last member empties the binding
    connector.apply(action("revoke", "group:dba@example.org", drift=True))
    assert not any(b["role"] == ROLE and "condition" not in b for b in fake_crm.policy(PROJECT)["bindings"])
    # foreign conditions are never touched, not even as drift
    assert not connector.apply(action("revoke", "user:carol@example.org", drift=True)).changed
    assert canon([b for b in fake_crm.policy(PROJECT)["bindings"] if "condition" in b]) == canon(
        [b for b in UNRELATED_BINDINGS if "condition" in b])


def test_a_marker_driven_revoke_never_takes_a_standing_binding(fake_crm: FakeCrm, gcp_connect: GcpConnect) -> None:
    """plan.diff's revoke of marked access no grant backs (drift, no resource): a standing binding
    that appeared since observe stays, jitpol's binding goes, and that is no error."""
    connector = gcp_connect()
    jitpols = {"title": "jitpol until 2096-01-01T00:00:00Z",
               "expression": 'request.time < timestamp("2096-01-01T00:00:00Z")'}
    fake_crm.set_bindings(PROJECT, [*UNRELATED_BINDINGS,
                                    {"role": ROLE, "members": ["user:standing@example.org"], "condition": jitpols}])
    marked = dataclasses.replace(action("revoke", "user:standing@example.org", drift=True), resource="", grants=())
    outcome = connector.apply(marked)
    assert outcome.changed
    assert canon(fake_crm.policy(PROJECT)["bindings"]) == canon(UNRELATED_BINDINGS)
    # nothing of jitpol's left: nothing to do, and still no error
    assert not connector.apply(marked).changed
    assert canon(fake_crm.policy(PROJECT)["bindings"]) == canon(UNRELATED_BINDINGS)


def test_revoking_one_member_keeps_the_others_in_a_shared_binding(fake_crm: FakeCrm, gcp_connect: GcpConnect) -> None:
    connector = gcp_connect()
    connector.apply(action("grant", until=in_hours(2)))
    connector.apply(action("grant", BOB, until=in_hours(2)))
    assert [b["members"] for b in ours(fake_crm)] == [[ALICE, BOB]]
    connector.apply(action("revoke"))
    assert [b["members"] for b in ours(fake_crm)] == [[BOB]]
    assert fake_crm.has_access(PROJECT, ROLE, BOB, in_hours(1))


# -- resource kinds ----------------------------------------------------------------------------


@pytest.mark.parametrize(("resource", "role"), [
    ("folders/1234567", "roles/resourcemanager.folderViewer"),
    ("organizations/424242", "organizations/424242/roles/custom.audit"),
    ("projects/987654321098", "projects/orders-prod-4711/roles/dbOperator"),
])
def test_folders_organizations_and_project_numbers(
    fake_crm: FakeCrm, gcp_connect: GcpConnect, resource: str, role: str
) -> None:
    fake_crm.add_resource(resource, [{"role": "roles/owner", "members": ["user:owner@example.org"]}])
    privilege = canonical_json({"resource": resource, "role": role})
    connector = gcp_connect()
    assert connector.apply(action("grant", privilege=privilege, until=in_hours(1))).changed
    assert {a.principal for a in connector.observe(scope_of(privilege))} == {ALICE}
    assert connector.apply(action("revoke", privilege=privilege)).changed
    assert fake_crm.policy(resource)["bindings"] == [{"role": "roles/owner", "members": ["user:owner@example.org"]}]


# -- errors ------------------------------------------------------------------------------------


def test_unreachable_endpoint_is_temporary() -> None:
    require_module("google.cloud.resourcemanager_v3")
    connector = GcpConnector(TARGET, {"api_endpoint": f"http://127.0.0.1:{closed_port()}"}, {},
                             credentials=anonymous(), timeout=2)
    with pytest.raises(TargetUnavailable, match="cannot reach"):
        connector.observe(scope_of(PRIVILEGE))
    with pytest.raises(TargetUnavailable):
        connector.apply(action("grant", until=in_hours(1)))
    connector.close()
    connector.close()


def test_rejected_token_is_permanent_and_never_shown(fake_crm: FakeCrm, gcp_connect: GcpConnect) -> None:
    from google.oauth2.credentials import Credentials

    bearer: Callable[..., Credentials] = Credentials  # google-auth does not annotate its constructors
    token = "ya29.a0AfH6SMBx-secret-access-token"
    fake_crm.rejected.add(token)
    with pytest.raises(PermanentTargetError) as info:
        gcp_connect(credentials=bearer(token=token)).observe(scope_of(PRIVILEGE))
    # on 401 the SDK's session tries to refresh the token, which a bare access token cannot do
    assert "authentication failed" in str(info.value)
    assert token not in str(info.value) and "secret-access" not in str(info.value)
    assert fake_crm.log[-1][1] == "getIamPolicy"  # it really went over the wire


def test_permission_denied_is_permanent(fake_crm: FakeCrm, gcp_connect: GcpConnect) -> None:
    fake_crm.deny.add(PROJECT)
    with pytest.raises(PermanentTargetError, match=r"403.*does not have permission"):
        gcp_connect().apply(action("grant", until=in_hours(1)))


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_temporary(fake_crm: FakeCrm, gcp_connect: GcpConnect, status: int) -> None:
    fake_crm.fail_next.append((status, {"error": {"code": status, "message": "backend busy", "status": "UNAVAILABLE"}}))
    with pytest.raises(TargetUnavailable, match="backend busy"):
        gcp_connect().observe(scope_of(PRIVILEGE))


def test_invalid_role_is_reported_as_googles_400(fake_crm: FakeCrm, gcp_connect: GcpConnect) -> None:
    message = "Role roles/cloudsql.admin is not supported for this resource."
    fake_crm.fail_next.append((400, {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": message}}))
    with pytest.raises(PermanentTargetError, match="not supported for this resource"):
        gcp_connect().observe(scope_of(PRIVILEGE))


def test_credentials_env_problems_are_permanent_and_never_echo_the_key(tmp_path: Path) -> None:
    require_module("google.auth")
    secret_key = "-----BEGIN PRIVATE KEY-----\nMIIsecretsecret\n-----END PRIVATE KEY-----\n"
    cases: list[tuple[dict[str, str], str]] = [
        ({}, "GCP_KEY .credentials_env. is not set"),
        ({"GCP_KEY": "{not json " + secret_key}, "valid JSON"),
        ({"GCP_KEY": json.dumps({"type": "service_account", "private_key": secret_key,
                                 "client_email": "ci@p.iam.gserviceaccount.com"})}, "type 'service_account'"),
        ({"GCP_KEY": str(tmp_path / "missing.json")}, "cannot be read"),
        ({"GCP_KEY": json.dumps({"type": "external_account",
                                 "credential_source": {"executable": {"command": "/bin/sh"}}})},
         "not executable-sourced"),
    ]
    for env, match in cases:
        connector = GcpConnector(TARGET, {"api_endpoint": "http://127.0.0.1:9", "credentials_env": "GCP_KEY"}, env)
        with pytest.raises(PermanentTargetError, match=match) as info:
            connector.observe(scope_of(PRIVILEGE))
        assert "MIIsecret" not in str(info.value)


def service_account_key(email: str) -> tuple[str, bytes]:
    """(a service account key JSON with a fresh RSA key, that key's public half as PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = private.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    key = json.dumps({"type": "service_account", "project_id": "orders-prod-4711", "private_key_id": "k1",
                      "private_key": pem, "client_email": email, "client_id": "1",
                      "token_uri": "https://oauth2.googleapis.com/token"})
    return key, public


SA = "jitpol@orders-prod-4711.iam.gserviceaccount.com"


@pytest.mark.parametrize("as_file", [False, True])
def test_credentials_env_service_account_key_is_used_end_to_end(
    fake_crm: FakeCrm, tmp_path: Path, as_file: bool
) -> None:
    key, public = service_account_key(SA)
    fake_crm.service_accounts[SA] = public
    value = key
    if as_file:
        (tmp_path / "key.json").write_text(key)
        value = str(tmp_path / "key.json")
    connector = GcpConnector(TARGET, {"api_endpoint": fake_crm.url, "credentials_env": "GCP_KEY"}, {"GCP_KEY": value})
    assert connector.apply(action("grant", until=in_hours(1))).changed
    connector.close()
    # every call carried a JWT signed with that key (the double verified it)
    assert fake_crm.authorizations and all(fake_crm.verify_jwt(a.removeprefix("Bearer "))
                                           for a in fake_crm.authorizations)


def test_a_key_google_does_not_accept_is_permanent_and_never_shown(fake_crm: FakeCrm) -> None:
    key, _ = service_account_key(SA)
    fake_crm.service_accounts[SA] = service_account_key(SA)[1]  # Google knows another key
    connector = GcpConnector(TARGET, {"api_endpoint": fake_crm.url, "credentials_env": "GCP_KEY"}, {"GCP_KEY": key})
    with pytest.raises(PermanentTargetError, match="401") as info:
        connector.observe(scope_of(PRIVILEGE))
    assert json.loads(key)["private_key"].splitlines()[1] not in str(info.value)
    sent = fake_crm.authorizations[-1].removeprefix("Bearer ")
    assert sent and sent not in str(info.value) and sent.split(".")[2][:20] not in str(info.value)
    connector.close()


def test_bad_settings_are_permanent() -> None:
    with pytest.raises(PermanentTargetError, match="api_endpoint"):
        GcpConnector(TARGET, {"api_endpoint": "ftp://x"}, {})
    with pytest.raises(PermanentTargetError, match="credentials_env"):
        GcpConnector(TARGET, {"credentials_env": "NOT A NAME"}, {})


def test_hostile_names_never_reach_google(fake_crm: FakeCrm, gcp_connect: GcpConnect) -> None:
    connector = gcp_connect()
    with pytest.raises(PermanentTargetError, match="principal"):
        connector.apply(action("grant", "allUsers", until=in_hours(1)))  # never handed out
    with pytest.raises(PermanentTargetError, match="privilege"):
        connector.apply(action("grant", privilege='{"resource":"projects/x/../y","role":"roles/viewer"}',
                               until=in_hours(1)))
    with pytest.raises(PermanentTargetError, match="needs an end"):
        connector.apply(action("grant"))
    with pytest.raises(PermanentTargetError, match="not supported"):
        connector.apply(action("rotate"))
    assert fake_crm.log == []
