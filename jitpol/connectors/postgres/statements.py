"""Statements as values: _Step (what is sent, and how Outcome.operations shows it, secrets as
'***'), the session terminations, and the literals statements and operations carry (VALID UNTIL,
a database's label). psycopg is imported lazily."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from jitpol.errors import InvalidInput

if TYPE_CHECKING:
    from psycopg import sql

# how long pg_terminate_backend waits for each session to be gone
SESSION_WAIT_MS = 5000


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
class _Step:
    """One statement: what is sent, and how Outcome.operations shows it (secrets as '***')."""

    sent: sql.Composed
    shown: sql.Composed
    database: str | None = None  # None: the connector's own database
    ends_sessions_of: str | None = None  # afterwards, this role must have no session left


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


def _terminate_many(roles: list[str]) -> sql.Composed:
    """_terminate for several roles in one statement (the same statement as _terminate for one)."""
    from psycopg import sql

    if len(roles) == 1:
        return _terminate(roles[0])
    return sql.SQL(
        "SELECT pg_catalog.pg_terminate_backend(pid, {}) FROM pg_catalog.pg_stat_activity "
        "WHERE usename IN ({}) AND pid <> pg_catalog.pg_backend_pid()"
    ).format(sql.Literal(SESSION_WAIT_MS), sql.SQL(", ").join(sql.Literal(r) for r in roles))
