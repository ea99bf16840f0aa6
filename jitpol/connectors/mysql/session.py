"""The MySQL / MariaDB session every model works through: the target's settings, the DSN
(`mysql://user:password@host:port/`, read from the environment at connect time only), the
autocommit connection (PyMySQL imported lazily; the DSN and its password never in errors),
statements as values (_Step: sent, and shown with secrets as '***'), errors mapped to
TargetUnavailable / PermanentTargetError, the server's flavour and limits, the reads the models
share (accounts, roles, memberships, default roles, jitpol's events), ending an account's
sessions (KILL) and the end-of-window events."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import unquote, urlsplit

from jitpol.connectors.kit import REDACTED, ceil_second, password_detail, redacted, shown
from jitpol.connectors.mysql.names import (
    DEFAULT_EVENT_SCHEMA,
    EVENT_COMMENT_PREFIX,
    MAX_USER_MARIADB,
    MAX_USER_MYSQL,
    native_password_hash,
    validate_host,
    validate_schema,
)
from jitpol.errors import InvalidInput, PermanentTargetError, TargetError, TargetUnavailable
from jitpol.model.assignment import Action

if TYPE_CHECKING:
    import pymysql

SECRET = f"'{REDACTED}'"  # how a secret literal is shown
# how long the connector waits for KILLed connections to be gone from the process list
SESSION_WAIT_S = 5.0
# server error codes that mean "try again on the next run": lock wait timeout, deadlock, server
# shutting down, too many connections, lost connection, server gone away, cannot connect
_TEMPORARY_CODES = frozenset({1205, 1213, 1053, 1040, 2003, 2006, 2013, 2055})
_DEFAULT_PORT = 3306


@dataclass(frozen=True, slots=True)
class _Step:
    """One statement: what is sent, and how Outcome.operations shows it (secrets as '***')."""

    sent: str
    shown: str
    secrets: tuple[str, ...] = ()  # cut out of any error the statement causes
    kills: str | None = None  # not a statement: KILL every connection of this user name, and wait


def _plain(stmt: str) -> _Step:
    return _Step(stmt, stmt)


@dataclass(frozen=True, slots=True)
class _Event:
    name: str
    comment: str
    execute_at: datetime | None  # UTC
    enabled: bool


@dataclass(frozen=True, slots=True)
class _Account:
    user: str
    host: str
    is_role: bool
    locked: bool
    superuser: bool  # SUPER (or ALL) on *.*: never touched
    plugin: str
    auth: str  # the stored password hash (mysql_native_password: '*' + 40 hex digits)


def ident(name: str) -> str:
    """A schema or event name (allow-listed by the caller) quoted as an identifier."""
    return "`" + name.replace("`", "``") + "`"


def until_text(until: datetime) -> str:
    """`until` in UTC as the literal an event's `AT` takes (the session's time zone is UTC),
    rounded up to the second. Raises InvalidInput for a naive datetime."""
    if until.tzinfo is None or until.utcoffset() is None:
        raise InvalidInput("the end of a window must carry a time zone")
    return ceil_second(until).strftime("%Y-%m-%d %H:%M:%S")


class MysqlSession:
    """The settings, connection, reads and writes of one MySQL or MariaDB target (the base of
    MysqlConnector; the model mixins build on it)."""

    def __init__(self, name: str, settings: Mapping[str, Any], env: Mapping[str, str]) -> None:
        self.name = name
        dsn_env = settings.get("dsn_env")
        if not isinstance(dsn_env, str) or not dsn_env:
            raise PermanentTargetError(f"target {name}: setting dsn_env (an environment variable name) is required")
        terminate = settings.get("terminate_sessions", True)
        if not isinstance(terminate, bool):
            raise PermanentTargetError(f"target {name}: setting terminate_sessions must be true or false")
        require_scheduler = settings.get("require_event_scheduler", True)
        if not isinstance(require_scheduler, bool):
            raise PermanentTargetError(f"target {name}: setting require_event_scheduler must be true or false")
        timeout = settings.get("connect_timeout", 10)
        if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0:
            raise PermanentTargetError(f"target {name}: setting connect_timeout must be a positive integer")
        try:
            self._event_schema = validate_schema(settings.get("event_schema", DEFAULT_EVENT_SCHEMA))
            self._account_host = validate_host(settings.get("account_host", "%"), "account_host")
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {name}: setting {exc}") from None
        self._dsn_env = dsn_env
        self._terminate_sessions = terminate
        self._require_scheduler = require_scheduler
        self._connect_timeout = timeout
        self._env = env  # read at connect time only: the DSN is never kept on this object
        self._conn: pymysql.connections.Connection[Any] | None = None
        self._mariadb: bool | None = None
        self._me: tuple[str, str] | None = None  # CURRENT_USER() of the connection
        # privileged.py: every role's (SUPER, root-equivalent reasons) and the roles granted to roles
        self._graph: tuple[dict[str, tuple[bool, list[str]]], dict[str, list[str]]] | None = None

    def close(self) -> None:
        """Close the connection, if any. Safe to call twice; a later call reconnects."""
        conn, self._conn = self._conn, None
        if conn is not None:
            import pymysql

            with contextlib.suppress(pymysql.err.Error, OSError):  # already closed or broken
                conn.close()

    # -- the server -------------------------------------------------------------------------

    @property
    def mariadb(self) -> bool:
        """True for MariaDB, False for MySQL (read from VERSION() once per connection)."""
        if self._mariadb is None:
            version = str(self._fetch("SELECT VERSION()", None)[0][0])
            self._mariadb = "mariadb" in version.lower()
        return self._mariadb

    @property
    def user_limit(self) -> int:
        """The longest user or role name this server stores (MariaDB 80, MySQL 32)."""
        return MAX_USER_MARIADB if self.mariadb else MAX_USER_MYSQL

    def _check_lengths(self, *names: str) -> None:
        """PermanentTargetError for a user or role name longer than this server stores (MySQL: 32
        characters; `validate` checked MariaDB's 80 already)."""
        for name in names:
            if len(name) > self.user_limit:
                raise PermanentTargetError(
                    f"target {self.name}: {name!r} is longer than {self.user_limit} characters, this server's "
                    "limit for user and role names")

    def _current_account(self) -> tuple[str, str]:
        """(user, host) of the account this connection authenticated as (read once per connection)."""
        if self._me is None or self._conn is None or not self._conn.open:
            text = str(self._fetch("SELECT CURRENT_USER()", None)[0][0])
            user, _, host = text.rpartition("@")
            self._me = (user, host)
        return self._me

    def _lit(self, value: str) -> str:
        """`value` as a string literal, quoted by the driver (which follows the server's
        NO_BACKSLASH_ESCAPES mode)."""
        return str(self._connection().escape(value))

    def _account_sql(self, user: str, host: str) -> str:
        return f"{self._lit(user)}@{self._lit(host)}"

    def _role_sql(self, role: str) -> str:
        # MariaDB names a role by its name alone; MySQL 8 by the account 'role'@'%'
        return self._lit(role) if self.mariadb else self._account_sql(role, "%")

    # -- reads the models share -------------------------------------------------------------

    def _account(self, user: str, host: str) -> _Account | None:
        """The account (or role) `user`@`host`, None when there is none."""
        if self.mariadb:
            rows = self._fetch(
                "SELECT User, Host, is_role = 'Y', "
                "COALESCE(JSON_VALUE(p.Priv, '$.account_locked'), 'false') IN ('1', 'true'), "
                "Super_priv = 'Y', plugin, authentication_string "
                "FROM mysql.user AS u JOIN mysql.global_priv AS p USING (User, Host) WHERE User = %s AND Host = %s",
                (user, host))
        else:
            rows = self._fetch(
                "SELECT User, Host, FALSE, account_locked = 'Y', Super_priv = 'Y', plugin, authentication_string "
                "FROM mysql.user WHERE User = %s AND Host = %s", (user, host))
        if not rows:
            return None
        u, h, is_role, locked, superuser, plugin, auth = rows[0]
        return _Account(str(u), str(h), bool(is_role), bool(locked), bool(superuser), str(plugin or ""),
                        str(auth or ""))

    def _role_exists(self, role: str) -> bool:
        if self.mariadb:
            return bool(self._fetch("SELECT 1 FROM mysql.user WHERE User = %s AND is_role = 'Y'", (role,)))
        return bool(self._fetch("SELECT 1 FROM mysql.user WHERE User = %s AND Host = '%%'", (role,)))

    def _membership_state(self, user: str, host: str, role: str) -> tuple[bool, _Account | None, bool, set[str]]:
        """(the role exists, the account `user`@`host`, it holds the role directly, its default
        roles), in one round trip on MariaDB."""
        if not self.mariadb:
            return (self._role_exists(role), self._account(user, host), role in self._roles_of(user, host),
                    self._default_roles(user, host))
        row = self._fetch(
            "SELECT EXISTS (SELECT 1 FROM mysql.user WHERE User = %(role)s AND is_role = 'Y'), "
            "EXISTS (SELECT 1 FROM mysql.roles_mapping WHERE User = %(user)s AND Host = %(host)s AND Role = %(role)s), "
            "u.User IS NOT NULL, u.is_role = 'Y', u.Super_priv = 'Y', u.default_role "
            "FROM (SELECT 1) AS one LEFT JOIN mysql.user AS u ON u.User = %(user)s AND u.Host = %(host)s",
            {"role": role, "user": user, "host": host})[0]
        role_exists, held, found, is_role, superuser, default = row
        # lock state, plugin and hash are not needed to change a membership
        account = _Account(user, host, bool(is_role), False, bool(superuser), "", "") if found else None
        return bool(role_exists), account, bool(held), {str(default)} if default else set()

    def _roles_of(self, user: str, host: str) -> set[str]:
        """The roles granted directly to `user`@`host`."""
        if self.mariadb:
            rows = self._fetch("SELECT Role FROM mysql.roles_mapping WHERE User = %s AND Host = %s", (user, host))
        else:
            rows = self._fetch("SELECT FROM_USER FROM mysql.role_edges WHERE TO_USER = %s AND TO_HOST = %s",
                               (user, host))
        return {str(r[0]) for r in rows}

    def _default_roles(self, user: str, host: str) -> set[str]:
        """The default roles of `user`@`host` (MariaDB has at most one)."""
        if self.mariadb:
            rows = self._fetch("SELECT default_role FROM mysql.user WHERE User = %s AND Host = %s", (user, host))
            return {str(r[0]) for r in rows if r[0]}
        rows = self._fetch("SELECT DEFAULT_ROLE_USER FROM mysql.default_roles WHERE USER = %s AND HOST = %s",
                           (user, host))
        return {str(r[0]) for r in rows}

    def _events(self, prefix: str) -> dict[str, _Event]:
        """jitpol's events in the event schema whose names start with `prefix` and whose comment
        is jitpol's marker."""
        rows = self._fetch(
            # LEFT(...) = prefix, not LIKE: no wildcard or escape rules (NO_BACKSLASH_ESCAPES) to get right
            "SELECT EVENT_NAME, EVENT_COMMENT, EXECUTE_AT, TIME_ZONE, STATUS FROM information_schema.EVENTS "
            "WHERE EVENT_SCHEMA = %s AND LEFT(EVENT_NAME, %s) = %s AND LEFT(EVENT_COMMENT, %s) = %s",
            (self._event_schema, len(prefix), prefix, len(EVENT_COMMENT_PREFIX), EVENT_COMMENT_PREFIX))
        events = {}
        for name, comment, execute_at, zone, status in rows:
            at = _utc(execute_at, str(zone)) if execute_at is not None else None
            events[str(name)] = _Event(str(name), str(comment), at, str(status) == "ENABLED")
        return events

    def _event_scheduler_on(self) -> bool:
        return str(self._fetch("SELECT @@GLOBAL.event_scheduler", None)[0][0]).upper() in ("ON", "1")

    def _require_event_scheduler(self) -> None:
        """PermanentTargetError when the server's event scheduler is not ON (the server would
        not end accounts by itself), unless the setting require_event_scheduler is false."""
        if self._require_scheduler and not self._event_scheduler_on():
            raise PermanentTargetError(
                f"target {self.name}: the server's event scheduler is not ON, so it would not end jitpol's accounts "
                "by itself at the end of their windows; turn it on (SET GLOBAL event_scheduler = ON, and "
                "event_scheduler = ON in the server's configuration), or set require_event_scheduler: false on "
                "the target to rely on jitpol's runs alone"
            )

    def _event_steps(self, event: str, comment: str, until: datetime, body: str,
                     existing: _Event | None) -> list[_Step]:
        """Create the event, or move an existing one to `until` (earlier or later) and enable it
        again: the server runs `body` once at `until`, and keeps the event (its marker)
        afterwards."""
        try:
            at = self._lit(until_text(until))
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {self.name}: {exc}") from None
        qualified = f"{ident(self._event_schema)}.{ident(event)}"
        if existing is None:
            return [_plain(f"CREATE EVENT {qualified} ON SCHEDULE AT {at} ON COMPLETION PRESERVE ENABLE "
                           f"COMMENT {self._lit(comment)} DO {body}")]
        if existing.execute_at == ceil_second(until).astimezone(UTC) and existing.enabled:
            return []
        return [_plain(f"ALTER EVENT {qualified} ON SCHEDULE AT {at} ON COMPLETION PRESERVE ENABLE")]

    def _schema_step(self) -> _Step:
        return _plain(f"CREATE DATABASE IF NOT EXISTS {ident(self._event_schema)}")

    def _drop_event_step(self, event: str) -> _Step:
        return _plain(f"DROP EVENT IF EXISTS {ident(self._event_schema)}.{ident(event)}")

    # -- passwords --------------------------------------------------------------------------

    def _checked_password(self, action: Action) -> str | None:
        return password_detail(self.name, action)

    def _password_clause(self, password: str) -> tuple[str, str, tuple[str, ...]]:
        """(what is sent, what is shown, the secrets in it) of an IDENTIFIED clause. MariaDB: the
        mysql_native_password hash, computed here (the plain text never reaches the server);
        MySQL: the plain text (its own default plugin hashes it; MySQL rewrites it in its logs)."""
        if self.mariadb:
            hashed = native_password_hash(password)
            return f"IDENTIFIED BY PASSWORD {self._lit(hashed)}", f"IDENTIFIED BY PASSWORD {SECRET}", (password, hashed)
        return f"IDENTIFIED BY {self._lit(password)}", f"IDENTIFIED BY {SECRET}", (password,)

    @staticmethod
    def _password_set(account: _Account, password: str) -> bool:
        """Is `password` known to be the account's password? Only a mysql_native_password hash can
        be told; False otherwise (the caller then sets it again)."""
        return account.plugin in ("mysql_native_password", "") and account.auth == native_password_hash(password)

    # -- ending sessions --------------------------------------------------------------------

    def _kill(self, pid: int | str) -> None:
        """KILL one connection; one that ended meanwhile is fine."""
        try:
            self._execute(f"KILL CONNECTION {int(pid)}")
        except PermanentTargetError as exc:
            if "Unknown thread id" not in str(exc):
                raise

    def _sessions(self, user: str) -> list[int]:
        rows = self._fetch(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s AND ID <> CONNECTION_ID()", (user,))
        return [int(r[0]) for r in rows]

    def _kill_sessions(self, user: str) -> None:
        """KILL every connection of user name `user` (whatever host it came from) but our own, and
        wait up to SESSION_WAIT_S for them to be gone. TargetUnavailable when some remain."""
        deadline = time.monotonic() + SESSION_WAIT_S
        while True:
            ids = self._sessions(user)
            if not ids:
                return
            for pid in ids:
                self._kill(pid)
            if time.monotonic() > deadline:
                raise TargetUnavailable(
                    f"target {self.name}: {len(ids)} connection(s) of {user!r} did not end within "
                    f"{SESSION_WAIT_S:.0f} s; the next run tries again")
            time.sleep(0.05)

    # -- sending ----------------------------------------------------------------------------

    def _shown(self, steps: Sequence[_Step]) -> tuple[str, ...]:
        return tuple(step.shown for step in steps)

    def _run(self, steps: Sequence[_Step]) -> None:
        """Send the steps in order (MySQL's account statements commit on their own: there is no
        transaction to roll back, so the models order them so that a run that dies half-way is
        finished by the next one)."""
        for step in steps:
            if step.kills is not None:
                self._kill_sessions(step.kills)
            else:
                self._execute(step.sent, step.secrets)

    def _kill_step(self, user: str) -> _Step:
        text = f"KILL CONNECTION <each connection of user {self._lit(user)}>"
        return _Step(text, text, kills=user)

    def _connection(self) -> pymysql.connections.Connection[Any]:
        if self._conn is not None and self._conn.open:
            return self._conn
        self._conn = self._open()
        self._mariadb = self._me = None
        return self._conn

    def _dsn(self) -> tuple[str, dict[str, Any]]:
        """(the DSN text, the connection arguments it names). Raises PermanentTargetError without
        quoting it."""
        dsn = self._env.get(self._dsn_env)
        if not dsn:
            raise PermanentTargetError(f"target {self.name}: environment variable {self._dsn_env} (dsn_env) is not set")
        malformed = PermanentTargetError(
            f"target {self.name}: the DSN in {self._dsn_env} is not a URL of the form mysql://user:password@host:port/")
        try:
            parts = urlsplit(dsn)
            port = parts.port or _DEFAULT_PORT
        except ValueError:
            raise malformed from None
        if parts.scheme not in ("mysql", "mariadb") or not parts.hostname or not parts.username or parts.query \
                or parts.fragment or parts.path not in ("", "/"):
            raise malformed
        return dsn, {"host": parts.hostname, "port": port, "user": unquote(parts.username),
                     "password": unquote(parts.password or "")}

    def _open(self) -> pymysql.connections.Connection[Any]:
        import pymysql

        dsn, args = self._dsn()
        try:
            return pymysql.connect(
                **args, connect_timeout=self._connect_timeout, autocommit=True, charset="utf8mb4",
                init_command="SET time_zone = '+00:00'", program_name="jitpol",
            )
        except pymysql.err.MySQLError as exc:
            reason = redacted(str(exc), [dsn, args["password"]])
            raise TargetUnavailable(f"target {self.name}: cannot connect to MySQL/MariaDB: {reason}") from None

    def _fetch(self, query: str, params: Any) -> list[tuple[Any, ...]]:
        import pymysql

        conn = self._connection()
        try:
            with conn.cursor() as cur:
                cur.execute(query, params)
                return list(cur.fetchall())
        except pymysql.err.MySQLError as exc:
            self._fail(exc, ())

    def _execute(self, stmt: str, secrets: Sequence[str] = ()) -> None:
        import pymysql

        conn = self._connection()
        failure: TargetError | None = None
        try:
            with conn.cursor() as cur:
                cur.execute(stmt)
        except pymysql.err.MySQLError as exc:
            if not secrets:
                self._fail(exc, ())
            failure = self._error(exc, secrets)
        if failure is not None:
            raise failure  # outside the handler: the driver's exception (which may quote the statement) is not kept

    def _error(self, exc: Exception, secrets: Sequence[str]) -> TargetError:
        import pymysql

        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        message = exc.args[1] if len(exc.args) > 1 else type(exc).__name__
        detail = redacted(str(message), secrets, limit=300)
        if isinstance(exc, pymysql.err.InterfaceError) or code in (2006, 2013, 2055):
            self.close()  # reconnect on the next call
            return TargetUnavailable(f"target {self.name}: connection to MySQL/MariaDB lost")
        if code in _TEMPORARY_CODES:
            return TargetUnavailable(f"target {self.name}: MySQL/MariaDB ({code}): {detail}")
        return PermanentTargetError(f"target {self.name}: MySQL/MariaDB refused ({code}): {detail}")

    def _fail(self, exc: Exception, secrets: Sequence[str]) -> NoReturn:
        error = self._error(exc, secrets)
        if isinstance(error, TargetUnavailable) and "connection" in str(error):
            raise error from None
        raise error from exc


def _utc(at: datetime, zone: str) -> datetime:
    """An event's EXECUTE_AT (shown in the event's own time zone, which jitpol sets to UTC) as
    an aware UTC time. Raises PermanentTargetError for an event in another zone (not jitpol's)."""
    if zone not in ("+00:00", "UTC", "SYSTEM+00:00"):
        raise PermanentTargetError(f"jitpol's event has time zone {shown(zone)}, not UTC; it was changed by hand")
    return at.replace(tzinfo=UTC)
