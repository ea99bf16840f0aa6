"""AwsConnector against moto in server mode (through tests/aws_fixtures.py's shim): names and
principal forms, asynchronous assignment requests (polling, FAILED, still running), pagination,
drift, errors without secrets, the revoke-older-sessions policy, lazy import of boto3."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jitpol.connectors.aws import (
    NATIVE_EXPIRY,
    SESSION_POLICY_NAME,
    AwsConnector,
    check_name,
    parse_principal,
    principal_for,
    revoke_sessions_policy,
    wait_for_request,
)
from jitpol.errors import InvalidInput, PermanentTargetError, TargetUnavailable
from jitpol.model.assignment import Action, Assignment, Op, Scope
from jitpol.model.canonical import canonical_json
from tests.aws_fixtures import *  # noqa: F403 (the fixtures: moto_server, aws_shim, aws)
from tests.aws_fixtures import AWS_TARGET, AwsWorld
from tests.doubles.server import closed_port

MODEL = "idp-elevation"
REPO = Path(__file__).resolve().parents[2]
PS = "arn:aws:sso:::permissionSet/ssoins-1234567890abcdef/ps-1234567890abcdef"
USER_ID = "9067a1b2c3-0c5b7a8e-1111-2222-3333-444455556666"


def act(op: Op, principal: object, privilege: object) -> Action:
    p = principal if isinstance(principal, str) else canonical_json(principal)
    g = privilege if isinstance(privilege, str) else canonical_json(privilege)
    return Action(op=op, assignment=Assignment(AWS_TARGET, MODEL, p, g), resource="r", grants=("g",))


def ic(aws: AwsWorld, permission_set: str) -> str:
    return canonical_json({"account": aws.ACCOUNT, "permissionSet": permission_set})


def scope(*privileges: str) -> Scope:
    return Scope(target=AWS_TARGET, model=MODEL, privileges=frozenset(privileges))


# -- names, without boto3 ----------------------------------------------------------------------


def test_importing_the_module_does_not_import_boto3() -> None:
    code = (
        "import sys, jitpol.connectors.aws as m\n"
        "m.check_name({'iamGroup': 'admins'}, 'privilege')\n"
        "m.check_name('{\"userId\": \"0c5b7a8e-1111-2222-3333-444455556666\"}', 'principal')\n"
        "m.AwsConnector('t', {'region': 'eu-central-1'}, {})\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('boto3', 'botocore'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


@pytest.mark.parametrize(
    "value",
    [
        {"iamGroup": "prod-admins"},
        {"iamGroup": "a+b=c,d.e@f_g-h"},
        {"account": "123456789012", "permissionSet": PS},
        '{"account":"123456789012","permissionSet":"' + PS + '"}',
        {"account": "123456789012", "permissionSet": PS.replace("aws:", "aws-us-gov:", 1)},
    ],
)
def test_valid_privileges(value: object) -> None:
    check_name(value, "privilege")


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("prod-admins", "{iamGroup: NAME}"),  # a bare string: which kind?
        ({"iamGroup": "prod admins"}, "IAM group name"),
        ({"iamGroup": "x" * 129}, "IAM group name"),
        ({"iamGroup": "a/b"}, "IAM group name"),
        ({"iamGroup": ""}, "IAM group name"),
        ({"iamGroup": 7}, "must be a string"),
        ({"account": 123456789012, "permissionSet": PS}, "must be a string"),
        ({"account": "12345678901", "permissionSet": PS}, "12 digits"),
        ({"account": "123456789012", "permissionSet": "arn:aws:iam::aws:policy/AdministratorAccess"}, "ARN"),
        ({"account": "123456789012", "permissionSet": PS + "\n"}, "ARN"),
        ({"account": "123456789012"}, "permissionSet"),
        ({"iamGroup": "a", "account": "123456789012"}, "keys"),
        (["prod-admins"], "mapping"),
        ("{not json", "mapping"),
    ],
)
def test_invalid_privileges_say_what_is_allowed(value: object, says: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_name(value, "privilege")
    assert says in str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        {"userId": "0c5b7a8e-1111-2222-3333-444455556666"},
        {"userId": USER_ID},
        {"groupId": "0c5b7a8e-1111-2222-3333-444455556666"},
        {"iamUser": "alice"},
        {"iamUser": "alice", "userId": USER_ID},
    ],
)
def test_valid_principals(value: object) -> None:
    check_name(value, "principal")
    check_name(canonical_json(value), "principal")


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("alice", "userId"),  # the form a person file must use is named
        ({}, "keys"),
        ({"email": "alice@example.com"}, "keys"),
        ({"userId": "alice"}, "UUID"),
        ({"userId": "0c5b7a8e-1111-2222-3333-44445555666"}, "UUID"),
        ({"userId": USER_ID, "groupId": USER_ID}, "both"),
        ({"iamUser": "al ice"}, "IAM user name"),
        ({"iamUser": "x" * 65}, "IAM user name"),
    ],
)
def test_invalid_principals_say_what_is_allowed(value: object, says: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_name(value, "principal")
    assert says in str(info.value)


def test_principal_for_picks_the_key_the_privilege_needs() -> None:
    person = canonical_json({"iamUser": "alice", "userId": USER_ID})
    assert principal_for(person, canonical_json({"iamGroup": "admins"})) == '{"iamUser":"alice"}'
    assert principal_for(person, canonical_json({"account": "123456789012", "permissionSet": PS})) == (
        canonical_json({"userId": USER_ID})
    )
    with pytest.raises(InvalidInput, match="iamUser"):
        principal_for(canonical_json({"userId": USER_ID}), canonical_json({"iamGroup": "admins"}))
    with pytest.raises(InvalidInput, match="userId or groupId"):
        principal_for('{"iamUser":"alice"}', canonical_json({"account": "123456789012", "permissionSet": PS}))
    assert parse_principal({"groupId": USER_ID}).identity_center() == ("GROUP", USER_ID)


def test_no_native_expiry() -> None:
    assert NATIVE_EXPIRY is False
    assert AwsConnector.capabilities.native_expiry == frozenset()


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"region": ""},
        {"region": "eu-central-1", "wait_seconds": 0},
        {"region": "eu-central-1", "wait_seconds": "60"},
        {"region": "eu-central-1", "wait_seconds": True},
        {"region": "eu-central-1", "revoke_sessions": "yes"},
        {"region": "eu-central-1", "page_size": 101},
        {"region": "eu-central-1", "page_size": 0},
        {"region": "eu-central-1", "instance_arn": ""},
    ],
)
def test_bad_settings_are_refused_without_io(settings: dict[str, object]) -> None:
    with pytest.raises(PermanentTargetError):
        AwsConnector(AWS_TARGET, settings, {})


# -- the asynchronous request loop (a scripted status sequence and a fake clock) ---------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


def test_wait_for_request_polls_until_done_with_backoff() -> None:
    clock = FakeClock()
    answers = iter(["IN_PROGRESS", "IN_PROGRESS", "IN_PROGRESS", "SUCCEEDED"])
    asked: list[str] = []

    def describe(request_id: str) -> dict[str, str]:
        asked.append(request_id)
        return {"Status": next(answers), "RequestId": request_id}

    final = wait_for_request(
        {"Status": "IN_PROGRESS", "RequestId": "r1"},
        describe,
        wait_seconds=60,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )
    assert final["Status"] == "SUCCEEDED"
    assert asked == ["r1"] * 4
    assert clock.sleeps == [0.1, 0.2, 0.4, 0.8]


def test_wait_for_request_never_overruns_the_deadline() -> None:
    clock = FakeClock()
    final = wait_for_request(
        {"Status": "IN_PROGRESS", "RequestId": "r1"},
        lambda rid: {"Status": "IN_PROGRESS", "RequestId": rid},
        wait_seconds=12,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )
    assert final["Status"] == "IN_PROGRESS"
    assert clock.now == pytest.approx(12)
    assert max(clock.sleeps) <= 5.0


def test_wait_for_request_returns_a_finished_first_answer_without_waiting() -> None:
    clock = FakeClock()
    for status in ("SUCCEEDED", "FAILED"):
        first = {"Status": status, "RequestId": "r"}
        assert wait_for_request(first, lambda rid: {}, wait_seconds=1, sleep=clock.sleep) is first
    assert clock.sleeps == []


# -- IAM Identity Center account assignments ---------------------------------------------------


def test_grant_polls_the_creation_status_until_it_succeeds(aws: AwsWorld) -> None:
    permission_set, user = aws.permission_set(), aws.user()
    aws.shim.pending_polls = 2
    out = aws.connector().apply(act("grant", {"userId": user}, ic(aws, permission_set)))
    assert out.changed and out.after
    assert aws.shim.calls("CreateAccountAssignment") == 1
    assert aws.shim.calls("DescribeAccountAssignmentCreationStatus") == 3  # 2 x IN_PROGRESS, then SUCCEEDED
    assert ("USER", user) in aws.holders(permission_set)
    assert out.operations == (
        "sso-admin CreateAccountAssignment "
        + canonical_json({
            "InstanceArn": aws.instance_arn, "PermissionSetArn": permission_set, "PrincipalId": user,
            "PrincipalType": "USER", "TargetId": aws.ACCOUNT, "TargetType": "AWS_ACCOUNT",
        }),
    )


def test_revoke_polls_the_deletion_status_until_it_succeeds(aws: AwsWorld) -> None:
    permission_set, user = aws.permission_set(), aws.user()
    aws.assign(permission_set, "USER", user)
    aws.shim.pending_polls = 1
    out = aws.connector().apply(act("revoke", {"userId": user}, ic(aws, permission_set)))
    assert out.changed and out.after
    assert aws.shim.calls("DeleteAccountAssignment") == 1
    assert aws.shim.calls("DescribeAccountAssignmentDeletionStatus") == 2
    assert ("USER", user) not in aws.holders(permission_set)


def test_a_failed_request_is_a_permanent_error_with_aws_reason(aws: AwsWorld) -> None:
    permission_set, user = aws.permission_set(), aws.user()
    aws.shim.fail_reason = "Received a 404 status error: the account is not in this organization"
    with pytest.raises(PermanentTargetError, match="FAILED: Received a 404 status error: the account is not"):
        aws.connector().apply(act("grant", {"userId": user}, ic(aws, permission_set)))
    assert ("USER", user) not in aws.holders(permission_set)


def test_a_request_still_running_after_wait_seconds_is_temporary(aws: AwsWorld) -> None:
    permission_set, user = aws.permission_set(), aws.user()
    aws.shim.pending_polls = 10_000
    connector = aws.connector(wait_seconds=0.4)
    with pytest.raises(TargetUnavailable, match=r"still IN_PROGRESS after 0\.4 s .*next run"):
        connector.apply(act("grant", {"userId": user}, ic(aws, permission_set)))
    # it did finish at AWS (moto): the next run sees it and has nothing to do
    aws.shim.reset()
    again = connector.apply(act("grant", {"userId": user}, ic(aws, permission_set)))
    assert not again.changed and again.operations == ()


def test_group_principals_are_assigned_and_observed_as_group_id(aws: AwsWorld) -> None:
    permission_set, group = aws.permission_set(), aws.group()
    connector = aws.connector()
    privilege = ic(aws, permission_set)
    assert connector.apply(act("grant", {"groupId": group}, privilege)).changed
    assert ("GROUP", group) in aws.holders(permission_set)
    observed = connector.observe(scope(privilege))
    assert {a.principal for a in observed} == {canonical_json({"groupId": group})}
    assert connector.apply(act("revoke", {"groupId": group}, privilege)).changed
    assert connector.observe(scope(privilege)) == frozenset()


def test_a_person_with_several_keys_uses_the_one_each_privilege_needs(aws: AwsWorld) -> None:
    permission_set, user = aws.permission_set(), aws.user()
    group, iam_user = aws.iam_group(), aws.iam_user()
    person = {"iamUser": iam_user, "userId": user}
    connector = aws.connector()
    assert connector.apply(act("grant", person, ic(aws, permission_set))).changed
    assert connector.apply(act("grant", person, {"iamGroup": group})).changed
    observed = connector.observe(scope(ic(aws, permission_set), canonical_json({"iamGroup": group})))
    assert {(a.principal, a.privilege) for a in observed} == {
        (canonical_json({"userId": user}), ic(aws, permission_set)),
        (canonical_json({"iamUser": iam_user}), canonical_json({"iamGroup": group})),
    }
    assert all(a.expires is None for a in observed)
    assert not connector.apply(act("grant", person, ic(aws, permission_set))).changed


def test_drift_made_outside_jitpol_is_observed(aws: AwsWorld) -> None:
    permission_set = aws.permission_set()
    someone, team = aws.user("standing"), aws.group("standing")
    aws.assign(permission_set, "USER", someone)
    aws.assign(permission_set, "GROUP", team)
    aws.assign(permission_set, "USER", aws.user("other-account"), account="444455556666")
    observed = aws.connector().observe(scope(ic(aws, permission_set)))
    assert {a.principal for a in observed} == {canonical_json({"userId": someone}), canonical_json({"groupId": team})}


def test_observe_follows_pages_of_assignments(aws: AwsWorld) -> None:
    permission_set = aws.permission_set()
    users = {aws.user(f"u{i}") for i in range(5)}
    for user in users:
        aws.assign(permission_set, "USER", user)
    observed = aws.connector(page_size=2).observe(scope(ic(aws, permission_set)))
    assert {json.loads(a.principal)["userId"] for a in observed} == users
    assert aws.shim.calls("ListAccountAssignments") == 3  # 2 + 2 + 1


def test_grant_sees_an_existing_assignment_on_a_later_page(aws: AwsWorld) -> None:
    permission_set = aws.permission_set()
    users = [aws.user(f"u{i}") for i in range(4)]
    for user in users:
        aws.assign(permission_set, "USER", user)
    connector = aws.connector(page_size=1)
    for user in users:
        out = connector.apply(act("grant", {"userId": user}, ic(aws, permission_set)))
        assert not out.changed and out.operations == ()
    assert aws.shim.calls("CreateAccountAssignment") == 0


def test_grant_to_a_missing_permission_set_or_user_is_permanent_even_in_check_mode(aws: AwsWorld) -> None:
    connector = aws.connector()
    missing_ps = ic(aws, aws.missing_permission_set())
    for check in (True, False):
        with pytest.raises(PermanentTargetError, match=r"permission set .* does not exist"):
            connector.apply(act("grant", {"userId": aws.user()}, missing_ps), check=check)
        with pytest.raises(PermanentTargetError, match="has no user 0c5b7a8e-"):
            connector.apply(
                act("grant", {"userId": "0c5b7a8e-1111-2222-3333-444455556666"}, ic(aws, aws.permission_set())),
                check=check,
            )
        with pytest.raises(PermanentTargetError, match="has no group"):
            connector.apply(act("grant", {"groupId": USER_ID}, ic(aws, aws.permission_set())), check=check)
    assert aws.shim.calls("CreateAccountAssignment") == 0


def test_revoke_of_a_missing_permission_set_is_already_true(aws: AwsWorld) -> None:
    out = aws.connector().apply(act("revoke", {"userId": aws.user()}, ic(aws, aws.missing_permission_set())))
    assert not out.changed and out.operations == ()


def test_a_permission_set_of_another_instance_is_refused(aws: AwsWorld) -> None:
    with pytest.raises(PermanentTargetError, match="another Identity Center instance"):
        aws.connector().apply(act("grant", {"userId": aws.user()}, ic(aws, PS)))


def test_instance_discovery_and_configured_instance(aws: AwsWorld) -> None:
    permission_set, user = aws.permission_set(), aws.user()
    privilege = ic(aws, permission_set)
    configured = aws.connector(instance_arn=aws.instance_arn, identity_store_id=aws.store_id)
    assert configured.apply(act("grant", {"userId": user}, privilege)).changed
    assert aws.shim.calls("ListInstances") == 0  # both given: nothing to discover
    discovered = aws.connector()
    assert not discovered.apply(act("grant", {"userId": user}, privilege)).changed
    assert aws.shim.calls("ListInstances") == 1
    wrong = aws.connector(instance_arn="arn:aws:sso:::instance/ssoins-0000000000000000")
    with pytest.raises(PermanentTargetError, match="not among"):
        wrong.observe(scope(privilege))


def test_access_denied_is_permanent(aws: AwsWorld) -> None:
    permission_set, user = aws.permission_set(), aws.user()
    aws.shim.deny = {"CreateAccountAssignment", "AddUserToGroup"}
    connector = aws.connector()
    with pytest.raises(PermanentTargetError, match="AccessDeniedException"):
        connector.apply(act("grant", {"userId": user}, ic(aws, permission_set)))
    with pytest.raises(PermanentTargetError, match=r"AccessDenied: .*iam:AddUserToGroup"):
        connector.apply(act("grant", {"iamUser": aws.iam_user()}, {"iamGroup": aws.iam_group()}))


def test_a_principal_without_the_needed_key_is_permanent(aws: AwsWorld) -> None:
    connector = aws.connector()
    with pytest.raises(PermanentTargetError, match="userId or groupId"):
        connector.apply(act("grant", {"iamUser": "alice"}, ic(aws, aws.permission_set())))
    with pytest.raises(PermanentTargetError, match="iamUser"):
        connector.apply(act("grant", {"userId": USER_ID}, {"iamGroup": "admins"}))


@pytest.mark.parametrize(
    ("principal", "privilege"),
    [
        ('{"iamUser":"alice"}', '{"iamGroup":"../../admins"}'),
        ('{"iamUser":"alice\\nbob"}', '{"iamGroup":"admins"}'),
        ("alice", '{"iamGroup":"admins"}'),
        ('{"userId":"0c5b7a8e-1111-2222-3333-444455556666"}', '{"account":"1","permissionSet":"x"}'),
    ],
)
def test_hostile_names_are_refused_before_any_request(aws: AwsWorld, principal: str, privilege: str) -> None:
    with pytest.raises(PermanentTargetError):
        aws.connector().apply(act("grant", principal, privilege))
    assert aws.shim.log == []


def test_observe_skips_privileges_that_cannot_exist_on_aws(aws: AwsWorld) -> None:
    assert aws.connector().observe(scope("not-json", '{"iamGroup":"a b"}')) == frozenset()
    assert aws.shim.log == []


# -- IAM groups --------------------------------------------------------------------------------


def test_iam_group_members_are_observed_across_pages(aws: AwsWorld) -> None:
    group = aws.iam_group()
    users = {aws.iam_user(f"u{i}") for i in range(5)}
    for user in users:
        aws.iam.add_user_to_group(GroupName=group, UserName=user)
    observed = aws.connector(page_size=2).observe(scope(canonical_json({"iamGroup": group})))
    assert {json.loads(a.principal)["iamUser"] for a in observed} == users
    assert aws.shim.calls("GetGroup") == 3


def test_iam_grant_finds_membership_on_a_later_page_of_the_users_groups(aws: AwsWorld) -> None:
    user = aws.iam_user()
    groups = [aws.iam_group(f"g{i}") for i in range(3)]
    for group in groups:
        aws.iam.add_user_to_group(GroupName=group, UserName=user)
    connector = aws.connector(page_size=1)
    for group in groups:
        assert not connector.apply(act("grant", {"iamUser": user}, {"iamGroup": group})).changed
    assert aws.shim.calls("ListGroupsForUser") == 9  # three pages, three times
    assert aws.shim.calls("AddUserToGroup") == 0


def test_iam_missing_objects(aws: AwsWorld) -> None:
    connector = aws.connector()
    user, group = aws.iam_user(), aws.iam_group()
    with pytest.raises(PermanentTargetError, match=r"IAM group .* does not exist"):
        connector.apply(act("grant", {"iamUser": user}, {"iamGroup": aws.unique("nogroup")}), check=True)
    with pytest.raises(PermanentTargetError, match=r"IAM user .* does not exist"):
        connector.apply(act("grant", {"iamUser": aws.unique("nouser")}, {"iamGroup": group}))
    gone = connector.apply(act("revoke", {"iamUser": aws.unique("nouser")}, {"iamGroup": group}))
    assert not gone.changed and gone.operations == ()
    observed = connector.observe(scope(canonical_json({"iamGroup": aws.unique("nogroup")})))
    assert observed == frozenset()


@pytest.fixture
def member(aws: AwsWorld) -> tuple[str, str]:
    user, group = aws.iam_user(), aws.iam_group()
    aws.iam.add_user_to_group(GroupName=group, UserName=user)
    return user, group


def test_revoke_sessions_puts_the_deny_policy_before_removing(aws: AwsWorld, member: tuple[str, str]) -> None:
    user, group = member
    connector = aws.connector(revoke_sessions=True)
    action = act("revoke", {"iamUser": user}, {"iamGroup": group})

    preview = connector.apply(action, check=True)
    assert [op.split(" ")[1] for op in preview.operations] == ["PutUserPolicy", "RemoveUserFromGroup"]
    assert aws.iam.list_user_policies(UserName=user)["PolicyNames"] == []  # check mode wrote nothing

    before = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    out = connector.apply(action)
    assert out.changed and out.after
    assert aws.shim.log.index("iam PutUserPolicy") < aws.shim.log.index("iam RemoveUserFromGroup")
    assert user not in aws.iam_members(group)
    document: Any = aws.iam.get_user_policy(UserName=user, PolicyName=SESSION_POLICY_NAME)["PolicyDocument"]
    statement = (json.loads(document) if isinstance(document, str) else document)["Statement"][0]
    assert (statement["Effect"], statement["Action"], statement["Resource"]) == ("Deny", "*", "*")
    stamp = statement["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
    issued_before = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before <= issued_before <= datetime.now(UTC) + timedelta(seconds=5)
    assert f'"PolicyDocument":{json.dumps(revoke_sessions_policy(issued_before))}' in out.operations[0]

    again = connector.apply(action)
    assert not again.changed and again.operations == ()


def test_without_revoke_sessions_no_policy_is_put(aws: AwsWorld, member: tuple[str, str]) -> None:
    user, group = member
    out = aws.connector().apply(act("revoke", {"iamUser": user}, {"iamGroup": group}))
    assert [op.split(" ")[1] for op in out.operations] == ["RemoveUserFromGroup"]
    assert aws.iam.list_user_policies(UserName=user)["PolicyNames"] == []


def test_revoke_sessions_policy_text() -> None:
    policy = json.loads(revoke_sessions_policy(datetime(1998, 11, 30, 12, 0, 5, 900, tzinfo=UTC)))
    assert policy["Statement"][0]["Condition"] == {"DateLessThan": {"aws:TokenIssueTime": "1998-11-30T12:00:05Z"}}


# -- reaching AWS ------------------------------------------------------------------------------


@pytest.fixture
def no_ambient_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """The standard chain finds nothing: no variables, no files, no instance metadata."""
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield


def test_unreachable_endpoint_is_temporary_and_keeps_secrets(aws: AwsWorld) -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"
    env = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": secret}
    connector = aws.connector(env=env, endpoint_url=f"http://127.0.0.1:{closed_port()}")
    for call in (
        lambda: connector.observe(scope(canonical_json({"iamGroup": "admins"}))),
        lambda: connector.apply(act("grant", {"iamUser": "alice"}, {"iamGroup": "admins"})),
        lambda: connector.apply(act("revoke", {"userId": USER_ID}, {"account": "123456789012", "permissionSet": PS})),
    ):
        with pytest.raises(TargetUnavailable, match="cannot reach AWS") as info:
            call()
        assert secret not in str(info.value)


def test_no_credentials_is_permanent(aws: AwsWorld, no_ambient_aws: None) -> None:
    connector = aws.connector(env={})
    with pytest.raises(PermanentTargetError, match="no AWS credentials found"):
        connector.observe(scope(canonical_json({"iamGroup": "admins"})))


def test_the_standard_chain_is_used_when_env_names_no_keys(
    aws: AwsWorld, no_ambient_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-the-environment")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    group = aws.iam_group()
    assert aws.connector(env={}).observe(scope(canonical_json({"iamGroup": group}))) == frozenset()


def test_close_is_safe_twice(aws: AwsWorld) -> None:
    connector = aws.connector()
    connector.observe(scope(canonical_json({"iamGroup": aws.iam_group()})))
    connector.close()
    connector.close()
    assert connector.observe(scope(canonical_json({"iamGroup": aws.iam_group()}))) == frozenset()
