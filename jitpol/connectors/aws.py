"""AWS connector: the `idp-elevation` model in two forms.

Privileges (one entry of a resource role's `grants`, passed as canonical JSON):

    {"account": "123456789012", "permissionSet": "arn:aws:sso:::permissionSet/ssoins-…/ps-…"}
        an IAM Identity Center account assignment (sso-admin)
    {"iamGroup": "prod-admins"}
        membership of an IAM group

Principals (the person's `accounts.aws`, passed as canonical JSON):

    {"userId": "<identity store user id>"}    Identity Center user   (PrincipalType USER)
    {"groupId": "<identity store group id>"}  Identity Center group  (PrincipalType GROUP)
    {"iamUser": "alice"}                      IAM user

A person may carry several keys, e.g. {"iamUser": "alice", "userId": "9067…"}: each privilege
uses the key its kind needs (principal_for), and observe reports exactly that reduced form —
`{"userId": X}` / `{"groupId": X}` for account assignments, `{"iamUser": X}` for IAM groups.

Settings (the target's entry in jitpol.yaml):
    region             required; where the API calls go (Identity Center's home region)
    endpoint_url       optional; one endpoint for every AWS service used (local test servers)
    identity_store_id  optional; discovered with sso-admin ListInstances when absent
    instance_arn       optional; discovered with ListInstances when absent (exactly one instance)
    wait_seconds       optional number > 0, default 60: how long to wait for an asynchronous
                       account assignment request to finish before reporting TargetUnavailable
    revoke_sessions    optional bool, default false: on an IAM group revocation also put the
                       inline "revoke older sessions" deny policy (SESSION_POLICY_NAME) on the user
    page_size          optional int 1..100, default 100: page size for the list calls

Credentials come from boto3's standard chain (environment, shared profile, web identity / OIDC
in CI, container or instance role). If the `env` mapping given to the connector holds
AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and maybe AWS_SESSION_TOKEN), or AWS_PROFILE, those
are used; no secret is ever part of the settings. boto3 is imported lazily: check_name and the
parsing functions work without it.

Neither form has an end AWS enforces by itself (NATIVE_EXPIRY is False): the reconciler removes
the assignment when the window ends. Sessions already minted inside the window can outlive it
(see docs/targets/aws.md).
"""

from __future__ import annotations

import email.utils
import functools
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from jitpol.connectors.kit import NameCheck, check_apply, check_model, name_check, shown, temporary_status
from jitpol.errors import InvalidInput, PermanentTargetError, TargetUnavailable
from jitpol.model.assignment import Action, Assignment, Capabilities, Outcome, Scope
from jitpol.model.canonical import canonical_json

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config
    from mypy_boto3_iam.client import IAMClient
    from mypy_boto3_identitystore.client import IdentityStoreClient
    from mypy_boto3_sso_admin.client import SSOAdminClient

_SECRET_ID = re.compile(r"[A-Za-z0-9/_+=.@-]{1,512}")
MODEL = "idp-elevation"
NATIVE_EXPIRY = False  # AWS enforces no end for either form: the reconciler must run
SESSION_POLICY_NAME = "jitpol-revoke-older-sessions"
DEFAULT_WAIT_SECONDS = 60.0
DEFAULT_PAGE_SIZE = 100  # ListAccountAssignments allows at most 100 per page

_ACCOUNT = re.compile(r"[0-9]{12}")
# AWS documents `permissionSet/`; moto (the test server) writes `instance/` in the same place
_PERMISSION_SET = re.compile(
    r"arn:aws(-cn|-us-gov|-iso|-iso-[a-z])?:sso:::(permissionSet|instance)/"
    r"(sso)?ins-[A-Za-z0-9.-]{16}/ps-[A-Za-z0-9.-]{16}"
)
_INSTANCE_ID = re.compile(r"/((?:sso)?ins-[A-Za-z0-9.-]+)")
# identity store ids: a UUID, optionally prefixed by 10 hex digits and "-" (AWS API pattern)
_STORE_PRINCIPAL = re.compile(
    r"([0-9a-f]{10}-)?[A-Fa-f0-9]{8}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{12}"
)
_IAM_USER = re.compile(r"[A-Za-z0-9_+=,.@-]{1,64}")
_IAM_GROUP = re.compile(r"[A-Za-z0-9_+=,.@-]{1,128}")
_PRINCIPAL_KEYS = frozenset({"userId", "groupId", "iamUser"})

