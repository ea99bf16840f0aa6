"""GCP names: the principal (an IAM member in lower case), the privilege ({resource, role}) and its
parsing, check_name (the policy loader's hook), and the wider set of members a drift revoke may
have to remove. Pure: no SDK, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

from jitpol.connectors.base import mapping_entry
from jitpol.connectors.kit import name_check, shown
from jitpol.errors import InvalidInput

MODEL = "idp-elevation"
OPS = {MODEL: ("grant", "revoke")}
# IAM refuses conditions on these, so they cannot be granted with an end
BASIC_ROLES = frozenset({"roles/owner", "roles/editor", "roles/viewer"})

_PROJECT = r"(?:[a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]{1,20})"
_RESOURCE = re.compile(rf"projects/{_PROJECT}|folders/[0-9]{{1,20}}|organizations/[0-9]{{1,20}}")
_ROLE = re.compile(
    rf"roles/[A-Za-z0-9_.]{{1,128}}|(?:projects/{_PROJECT}|organizations/[0-9]{{1,20}})/roles/[A-Za-z0-9_.]{{3,64}}"
)
_EMAIL = r"[a-z0-9._%+-]{1,64}@[a-z0-9-]{1,63}(?:\.[a-z0-9-]{1,63})+"
_PERSON = re.compile(
    rf"(?:user|group|serviceAccount):{_EMAIL}|principal://iam\.googleapis\.com/[A-Za-z0-9._/@:-]{{1,400}}"
)
# any member IAM stores: what a drift revoke may have to remove (never handed out by a grant)
ANY_MEMBER = re.compile(
    r"(?:user|group|serviceAccount):[^\s@\"']{1,64}@[A-Za-z0-9.-]{1,253}|domain:[A-Za-z0-9.-]{1,253}"
    r"|allUsers|allAuthenticatedUsers|principal(?:Set)?://iam\.googleapis\.com/[A-Za-z0-9._/@:*-]{1,400}"
)

_PRIVILEGE_FORM = (
    'a GCP privilege is a mapping {resource: "projects/<id>" | "folders/<number>" | "organizations/<number>", '
    'role: "roles/<name>" | "projects/<id>/roles/<name>" | "organizations/<number>/roles/<name>"}'
)
_PRINCIPAL_FORM = (
    'a GCP principal is an IAM member in lower case: "user:alice@example.com", "group:team@example.com", '
    '"serviceAccount:name@project.iam.gserviceaccount.com" or "principal://iam.googleapis.com/..."'
)


@dataclass(frozen=True, slots=True)
class GcpPrivilege:
    resource: str
    role: str


def parse_privilege(value: object) -> GcpPrivilege:
    """The privilege as a mapping, or its canonical JSON text. Raises InvalidInput naming the
    allowed form."""
    data = mapping_entry(value, frozenset({"resource", "role"}), _PRIVILEGE_FORM)
    resource, role = data["resource"], data["role"]
    if not isinstance(resource, str) or not _RESOURCE.fullmatch(resource):
        raise InvalidInput(f"privilege resource {shown(resource)} is not valid: {_PRIVILEGE_FORM}")
    if not isinstance(role, str) or not _ROLE.fullmatch(role):
        raise InvalidInput(f"privilege role {shown(role)} is not valid: {_PRIVILEGE_FORM}")
    if role in BASIC_ROLES:
        raise InvalidInput(
            f"privilege role {role} is a basic role: IAM conditions (which end jitpol's access) cannot be "
            "used with roles/owner, roles/editor or roles/viewer; grant predefined or custom roles instead"
        )
    return GcpPrivilege(resource, role)


def check_principal(value: object) -> str:
    """A member jitpol may grant to, or InvalidInput."""
    if not isinstance(value, str) or not _PERSON.fullmatch(value):
        raise InvalidInput(f"principal {shown(value)} is not valid: {_PRINCIPAL_FORM}")
    return value


# the policy loader's hook (the registry record's name_check): a person's account, or a grants entry
check_name = name_check(check_principal, parse_privilege)
