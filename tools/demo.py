"""`make demo`: reconcile the example policies/ against a throwaway PostgreSQL at a few points in
time, so a reader sees access granted, merged, revoked, drift corrected and the ledger verified.

Works on a copy of policies/ in .demo/repo (a fresh git repository), never on policies/ itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.throwaway_pg import ThrowawayPostgres  # noqa: E402

DEMO = ROOT / ".demo"
JITPOL = [sys.executable, "-m", "jitpol.cli"]
TIMES = [
    ("2026-12-01T09:30:00Z", "alice's read grant and dave's analytics checkout start; erin is refused "
                             "(exclusive); legacy_etl's standing analytics access is drift"),
    ("2026-12-01T11:30:00Z", "alice's read grant ended, but her write grant (overlapping) keeps app_readonly"),
    ("2026-12-01T13:00:00Z", "alice's write grant ended: all her production access is gone"),
    ("2026-12-01T17:30:00Z", "18:30 in Berlin: outside the analytics schedule, dave's access is removed"),
]
SETUP_SQL = """
CREATE ROLE app_readonly NOLOGIN; CREATE ROLE app_writer NOLOGIN; CREATE ROLE analytics_reader NOLOGIN;
CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN; CREATE ROLE carol LOGIN; CREATE ROLE dave LOGIN;
CREATE ROLE erin LOGIN; CREATE ROLE legacy_etl LOGIN; CREATE ROLE reporting LOGIN;
GRANT analytics_reader TO legacy_etl;   -- standing access on an exclusive resource: drift
GRANT app_readonly TO reporting;        -- standing access jitpol does not manage: left alone
"""
MEMBERS_SQL = """
SELECT r.rolname, string_agg(m.rolname, ', ' ORDER BY m.rolname)
FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid JOIN pg_roles m ON m.oid = am.member
WHERE r.rolname IN ('app_readonly', 'app_writer', 'analytics_reader') GROUP BY r.rolname ORDER BY 1
"""


def banner(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def jitpol(*args: str, env: dict[str, str], check: bool = False) -> int:
    print(f"$ jitpol {' '.join(args)}", flush=True)
    rc = subprocess.run([*JITPOL, *args], env=env, cwd=DEMO / "repo", check=False).returncode
    if check and rc != 0:
        raise SystemExit(f"jitpol {args[0]} exited {rc}")
    return rc


def main() -> None:
    import psycopg

    shutil.rmtree(DEMO, ignore_errors=True)
    repo = DEMO / "repo"
    shutil.copytree(ROOT / "policies", repo)
    shutil.copytree(ROOT / "schemas", DEMO / "schemas")
    git = ["git", "-C", str(repo), "-c", "user.name=demo", "-c", "user.email=demo@localhost"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "example policies"], check=True)

    banner("starting a throwaway PostgreSQL")
    with ThrowawayPostgres(DEMO / "pg") as pg:
        with psycopg.connect(pg.superuser_dsn, autocommit=True) as conn:
            conn.execute(SETUP_SQL)  # type: ignore[call-overload]
        print(f"PostgreSQL on 127.0.0.1:{pg.port}; roles app_readonly, app_writer, analytics_reader; "
              "standing: legacy_etl in analytics_reader, reporting in app_readonly")
        env = {**os.environ, "PG_PROD_DSN": pg.superuser_dsn, "PYTHONPATH": str(ROOT)}

        banner("validate the example repository")
        jitpol("validate", env=env, check=True)
        for at, story in TIMES:
            banner(f"at {at}: {story}")
            jitpol("status", "--at", at, env=env)
            jitpol("apply", "--at", at, env=env)
            with psycopg.connect(pg.superuser_dsn) as conn:
                print("live memberships:")
                for role, members in conn.execute(MEMBERS_SQL):  # type: ignore[call-overload]
                    print(f"  {role:<17} {members}")

        banner("run again at the last time: nothing left to do")
        jitpol("plan", "--at", TIMES[-1][0], "--detailed-exitcode", env=env)
        banner("the ledger")
        jitpol("audit", "verify", env=env, check=True)
        subprocess.run([*git, "log", "--oneline"], check=True)
        print(f"\nThe demo repository with its ledger stays in {repo} for you to look at.")


if __name__ == "__main__":
    main()
