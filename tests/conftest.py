"""Shared fixtures: one throwaway PostgreSQL server per pytest session (per xdist worker).

    pg_server    session: a started tools.throwaway_pg.ThrowawayPostgres
    mysql_server session: a started tools.throwaway_mariadb.ThrowawayMariadb, started by the first
                 test that needs it (here, not in tests/mysql_fixtures.py, so that every module
                 shares the one server; the sandboxes are there)
    pg_db        function: a fresh database on it (PgDatabase: name, dsn), dropped afterwards
    unique_name  function: unique_name("grp") -> "grp_3f9c0a1b2d"; roles are cluster-wide, so
                 every test names its roles with it
    now          function: the current time read once (tests.helpers.clock.Now): how a test that
                 meets a real clock builds its windows (see tests/helpers/clock.py)

Without PostgreSQL binaries the tests that need the server are skipped on a laptop but FAIL
when the CI environment variable is set: in CI a test that needs a service must run.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# jitpol's cache (jitpol.cachedb) of every run in this session, this process's and its children's,
# in a folder of its own: never the user's ~/.cache, never shared with another session
os.environ.setdefault("JITPOL_CACHE_DIR", tempfile.mkdtemp(prefix="jitpol-test-cache-"))

try:
    from tools.throwaway_pg import PostgresNotFound, ThrowawayPostgres, ThrowawayPostgresError
except ModuleNotFoundError:
    # `tools` is a plain directory at the repository root, not an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.modules.pop("tools", None)
    from tools.throwaway_pg import PostgresNotFound, ThrowawayPostgres, ThrowawayPostgresError

# not at the top: `tests` is importable once the repository root is on sys.path (see above)
from tests.helpers.clock import Now
from tests.services import serve
from tools.throwaway_mariadb import MariadbNotFound, ThrowawayMariadb, ThrowawayMariadbError


@dataclass(frozen=True, slots=True)
class PgDatabase:
    name: str
    dsn: str  # superuser DSN over TCP, connected to this database


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawayPostgres]:
    server = ThrowawayPostgres(tmp_path_factory.mktemp("pg"))
    yield from serve(server, what="PostgreSQL", missing=PostgresNotFound, failed=ThrowawayPostgresError,
                     name="the throwaway PostgreSQL server")


@pytest.fixture(scope="session")
def mysql_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawayMariadb]:
    server = ThrowawayMariadb(tmp_path_factory.mktemp("mariadb"))
    yield from serve(server, what="MariaDB", missing=MariadbNotFound, failed=ThrowawayMariadbError,
                     name="the throwaway MariaDB server")


@pytest.fixture
def now() -> Now:
    return Now.read()


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    def make(prefix: str) -> str:
        return f"{prefix}_{uuid.uuid4().hex[:10]}"

    return make


@pytest.fixture
def pg_db(pg_server: ThrowawayPostgres, unique_name: Callable[[str], str]) -> Iterator[PgDatabase]:
    import psycopg
    from psycopg import sql

    name = unique_name("db")
    with psycopg.connect(pg_server.superuser_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield PgDatabase(name=name, dsn=pg_server.dsn(dbname=name))
    finally:
        with psycopg.connect(pg_server.superuser_dsn, autocommit=True) as admin:
            # FORCE: a test may leave a session open (or a connector it did not close)
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


class PgRoles:
    """Creates roles with unique names through a superuser connection; drop_all() removes them
    (and ends their sessions) so the shared server stays clean between tests."""

    def __init__(self, server: ThrowawayPostgres, unique_name: Callable[[str], str]) -> None:
        import psycopg

        self.server = server
        self._unique_name = unique_name
        self.admin = psycopg.connect(server.superuser_dsn, autocommit=True)
        self.created: list[str] = []

    def create(
        self,
        prefix: str,
        *,
        login: bool = False,
        password: str | None = None,
        superuser: bool = False,
        name: str | None = None,
    ) -> str:
        from psycopg import sql

        role = name if name is not None else self._unique_name(prefix)
        options: list[sql.Composable] = [sql.SQL("LOGIN" if login else "NOLOGIN")]
        if superuser:
            options.append(sql.SQL("SUPERUSER"))
        if password is not None:
            options.append(sql.SQL("PASSWORD {}").format(sql.Literal(password)))
        self.admin.execute(
            sql.SQL("CREATE ROLE {} {}").format(sql.Identifier(role), sql.SQL(" ").join(options))
        )
        self.created.append(role)
        return role

    def grant(self, role: str, member: str) -> None:
        """Make `member` a member of `role` behind jitpol's back (standing access)."""
        from psycopg import sql

        self.admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role), sql.Identifier(member)))

    def members(self, role: str) -> set[str]:
        rows = self.admin.execute(
            "SELECT u.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
            "JOIN pg_roles u ON u.oid = m.member WHERE r.rolname = %s",
            (role,),
        ).fetchall()
        return {row[0] for row in rows}

    def drop_all(self) -> None:
        from psycopg import sql

        for role in reversed(self.created):
            self.admin.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = %s", (role,)
            )
            self.admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        self.created.clear()
        self.admin.close()


@pytest.fixture
def pg_roles(pg_server: ThrowawayPostgres, unique_name: Callable[[str], str]) -> Iterator[PgRoles]:
    roles = PgRoles(pg_server, unique_name)
    try:
        yield roles
    finally:
        roles.drop_all()
