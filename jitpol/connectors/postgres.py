"""PostgreSQL connector: models `role-membership`, `ephemeral-account` and `credential-checkout`.

Settings (the target's entry in jitpol.yaml):
    dsn_env             required; NAME of the environment variable that holds the libpq DSN
    terminate_sessions  optional bool, default true: end the principal's sessions on a
                        role-membership revoke (ephemeral accounts and checkouts always end them)
    connect_timeout     optional int seconds, default 10
    reassign_to         optional role name: who inherits what a deleted ephemeral account owned;
                        default the connector's own login role (an action's detail
                        "reassign_to", e.g. from a resource option, takes precedence)
    grantor_role        optional role name, default "jitpol_grantor": the grantor of record
                        (GRANTED BY) that marks a membership as jitpol's

role-membership: a person's login role is made a direct member of a group role
(GRANT ... GRANTED BY <grantor_role>) and removed again (REVOKE, then pg_terminate_backend of the
principal's sessions). The grantor is jitpol's ownership marker: observe() reports owned=True for
a membership the grantor role granted, owned=False for any other (standing access). The grantor
role is a NOLOGIN, NOINHERIT role with a comment (never jitpol's account marker) that nobody
logs in as; a superuser connector creates it in the transaction of the first GRANT that needs it.
PostgreSQL 16 and later accept a grantor only if it holds ADMIN OPTION on the role itself, so the
connector gives it that first (WITH ADMIN TRUE, INHERIT FALSE, SET FALSE: it may hand the role
out, never use it). A grant that finds the membership present, from any grantor, changes nothing
and never adds the marker. A revoke takes away jitpol's membership (REVOKE ... GRANTED BY the
grantor when marked: on PostgreSQL 16 another grantor's standing row survives it, and the
principal keeps the role and its sessions) and an unmarked one the ledger names with a plain
REVOKE, as before markers. PostgreSQL 15 and earlier let only a superuser name a grantor: a
non-superuser connector grants unmarked there (only the ledger knows those memberships); on 16
and later it marks once the grantor role exists and the login has its privileges (GRANT
jitpol_grantor TO <login>), and grants unmarked until then. The
grantor role is never granted, never given a membership, never handed to an ephemeral account
(not even through a chain of memberships), never rotated, and never observed.

ephemeral-account: principal is a role name jitpol chose (`^jit-[a-z0-9][a-z0-9-]{0,30}$`),
privilege the canonical JSON of the sorted list of roles it gets. create-account makes a LOGIN
role with the password from action.detail("password"), `VALID UNTIL` the window's end (the
server refuses password logins after it even if no run happens) and those roles, commented
`jitpol: grant=<grant>; person=<person>` (jitpol's marker) in the same transaction. An existing
role with the marker is brought exactly to that state (password set unless it already verifies,
VALID UNTIL set to the window's end whether that is earlier or later than the current one: a
window cut short ends the account sooner, missing roles granted, extra ones revoked); a role
without the marker is never adopted. delete-account (marked roles only) sets NOLOGIN,
terminates the role's sessions, runs REASSIGN OWNED / DROP OWNED in every database that allows
connections and drops the role. observe() reports every marked role (owned=True), whatever
scope.privileges says.

credential-checkout: principal is an existing shared login role; rotate sets a new password
(required), `VALID UNTIL` the checkout's end when the privilege names holders (not when it is
"[]", a rotation to nobody), and terminates every session of the account. Superusers, jitpol's
own login, its grantor role and ephemeral accounts are refused. observe() reports nothing (the
ledger knows the holders).

Secrets: passwords are hashed on the client (libpq's PQencryptPasswordConn, the server's
password_encryption), so the plain text never reaches the server, its logs or
pg_stat_activity; operations show `PASSWORD '***'`; errors of statements that carry a verifier
are raised without the driver's exception attached.

Safety: every role name is checked against an allowlist (validate_identifier) before any SQL
is built, statements are composed with psycopg.sql.Identifier/Literal only, and superusers are
never granted to, revoked from or handed out, not even through a chain of memberships. The DSN and
its password never appear in errors.

Privileged roles: a grant (role-membership) or an account (ephemeral-account) whose role is, or
through memberships (pg_auth_members, followed recursively) reaches, a role with CREATEROLE,
REPLICATION or BYPASSRLS or one of PRIVILEGED_ROLES (pg_execute_server_program,
pg_write_server_files, pg_read_server_files, pg_create_subscription) is refused with
PermanentTargetError naming the path, unless the action carries the "privileged" detail (its
resource says `allowPrivileged: true`). The check runs in the transaction that grants; check
mode runs it too. Revocations and deletions are never refused.

psycopg is imported lazily, so the policy validator can import validate_identifier on a machine
without it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from jitpol.connectors.kit import check_apply, check_model, redacted, shown
from jitpol.errors import InvalidInput, PermanentTargetError, TargetError, TargetUnavailable
from jitpol.model.assignment import Action, Assignment, Capabilities, Outcome, Scope
from jitpol.model.canonical import canonical_json

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

MODEL = "role-membership"  # the first model; the name importers already use
ROLE_MEMBERSHIP = MODEL
EPHEMERAL = "ephemeral-account"
CHECKOUT = "credential-checkout"
MODELS = (ROLE_MEMBERSHIP, EPHEMERAL, CHECKOUT)
_OPS = {ROLE_MEMBERSHIP: ("grant", "revoke"), EPHEMERAL: ("create-account", "delete-account"), CHECKOUT: ("rotate",)}

# the comment (COMMENT ON ROLE) that says a role is jitpol's own ephemeral account
MARKER_PREFIX = "jitpol:"
# the grantor of record (GRANTED BY) of the memberships jitpol grants: its ownership marker for
# role-membership (setting grantor_role)
GRANTOR_ROLE = "jitpol_grantor"
# the comment a grantor role jitpol creates carries: fixed text, and NOT the account marker, so
# the grantor is never taken for an ephemeral account (observed, changed or dropped as one)
GRANTOR_COMMENT = (
    "Grantor of record of the role memberships jitpol grants (GRANTED BY): a membership it granted is "
    "jitpol's and ends with its grant. Keep it NOLOGIN, with no member but jitpol's own login."
)
# PostgreSQL 16 (server_version_num): a membership may have one row per grantor, and a grantor
# must hold ADMIN OPTION on the role; before 16, only a superuser may name a grantor
_PG16 = 160000
# how long pg_terminate_backend waits for each session to be gone
SESSION_WAIT_MS = 5000

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_.@-]*")
_EPHEMERAL_NAME = re.compile(r"jit-[a-z0-9][a-z0-9-]{0,30}")
_MARKER_VALUE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_B64 = r"[A-Za-z0-9+/]+={0,2}"
_SCRAM_VERIFIER = re.compile(rf"SCRAM-SHA-256\$([0-9]{{1,7}}):({_B64})\$({_B64}):({_B64})")
# a stored verifier with more iterations is not re-derived (it would stall the run): the
# password is set again instead
_MAX_SCRAM_ITERATIONS = 100_000
# NAMEDATALEN - 1: PostgreSQL silently truncates longer names, so "alice_<64 bytes>" would
# quietly become some other role. Refuse instead.
_MAX_IDENTIFIER_BYTES = 63
# never handed to a person: the bootstrap superuser's usual name and the PUBLIC pseudo-role
_RESERVED_PRINCIPALS = frozenset({"postgres", "public"})
_SYSTEM_PREFIX = "pg_"  # predefined roles (pg_signal_backend, pg_read_all_data, ...)

# Root-equivalent roles: handed out (directly or through any chain of memberships) only by a
# resource that opts in (`spec.allowPrivileged: true`, the action's "privileged" detail). A member
# can SET ROLE to every role it reaches, so reaching one is holding it.
PRIVILEGED_ATTRIBUTES: dict[str, str] = {
    "rolcreaterole": "has CREATEROLE (up to PostgreSQL 15 it can grant itself any role but superuser, "
                     "pg_execute_server_program included, and set other roles' passwords)",
    "rolreplication": "has REPLICATION (streams a copy of the whole cluster, password hashes included)",
    "rolbypassrls": "has BYPASSRLS (row-level security does not apply to it)",
}
PRIVILEGED_ROLES: dict[str, str] = {
    "pg_execute_server_program": "runs programs on the database server as its operating-system user",
    "pg_write_server_files": "writes files on the database server as its operating-system user",
    "pg_read_server_files": "reads any file the server's operating-system user can read (keys, configuration, "
                            "the data files of every database)",
    "pg_create_subscription": "creates subscriptions that connect to other servers and apply their changes "
                              "(PostgreSQL 16 and later)",
}
# Not privileged here: pg_signal_backend (cancels other non-superuser sessions: disruption, not
# escalation), pg_read_all_data / pg_write_all_data (data, without the catalogs or the server),
# pg_monitor and its parts. A superuser, directly or through memberships, is never handed out,
# opt-in or not.

# Direct members of the roles named, and whether the grantor role granted the membership (one
# row per member and role: PostgreSQL 16 records a membership once per grantor). The grantor role
# counts as jitpol's marker only while it is a NOLOGIN non-superuser that is neither our own login
# nor an ephemeral account; it is itself never reported, as a member or as a role.
_OBSERVE_SQL = """
SELECT member.rolname::text, grp.rolname::text, coalesce(bool_or(m.grantor = g.oid), false)
FROM pg_catalog.pg_auth_members AS m
JOIN pg_catalog.pg_roles AS grp ON grp.oid = m.roleid
JOIN pg_catalog.pg_roles AS member ON member.oid = m.member
LEFT JOIN pg_catalog.pg_roles AS g
       ON g.rolname = %(grantor)s AND NOT g.rolsuper AND NOT g.rolcanlogin AND g.rolname <> current_user
      AND NOT coalesce(pg_catalog.starts_with(pg_catalog.shobj_description(g.oid, 'pg_authid'), %(marker)s), false)
