"""MySQL / MariaDB names: the allowlists every account, role, host and schema name passes before
any SQL is built, a person's account (`user@host`), ephemeral account names, an account's
privilege (a list of roles), the names and comment of jitpol's end-of-window events (the
ownership marker of its accounts), the client-side mysql_native_password hash, and check_name
(the policy loader's hook). Needs no PyMySQL.

Names reach the server as string literals (`'alice'@'%'`, `GRANT 'app_read' TO ...`), quoted
with the driver's own escaping; the allowlists below make that quoting a second line of defence,
never the only one. Schema and event names are identifiers, built by jitpol from allow-listed
parts and quoted with backticks.
"""

from __future__ import annotations

import hashlib
import re

from jitpol.connectors.kit import name_list, shown
from jitpol.errors import InvalidInput

# MariaDB stores user and role names in CHAR(80) columns, MySQL 8 in CHAR(32): longer names are
# refused (MySQL 5.7 and earlier: 16). `validate` checks the larger limit (it cannot know the
# server); the connector checks the server's own before any SQL.
MAX_USER_MARIADB = 80
MAX_USER_MYSQL = 32
MAX_HOST = 255  # MariaDB and MySQL 8.0.17+: CHAR(255)
MAX_IDENTIFIER = 64  # schema and event names

_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
# a host: a name, an IPv4/IPv6 address, a netmask (10.0.0.0/255.255.255.0) or a pattern with the
# server's wildcards % and _
_HOST = re.compile(r"[a-z0-9%_:][a-z0-9%_.:/-]*")
_EPHEMERAL_NAME = re.compile(r"jit-[a-z0-9][a-z0-9-]{0,27}")  # at most 32: MySQL's limit too
_SCHEMA = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
# never granted to, never handed out, never rotated: the bootstrap superuser and the server's
# own system accounts, and the words the role statements reserve (SET DEFAULT ROLE NONE, PUBLIC)
_RESERVED_USERS = frozenset({"root", "mariadb.sys", "mysql.sys", "mysql.session", "mysql.infoschema",
                             "debian-sys-maint", "public", "none", "current_user", "current_role"})

# the comment of jitpol's end-of-window events: what marks an account as jitpol's (MariaDB
# accounts carry no comment; an event's COMMENT is at most 64 characters)
EVENT_COMMENT_PREFIX = "jitpol:"
ACCOUNT_EVENT_PREFIX = "jitpol_end_"  # + the ephemeral account's user name
CHECKOUT_EVENT_PREFIX = "jitpol_checkout_"  # + 20 hex digits of the shared account's hash
DEFAULT_EVENT_SCHEMA = "jitpol"


def validate_user(name: object, what: str, *, limit: int = MAX_USER_MARIADB) -> str:
    """`name` if it may be sent as a user or role name: `^[A-Za-z0-9_][A-Za-z0-9_.-]*$`, at most
    `limit` characters, not a reserved name. Raises InvalidInput naming `what`."""
    if not isinstance(name, str) or not _USER.fullmatch(name):
        raise InvalidInput(
            f"{what} {shown(name)} is not an allowed MySQL/MariaDB name "
            "(letters, digits and _ . -, not starting with . or -)"
        )
    if len(name) > limit:
        raise InvalidInput(
            f"{what} {shown(name)} is longer than {limit} characters, the server's limit for user and role names"
        )
    if name.lower() in _RESERVED_USERS or name.lower().startswith("mysql."):
        raise InvalidInput(f"{what} {shown(name)} is reserved by the server; jitpol never uses it")
    return name


def validate_host(host: object, what: str = "host") -> str:
    """`host` if it may be sent as an account's host part: lower-case letters, digits and . : / -
    plus the wildcards % and _, at most 255 characters. Lower case because the server stores host
    names lower-cased and then compares them exactly: 'alice@Web1' would never be found again.
    Raises InvalidInput."""
    if isinstance(host, str) and host != host.lower() and _HOST.fullmatch(host.lower()):
        raise InvalidInput(f"{what} {shown(host)} must be written in lower case ({shown(host.lower())}): "
                           "the server stores account hosts lower-cased")
    if not isinstance(host, str) or not _HOST.fullmatch(host):
        raise InvalidInput(
            f"{what} {shown(host)} is not an allowed account host (a name, an address, a netmask or a "
            "pattern with % and _, e.g. '%', 'localhost', '10.0.0.%')"
        )
    if len(host) > MAX_HOST:
        raise InvalidInput(f"{what} {shown(host)} is longer than {MAX_HOST} characters")
    return host


