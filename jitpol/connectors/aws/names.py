"""AWS principals and privileges: their JSON forms, parsing and the name check the policy
loader calls (check_name), and the reduced principal each kind of privilege uses
(principal_for). Pure: no boto3."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from jitpol.connectors.kit import NameCheck, name_check, shown
from jitpol.errors import InvalidInput
from jitpol.model.canonical import canonical_json

if TYPE_CHECKING:
    pass


MODEL = "idp-elevation"
NATIVE_EXPIRY = False  # AWS enforces no end for either form: the reconciler must run

_ACCOUNT = re.compile(r"[0-9]{12}")
# AWS documents `permissionSet/`; moto (the test server) writes `instance/` in the same place
_PERMISSION_SET = re.compile(
    r"arn:aws(-cn|-us-gov|-iso|-iso-[a-z])?:sso:::(permissionSet|instance)/"
    r"(sso)?ins-[A-Za-z0-9.-]{16}/ps-[A-Za-z0-9.-]{16}"
)
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
_OPS = {MODEL: ("grant", "revoke")}


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