WHERE grp.rolname = ANY(%(roles)s) AND grp.rolname <> %(grantor)s AND member.rolname <> %(grantor)s
GROUP BY member.rolname, grp.rolname
"""

# one round trip for everything apply() must know before it decides about a membership: our
# login, the superuser flags, the membership's rows (all, and those the grantor role granted),
# and the grantor role (whether it exists, what it is, whether our login has its privileges,
# whether it holds ADMIN OPTION on the role, as PostgreSQL 16 requires of a grantor)
_INSPECT_SQL = """
WITH grp AS (SELECT oid, rolsuper FROM pg_catalog.pg_roles WHERE rolname = %(role)s),
     usr AS (SELECT oid, rolsuper FROM pg_catalog.pg_roles WHERE rolname = %(principal)s),
     g AS (SELECT oid, rolsuper, rolcanlogin, pg_catalog.shobj_description(oid, 'pg_authid') AS comment
           FROM pg_catalog.pg_roles WHERE rolname = %(grantor)s),
     mem AS (SELECT m.grantor FROM pg_catalog.pg_auth_members AS m
             WHERE m.roleid = (SELECT oid FROM grp) AND m.member = (SELECT oid FROM usr))
SELECT current_user::text,
       coalesce((SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user), false),
       (SELECT rolsuper FROM grp),
       (SELECT rolsuper FROM usr),
       (SELECT count(*) FROM mem),
       (SELECT count(*) FROM mem WHERE mem.grantor = (SELECT oid FROM g)),
       EXISTS (SELECT 1 FROM g),
       coalesce((SELECT rolsuper FROM g), false),
       coalesce((SELECT rolcanlogin FROM g), false),
       (SELECT comment FROM g),
       coalesce((SELECT pg_catalog.pg_has_role(current_user, oid, 'USAGE') FROM g), false),
       EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members AS m
               WHERE m.roleid = (SELECT oid FROM grp) AND m.member = (SELECT oid FROM g) AND m.admin_option)
"""

# Roles with their marker, enforced end and direct memberships. psycopg cannot load the
# infinities: 'infinity' (like NULL) is no end; '-infinity' ended long ago, shown as the epoch.
_ROLES_SQL = """
SELECT r.rolname::text,
       r.rolsuper,
       r.rolcanlogin,
       pg_catalog.shobj_description(r.oid, 'pg_authid'),
       CASE WHEN r.rolvaliduntil = '-infinity' THEN 'epoch'::timestamptz
            WHEN pg_catalog.isfinite(r.rolvaliduntil) THEN r.rolvaliduntil END,
       ARRAY(SELECT g.rolname::text
             FROM pg_catalog.pg_auth_members AS m
             JOIN pg_catalog.pg_roles AS g ON g.oid = m.roleid
             WHERE m.member = r.oid)
FROM pg_catalog.pg_roles AS r
WHERE r.rolname = ANY(%(names)s)
   OR pg_catalog.starts_with(pg_catalog.shobj_description(r.oid, 'pg_authid'), %(marker)s)