_PRIVILEGE_FORMS = (
    'an AWS grant is a mapping: {account: "123456789012", permissionSet: '
    '"arn:aws:sso:::permissionSet/ssoins-<16>/ps-<16>"} (IAM Identity Center) or {iamGroup: NAME} (IAM)'
)
_PRINCIPAL_FORMS = (
    'an AWS account is a mapping with one or more of userId: "<identity store user id>", '
    'groupId: "<identity store group id>" (not both), iamUser: NAME; observed principals are '
    '{"userId": …} or {"groupId": …} for Identity Center grants and {"iamUser": …} for IAM groups'
)
# temporary errors by code: throttling, AWS-side failures, a concurrent change to the same object
_OPS = {MODEL: ("grant", "revoke")}
_TRANSIENT_CODES = frozenset({
    "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException",
    "InternalFailure", "InternalServerException", "InternalServerError", "ServiceFailure",
    "ServiceUnavailable", "ServiceUnavailableException", "ConflictException",
})
_NOT_FOUND_CODES = frozenset({"NoSuchEntity", "ResourceNotFoundException"})


# -- values -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountAssignmentPrivilege:
    """An IAM Identity Center permission set in one AWS account."""

    account: str
    permission_set: str


@dataclass(frozen=True, slots=True)
class IamGroupPrivilege:
    """Membership of one IAM group."""

    group: str


Privilege = AccountAssignmentPrivilege | IamGroupPrivilege


@dataclass(frozen=True, slots=True)
class AwsPrincipal:
    """A person's AWS identities; at least one is set, never both user_id and group_id."""

    user_id: str | None = None
    group_id: str | None = None
    iam_user: str | None = None

    def identity_center(self) -> tuple[Literal["USER", "GROUP"], str]:
        """(PrincipalType, PrincipalId) for an account assignment; InvalidInput without one."""
        if self.user_id is not None:
            return "USER", self.user_id
        if self.group_id is not None:
            return "GROUP", self.group_id
        raise InvalidInput("principal has no userId or groupId, which an IAM Identity Center grant needs")

    def iam(self) -> str:
        """The IAM user name; InvalidInput without one."""
        if self.iam_user is None:
            raise InvalidInput("principal has no iamUser, which an IAM group grant needs")
        return self.iam_user


# -- parsing and name checks (no boto3 needed) -------------------------------------------------


def _mapping(value: object, what: str, forms: str) -> dict[str, object]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidInput(f"{what} {shown(value)} is not valid: {forms}") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} {shown(value)} is not valid: {forms}")
    for key, item in value.items():
        if not isinstance(item, str):
            raise InvalidInput(f"{what}: {key} must be a string, not {type(item).__name__}")
    return value


def parse_privilege(value: object) -> Privilege:
    """The privilege in `value` (a mapping, or its JSON text). Raises InvalidInput naming the
    allowed forms."""
    data = _mapping(value, "privilege", _PRIVILEGE_FORMS)
    keys = set(data)
    if keys == {"iamGroup"}:
        group = str(data["iamGroup"])
        if not _IAM_GROUP.fullmatch(group):
            raise InvalidInput(
                f"iamGroup {shown(group)} is not an IAM group name (1-128 of letters, digits and _+=,.@-)"
            )
        return IamGroupPrivilege(group)
    if keys == {"account", "permissionSet"}:
        account, permission_set = str(data["account"]), str(data["permissionSet"])
        if not _ACCOUNT.fullmatch(account):
            raise InvalidInput(f"account {shown(account)} is not an AWS account id (12 digits, quoted)")
        if not _PERMISSION_SET.fullmatch(permission_set):
            raise InvalidInput(
                f"permissionSet {shown(permission_set)} is not a permission set ARN "
                "(arn:aws:sso:::permissionSet/ssoins-<16>/ps-<16>)"
            )
        return AccountAssignmentPrivilege(account, permission_set)
    raise InvalidInput(f"privilege with keys {sorted(keys)} is not valid: {_PRIVILEGE_FORMS}")


