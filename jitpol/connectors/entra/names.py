"""Entra names: principals, privileges, the ownership marker. Pure: no SDK, no I/O.

    principal   the person's Entra user object id, a lower-case GUID as Graph reports it
                (people/<name>.yaml `accounts.entra: 0f8fad5b-d9cb-469f-a165-70867728950e`)
    privilege   canonical JSON of one of
                {"group": "<group object id>"}
                    membership of an Entra group (plain, or through PIM for Groups when the
                    target says `pim_groups: true`)
                {"directoryRole": "<role definition id or display name>", "scope": "/"}
                {"directoryRole": ..., "scope": "/administrativeUnits/<administrative unit id>"}
                    an active directory role assignment through a role assignment schedule
                    request, tenant-wide or in one administrative unit

Every GUID is lower case (Graph reports ids that way; the privilege text observe reports is the
one the policy wrote, so one spelling per object). A role given by name is resolved through
roleDefinitions?$filter=displayName eq '...': names carry no quote and no control character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from jitpol.connectors.base import mapping_entry
from jitpol.connectors.kit import GRANT_MARKER, GRANT_NAME, grant_marker, name_check, shown
from jitpol.errors import InvalidInput

MODEL = "idp-elevation"

GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ANY_CASE_GUID = re.compile(GUID.pattern, re.IGNORECASE)
TENANT_SCOPE = "/"
_AU_SCOPE = re.compile(rf"/administrativeUnits/({GUID.pattern})")
# role display names: no quotes (they go into an OData $filter), no control characters
_ROLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._()/&+,:-]{0,255}")

# built-in directory roles that can take over the tenant (assign any role, reset any credential,
# add credentials to privileged apps, switch off Conditional Access): granted only to a resource
# that opts in with `spec.allowPrivileged: true`, like PostgreSQL superuser-reaching roles
PRIVILEGED_ROLES = {
    "62e90394-69f5-4237-9190-012177145e10": "Global Administrator",
    "e8611ab8-c189-46e8-94e1-60213ab1f814": "Privileged Role Administrator",
    "7be44c8a-adaf-4e2a-84d6-ab2649e08a13": "Privileged Authentication Administrator",
    "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3": "Application Administrator",
    "158c047a-c907-4556-b7ef-446551a6b5f7": "Cloud Application Administrator",
    "194ae4cb-b126-40b2-bd5b-6091b380977d": "Security Administrator",
    "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9": "Conditional Access Administrator",
}

# jitpol's ownership marker: the justification of every schedule request it sends. Only fixed
# text and an allow-listed grant name ever go there.
MARKER = GRANT_MARKER
_MARKED = re.compile(rf"{MARKER}(?:: grant={GRANT_NAME.pattern})?")

_GROUP_FORM = '{group: "<group object id, a lower-case GUID>"}'
_ROLE_FORM = (
    '{directoryRole: "<role definition id (lower-case GUID) or display name such as User Administrator>", '
    'scope: "/" or "/administrativeUnits/<administrative unit id>"}'
)
_PRIVILEGE_FORM = f"an Entra privilege is {_GROUP_FORM} or {_ROLE_FORM}"


@dataclass(frozen=True, slots=True)
class GroupPrivilege:
    """Membership of one group."""

    group: str


@dataclass(frozen=True, slots=True)
class RolePrivilege:
    """An active directory role assignment. `role_id` is known without I/O when the role is
    given by id; `scope` is the directoryScopeId ("/" or "/administrativeUnits/<id>")."""

    role: str
    scope: str
    role_id: str | None


Privilege = GroupPrivilege | RolePrivilege


def parse_privilege(value: object) -> Privilege:
    """The privilege as a mapping or its canonical JSON text. Raises InvalidInput naming the
    allowed forms."""
    data: object = value
    if isinstance(value, str):
        import json

        try:
            data = json.loads(value)
        except ValueError:
            raise InvalidInput(f"privilege {shown(value)} is not valid: {_PRIVILEGE_FORM}") from None
    if isinstance(data, dict) and set(data) == {"group"}:
        group = data["group"]
        if not isinstance(group, str) or not GUID.fullmatch(group):
            hint = " (write it in lower case)" if isinstance(group, str) and _ANY_CASE_GUID.fullmatch(group) else ""
            raise InvalidInput(f"privilege group {shown(group)} is not a group object id{hint}: {_GROUP_FORM}")
        return GroupPrivilege(group)
    entry = mapping_entry(data, frozenset({"directoryRole", "scope"}), _PRIVILEGE_FORM)
    role, scope = entry["directoryRole"], entry["scope"]
    if not isinstance(scope, str) or not (scope == TENANT_SCOPE or _AU_SCOPE.fullmatch(scope)):
        raise InvalidInput(
            f"privilege scope {shown(scope)} is not a directory scope: use \"/\" (the whole tenant) or "
            "\"/administrativeUnits/<administrative unit id, a lower-case GUID>\""
        )
    if not isinstance(role, str):
        raise InvalidInput(f"privilege directoryRole {shown(role)} is not valid: {_ROLE_FORM}")
    if GUID.fullmatch(role):
        return RolePrivilege(role, scope, role)
    if _ANY_CASE_GUID.fullmatch(role):
        raise InvalidInput(f"privilege directoryRole {shown(role)}: write the role definition id in lower case")
    if not _ROLE_NAME.fullmatch(role):
        raise InvalidInput(
            f"privilege directoryRole {shown(role)} is not a role definition id or display name "
            "(letters, digits, spaces and . _ ( ) / & + , : -; no quotes)"
        )
    return RolePrivilege(role, scope, None)


def check_principal(value: object) -> str:
    """The principal (an Entra user object id), or InvalidInput."""
    if not isinstance(value, str) or not GUID.fullmatch(value):
        raise InvalidInput(
            f"principal {shown(value)} is not an Entra principal: use the person's Entra user object id, "
            "a lower-case GUID such as 0f8fad5b-d9cb-469f-a165-70867728950e (as Microsoft Graph reports it)"
        )
    return value


# the policy loader's hook (the registry record's name_check): a person's account, or a grants entry
check_name = name_check(check_principal, parse_privilege)


marker = grant_marker  # "jitpol: grant=<name>" in a schedule request's justification


def is_marked(text: str | None) -> bool:
    """Does a schedule request's justification carry jitpol's marker?"""
    return text is not None and _MARKED.fullmatch(text) is not None
