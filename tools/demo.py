"""`make demo`: reconcile the example policies/ against a throwaway PostgreSQL at a few points in
time, so a reader sees access granted, merged, revoked, drift corrected and the ledger verified.
The trust root and the ledger key are pinned in the environment as in production: the admin
(carol, with a throwaway key) signs the policy first; every run signs its ledger checkpoint.

Works on a copy of policies/ in .demo/repo (a fresh git repository), never on policies/ itself.
"""

from __future__ import annotations

import json
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
    # throwaway keys: carol (the admin) gets one she can sign with here, the reconciler a ledger key
    keys = DEMO / "keys"
    keys.mkdir()
    for name in ("carol", "jitpol-ledger"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(keys / name)],
                       check=True)
    carol = (keys / "carol.pub").read_text().strip()
    person = repo / "people" / "carol.yaml"
    person.write_text("".join(line + (f'    - "{carol}"\n' if line.lstrip().startswith('- "ssh-') else "")
                              for line in person.read_text().splitlines(keepends=True)))  # one more key
    trust_root = json.dumps({"version": 1, "threshold": 1, "keys": [carol],
                             "ledgerKey": (keys / "jitpol-ledger.pub").read_text().strip()})
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "example policies"], check=True)

    banner("starting a throwaway PostgreSQL")
    with ThrowawayPostgres(DEMO / "pg") as pg:
        with psycopg.connect(pg.superuser_dsn, autocommit=True) as conn:
            conn.execute(SETUP_SQL)
        print(f"PostgreSQL on 127.0.0.1:{pg.port}; roles app_readonly, app_writer, analytics_reader; "
              "standing: legacy_etl in analytics_reader, reporting in app_readonly")
        # the root of trust lives in the reconciler's environment, outside the repository
        env = {**os.environ, "PG_PROD_DSN": pg.superuser_dsn, "PYTHONPATH": str(ROOT),
               "JITPOL_TRUST_ROOT": trust_root, "JITPOL_LEDGER_KEY": (keys / "jitpol-ledger").read_text()}

        banner("validate the example repository")
        jitpol("validate", env=env, check=True)
        banner("the trust root (JITPOL_TRUST_ROOT) names carol's key: until she signs, nothing is granted")
        jitpol("plan", "--at", TIMES[0][0], env=env)
        jitpol("approve", "--policy", "--as", "carol", "--key", str(keys / "carol"), env=env, check=True)
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-q", "-m", "carol approves the policy"], check=True)
        for at, story in TIMES:
            banner(f"at {at}: {story}")
            jitpol("status", "--at", at, env=env)
            jitpol("apply", "--at", at, env=env)
            with psycopg.connect(pg.superuser_dsn) as conn:
                print("live memberships:")
                for role, members in conn.execute(MEMBERS_SQL):
                    print(f"  {role:<17} {members}")

        banner("run again at the last time: nothing left to do")
        jitpol("plan", "--at", TIMES[-1][0], "--detailed-exitcode", env=env)
        banner("the ledger: hash-chained, and signed by the reconciler (audit/checkpoints/)")
        jitpol("audit", "verify", env=env, check=True)
        subprocess.run([*git, "log", "--oneline"], check=True)
        print(f"\nThe demo repository with its ledger stays in {repo} for you to look at.")


if __name__ == "__main__":
    main()