"""
# Every membership edge reachable upwards from the roles named, and the attributes of every role
# on the way (UNION: each edge once, however many paths lead to it; PostgreSQL 16 may record one
# membership once per grantor). The shortest path to a privileged role is found in Python.
_REACH_SQL = """
WITH RECURSIVE edge(member, roleid) AS (
    SELECT m.member, m.roleid
    FROM pg_catalog.pg_auth_members AS m
    JOIN pg_catalog.pg_roles AS r ON r.oid = m.member
    WHERE r.rolname = ANY(%(roles)s)
  UNION
    SELECT m.member, m.roleid
    FROM pg_catalog.pg_auth_members AS m
    JOIN edge ON m.member = edge.roleid
)
SELECT r.rolname::text, r.rolsuper, r.rolcreaterole, r.rolreplication, r.rolbypassrls,
       ARRAY(SELECT g.rolname::text
             FROM edge JOIN pg_catalog.pg_roles AS g ON g.oid = edge.roleid
             WHERE edge.member = r.oid)
FROM pg_catalog.pg_roles AS r
WHERE r.rolname = ANY(%(roles)s) OR r.oid IN (SELECT roleid FROM edge)
"""
_SESSION_SQL = "SELECT current_user::text, pg_catalog.has_table_privilege('pg_catalog.pg_authid', 'SELECT')"
_STORED_VERIFIER_SQL = "SELECT rolpassword FROM pg_catalog.pg_authid WHERE rolname = %s"
_DATABASES_SQL = "SELECT datname::text FROM pg_catalog.pg_database WHERE datallowconn ORDER BY datname"
_SESSIONS_LEFT_SQL = (
    "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE usename = %s AND pid <> pg_catalog.pg_backend_pid()"
)


# -- names (no psycopg needed) ----------------------------------------------------------------


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
    try:
        roles = json.loads(privilege) if isinstance(privilege, str) else None
    except ValueError:
        roles = None
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise InvalidInput(
            f"the privilege {shown(privilege)} of an ephemeral account must be a JSON list of role names"
        )
    for role in roles:
        validate_identifier(role, "role")
    if canonical_json(sorted(set(roles))) != privilege:
        raise InvalidInput(
            f"the privilege {shown(privilege)} is not the canonical JSON of a sorted list of distinct role names"
        )
    return list(roles)


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


def password_matches(stored: str | None, password: str, role: str) -> bool:
    """True only when `stored` (pg_authid.rolpassword of `role`) is known to verify `password`:
    a SCRAM-SHA-256 verifier (RFC 5802/7677) or an md5 hash. False when it does not, when there
    is none, and when this cannot tell (a non-ASCII password, which the server would SASLprep;
    an unknown format; an absurd iteration count) — the caller then sets the password again."""
    if not stored or not password.isascii():
        # ASCII needs no SASLprep: the server hashes exactly these bytes
        return False
    if stored.startswith("md5") and len(stored) == 35:
        expected = "md5" + hashlib.md5((password + role).encode(), usedforsecurity=False).hexdigest()
        return hmac.compare_digest(stored, expected)
    match = _SCRAM_VERIFIER.fullmatch(stored)
    if match is None:
        return False
    iterations = int(match.group(1))
    if not 0 < iterations <= _MAX_SCRAM_ITERATIONS:
        return False
    try:
        salt, stored_key, server_key = (base64.b64decode(match.group(i), validate=True) for i in (2, 3, 4))
    except binascii.Error:
        return False
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return hmac.compare_digest(hashlib.sha256(client_key).digest(), stored_key) and hmac.compare_digest(
        server, server_key
    )


def valid_until_text(until: datetime) -> str:
    """`until` as the literal VALID UNTIL takes (ISO 8601 in UTC). Raises InvalidInput for a
    naive datetime: the server would read it in its own time zone."""
    if until.tzinfo is None or until.utcoffset() is None:
        raise InvalidInput("the end of an account's window must carry a time zone")
    return until.astimezone(UTC).isoformat(sep=" ")


def _database_label(name: str) -> str:
    # for Outcome.operations only: JSON quoting shows any name on one line, and `*\/` (a legal
    # JSON escape) keeps a name from closing the surrounding comment
    return json.dumps(name).replace("*/", "*\\/")


@dataclass(frozen=True, slots=True)
class _Role:
    name: str
    superuser: bool
    login: bool
    comment: str | None
    valid_until: datetime | None  # the enforced end; None: none
    member_of: frozenset[str]  # direct memberships

    @property
    def marked(self) -> bool:
        return self.comment is not None and self.comment.startswith(MARKER_PREFIX)


@dataclass(frozen=True, slots=True)
class _Membership:
    """What _INSPECT_SQL found about one membership and the grantor role."""

    current_user: str
    login_super: bool
    role_super: bool | None  # None: the role does not exist
    principal_super: bool | None
    rows: int  # pg_auth_members rows of the principal in the role (PostgreSQL 16: one per grantor)
    ours: int  # ... of them granted by the grantor role
    grantor_exists: bool
    grantor_super: bool
    grantor_login: bool
    grantor_comment: str | None
    grantor_usable: bool  # our login has the grantor role's privileges
    grantor_admin: bool  # the grantor role holds ADMIN OPTION on the role itself


@dataclass(frozen=True, slots=True)
class _Step:
    """One statement: what is sent, and how Outcome.operations shows it (secrets as '***')."""

    sent: sql.Composed
    shown: sql.Composed
    database: str | None = None  # None: the connector's own database
    ends_sessions_of: str | None = None  # afterwards, this role must have no session left


class PostgresConnector:
    """Connector for one PostgreSQL cluster (see the module docstring for settings and models).

    One autocommit connection is opened on first use and reused; delete-account opens one more,
    briefly, per other database. Errors: TargetUnavailable when the server cannot be reached (or
    the connection drops, or a session will not end), PermanentTargetError for everything else.
    """

    type: ClassVar[str] = "postgres"
    capabilities: ClassVar[Capabilities] = Capabilities(
        models=frozenset(MODELS),
        # VALID UNTIL: an ephemeral account's, and a checked-out password's, end is enforced by
        # the server for password logins even when no run happens
        native_expiry=frozenset({EPHEMERAL, CHECKOUT}),
        # a membership's grantor (the grantor role), an account's comment: observe says owned
        marks=frozenset({ROLE_MEMBERSHIP, EPHEMERAL}),
        ends_sessions=True,
    )

    def __init__(self, name: str, settings: Mapping[str, Any], env: Mapping[str, str]) -> None:
        self.name = name
        dsn_env = settings.get("dsn_env")
        if not isinstance(dsn_env, str) or not dsn_env:
            raise PermanentTargetError(
                f"target {name}: setting dsn_env (an environment variable name) is required"
            )
        terminate = settings.get("terminate_sessions", True)
        if not isinstance(terminate, bool):
            raise PermanentTargetError(f"target {name}: setting terminate_sessions must be true or false")
        timeout = settings.get("connect_timeout", 10)
        if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0:
            raise PermanentTargetError(f"target {name}: setting connect_timeout must be a positive integer")
        reassign_to = settings.get("reassign_to")
        if reassign_to is not None:
            try:
                validate_identifier(reassign_to, "reassign_to")
            except InvalidInput as exc:
                raise PermanentTargetError(f"target {name}: setting {exc}") from None
        grantor = settings.get("grantor_role", GRANTOR_ROLE)
        try:
            validate_principal(grantor)  # never pg_*, postgres or public
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {name}: setting grantor_role: {exc}") from None
        self._grantor: str = grantor
        self._dsn_env = dsn_env
        self._terminate_sessions = terminate
        self._connect_timeout = timeout
        self._reassign_to: str | None = reassign_to
        self._env = env  # read at connect time only: the DSN is never kept on this object
        self._conn: psycopg.Connection[Any] | None = None
        # role -> what _REACH_SQL found for it, for this connector's run: a run grants the same
        # few roles to many people, and their membership graph is read once, not once per grant
        self._reach: dict[str, dict[str, tuple[dict[str, bool], tuple[str, ...]]]] = {}

    # -- Connector protocol -----------------------------------------------------------------

    def observe(self, scope: Scope) -> frozenset[Assignment]:
        """Read-only.

        role-membership: every direct member of each role in scope.privileges (roles that do not
        exist have no members), owned=True when the grantor role granted the membership (on
        PostgreSQL 16, when one of its rows is the grantor role's), owned=False otherwise; the
        grantor role is never reported. ephemeral-account: every role carrying jitpol's marker
        (owned=True), whatever scope.privileges says, with its sorted direct memberships as the
        privilege and its VALID UNTIL as `expires`. credential-checkout: nothing (the ledger
        tracks holders)."""
        check_model(self.name, scope.model, _OPS)
        if scope.model == ROLE_MEMBERSHIP:
            if not scope.privileges:
                return frozenset()
            rows = self._fetch(_OBSERVE_SQL, {
                "roles": sorted(scope.privileges), "grantor": self._grantor, "marker": MARKER_PREFIX})
            return frozenset(
                Assignment(target=self.name, model=scope.model, principal=str(member), privilege=str(role),
                           owned=bool(owned))
                for member, role, owned in rows
            )
        if scope.model == EPHEMERAL:
            return frozenset(
                Assignment(self.name, EPHEMERAL, r.name, canonical_json(sorted(r.member_of)), expires=r.valid_until,
                           owned=True)
                for r in self._roles(()).values()
                if r.marked
            )
        return frozenset()  # credential-checkout

    def apply(self, action: Action, *, check: bool = False) -> Outcome:
        """Make one action true (see the module docstring); check=True sends nothing but reads,
        and lists the statements it would send. Idempotent, except that a rotate is an event:
        it always changes the password (changed=True)."""
        check_apply(self.name, action.assignment.model, action.op, _OPS)
        if action.assignment.model == ROLE_MEMBERSHIP:
            return self._apply_membership(action, check)
        if action.op == "create-account":
            return self._create_account(action, check)
        if action.op == "delete-account":
            return self._delete_account(action, check)
        return self._rotate(action, check)  # credential-checkout

    def close(self) -> None:
        """Close the connection, if any. Safe to call twice; a later call reconnects."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    # -- role-membership --------------------------------------------------------------------

    def _apply_membership(self, action: Action, check: bool) -> Outcome:
        """GRANT (GRANTED BY the grantor role) or REVOKE one direct membership; idempotent. A
        revoke also terminates the principal's sessions (unless terminate_sessions is false, or
        the principal keeps the role through another grantor's row)."""
        from psycopg import sql

        a = action.assignment
        try:
            validate_identifier(a.privilege, "role")
            validate_principal(a.principal)
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {self.name}: {exc}") from None
        if self._grantor in (a.privilege, a.principal):
            raise PermanentTargetError(
                f"target {self.name}: refusing to {action.op} {a.privilege!r} for {a.principal!r}: "
                f"{self._grantor!r} is jitpol's grantor role (setting grantor_role); it is never granted and "
                "never given a membership"
            )

        m = self._inspect(a)
        for name, is_super in ((a.privilege, m.role_super), (a.principal, m.principal_super)):
            if is_super is None:
                raise PermanentTargetError(f'target {self.name}: role "{name}" does not exist')
        if m.role_super or m.principal_super or a.principal == m.current_user:
            # a superuser role as the privilege would hand out superuser through SET ROLE; a
            # superuser (or our own login) as the principal is standing access we must not touch
            raise PermanentTargetError(
                f"target {self.name}: refusing to {action.op} {a.privilege!r} for {a.principal!r}: "
                "jitpol never changes memberships of or in superusers, or of its own login"
            )

        role, principal, grantor = (sql.Identifier(x) for x in (a.privilege, a.principal, self._grantor))
        if action.op == "grant":
            if m.rows:
                # present, whoever granted it: standing access stays as it is, unmarked (jitpol's
                # grant ending must never take it away)
                return Outcome(changed=False, before=True, after=True)
            setup = self._grantor_setup(m, a.privilege)
            statements = [
                *setup, sql.SQL("GRANT {} TO {} GRANTED BY {}").format(role, principal, grantor),
            ] if setup is not None else [
                # this login cannot record the grantor: granted unmarked, as before markers (the
                # ledger alone knows it is jitpol's; docs/targets/postgres.md says how to mark)
                sql.SQL("GRANT {} TO {}").format(role, principal),
            ]
        else:
            if not m.rows:
                return Outcome(changed=False, before=True, after=True)
            if m.ours:
                # jitpol's row, and only it: on PostgreSQL 16 another grantor's standing row survives
                statements = [sql.SQL("REVOKE {} FROM {} GRANTED BY {}").format(role, principal, grantor)]
            else:
                # unmarked, but the ledger says jitpol gave it (granted before markers existed)
                statements = [sql.SQL("REVOKE {} FROM {}").format(role, principal)]
            keeps_it = 0 < m.ours < m.rows  # another grantor's row: the principal stays a member
            if self._terminate_sessions and not keeps_it:
                # REVOKE does not reach into open sessions: one that ran SET ROLE keeps acting as
                # the group role until it disconnects. We cannot see which sessions did, so end
                # all of the principal's (never our own). The timeout makes the call wait until
                # they are really gone, so `after` is true when we return.
                statements.append(_terminate(a.principal))
        conn = self._connection()
        operations = tuple(stmt.as_string(conn) for stmt in statements)
        if action.op == "grant":
            if check:
                self._refuse_privileged(action, [a.privilege])
            else:
                # what is checked is what is granted: the check, the grantor role's setup and the
                # GRANT in one transaction (a failed GRANT leaves no grantor role behind)
                self._send(conn, [_plain(s) for s in statements], transaction=True, secret=False,
                           guard=lambda: self._refuse_privileged(action, [a.privilege]))
        elif not check:
            for stmt in statements:
                self._execute(stmt)
            self._verify_revoked(a, marked=m.ours > 0)
        return Outcome(changed=True, before=False, after=not check, operations=operations)

    def _inspect(self, a: Assignment) -> _Membership:
        row = self._fetch(_INSPECT_SQL, {"role": a.privilege, "principal": a.principal, "grantor": self._grantor})[0]
        (current_user, login_super, role_super, principal_super, rows, ours, g_exists, g_super, g_login, g_comment,
         g_usable, g_admin) = row
        return _Membership(
            current_user=str(current_user), login_super=bool(login_super), role_super=role_super,
            principal_super=principal_super, rows=int(rows), ours=int(ours), grantor_exists=bool(g_exists),
            grantor_super=bool(g_super), grantor_login=bool(g_login), grantor_comment=g_comment,
            grantor_usable=bool(g_usable), grantor_admin=bool(g_admin),
        )

    def _grantor_setup(self, m: _Membership, role: str) -> list[sql.Composed] | None:
        """The statements that must precede `GRANT role TO ... GRANTED BY <grantor>`: create the
        grantor role when a superuser connector finds none, and on PostgreSQL 16 and later give it
        ADMIN OPTION on `role` (without INHERIT or SET: it may hand the role out, never use it).
        None when our login cannot grant as it (not a superuser: before PostgreSQL 16 at all, from 16
        on without the grantor role's privileges): the grant then goes unmarked. Raises
        PermanentTargetError when the grantor role exists but is unfit to mark anything."""
        from psycopg import sql

        g = self._grantor
        why = (
            "it is jitpol's own login" if g == m.current_user
            else "it is a superuser" if m.grantor_super
            else "it can log in (a grantor of record must be NOLOGIN: what a person grants by hand is not jitpol's)"
            if m.grantor_login
            else "it carries jitpol's ephemeral-account marker" if (m.grantor_comment or "").startswith(MARKER_PREFIX)
            else None
        )  # fmt: skip
        if m.grantor_exists and why is not None:
            raise PermanentTargetError(
                f"target {self.name}: the grantor role {g!r} (setting grantor_role) cannot mark jitpol's memberships: "
                f"{why}; choose another name or make it a NOLOGIN role with no other use"
            )
        version = self._connection().info.server_version
        if not m.login_super and (version < _PG16 or not m.grantor_exists or not m.grantor_usable):
            # PostgreSQL 15 and earlier let only a superuser name a grantor; from 16 on the login
            # needs the grantor role's privileges: without them, the grant goes unmarked
            return None
        steps: list[sql.Composed] = []
        ident = sql.Identifier(g)
        if not m.grantor_exists:
            steps.append(sql.SQL("CREATE ROLE {} WITH NOLOGIN NOINHERIT").format(ident))
            steps.append(sql.SQL("COMMENT ON ROLE {} IS {}").format(ident, sql.Literal(GRANTOR_COMMENT)))
        if version >= _PG16 and not m.grantor_admin:
            steps.append(sql.SQL("GRANT {} TO {} WITH ADMIN TRUE, INHERIT FALSE, SET FALSE").format(
                sql.Identifier(role), ident))
        return steps

    def _refuse_privileged(self, action: Action, roles: Sequence[str]) -> None:
        """Raise PermanentTargetError when one of `roles` is, or through memberships reaches, a
        superuser (never handed out) or, unless the action's resource opts in, a privileged role
        (PRIVILEGED_ATTRIBUTES, PRIVILEGED_ROLES). Read-only; names the shortest such path."""
        if not roles:
            return
        nodes: dict[str, tuple[dict[str, bool], tuple[str, ...]]] = {}
        missing = [r for r in roles if r not in self._reach]
        if missing:
            found: dict[str, tuple[dict[str, bool], tuple[str, ...]]] = {}
            for name, su, createrole, replication, bypassrls, parents in self._fetch(_REACH_SQL, {"roles": missing}):
                attrs = {"rolsuper": bool(su), "rolcreaterole": bool(createrole), "rolreplication": bool(replication),
                         "rolbypassrls": bool(bypassrls)}
                found[str(name)] = (attrs, tuple(sorted(str(p) for p in parents or ())))
            for r in missing:
                self._reach[r] = found
        for r in roles:
            nodes.update(self._reach[r])
        a = action.assignment
        for role in roles:
            path = _shortest_path(nodes, role, lambda n: nodes[n][0]["rolsuper"])
            if path is not None:
                raise PermanentTargetError(
                    f"target {self.name}: refusing to give {a.principal!r} the role {role!r}: it reaches the "
                    f"superuser {path[-1]!r} ({' -> '.join(path)}); jitpol never hands out superuser"
                )
            path = _shortest_path(nodes, role, lambda n: n == self._grantor)
            if path is not None:
                # a member of the grantor role may grant as it: every role jitpol manages, marked as jitpol's
                raise PermanentTargetError(
                    f"target {self.name}: refusing to give {a.principal!r} the role {role!r}: it reaches jitpol's "
                    f"grantor role {path[-1]!r} ({' -> '.join(path)}), which may hand out the roles jitpol manages; "
                    "jitpol never hands it out"
                )
            if action.privileged_allowed:
                continue
            path = _shortest_path(nodes, role, lambda n: n in PRIVILEGED_ROLES or any(
                nodes[n][0][attr] for attr in PRIVILEGED_ATTRIBUTES))
            if path is not None:
                last = path[-1]
                why = PRIVILEGED_ROLES.get(last) or next(
                    text for attr, text in PRIVILEGED_ATTRIBUTES.items() if nodes[last][0][attr])
                via = f"it is {last!r}, which" if len(path) == 1 else \
                    f"it reaches {last!r} ({' -> '.join(path)}), which"
                raise PermanentTargetError(
                    f"target {self.name}: refusing to give {a.principal!r} the role {role!r}: {via} {why}; "
                    f"that is root-equivalent. Resource {action.resource or '?'} must say `allowPrivileged: true` "
                    "in its spec to hand it out (and be approved like a superuser)"
                )

    def _verify_revoked(self, a: Assignment, *, marked: bool) -> None:
        # From PostgreSQL 16 a membership granted by another role survives a plain REVOKE (with
        # only a warning). Say so rather than report a revocation that did not happen. Of a
        # marked membership only jitpol's row must be gone: another grantor's is standing access.
        after = self._inspect(a)
        if after.ours if marked else after.rows:
            raise PermanentTargetError(
                f"target {self.name}: {a.principal!r} is still a member of {a.privilege!r} after REVOKE "
                + (f"(still granted by {self._grantor!r})" if marked else "(granted by another role?)")
            )

    # -- ephemeral-account ------------------------------------------------------------------

    def _create_account(self, action: Action, check: bool) -> Outcome:
        from psycopg import sql

        a = action.assignment
        try:
            name = validate_account_name(a.principal)
            wanted = parse_role_list(a.privilege)
            comment = marker(action.detail("grant"), action.detail("person"))
            if action.until is None:
                raise InvalidInput("an ephemeral account needs the end of its window (action.until)")
            until_text = valid_until_text(action.until)
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {self.name}: {exc}") from None
        until = action.until
        password = self._checked_password(action)

        current_user, can_read_passwords = self._session()
        roles = self._roles([name, *wanted])
        self._check_account_roles(name, wanted, roles, current_user)
        existing = roles.get(name)
        if existing is not None and not existing.marked:
            raise PermanentTargetError(
                f"target {self.name}: role {name!r} exists and does not carry jitpol's marker; "
                "jitpol never adopts a role it did not create"
            )
        if existing is not None and existing.superuser:
            raise PermanentTargetError(
                f"target {self.name}: jitpol's account {name!r} has been made a superuser; refusing to touch it"
            )

        ident = sql.Identifier(name)
        until_sql = sql.Literal(until_text)
        secret: sql.Composable | None = None
        already = (
            password is not None
            and existing is not None
            and can_read_passwords
            and password_matches(self._stored_verifier(name), password, name)
        )
        if password is not None and not already:
            secret = sql.SQL("'***'") if check else sql.Literal(self._verifier(name, password))
        steps: list[_Step] = []
        if existing is None:
            def create(password_sql: sql.Composable | None) -> sql.Composed:
                options: list[sql.Composable] = [sql.SQL("LOGIN")]
                if password_sql is not None:
                    options.append(sql.SQL("PASSWORD {}").format(password_sql))
                options.append(sql.SQL("VALID UNTIL {}").format(until_sql))
                if wanted:
                    options.append(sql.SQL("IN ROLE {}").format(sql.SQL(", ").join(map(sql.Identifier, wanted))))
                return sql.SQL("CREATE ROLE {} WITH {}").format(ident, sql.SQL(" ").join(options))

            steps.append(_Step(create(secret), create(None if secret is None else sql.SQL("'***'"))))
            steps.append(_plain(sql.SQL("COMMENT ON ROLE {} IS {}").format(ident, sql.Literal(comment))))
        else:
            if secret is not None:
                steps.append(_Step(
                    sql.SQL("ALTER ROLE {} WITH PASSWORD {}").format(ident, secret),
                    sql.SQL("ALTER ROLE {} WITH PASSWORD {}").format(ident, sql.SQL("'***'")),
                ))  # fmt: skip
            if existing.valid_until != until:
                # the window's end, earlier or later: a window cut short (a schedule, a
                # break-glass deadline, a restriction) ends the account sooner too
                steps.append(_plain(sql.SQL("ALTER ROLE {} VALID UNTIL {}").format(ident, until_sql)))
            for role in wanted:
                if role not in existing.member_of:
                    steps.append(_plain(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role), ident)))
            for role in sorted(existing.member_of - set(wanted)):
                steps.append(_plain(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(role), ident)))
        if not steps:
            return Outcome(changed=False, before=True, after=True)
        operations = self._shown(steps)
        if check:
            self._refuse_privileged(action, wanted)
        else:
            # one transaction: a run that dies half-way must not leave a role without the marker
            # (the next run would refuse to adopt it); the privileged-role check runs in it first
            self._send(self._connection(), steps, transaction=True, secret=secret is not None,
                       guard=lambda: self._refuse_privileged(action, wanted))
            self._verify_account(name, wanted, until)
        return Outcome(changed=True, before=False, after=not check, operations=operations)

    def _check_account_roles(
        self, name: str, wanted: Sequence[str], roles: Mapping[str, _Role], current_user: str
    ) -> None:
        for role in wanted:
            info = roles.get(role)
            if info is None:
                raise PermanentTargetError(f'target {self.name}: role "{role}" does not exist')
            # membership in a superuser role is superuser (SET ROLE); in our own login, our
            # powers; in another ephemeral account, access that account's end takes away
            why = (
                "it is a superuser role" if info.superuser
                else "it is jitpol's own login" if role == current_user
                else "it is the account itself" if role == name
                else "it is another ephemeral account" if info.marked
                else "it is jitpol's grantor role (setting grantor_role)" if role == self._grantor
                else None
            )  # fmt: skip
            if why is not None:
                raise PermanentTargetError(f"target {self.name}: refusing to give {name!r} the role {role!r}: {why}")

    def _verify_account(self, name: str, wanted: Sequence[str], until: datetime) -> None:
        role = self._roles([name]).get(name)
        if role is None or not role.marked:
            raise PermanentTargetError(f"target {self.name}: account {name!r} is missing after creating it")
        if role.member_of != frozenset(wanted):
            # PostgreSQL 16: a membership granted by another role survives a plain REVOKE
            raise PermanentTargetError(
                f"target {self.name}: account {name!r} has roles {sorted(role.member_of)} instead of "
                f"{sorted(wanted)} after apply (granted by another role?)"
            )
        if role.valid_until != until:
            raise PermanentTargetError(f"target {self.name}: account {name!r} did not get its VALID UNTIL")

    def _delete_account(self, action: Action, check: bool) -> Outcome:
        from psycopg import sql

        try:
            name = validate_account_name(action.assignment.principal)
            chosen = action.detail("reassign_to") or self._reassign_to
            if chosen is not None:
                validate_identifier(chosen, "reassign_to")
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {self.name}: {exc}") from None
        current_user, _ = self._session()
        reassign_to = chosen or current_user
        roles = self._roles([name, reassign_to])
        existing = roles.get(name)
        if existing is None:
            return Outcome(changed=False, before=True, after=True)
        if not existing.marked:
            raise PermanentTargetError(
                f"target {self.name}: role {name!r} does not carry jitpol's marker; jitpol does not drop it"
            )
        heir = roles.get(reassign_to)
        if heir is None:
            raise PermanentTargetError(f'target {self.name}: reassign_to role "{reassign_to}" does not exist')
        if heir.marked:
            raise PermanentTargetError(
                f"target {self.name}: reassign_to {reassign_to!r} is an ephemeral account; what it inherits "
                "would be dropped with it"
            )
        ident = sql.Identifier(name)
        steps: list[_Step] = []
        if existing.login:
            # no new session may start between the termination and the drop (it could create
            # objects after REASSIGN OWNED, and DROP ROLE would then fail)
            steps.append(_plain(sql.SQL("ALTER ROLE {} NOLOGIN").format(ident)))
        steps.append(_termination(name))
        for database in self._databases():
            for text in ("REASSIGN OWNED BY {} TO {}", "DROP OWNED BY {}"):
                stmt = sql.SQL(text).format(ident, sql.Identifier(reassign_to))
                steps.append(_Step(stmt, stmt, database))
        steps.append(_plain(sql.SQL("DROP ROLE {}").format(ident)))
        operations = self._shown(steps)
        if not check:
            self._run_steps(steps)
            if name in self._roles([name]):
                raise PermanentTargetError(f"target {self.name}: role {name!r} still exists after DROP ROLE")
        return Outcome(changed=True, before=False, after=not check, operations=operations)

    # -- credential-checkout ----------------------------------------------------------------

    def _rotate(self, action: Action, check: bool) -> Outcome:
        from psycopg import sql

        a = action.assignment
        try:
            validate_principal(a.principal)
            holders = json.loads(a.privilege)
            if not isinstance(holders, list):
                raise ValueError
        except ValueError:  # InvalidInput is not a ValueError: both are caught apart
            raise PermanentTargetError(
                f"target {self.name}: the privilege of a credential checkout must be a JSON list of holders"
            ) from None
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {self.name}: {exc}") from None
        name = a.principal
        password = self._checked_password(action)
        if password is None:
            # a rotation without a new secret would leave the old holder's password working
            raise PermanentTargetError(f"target {self.name}: rotate of {name!r} needs a password detail")
        until_text: str | None = None
        if holders and action.until is not None:
            # the checked-out password stops working at the end of the checkout even if no run
            # happens; a rotation to nobody leaves VALID UNTIL alone (nobody knows the secret)
            try:
                until_text = valid_until_text(action.until)
            except InvalidInput as exc:
                raise PermanentTargetError(f"target {self.name}: {exc}") from None

        current_user, _ = self._session()
        role = self._roles([name]).get(name)
        if role is None:
            raise PermanentTargetError(f'target {self.name}: role "{name}" does not exist')
        if role.superuser or role.marked or name in (current_user, self._grantor):
            raise PermanentTargetError(
                f"target {self.name}: refusing to rotate {name!r}: jitpol never checks out superusers, "
                "its own login, its grantor role or its ephemeral accounts"
            )
        ident = sql.Identifier(name)

        def alter(password_sql: sql.Composable) -> sql.Composed:
            stmt = sql.SQL("ALTER ROLE {} WITH PASSWORD {}").format(ident, password_sql)
            if until_text is not None:
                stmt = sql.SQL("{} VALID UNTIL {}").format(stmt, sql.Literal(until_text))
            return stmt

        shown = alter(sql.SQL("'***'"))
        # ALTER first, then terminate: a holder who reconnects in between has the old password only
        steps = [
            _Step(shown if check else alter(sql.Literal(self._verifier(name, password))), shown),
            _termination(name),
        ]
        operations = self._shown(steps)
        if not check:
            self._send(self._connection(), steps[:1], transaction=False, secret=True)
            self._run_steps(steps[1:])
        # a rotation is an event, never "already true"
        return Outcome(changed=True, before=False, after=not check, operations=operations)

    # -- shared by the account models -------------------------------------------------------

    def _checked_password(self, action: Action) -> str | None:
        """The password detail; None when there is none. Raises PermanentTargetError for one
        libpq would cut short."""
        password = action.detail("password")
        if not password:
            return None
        if "\x00" in password:  # libpq takes C strings: the password would be cut short silently
            raise PermanentTargetError(f"target {self.name}: the password detail contains a NUL character")
        return password

    def _verifier(self, role: str, password: str) -> str:
        """The password hashed here by libpq (the server's password_encryption), so that the plain
        text never reaches the server, its log or pg_stat_activity."""
        import psycopg

        conn = self._connection()
        try:
            return conn.pgconn.encrypt_password(password.encode(), role.encode(), None).decode("ascii")
        except psycopg.Error:
            raise PermanentTargetError(f"target {self.name}: could not encrypt the password for {role!r}") from None

    def _stored_verifier(self, role: str) -> str | None:
        rows = self._fetch(_STORED_VERIFIER_SQL, (role,))
        return str(rows[0][0]) if rows and rows[0][0] is not None else None

    def _session(self) -> tuple[str, bool]:
        """(our login role, whether we may read pg_authid, i.e. stored password verifiers)."""
        current_user, can_read = self._fetch(_SESSION_SQL, None)[0]
        return str(current_user), bool(can_read)

    def _roles(self, names: Sequence[str]) -> dict[str, _Role]:
        """The roles named (those that exist), and every role carrying jitpol's marker."""
        rows = self._fetch(_ROLES_SQL, {"names": list(names), "marker": MARKER_PREFIX})
        return {
            str(n): _Role(str(n), bool(su), bool(login), comment, until, frozenset(member_of or ()))
            for n, su, login, comment, until, member_of in rows
        }

    def _databases(self) -> list[str]:
        return [str(row[0]) for row in self._fetch(_DATABASES_SQL, None)]

    def _shown(self, steps: Sequence[_Step]) -> tuple[str, ...]:
        conn = self._connection()
        out = []
        for step in steps:
            text = step.shown.as_string(conn)
            if step.database is not None:
                text = f"/* database {_database_label(step.database)} */ {text}"
            out.append(text)
        return tuple(out)

    def _run_steps(self, steps: Sequence[_Step]) -> None:
        """Send steps in order, each in its own transaction on the connector's connection but
        those for another database: one transaction per database, on a connection of its own.
        After a termination, check that the role has no session left."""
        conn = self._connection()
        i = 0
        while i < len(steps):
            database = steps[i].database
            j = i
            while j < len(steps) and steps[j].database == database:
                j += 1
            group = steps[i:j]
            if database is None:
                for step in group:
                    self._send(conn, [step], transaction=False, secret=False)
                    if step.ends_sessions_of is not None:
                        self._check_sessions_ended(step.ends_sessions_of)
            elif database == conn.info.dbname:
                self._send(conn, group, transaction=True, secret=False)
            else:
                other = self._open(database)
                try:
                    self._send(other, group, transaction=True, secret=False)
                finally:
                    other.close()
            i = j

    def _check_sessions_ended(self, role: str) -> None:
        left = int(self._fetch(_SESSIONS_LEFT_SQL, (role,))[0][0])
        if left:
            raise TargetUnavailable(
                f"target {self.name}: {left} session(s) of {role!r} did not end within "
                f"{SESSION_WAIT_MS // 1000} s; the next run tries again"
            )

    # -- internals --------------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        self._conn = self._open(None)
        return self._conn

    def _open(self, database: str | None) -> psycopg.Connection[Any]:
        """A new autocommit connection with the DSN, to `database` instead of the DSN's own when
        given."""
        import psycopg
        from psycopg.conninfo import make_conninfo

        dsn = self._env.get(self._dsn_env)
        if not dsn:
            raise PermanentTargetError(
                f"target {self.name}: environment variable {self._dsn_env} (dsn_env) is not set"
            )
        where = "" if database is None else f" database {_database_label(database)}"
        try:
            conninfo = dsn if database is None else make_conninfo(dsn, dbname=database)
            return psycopg.connect(
                conninfo, autocommit=True, connect_timeout=self._connect_timeout, application_name="jitpol"
            )
        except psycopg.OperationalError as exc:
            reason = _redact(str(exc), dsn)
            raise TargetUnavailable(f"target {self.name}: cannot connect to PostgreSQL{where}: {reason}") from None
        except psycopg.Error:
            # libpq's parse errors quote the DSN itself (password included): say nothing of it
            raise PermanentTargetError(
                f"target {self.name}: the DSN in {self._dsn_env} is not a valid libpq connection string"
            ) from None

    def _fetch(self, query: str, params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        conn = self._connection()
        try:
            with conn.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall()
        except psycopg.Error as exc:
            self._fail(exc)

    def _execute(self, stmt: sql.Composed) -> None:
        import psycopg

        conn = self._connection()
        try:
            conn.execute(stmt)
        except psycopg.Error as exc:
            self._fail(exc)

    def _send(self, conn: psycopg.Connection[Any], steps: Sequence[_Step], *, transaction: bool, secret: bool,
              guard: Callable[[], None] | None = None) -> None:
        """Execute the steps' statements on `conn`, in one transaction when asked. When a
        statement carries a secret (a password verifier), an error is raised outside the
        handler, without the driver's exception (whose text may quote the statement). `guard`
        (with transaction only; `conn` must be the connector's own connection) runs first inside
        the transaction; what it raises rolls the transaction back."""
        import psycopg

        failure: TargetError | None = None
        try:
            if transaction:
                with conn.transaction():
                    if guard is not None:
                        guard()
                    for step in steps:
                        conn.execute(step.sent)
            else:
                for step in steps:
                    conn.execute(step.sent)
        except psycopg.Error as exc:
            if not secret:
                self._fail(exc, conn)
            failure = self._error(exc, conn)
        if failure is not None:
            raise failure

    def _error(self, exc: psycopg.Error, conn: psycopg.Connection[Any] | None = None) -> TargetError:
        import psycopg

        conn = self._conn if conn is None else conn
        if isinstance(exc, psycopg.OperationalError) and (conn is None or conn.broken):
            if conn is self._conn:
                self.close()  # reconnect on the next call
            return TargetUnavailable(f"target {self.name}: connection to PostgreSQL lost")
        detail = exc.diag.message_primary or type(exc).__name__
        if isinstance(exc, psycopg.OperationalError):  # lock or statement timeout, shutting down...
            return TargetUnavailable(f"target {self.name}: PostgreSQL: {detail}")
        return PermanentTargetError(f"target {self.name}: PostgreSQL refused: {detail}")

    def _fail(self, exc: psycopg.Error, conn: psycopg.Connection[Any] | None = None) -> NoReturn:
        error = self._error(exc, conn)
        if "connection to PostgreSQL lost" in str(error):
            raise error from None
        raise error from exc


def _shortest_path(
    parents: Mapping[str, tuple[Mapping[str, bool], tuple[str, ...]]], start: str, wanted: Callable[[str], bool]
) -> list[str] | None:
    """The shortest chain start -> ... -> role of memberships (breadth first over `parents`,
    role -> (attributes, the roles it is a direct member of)) ending in a role `wanted` accepts
    (start itself included), or None."""
    if start not in parents:
        return None
    seen = {start}
    queue: deque[list[str]] = deque([[start]])
    while queue:
        path = queue.popleft()
        if wanted(path[-1]):
            return path
        for parent in parents[path[-1]][1]:
            if parent in parents and parent not in seen:
                seen.add(parent)
                queue.append([*path, parent])
    return None


def _plain(stmt: sql.Composed) -> _Step:
    return _Step(stmt, stmt)


def _termination(role: str) -> _Step:
    stmt = _terminate(role)
    return _Step(stmt, stmt, ends_sessions_of=role)


def _terminate(role: str) -> sql.Composed:
    """End every session of `role` but our own, waiting up to SESSION_WAIT_MS for each."""
    from psycopg import sql

    return sql.SQL(
        "SELECT pg_catalog.pg_terminate_backend(pid, {}) FROM pg_catalog.pg_stat_activity "
        "WHERE usename = {} AND pid <> pg_catalog.pg_backend_pid()"
    ).format(sql.Literal(SESSION_WAIT_MS), sql.Literal(role))


def _redact(text: str, dsn: str) -> str:
    """`text` without the DSN or its password, on one line."""
    import psycopg
    from psycopg import conninfo

    secrets = [dsn]
    try:
        password = conninfo.conninfo_to_dict(dsn).get("password")
    except psycopg.Error:  # unparsable: there is no password to find beyond the DSN itself
        password = None
    if password:
        secrets.append(str(password))
    return redacted(text, secrets)