def parse_principal(value: object) -> AwsPrincipal:
    """The principal in `value` (a mapping, or its JSON text). Raises InvalidInput naming the
    allowed forms."""
    data = _mapping(value, "principal", _PRINCIPAL_FORMS)
    keys = set(data)
    if not keys or not keys <= _PRINCIPAL_KEYS:
        raise InvalidInput(f"principal with keys {sorted(keys)} is not valid: {_PRINCIPAL_FORMS}")
    if {"userId", "groupId"} <= keys:
        raise InvalidInput("principal has both userId and groupId; an account is one identity store user")
    for key in ("userId", "groupId"):
        if key in data and not _STORE_PRINCIPAL.fullmatch(str(data[key])):
            raise InvalidInput(f"{key} {shown(data[key])} is not an identity store id (a UUID)")
    if "iamUser" in data and not _IAM_USER.fullmatch(str(data["iamUser"])):
        raise InvalidInput(
            f"iamUser {shown(data['iamUser'])} is not an IAM user name (1-64 of letters, digits and _+=,.@-)"
        )
    return AwsPrincipal(
        user_id=_opt(data, "userId"), group_id=_opt(data, "groupId"), iam_user=_opt(data, "iamUser")
    )


def _opt(data: Mapping[str, object], key: str) -> str | None:
    item = data.get(key)
    return None if item is None else str(item)


# the policy loader's hook (the registry record's name_check): a person's `accounts.aws`, or a
# grants entry; a mapping or its JSON text; InvalidInput names the allowed forms
check_name: NameCheck = name_check(parse_principal, parse_privilege)


def principal_for(principal: str, privilege: str) -> str:
    """The principal text observe() reports for `privilege`: canonical JSON of the single key that
    kind of privilege uses ({"userId"} or {"groupId"} for an account assignment, {"iamUser"} for
    an IAM group), taken from a person's possibly larger mapping. Raises InvalidInput."""
    p, who = parse_privilege(privilege), parse_principal(principal)
    if isinstance(p, IamGroupPrivilege):
        return canonical_json({"iamUser": who.iam()})
    kind, ident = who.identity_center()
    return canonical_json({"userId" if kind == "USER" else "groupId": ident})


def revoke_sessions_policy(issued_before: datetime) -> str:
    """The inline policy denying everything to temporary credentials issued before
    `issued_before` (an aware datetime): AWS's "revoke older sessions" pattern. Canonical JSON."""
    stamp = issued_before.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return canonical_json({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "JitpolRevokeOlderSessions",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"DateLessThan": {"aws:TokenIssueTime": stamp}},
        }],
    })


