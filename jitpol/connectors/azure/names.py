"""Azure names: the principal (an Entra object id), the privilege ({scope, role}) and its parsing,
check_name (the policy loader's hook), and role definition ids. Pure: no SDK, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

from jitpol.connectors.base import mapping_entry
from jitpol.connectors.kit import name_check, shown
from jitpol.errors import InvalidInput

MODEL = "idp-elevation"
OPS = {MODEL: ("grant", "revoke")}

GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_PRINCIPAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_NAME = r"[A-Za-z0-9_()][A-Za-z0-9_.()-]{0,89}"
_NAMESPACE_RE = r"[A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z][A-Za-z0-9]*)+"
_TYPE = r"[A-Za-z][A-Za-z0-9]*"
SCOPE = re.compile(
    rf"/subscriptions/{GUID}"
    rf"(?:/resourceGroups/{_NAME}(?:/providers/{_NAMESPACE_RE}/{_TYPE}/{_NAME}(?:/{_TYPE}/{_NAME})*)?)?"
    rf"|/providers/Microsoft\.Management/managementGroups/{_NAME}",
    re.IGNORECASE,
)
_ROLE_GUID = re.compile(GUID)
ROLE_ID = re.compile(
    rf"(?:/subscriptions/{GUID})?/providers/Microsoft\.Authorization/roleDefinitions/({GUID})", re.IGNORECASE
)
# role names: no quotes (they go into an OData $filter), no control characters
_ROLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._()/&+,:-]{0,255}")
_SUBSCRIPTION_OF = re.compile(rf"^/subscriptions/({GUID})", re.IGNORECASE)
REQUEST_ID = re.compile(
    rf"(?P<scope>/.+)/providers/Microsoft\.Authorization/roleAssignmentScheduleRequests/(?P<name>{GUID})",
    re.IGNORECASE,
)

_PRIVILEGE_FORM = (
    'an Azure privilege is a mapping {scope: "/subscriptions/<subscription id>[/resourceGroups/<rg>...]" '
    'or "/providers/Microsoft.Management/managementGroups/<name>", role: "<role definition GUID, full role '
    'definition id, or role name such as Reader>"}'
)


@dataclass(frozen=True, slots=True)
class AzurePrivilege:
    """One parsed privilege. `role_guid` is known without I/O when the role is a GUID or an id."""

    scope: str
    role: str
    role_guid: str | None


def parse_privilege(value: object) -> AzurePrivilege:
    """The privilege as a mapping, or its canonical JSON text. Raises InvalidInput naming the
    allowed form."""
    data = mapping_entry(value, frozenset({"scope", "role"}), _PRIVILEGE_FORM)
    scope, role = data["scope"], data["role"]
    if not isinstance(scope, str) or not SCOPE.fullmatch(scope):
        raise InvalidInput(f"privilege scope {shown(scope)} is not an Azure scope: {_PRIVILEGE_FORM}")
    if not isinstance(role, str):
        raise InvalidInput(f"privilege role {shown(role)} is not valid: {_PRIVILEGE_FORM}")
    if _ROLE_GUID.fullmatch(role):
        return AzurePrivilege(scope, role, role.lower())
    m = ROLE_ID.fullmatch(role)
    if m:
        return AzurePrivilege(scope, role, m.group(1).lower())
    if not _ROLE_NAME.fullmatch(role) or role.lower().startswith("/"):
        raise InvalidInput(
            f"privilege role {shown(role)} is not a role definition GUID, id or name "
            "(letters, digits, spaces and . _ ( ) / & + , : -; no quotes)"
        )
    return AzurePrivilege(scope, role, None)


def check_principal(value: object) -> str:
    """The principal (an Entra object id), or InvalidInput."""
    if not isinstance(value, str) or not _PRINCIPAL.fullmatch(value):
        raise InvalidInput(
            f"principal {shown(value)} is not an Azure principal: use the person's Microsoft Entra object id, "
            "a lower-case GUID such as 0f8fad5b-d9cb-469f-a165-70867728950e (as Azure reports it)"
        )
    return value


# the policy loader's hook (the registry record's name_check): a person's account, or a grants entry
check_name = name_check(check_principal, parse_privilege)


def role_guid_of(role_definition_id: str | None) -> str | None:
    """The GUID of a full role definition id as ARM reports it; None for any other text."""
    m = ROLE_ID.fullmatch(role_definition_id or "")
    return m.group(1).lower() if m else None


def role_definition_id(priv: AzurePrivilege, guid: str) -> str:
    """The full role definition id to send: the privilege's own when it names one, else the GUID
    under the scope's subscription (none for a management group)."""
    if ROLE_ID.fullmatch(priv.role):
        return priv.role
    m = _SUBSCRIPTION_OF.match(priv.scope)
    prefix = f"/subscriptions/{m.group(1)}" if m else ""
    return f"{prefix}/providers/Microsoft.Authorization/roleDefinitions/{guid}"
