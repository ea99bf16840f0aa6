"""PostgreSQL connector: the `role-membership` model (a person's login role is made a direct
member of group roles, and removed again).

Settings (the target's entry in jitpol.yaml):
    dsn_env             required; NAME of the environment variable that holds the libpq DSN
    terminate_sessions  optional bool, default true: end the principal's sessions on revoke
    connect_timeout     optional int seconds, default 10

Safety: every role name is checked against an allowlist (validate_identifier) before any SQL
is built, statements are composed with psycopg.sql.Identifier only, and superusers are never
granted to, revoked from or handed out. The DSN and its password never appear in errors.

psycopg is imported lazily, so the policy validator can import validate_identifier on a machine
without it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from jitpol.errors import InvalidInput, PermanentTargetError, TargetUnavailable
from jitpol.model.assignment import Action, Assignment, Capabilities, Outcome, Scope

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

MODEL = "role-membership"

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_.@-]*")
# NAMEDATALEN - 1: PostgreSQL silently truncates longer names, so "alice_<64 bytes>" would
# quietly become some other role. Refuse instead.
_MAX_IDENTIFIER_BYTES = 63
# never handed to a person: the bootstrap superuser's usual name and the PUBLIC pseudo-role
_RESERVED_PRINCIPALS = frozenset({"postgres", "public"})
_SYSTEM_PREFIX = "pg_"  # predefined roles (pg_signal_backend, pg_read_all_data, ...)

_OBSERVE_SQL = """
SELECT member.rolname, grp.rolname
FROM pg_catalog.pg_auth_members AS m
JOIN pg_catalog.pg_roles AS grp ON grp.oid = m.roleid
JOIN pg_catalog.pg_roles AS member ON member.oid = m.member
WHERE grp.rolname = ANY(%s)
"""

# one round trip for everything apply() must know before it decides
_INSPECT_SQL = """
SELECT current_user,
       (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = %(role)s),
       (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = %(principal)s),
       EXISTS (SELECT 1
               FROM pg_catalog.pg_auth_members AS m
               JOIN pg_catalog.pg_roles AS grp ON grp.oid = m.roleid
               JOIN pg_catalog.pg_roles AS member ON member.oid = m.member
               WHERE grp.rolname = %(role)s AND member.rolname = %(principal)s)
"""


def validate_identifier(name: str, what: str) -> None:
    """Raise InvalidInput unless `name` may be sent to PostgreSQL as a role name.

    Allowed: `^[A-Za-z_][A-Za-z0-9_.@-]*$`, at most 63 bytes of UTF-8 (longer names would be
    truncated silently by the server), and not `public` (a pseudo-role). `what` names the thing
    in the message, e.g. "role" or "principal". Needs no database and no psycopg.
    """
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise InvalidInput(
            f"{what} {_shown(name)} is not an allowed PostgreSQL role name "
            "(letters, digits and _ . @ -, not starting with a digit, . @ or -)"
        )
    if len(name.encode("utf-8")) > _MAX_IDENTIFIER_BYTES:
        raise InvalidInput(
            f"{what} {_shown(name)} is longer than {_MAX_IDENTIFIER_BYTES} bytes; "
            "PostgreSQL would truncate it silently"
        )
    if name.lower() == "public":
        raise InvalidInput(f"{what} {_shown(name)} is reserved by PostgreSQL")


def validate_principal(name: str) -> None:
    """validate_identifier plus the rules for the role that receives a membership: never a
    predefined `pg_*` role, `postgres` or `public`. Raises InvalidInput."""
    validate_identifier(name, "principal")
    if name.lower().startswith(_SYSTEM_PREFIX) or name.lower() in _RESERVED_PRINCIPALS:
        raise InvalidInput(
            f"principal {_shown(name)} is a reserved PostgreSQL role; jitpol never grants to it"
        )


def check_name(value: object, what: str) -> None:
    """The policy loader's hook (registry.NAME_CHECKS): `what` is "principal" for a person's
    account, anything else (e.g. "privilege") for a role named in a resource's grants. Raises
    InvalidInput."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a PostgreSQL role name (a string), not {type(value).__name__}")
    if what == "principal":
        validate_principal(value)
    else:
        validate_identifier(value, "role")


def _shown(name: object) -> str:
    # repr escapes quotes and control characters; cut so a hostile name cannot flood a log
    text = repr(name)
    return text if len(text) <= 80 else text[:77] + "..."