def wait_for_request(
    status: Mapping[str, Any],
    describe: Callable[[str], Mapping[str, Any]],
    *,
    wait_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> Mapping[str, Any]:
    """Poll an asynchronous sso-admin request until its Status leaves IN_PROGRESS or
    `wait_seconds` pass; return the last status seen (still IN_PROGRESS on timeout).

    `status` is the first answer (from Create/DeleteAccountAssignment), `describe(request_id)`
    the Describe…Status call. Waits back off from 0.1 s to 5 s and never overrun the deadline.
    """
    deadline = monotonic() + wait_seconds
    delay = 0.1
    while status.get("Status") == "IN_PROGRESS":
        remaining = deadline - monotonic()
        if remaining <= 0:
            break
        sleep(min(delay, remaining))
        delay = min(delay * 2, 5.0)
        status = describe(str(status["RequestId"]))
    return status


# -- the connector ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Instance:
    arn: str
    identity_store_id: str


class AwsConnector:
    """Connector for one AWS organisation's identity layer (see the module docstring).

    observe() lists account assignments (sso-admin ListAccountAssignments) and IAM group members
    (iam GetGroup), paginated; apply() creates or deletes one assignment (waiting for the
    asynchronous request) or adds/removes one group member. Errors: TargetUnavailable when AWS
    cannot be reached, throttles, fails on its side or a request is still running after
    wait_seconds; PermanentTargetError for everything else (access denied, missing objects,
    a FAILED request with AWS's FailureReason).
    """

    type: ClassVar[str] = "aws"
    capabilities: ClassVar[Capabilities] = Capabilities(
        models=frozenset({MODEL}), native_expiry=frozenset(), ends_sessions=False
    )

    def __init__(self, name: str, settings: Mapping[str, Any], env: Mapping[str, str]) -> None:
        self.name = name
        region = settings.get("region")
        if not isinstance(region, str) or not region:
            raise PermanentTargetError(f"target {name}: setting region (e.g. eu-central-1) is required")
        self._region = region
        self._endpoint_url = self._optional_str(settings, "endpoint_url")
        self._instance_arn = self._optional_str(settings, "instance_arn")
        self._identity_store_id = self._optional_str(settings, "identity_store_id")
        wait = settings.get("wait_seconds", DEFAULT_WAIT_SECONDS)
        if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 < wait <= 3600:
            raise PermanentTargetError(f"target {name}: setting wait_seconds must be a number of seconds (0, 3600]")
        self._wait_seconds = float(wait)
        revoke_sessions = settings.get("revoke_sessions", False)
        if not isinstance(revoke_sessions, bool):
            raise PermanentTargetError(f"target {name}: setting revoke_sessions must be true or false")
        self._revoke_sessions = revoke_sessions
        page_size = settings.get("page_size", DEFAULT_PAGE_SIZE)
        if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= 100:
            raise PermanentTargetError(f"target {name}: setting page_size must be an integer from 1 to 100")
        self._page_size = page_size
        # only the standard chain's own variable names, read when the first client is made
        self._credentials = {
            key: env[key]
            for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")
            if env.get(key)
        }
        self._clients: dict[str, Any] = {}  # service name -> boto3 client, made on first use
        self._instance: _Instance | None = None

    def _optional_str(self, settings: Mapping[str, Any], key: str) -> str | None:
        value = settings.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise PermanentTargetError(f"target {self.name}: setting {key} must be a non-empty string")
        return value

    # -- Connector protocol -----------------------------------------------------------------

    def observe(self, scope: Scope) -> frozenset[Assignment]:
        """Every holder of each privilege in scope.privileges: principals of the account
        assignment (USER as {"userId"}, GROUP as {"groupId"}) or members of the IAM group (as
        {"iamUser"}). A privilege that does not exist — or cannot, being no valid AWS grant —
        has no holders. expires is always None. Read-only."""
        check_model(self.name, scope.model, _OPS)
        found: set[Assignment] = set()
        for text in sorted(scope.privileges):
            try:
                privilege = parse_privilege(text)
            except InvalidInput:
                continue  # validate rejects such grants; nothing on AWS can hold one
            if isinstance(privilege, IamGroupPrivilege):
                members = self._iam_group_members(privilege.group) or set()
                principals = {canonical_json({"iamUser": user}) for user in members}
            else:
                holders = self._assignment_holders(privilege) or set()
                principals = {
                    canonical_json({"userId" if kind == "USER" else "groupId": ident}) for kind, ident in holders
                }
            found.update(Assignment(self.name, scope.model, p, text) for p in principals)
        return frozenset(found)

    def apply(self, action: Action, *, check: bool = False) -> Outcome:
        """Grant or revoke one assignment or group membership; idempotent. check=True only
        reads, and lists the requests it would send (service, operation, exact parameters)."""
        a = action.assignment
        check_apply(self.name, a.model, action.op, _OPS)
        try:
            privilege = parse_privilege(a.privilege)
            principal = parse_principal(a.principal)
            if isinstance(privilege, IamGroupPrivilege):
                user = principal.iam()
            else:
                kind, ident = principal.identity_center()
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {self.name}: {exc}") from None
        if isinstance(privilege, IamGroupPrivilege):
            return self._apply_iam(action.op == "grant", privilege.group, user, check)
        return self._apply_assignment(action.op == "grant", privilege, kind, ident, check)

    def escrow(self, secret_id: str, value: str, description: str = "") -> str:
        """Store `value` as the current version of Secrets Manager secret `secret_id`, creating
        the secret if needed, so operators can reach a shared account's live secret in an
        emergency. Rotation is done here, not by a rotation Lambda: the new version is written
        as AWSPENDING, then promoted to AWSCURRENT (the old one becomes AWSPREVIOUS). Returns
        the new version id. The value never appears in messages."""
        if not _SECRET_ID.fullmatch(secret_id):
            raise PermanentTargetError(f"target {self.name}: {secret_id!r} is not a Secrets Manager secret name")
        client = self._clients.get("secretsmanager")
        if client is None:
            with self._setup_errors():
                client = self._clients["secretsmanager"] = self._session().client(
                    "secretsmanager", endpoint_url=self._endpoint_url, config=self._config())
        token = str(uuid.uuid4())
        try:
            with self._aws_errors("DescribeSecret"):
                described = client.describe_secret(SecretId=secret_id)
        except _NotFound:
            with self._aws_errors("CreateSecret"):
                created = client.create_secret(Name=secret_id, SecretString=value, ClientRequestToken=token,
                                               Description=description or "escrowed by jitpol")
            return str(created["VersionId"])
        current = next((v for v, stages in (described.get("VersionIdsToStages") or {}).items()
                        if "AWSCURRENT" in stages), None)
        with self._aws_errors("PutSecretValue"):
            client.put_secret_value(SecretId=secret_id, ClientRequestToken=token, SecretString=value,
                                    VersionStages=["AWSPENDING"])
        with self._aws_errors("UpdateSecretVersionStage"):
            client.update_secret_version_stage(
                SecretId=secret_id, VersionStage="AWSCURRENT", MoveToVersionId=token,
                **({"RemoveFromVersionId": current} if current else {}))
            # finish like a rotation function's finishSecret step: the new version is no longer pending
            client.update_secret_version_stage(SecretId=secret_id, VersionStage="AWSPENDING",
                                               RemoveFromVersionId=token)
        return token

    def close(self) -> None:
        """Drop the clients (boto3 pools connections per client). Safe to call twice."""
        clients, self._clients = self._clients, {}
        for client in clients.values():
            client.close()

    # -- IAM Identity Center account assignments ---------------------------------------------

    def _apply_assignment(
        self, grant: bool, p: AccountAssignmentPrivilege, kind: Literal["USER", "GROUP"], ident: str, check: bool
    ) -> Outcome:
        instance = self._discover_instance()
        own = _INSTANCE_ID.search(instance.arn)
        theirs = _INSTANCE_ID.search(p.permission_set)
        if own and theirs and own.group(1) != theirs.group(1):
            raise PermanentTargetError(
                f"target {self.name}: permission set {p.permission_set} belongs to another Identity Center "
                f"instance than {instance.arn}"
            )
        holders = self._assignment_holders(p, instance) or set()
        if ((kind, ident) in holders) == grant:
            return Outcome(changed=False, before=True, after=True)
        params = {
            "InstanceArn": instance.arn,
            "TargetId": p.account,
            "TargetType": "AWS_ACCOUNT",
            "PermissionSetArn": p.permission_set,
            "PrincipalType": kind,
            "PrincipalId": ident,
        }
        operation = "CreateAccountAssignment" if grant else "DeleteAccountAssignment"
        text = f"sso-admin {operation} {canonical_json(params)}"
        if grant:
            self._require_assignment_parts(instance, p, kind, ident)
        if check:
            return Outcome(changed=True, before=False, after=False, operations=(text,))
        sso = self._sso()
        first: Mapping[str, Any]
        with self._aws_errors(operation):
            if grant:
                first = sso.create_account_assignment(
                    InstanceArn=instance.arn, TargetId=p.account, TargetType="AWS_ACCOUNT",
                    PermissionSetArn=p.permission_set, PrincipalType=kind, PrincipalId=ident,
                )["AccountAssignmentCreationStatus"]
            else:
                first = sso.delete_account_assignment(
                    InstanceArn=instance.arn, TargetId=p.account, TargetType="AWS_ACCOUNT",
                    PermissionSetArn=p.permission_set, PrincipalType=kind, PrincipalId=ident,
                )["AccountAssignmentDeletionStatus"]
        final = wait_for_request(
            first,
            lambda request_id: self._describe_request(grant, instance.arn, request_id),
            wait_seconds=self._wait_seconds,
        )
        state = final.get("Status")
        if state == "FAILED":
            reason = final.get("FailureReason") or "no reason given"
            raise PermanentTargetError(f"target {self.name}: AWS {operation} FAILED: {reason}")
        if state != "SUCCEEDED":
            raise TargetUnavailable(
                f"target {self.name}: AWS {operation} still {state} after {self._wait_seconds:g} s "
                f"(request {final.get('RequestId')}); the next run checks again"
            )
        return Outcome(changed=True, before=False, after=True, operations=(text,))

    def _describe_request(self, grant: bool, instance_arn: str, request_id: str) -> Mapping[str, Any]:
        sso = self._sso()
        if grant:
            with self._aws_errors("DescribeAccountAssignmentCreationStatus"):
                return sso.describe_account_assignment_creation_status(
                    InstanceArn=instance_arn, AccountAssignmentCreationRequestId=request_id
                )["AccountAssignmentCreationStatus"]
        with self._aws_errors("DescribeAccountAssignmentDeletionStatus"):
            return sso.describe_account_assignment_deletion_status(
                InstanceArn=instance_arn, AccountAssignmentDeletionRequestId=request_id
            )["AccountAssignmentDeletionStatus"]

    def _assignment_holders(
        self, p: AccountAssignmentPrivilege, instance: _Instance | None = None
    ) -> set[tuple[str, str]] | None:
        """{(PrincipalType, PrincipalId)} of the assignment; None if the permission set is
        unknown to AWS."""
        instance = instance or self._discover_instance()
        paginator = self._sso().get_paginator("list_account_assignments")
        holders: set[tuple[str, str]] = set()
        try:
            with self._aws_errors("ListAccountAssignments"):
                pages = paginator.paginate(
                    InstanceArn=instance.arn,
                    AccountId=p.account,
                    PermissionSetArn=p.permission_set,
                    PaginationConfig={"PageSize": self._page_size},
                )
                for page in pages:
                    for item in page.get("AccountAssignments", []):
                        kind, ident = item.get("PrincipalType"), item.get("PrincipalId")
                        if kind in ("USER", "GROUP") and ident:
                            holders.add((kind, ident))
        except _NotFound:
            return None
        return holders

    def _require_assignment_parts(
        self, instance: _Instance, p: AccountAssignmentPrivilege, kind: str, ident: str
    ) -> None:
        """PermanentTargetError unless the permission set and the principal exist. AWS would
        accept the request and only fail it later, asynchronously."""
        try:
            with self._aws_errors("DescribePermissionSet"):
                self._sso().describe_permission_set(InstanceArn=instance.arn, PermissionSetArn=p.permission_set)
        except _NotFound:
            raise PermanentTargetError(
                f"target {self.name}: permission set {p.permission_set} does not exist in {instance.arn}"
            ) from None
        store = self._identitystore()
        what = "user" if kind == "USER" else "group"
        try:
            with self._aws_errors(f"Describe{what.title()}"):
                if kind == "USER":
                    store.describe_user(IdentityStoreId=instance.identity_store_id, UserId=ident)
                else:
                    store.describe_group(IdentityStoreId=instance.identity_store_id, GroupId=ident)
        except _NotFound:
            raise PermanentTargetError(
                f"target {self.name}: identity store {instance.identity_store_id} has no {what} {ident}"
            ) from None

    def _discover_instance(self) -> _Instance:
        if self._instance is not None:
            return self._instance
        if self._instance_arn and self._identity_store_id:
            self._instance = _Instance(self._instance_arn, self._identity_store_id)
            return self._instance
        instances: list[_Instance] = []
        with self._aws_errors("ListInstances"):
            for page in self._sso().get_paginator("list_instances").paginate():
                for item in page.get("Instances", []):
                    if item.get("InstanceArn") and item.get("IdentityStoreId"):
                        instances.append(_Instance(item["InstanceArn"], item["IdentityStoreId"]))
        if self._instance_arn:
            matching = [i for i in instances if i.arn == self._instance_arn]
            if not matching:
                raise PermanentTargetError(
                    f"target {self.name}: instance_arn {self._instance_arn} is not among this account's "
                    "IAM Identity Center instances"
                )
            chosen = matching[0]
        elif len(instances) == 1:
            chosen = instances[0]
        else:
            raise PermanentTargetError(
                f"target {self.name}: found {len(instances)} IAM Identity Center instances in {self._region}; "
                "set instance_arn (and identity_store_id)"
            )
        self._instance = _Instance(chosen.arn, self._identity_store_id or chosen.identity_store_id)
        return self._instance

    # -- IAM groups --------------------------------------------------------------------------

    def _apply_iam(self, grant: bool, group: str, user: str, check: bool) -> Outcome:
        groups, server_time = self._iam_groups_of(user)
        if groups is None:
            if not grant:  # no such user: it holds nothing
                return Outcome(changed=False, before=True, after=True)
            raise PermanentTargetError(f"target {self.name}: IAM user {user} does not exist")
        if (group in groups) == grant:
            return Outcome(changed=False, before=True, after=True)
        if grant and self._iam_group_members(group, probe=True) is None:
            raise PermanentTargetError(f"target {self.name}: IAM group {group} does not exist")
        membership = {"GroupName": group, "UserName": user}
        policy: str | None = None
        operations: list[str] = []
        if not grant and self._revoke_sessions:
            if server_time is None:  # every AWS answer carries a Date header; a proxy removed it?
                raise PermanentTargetError(
                    f"target {self.name}: AWS sent no Date header, so the session deny policy cannot be "
                    f"dated; {user} was not removed from {group}"
                )
            # Put first, dated by AWS's own clock just before the removal: if the run dies in
            # between, the user is still a member and the next run does both again.
            policy = revoke_sessions_policy(server_time)
            put = {"UserName": user, "PolicyName": SESSION_POLICY_NAME, "PolicyDocument": policy}
            operations.append(f"iam PutUserPolicy {canonical_json(put)}")
        change = "AddUserToGroup" if grant else "RemoveUserFromGroup"
        operations.append(f"iam {change} {canonical_json(membership)}")
        if not check:
            iam = self._iam()
            if policy is not None:
                with self._aws_errors("PutUserPolicy"):
                    iam.put_user_policy(UserName=user, PolicyName=SESSION_POLICY_NAME, PolicyDocument=policy)
            with self._aws_errors(change):
                if grant:
                    iam.add_user_to_group(GroupName=group, UserName=user)
                else:
                    iam.remove_user_from_group(GroupName=group, UserName=user)
        return Outcome(changed=True, before=False, after=not check, operations=tuple(operations))

    def _iam_groups_of(self, user: str) -> tuple[set[str] | None, datetime | None]:
        """(names of the user's groups, or None if there is no such user; AWS's time of the
        first answer, from its Date header)."""
        groups: set[str] = set()
        server_time: datetime | None = None
        try:
            with self._aws_errors("ListGroupsForUser"):
                pages = self._iam().get_paginator("list_groups_for_user").paginate(
                    UserName=user, PaginationConfig={"PageSize": self._page_size}
                )
                for page in pages:
                    if server_time is None:
                        server_time = _response_time(page)
                    groups.update(g["GroupName"] for g in page.get("Groups", []))
        except _NotFound:
            return None, server_time
        return groups, server_time

    def _iam_group_members(self, group: str, *, probe: bool = False) -> set[str] | None:
        """User names in the group; None if there is no such group. probe=True reads one page."""
        members: set[str] = set()
        try:
            with self._aws_errors("GetGroup"):
                pages = self._iam().get_paginator("get_group").paginate(
                    GroupName=group,
                    PaginationConfig={"PageSize": self._page_size, **({"MaxItems": 1} if probe else {})},
                )
                for page in pages:
                    members.update(u["UserName"] for u in page.get("Users", []))
        except _NotFound:
            return None
        return members

    # -- clients and errors ------------------------------------------------------------------

    def _sso(self) -> SSOAdminClient:
        client = self._clients.get("sso-admin")
        if client is None:
            with self._setup_errors():
                client = self._clients["sso-admin"] = self._session().client(
                    "sso-admin", endpoint_url=self._endpoint_url, config=self._config()
                )
        return client

    def _iam(self) -> IAMClient:
        client = self._clients.get("iam")
        if client is None:
            with self._setup_errors():
                client = self._clients["iam"] = self._session().client(
                    "iam", endpoint_url=self._endpoint_url, config=self._config()
                )
        return client

    def _identitystore(self) -> IdentityStoreClient:
        client = self._clients.get("identitystore")
        if client is None:
            with self._setup_errors():
                client = self._clients["identitystore"] = self._session().client(
                    "identitystore", endpoint_url=self._endpoint_url, config=self._config()
                )
        return client

    def _session(self) -> boto3.session.Session:
        import boto3
        import botocore.session

        core = botocore.session.get_session()
        core.register_component("data_loader", _shared_loader())
        creds = self._credentials
        if creds.get("AWS_ACCESS_KEY_ID") and creds.get("AWS_SECRET_ACCESS_KEY"):
            return boto3.session.Session(
                aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
                aws_session_token=creds.get("AWS_SESSION_TOKEN"),
                region_name=self._region,
                botocore_session=core,
            )
        # the standard chain: environment, shared profile, web identity (OIDC), container/instance role
        return boto3.session.Session(
            profile_name=creds.get("AWS_PROFILE"), region_name=self._region, botocore_session=core
        )

    @staticmethod
    def _config() -> Config:
        from botocore.config import Config

        # standard mode retries throttling, 5xx and connection errors with backoff (3 attempts)
        return Config(
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=10,
            read_timeout=30,
            user_agent_extra="jitpol",
        )

    @contextmanager
    def _setup_errors(self) -> Iterator[None]:
        from botocore import exceptions as bex

        try:
            yield
        except bex.ProfileNotFound as exc:
            raise PermanentTargetError(f"target {self.name}: AWS profile not found: {exc}") from None
        except bex.BotoCoreError as exc:  # bad endpoint_url, unknown region and the like
            raise PermanentTargetError(f"target {self.name}: cannot set up the AWS client: {exc}") from None

    @contextmanager
    def _aws_errors(self, operation: str) -> Iterator[None]:
        """Translate botocore's exceptions: unreachable/timeouts/throttling/AWS-side failures ->
        TargetUnavailable, a missing object -> _NotFound (for the caller to decide), anything
        else -> PermanentTargetError. Credentials never appear in botocore's messages."""
        from botocore import exceptions as bex

        try:
            yield
        except (bex.ConnectionError, bex.HTTPClientError) as exc:
            raise TargetUnavailable(f"target {self.name}: AWS {operation}: cannot reach AWS: {exc}") from None
        except bex.NoCredentialsError:
            raise PermanentTargetError(
                f"target {self.name}: no AWS credentials found (environment, profile, web identity/OIDC, "
                "instance or container role)"
            ) from None
        except bex.ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "")) or "Unknown"
            message = str(error.get("Message", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code in _NOT_FOUND_CODES:
                raise _NotFound(message) from None
            if code in _TRANSIENT_CODES or temporary_status(status):
                raise TargetUnavailable(f"target {self.name}: AWS {operation}: {code}: {message}") from None
            raise PermanentTargetError(f"target {self.name}: AWS {operation} refused: {code}: {message}") from None
        except bex.BotoCoreError as exc:  # parameter validation, credential provider failures, ...
            raise PermanentTargetError(f"target {self.name}: AWS {operation}: {exc}") from None


@functools.cache
def _shared_loader() -> Any:
    """botocore's loader of service models, shared by every session in this process: each model
    is parsed once (IAM's alone takes ~0.1 s), not once per target and client. It only caches
    read-only files, so sharing it shares no credentials or state."""
    from botocore.loaders import create_loader

    return create_loader()


class _NotFound(Exception):
    """AWS said NoSuchEntity / ResourceNotFoundException; the caller decides what that means."""


def _response_time(page: Mapping[str, Any]) -> datetime | None:
    date = page.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if not date:
        return None
    try:
        return email.utils.parsedate_to_datetime(str(date)).astimezone(UTC)
    except (TypeError, ValueError):
        return None
