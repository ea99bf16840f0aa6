"""MySQL / MariaDB fixtures: one throwaway MariaDB server per pytest session (per xdist worker),
and a sandbox per test. Import them into a test module with

    from tests.mysql_fixtures import *  # noqa: F403 (the fixture mysql_sandbox; mysql_server is in conftest.py)

    mysql_server   session: a started tools.throwaway_mariadb.ThrowawayMariadb (defined in
                   tests/conftest.py, so that all modules share one server per session)
    mysql_sandbox  function: a MysqlSandbox: an admin connection, helpers that make roles and
                   accounts with unique names, connector(...) for a MysqlConnector whose
                   event_schema is the test's own (so observe sees only this test's ephemeral
                   accounts), login(...) as an account over TCP. Everything it made, the
                   accounts the connector created included, is dropped afterwards.

Without MariaDB the tests that need it are skipped on a laptop but FAIL when the CI environment
variable is set: in CI a test that needs a service must run.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from jitpol.connectors.mysql import MysqlConnector
from tools.throwaway_mariadb import ThrowawayMariadb  # tests/conftest.py made `tools` importable

# `from tests.mysql_fixtures import *` brings exactly the fixtures (pytest finds them by name)
__all__ = ["mysql_sandbox"]

TARGET = "mysql-test"
DSN_ENV = "MYSQL_TEST_DSN"
PASSWORD = "Acc0unt-pw-for-tests"  # what people's test accounts log in with


class MysqlSandbox:
    """Roles and accounts with unique names on the shared server, an event schema of its own, and
    connectors pointed at both; close() drops all of it."""

    def __init__(self, server: ThrowawayMariadb) -> None:
        self.server = server
        self.tag = uuid.uuid4().hex[:10]
        self.event_schema = f"jt_{self.tag}"
        self.admin = self.connect("root", server.password)
        self._users: list[tuple[str, str]] = []
        self._connectors: list[MysqlConnector] = []

    # -- making things ----------------------------------------------------------------------

    def name(self, prefix: str) -> str:
        return f"{prefix}_{uuid.uuid4().hex[:10]}"

    def ephemeral_name(self) -> str:
        """A `jit-` user name no other test uses (dropped afterwards, with its event)."""
        name = f"jit-t-{uuid.uuid4().hex[:12]}"
        self._users.append((name, "%"))
        return name

    def register(self, user: str, host: str = "%") -> None:
        """Drop `user`@`host` afterwards too (an account jitpol named, e.g. an ephemeral one)."""
        self._users.append((user, host))

    def role(self, prefix: str = "role", *, name: str | None = None) -> str:
        role = name or self.name(prefix)
        self.execute(f"CREATE ROLE {self.lit(role)}")
        self._users.append((role, ""))
        return role

    def account(self, prefix: str = "user", *, name: str | None = None, host: str = "%",
                password: str = PASSWORD) -> str:
        """A login account `user@host` with `password`; returns `user@host` (jitpol's form)."""
        user = name or self.name(prefix)
        self.execute(f"CREATE USER {self.lit(user)}@{self.lit(host)} IDENTIFIED BY {self.lit(password)}")
        self._users.append((user, host))
        return f"{user}@{host}"

    def grant(self, role: str, grantee: str) -> None:
        """Give `grantee` (an account `user@host`, or a role) `role` behind jitpol's back."""
        self.execute(f"GRANT {self.lit(role)} TO {self.acct(grantee)}")

    def acct(self, account: str) -> str:
        if "@" not in account:
            return self.lit(account)
        user, host = account.split("@")
        return f"{self.lit(user)}@{self.lit(host)}"

    # -- reading ----------------------------------------------------------------------------

    def lit(self, value: str) -> str:
        return str(self.admin.escape(value))

    def execute(self, stmt: str, args: Any = None) -> list[tuple[Any, ...]]:
        with self.admin.cursor() as cur:
            cur.execute(stmt, args)
            return list(cur.fetchall())

    def roles_of(self, account: str) -> set[str]:
        user, host = account.split("@")
        return {str(r[0]) for r in self.execute(
            "SELECT Role FROM mysql.roles_mapping WHERE User = %s AND Host = %s", (user, host))}

    def default_role(self, account: str) -> str:
        user, host = account.split("@")
        rows = self.execute("SELECT default_role FROM mysql.user WHERE User = %s AND Host = %s", (user, host))
        return str(rows[0][0]) if rows else ""

    def exists(self, user: str, host: str = "%") -> bool:
        return bool(self.execute("SELECT 1 FROM mysql.user WHERE User = %s AND Host = %s", (user, host)))

    def events(self) -> dict[str, tuple[str, str]]:
        """event name -> (status, comment) of the events in this sandbox's event schema."""
        return {str(n): (str(s), str(c)) for n, s, c in self.execute(
            "SELECT EVENT_NAME, STATUS, EVENT_COMMENT FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s",
            (self.event_schema,))}

    def sessions(self, user: str) -> int:
        return len(self.execute(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s AND ID <> CONNECTION_ID()", (user,)))

    # -- connecting -------------------------------------------------------------------------

    def connect(self, user: str, password: str) -> pymysql.connections.Connection[Any]:
        """A TCP connection as `user`; raises pymysql's OperationalError when the server refuses."""
        return pymysql.connect(host="127.0.0.1", port=self.server.port, user=user, password=password,
                               autocommit=True, connect_timeout=5)

    def login(self, account: str, password: str = PASSWORD) -> pymysql.connections.Connection[Any]:
        return self.connect(account.split("@")[0], password)

    def connector(self, dsn: str | None = None, **settings: Any) -> MysqlConnector:
        """A MysqlConnector as root (or with `dsn`), using this sandbox's event schema."""
        env = {DSN_ENV: dsn or self.server.dsn()}
        connector = MysqlConnector(TARGET, {"dsn_env": DSN_ENV, "event_schema": self.event_schema, **settings}, env)
        self._connectors.append(connector)
        return connector

    def close(self) -> None:
        for connector in self._connectors:
            connector.close()
        for user, host in reversed(self._users):
            for (pid,) in self.execute(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s AND ID <> CONNECTION_ID()", (user,)):
                with contextlib.suppress(pymysql.err.MySQLError):  # gone meanwhile
                    self.execute(f"KILL CONNECTION {int(pid)}")
            if host == "":
                self.execute(f"DROP ROLE IF EXISTS {self.lit(user)}")
            else:
                self.execute(f"DROP USER IF EXISTS {self.lit(user)}@{self.lit(host)}")
        self.execute(f"DROP DATABASE IF EXISTS `{self.event_schema}`")
        self.admin.close()


@pytest.fixture
def mysql_sandbox(mysql_server: ThrowawayMariadb) -> Iterator[MysqlSandbox]:
    sandbox = MysqlSandbox(mysql_server)
    try:
        yield sandbox
    finally:
        sandbox.close()