class PostgresConnector:
    """Connector for one PostgreSQL cluster (see the module docstring for settings).

    observe() reads direct memberships from pg_auth_members; apply() GRANTs/REVOKEs one
    membership and, on revoke, ends the principal's sessions. One autocommit connection is
    opened on first use and reused. Errors: TargetUnavailable when the server cannot be
    reached (or the connection drops), PermanentTargetError for everything else.
    """

    type: ClassVar[str] = "postgres"
    capabilities: ClassVar[Capabilities] = Capabilities(
        models=frozenset({MODEL}), native_expiry=frozenset(), ends_sessions=True
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
        self._dsn_env = dsn_env
        self._terminate_sessions = terminate
        self._connect_timeout = timeout
        self._env = env  # read at connect time only: the DSN is never kept on this object
        self._conn: psycopg.Connection[Any] | None = None

    # -- Connector protocol -----------------------------------------------------------------

    def observe(self, scope: Scope) -> frozenset[Assignment]:
        """Every direct member of each role in scope.privileges. Roles that do not exist have
        no members. Read-only."""
        self._check_model(scope.model)
        if not scope.privileges:
            return frozenset()
        rows = self._fetch(_OBSERVE_SQL, (sorted(scope.privileges),))
        return frozenset(
            Assignment(target=self.name, model=scope.model, principal=str(member), privilege=str(role))
            for member, role in rows
        )

    def apply(self, action: Action, *, check: bool = False) -> Outcome:
        """GRANT or REVOKE one direct membership; idempotent. A revoke also terminates the
        principal's sessions (unless terminate_sessions is false). check=True sends nothing
        but reads, and lists the statements it would send."""
        from psycopg import sql

        a = action.assignment
        self._check_model(a.model)
        if action.op not in ("grant", "revoke"):
            raise PermanentTargetError(
                f"target {self.name}: operation {action.op!r} is not supported by the postgres "
                f"{MODEL} connector"
            )
        try:
            validate_identifier(a.privilege, "role")
            validate_principal(a.principal)
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {self.name}: {exc}") from None

        current_user, role_super, principal_super, member = self._fetch(
            _INSPECT_SQL, {"role": a.privilege, "principal": a.principal}
        )[0]
        for name, is_super in ((a.privilege, role_super), (a.principal, principal_super)):
            if is_super is None:
                raise PermanentTargetError(f'target {self.name}: role "{name}" does not exist')
        if role_super or principal_super or a.principal == current_user:
            # a superuser role as the privilege would hand out superuser through SET ROLE; a
            # superuser (or our own login) as the principal is standing access we must not touch
            raise PermanentTargetError(
                f"target {self.name}: refusing to {action.op} {a.privilege!r} for {a.principal!r}: "
                "jitpol never changes memberships of or in superusers, or of its own login"
            )

        if action.op == "grant":
            if member:
                return Outcome(changed=False, before=True, after=True)
            statements = [
                sql.SQL("GRANT {} TO {}").format(sql.Identifier(a.privilege), sql.Identifier(a.principal))
            ]
        else:
            if not member:
                return Outcome(changed=False, before=True, after=True)
            statements = [
                sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(a.privilege), sql.Identifier(a.principal))
            ]
            if self._terminate_sessions:
                # REVOKE does not reach into open sessions: one that ran SET ROLE keeps acting as
                # the group role until it disconnects. We cannot see which sessions did, so end
                # all of the principal's (never our own). The timeout makes the call wait until
                # they are really gone, so `after` is true when we return.
                statements.append(
                    sql.SQL(
                        "SELECT pg_catalog.pg_terminate_backend(pid, 5000) FROM pg_catalog.pg_stat_activity "
                        "WHERE usename = {} AND pid <> pg_catalog.pg_backend_pid()"
                    ).format(sql.Literal(a.principal))
                )
        conn = self._connection()
        operations = tuple(stmt.as_string(conn) for stmt in statements)
        if not check:
            for stmt in statements:
                self._execute(stmt)
            if action.op == "revoke":
                self._verify_revoked(a)
        return Outcome(changed=True, before=False, after=not check, operations=operations)

    def close(self) -> None:
        """Close the connection, if any. Safe to call twice; a later call reconnects."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    # -- internals --------------------------------------------------------------------------

    def _check_model(self, model: str) -> None:
        if model != MODEL:
            raise PermanentTargetError(f"target {self.name}: model {model!r} is not supported (only {MODEL})")

    def _verify_revoked(self, a: Assignment) -> None:
        # From PostgreSQL 16 a membership granted by another role survives a plain REVOKE (with
        # only a warning). Say so rather than report a revocation that did not happen.
        still = self._fetch(_INSPECT_SQL, {"role": a.privilege, "principal": a.principal})[0][3]
        if still:
            raise PermanentTargetError(
                f"target {self.name}: {a.principal!r} is still a member of {a.privilege!r} after REVOKE "
                "(granted by another role?)"
            )

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        import psycopg

        dsn = self._env.get(self._dsn_env)
        if not dsn:
            raise PermanentTargetError(
                f"target {self.name}: environment variable {self._dsn_env} (dsn_env) is not set"
            )
        try:
            self._conn = psycopg.connect(
                dsn, autocommit=True, connect_timeout=self._connect_timeout, application_name="jitpol"
            )
        except psycopg.OperationalError as exc:
            reason = _redact(str(exc), dsn)
            raise TargetUnavailable(f"target {self.name}: cannot connect to PostgreSQL: {reason}") from None
        except psycopg.Error:
            # libpq's parse errors quote the DSN itself (password included): say nothing of it
            raise PermanentTargetError(
                f"target {self.name}: the DSN in {self._dsn_env} is not a valid libpq connection string"
            ) from None
        return self._conn

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

    def _fail(self, exc: psycopg.Error) -> NoReturn:
        import psycopg

        if isinstance(exc, psycopg.OperationalError) and (self._conn is None or self._conn.broken):
            self.close()  # reconnect on the next call
            raise TargetUnavailable(f"target {self.name}: connection to PostgreSQL lost") from None
        detail = exc.diag.message_primary or type(exc).__name__
        if isinstance(exc, psycopg.OperationalError):  # lock or statement timeout, shutting down...
            raise TargetUnavailable(f"target {self.name}: PostgreSQL: {detail}") from exc
        raise PermanentTargetError(f"target {self.name}: PostgreSQL refused: {detail}") from exc


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
    for secret in secrets:
        text = text.replace(secret, "***")
    return " ".join(text.split())
