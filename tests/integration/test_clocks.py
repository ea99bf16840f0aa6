"""Every clock the suite meets is one clock: the test process, the throwaway PostgreSQL and MariaDB
and every process inside the throwaway sshd's namespace (an unprivileged one with an empty
environment included). Under `make test-timeshift` (libfaketime) the test also proves the shift really reached
them all: a shifted run in which a server kept the real time would prove nothing.
"""

from __future__ import annotations

import os
import re
import time

import psycopg
import pytest

from tests.helpers.clock import Now
from tests.mysql_fixtures import *  # noqa: F403 - the throwaway MariaDB
from tests.mysql_fixtures import MysqlSandbox
from tests.ssh_fixtures import *  # noqa: F403 - the throwaway sshd
from tools.throwaway_pg import ThrowawayPostgres
from tools.throwaway_sshd import ThrowawaySshd

SKEW = 120.0  # seconds: the readings below are taken a moment apart, never minutes


def expected_shift() -> float | None:
    """Seconds the clock is shifted by, from JITPOL_TIMESHIFT (`+365d`, `-1d`) when the Makefile
    runs the suite under faketime; None on a normal run."""
    spec = os.environ.get("JITPOL_TIMESHIFT")
    if not spec:
        return None
    m = re.fullmatch(r"([+-]\d+)d", spec)
    assert m, f"JITPOL_TIMESHIFT={spec!r}: expected +Nd or -Nd"
    return int(m[1]) * 86400.0


def test_the_clock_is_shifted_exactly_when_the_run_says_so(now: Now) -> None:
    shift = expected_shift()
    if shift is None:
        assert "FAKETIME" not in os.environ, "faketime is active but JITPOL_TIMESHIFT does not say by how much"
        return
    real = float(os.environ["JITPOL_REAL_EPOCH"])  # the real time when the run started, read outside faketime
    elapsed = now.at.timestamp() - real - shift
    assert -SKEW < elapsed < 3600, f"the test process is not shifted by {os.environ['JITPOL_TIMESHIFT']}"


@pytest.mark.postgres
def test_postgresql_reads_the_same_clock(pg_server: ThrowawayPostgres) -> None:
    with psycopg.connect(pg_server.superuser_dsn, autocommit=True) as conn:
        row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
    assert row is not None
    assert abs(row[0] - time.time()) < SKEW


def test_mariadb_reads_the_same_clock(mysql_sandbox: MysqlSandbox) -> None:
    # the clock its event scheduler ends accounts by
    row = mysql_sandbox.execute("SELECT UNIX_TIMESTAMP(NOW(6))")
    assert abs(float(row[0][0]) - time.time()) < SKEW


def test_the_sshd_namespace_reads_the_same_clock_even_without_our_environment(sshd_server: ThrowawaySshd) -> None:
    # `env -i`: no LD_PRELOAD, no FAKETIME; as nobody: what sshd's sessions and setuid sudo see
    done = sshd_server.run(["runuser", "-u", "nobody", "--", "env", "-i", "/bin/date", "+%s"])
    assert abs(int(done.stdout) - time.time()) < SKEW