def parse_account(value: object, what: str = "principal", *, limit: int = MAX_USER_MARIADB) -> tuple[str, str]:
    """(user, host) of an account written `user@host` (e.g. `alice@%`), both allow-listed. Raises
    InvalidInput."""
    if not isinstance(value, str) or value.count("@") != 1:
        raise InvalidInput(
            f"{what} {shown(value)} is not a MySQL/MariaDB account: write it as user@host, e.g. 'alice@%'"
        )
    user, host = value.split("@")
    return validate_user(user, f"{what} user", limit=limit), validate_host(host, f"{what} host")


def account_text(user: str, host: str) -> str:
    """An account as jitpol writes it (and observe reports it): `user@host`."""
    return f"{user}@{host}"


def validate_account_name(name: object) -> str:
    """The user name of an ephemeral account, if it is one jitpol may create: `jit-` followed by
    1 to 28 lower-case letters, digits or `-` (at most 32 characters, MySQL's limit). Raises
    InvalidInput."""
    if not isinstance(name, str) or not _EPHEMERAL_NAME.fullmatch(name):
        raise InvalidInput(
            f"ephemeral account name {shown(name)} is not allowed "
            "(jit- followed by 1 to 28 lower-case letters, digits or -, not starting with -)"
        )
    return validate_user(name, "ephemeral account name", limit=MAX_USER_MYSQL)


def validate_schema(name: object, what: str = "event_schema") -> str:
    """A schema name jitpol creates and quotes itself: `^[A-Za-z][A-Za-z0-9_-]{0,63}$`, not a
    system schema. Raises InvalidInput."""
    if not isinstance(name, str) or not _SCHEMA.fullmatch(name) or name.lower() in (
            "mysql", "information_schema", "performance_schema", "sys"):
        raise InvalidInput(
            f"{what} {shown(name)} is not allowed (a letter, then letters, digits, _ or -, at most 64; "
            "not a system schema)"
        )
    return name


def parse_role_list(privilege: object, *, limit: int = MAX_USER_MARIADB) -> list[str]:
    """The roles of an ephemeral account's privilege: the canonical JSON of a sorted list of
    distinct role names. Any other spelling is refused, because jitpol compares privileges as
    plain strings. Raises InvalidInput."""
    return name_list(privilege, lambda role: validate_user(role, "role", limit=limit))


def account_event(user: str) -> str:
    """The name of the event that ends ephemeral account `user` (and marks it as jitpol's)."""
    return ACCOUNT_EVENT_PREFIX + validate_account_name(user)


def account_comment(user: str) -> str:
    """The COMMENT of an ephemeral account's event: jitpol's marker (at most 64 characters)."""
    return f"{EVENT_COMMENT_PREFIX} ephemeral-account {validate_account_name(user)}"


def checkout_event(user: str, host: str) -> str:
    """The name of the event that locks a checked-out shared account at the checkout's end."""
    digest = hashlib.sha256(account_text(user, host).encode()).hexdigest()[:20]
    return CHECKOUT_EVENT_PREFIX + digest


def checkout_comment(user: str) -> str:
    return f"{EVENT_COMMENT_PREFIX} checkout {user}"[:64]


def native_password_hash(password: str) -> str:
    """The mysql_native_password hash of `password` ('*' + upper-case hex SHA1(SHA1(password))),
    computed here so that the plain text never reaches the server, its logs or its process list."""
    inner = hashlib.sha1(password.encode("utf-8"), usedforsecurity=False).digest()
    return "*" + hashlib.sha1(inner, usedforsecurity=False).hexdigest().upper()


def check_name(value: object, what: str) -> None:
    """The policy loader's hook (the registry record's name_check): `what` is "principal" for a
    person's account (`user@host`), anything else for a role named in a resource's grants.
    Lengths are checked against MariaDB's limit (80 characters); the connector checks MySQL's
    (32) when the server is MySQL. Raises InvalidInput."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a MySQL/MariaDB name (a string), not {type(value).__name__}")
    if what == "principal":
        parse_account(value)
    else:
        validate_user(value, "role")
