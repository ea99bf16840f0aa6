"""The PostgreSQL session every model works through: the target's settings, the autocommit
connection (psycopg imported lazily; the DSN and its password never in errors), statements sent
alone or in one transaction with errors mapped to TargetUnavailable / PermanentTargetError, the
catalog reads the models share (our login, roles and their marker, databases, sessions left) and
the password helpers (the password detail, verifiers hashed by libpq)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

from jitpol.connectors.kit import password_detail, redacted
from jitpol.connectors.postgres.names import GRANTOR_ROLE, MARKER_PREFIX, validate_identifier, validate_principal
from jitpol.connectors.postgres.statements import SESSION_WAIT_MS, _database_label, _Step
from jitpol.errors import InvalidInput, PermanentTargetError, TargetError, TargetUnavailable
from jitpol.model.assignment import Action

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

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
_SESSION_SQL = "SELECT current_user::text, pg_catalog.has_table_privilege('pg_catalog.pg_authid', 'SELECT')"
_STORED_VERIFIER_SQL = "SELECT rolpassword FROM pg_catalog.pg_authid WHERE rolname = %s"
_DATABASES_SQL = "SELECT datname::text FROM pg_catalog.pg_database WHERE datallowconn ORDER BY datname"
_SESSIONS_LEFT_SQL = (
    "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE usename = %s AND pid <> pg_catalog.pg_backend_pid()"
)


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


class PostgresSession:
    """The settings, connection, reads and writes of one PostgreSQL target (the base of
    PostgresConnector; the model mixins build on it)."""

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

    def close(self) -> None:
        """Close the connection, if any. Safe to call twice; a later call reconnects."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    # -- shared by the account models -------------------------------------------------------

    def _checked_password(self, action: Action) -> str | None:
        return password_detail(self.name, action)

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
