"""PostgreSQL names: the allowlist every role name passes before any SQL is built
(validate_identifier, validate_principal), ephemeral account names, an account's privilege (a
list of roles), jitpol's marker comment and grantor role name, and check_name (the policy
loader's hook). Needs no psycopg."""

from __future__ import annotations

import re

from jitpol.connectors.kit import name_list, shown
from jitpol.errors import InvalidInput

# the comment (COMMENT ON ROLE) that says a role is jitpol's own ephemeral account
MARKER_PREFIX = "jitpol:"
# the grantor of record (GRANTED BY) of the memberships jitpol grants: its ownership marker for
# role-membership (setting grantor_role)
GRANTOR_ROLE = "jitpol_grantor"

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_.@-]*")
_EPHEMERAL_NAME = re.compile(r"jit-[a-z0-9][a-z0-9-]{0,30}")
_MARKER_VALUE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
# NAMEDATALEN - 1: PostgreSQL silently truncates longer names, so "alice_<64 bytes>" would
# quietly become some other role. Refuse instead.
_MAX_IDENTIFIER_BYTES = 63
# never handed to a person: the bootstrap superuser's usual name and the PUBLIC pseudo-role
_RESERVED_PRINCIPALS = frozenset({"postgres", "public"})
_SYSTEM_PREFIX = "pg_"  # predefined roles (pg_signal_backend, pg_read_all_data, ...)


def validate_identifier(name: str, what: str) -> None:
    """Raise InvalidInput unless `name` may be sent to PostgreSQL as a role name.

    Allowed: `^[A-Za-z_][A-Za-z0-9_.@-]*$`, at most 63 bytes of UTF-8 (longer names would be
    truncated silently by the server), and not `public` (a pseudo-role). `what` names the thing
    in the message, e.g. "role" or "principal". Needs no database and no psycopg.
    """
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise InvalidInput(
            f"{what} {shown(name)} is not an allowed PostgreSQL role name "
            "(letters, digits and _ . @ -, not starting with a digit, . @ or -)"
        )
    if len(name.encode("utf-8")) > _MAX_IDENTIFIER_BYTES:
        raise InvalidInput(
            f"{what} {shown(name)} is longer than {_MAX_IDENTIFIER_BYTES} bytes; "
            "PostgreSQL would truncate it silently"
        )
    if name.lower() == "public":
        raise InvalidInput(f"{what} {shown(name)} is reserved by PostgreSQL")


def validate_principal(name: str) -> None:
    """validate_identifier plus the rules for the role that receives a membership: never a
    predefined `pg_*` role, `postgres` or `public`. Raises InvalidInput."""
    validate_identifier(name, "principal")
    if name.lower().startswith(_SYSTEM_PREFIX) or name.lower() in _RESERVED_PRINCIPALS:
        raise InvalidInput(
            f"principal {shown(name)} is a reserved PostgreSQL role; jitpol never grants to it"
        )


def validate_account_name(name: object) -> str:
    """The name of an ephemeral account, if it is one jitpol may create: `jit-` followed by 1 to
    31 lower-case letters, digits or `-` (at most 35 bytes, far below PostgreSQL's 63-byte
    limit, so it is never truncated). Raises InvalidInput."""
    if not isinstance(name, str) or not _EPHEMERAL_NAME.fullmatch(name):
        raise InvalidInput(
            f"ephemeral account name {shown(name)} is not allowed "
            "(jit- followed by 1 to 31 lower-case letters, digits or -, not starting with -)"
        )
    validate_identifier(name, "ephemeral account name")  # defence in depth: the byte limit
    return name


def parse_role_list(privilege: object) -> list[str]:
    """The roles of an ephemeral account's privilege: the canonical JSON of a sorted list of
    distinct role names (`canonical_json(sorted(roles))`), each one validate_identifier accepts.
    Any other spelling is refused, because jitpol compares privileges as plain strings. Raises
    InvalidInput."""
    return name_list(privilege, lambda role: validate_identifier(role, "role"))


def marker(grant: str, person: str) -> str:
    """The comment that marks a role as jitpol's ephemeral account. Raises InvalidInput unless
    both are jitpol names (so the comment needs no escaping to be read back)."""
    for key, value in (("grant", grant), ("person", person)):
        if not isinstance(value, str) or not _MARKER_VALUE.fullmatch(value):
            raise InvalidInput(f"detail {key} {shown(value)} is missing or not a jitpol name")
    return f"{MARKER_PREFIX} grant={grant}; person={person}"


def check_name(value: object, what: str) -> None:
    """The policy loader's hook (the registry record's name_check): `what` is "principal" for a person's
    account, anything else (e.g. "privilege") for a role named in a resource's grants. Raises
    InvalidInput."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a PostgreSQL role name (a string), not {type(value).__name__}")
    if what == "principal":
        validate_principal(value)
    else:
        validate_identifier(value, "role")
