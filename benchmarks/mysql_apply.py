"""Benchmark d: `jitpol apply` of N role memberships on a throwaway MariaDB (grant run, then revoke
run) vs Ansible's community.mysql.mysql_role doing the same membership step on the same accounts
(ansible/mysql_role_list.yml: one task with the whole member list; ansible/mysql_role_loop.yml:
one module run per account with `loop:`, measured on two samples and fitted linearly to N).
Every step is checked against mysql.roles_mapping (N members, then 0). Run by benchmarks/run.py;
alone: `.venv/bin/python benchmarks/mysql_apply.py [--apply-n N] [--loop-sample K]`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.generate import DEFAULT_NOW, generate_apply_repo  # noqa: E402
from benchmarks.run import (  # noqa: E402
    OUT,
    Measured,
    ansible_env,
    compile_bytecode,
    ensure_peer,
    fmt_s,
    jitpol_cmd,
    measure,
    record_list_form,
    run_playbook,
    table,
    version,
)
from tools.throwaway_mariadb import MariadbNotFound, ThrowawayMariadb, ThrowawayMariadbError  # noqa: E402

DSN_ENV = "BENCH_MYSQL_DSN"
ROLE = "bench_role"


def generate_repo(root: Path, n: int, now: str) -> list[str]:
    """The PostgreSQL apply benchmark's repository with a mysql target: `n` pre-approved grants,
    all active at `now`, each granting ROLE to the account `bench_uNNNNN@%`. Returns the accounts."""
    return generate_apply_repo(root, n, now, target_type="mysql", dsn_env=DSN_ENV, role=ROLE,
                               account="bench_u{i:05d}@%", name="bench-mysql")


def _admin(db: ThrowawayMariadb) -> Any:
    import pymysql

    return pymysql.connect(host="127.0.0.1", port=db.port, user="root", password=db.password, autocommit=True)


def create_accounts(db: ThrowawayMariadb, accounts: Sequence[str]) -> None:
    with _admin(db) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE ROLE {ROLE}")
        for account in accounts:
            user = account.split("@")[0]
            cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'not-used-here'")  # names from generate_repo


def member_count(db: ThrowawayMariadb) -> int:
    with _admin(db) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM mysql.roles_mapping WHERE Role = %s AND Admin_option = 'N'", (ROLE,))
        row = cur.fetchone()
        return int(row[0]) if row else 0


def run_ansible(playbook: str, work: Path, env: Mapping[str, str], members: Sequence[str], state: str) -> Measured:
    return run_playbook(playbook, work / f"mysql-vars-{state}-{len(members)}.json",
                        {"jit_role": ROLE, "jit_members": list(members), "jit_state": state}, env, state)


def bench_mysql_apply(n: int, loop_sample: int, now: str, work: Path, install: bool,
                      results: dict[str, Any]) -> None:
    print(f"\n== d. apply: {n:,} role memberships on MariaDB ({n:,} accounts exist, one role)")
    try:
        db = ThrowawayMariadb(work / "mariadb")
        db.start()
    except (MariadbNotFound, ThrowawayMariadbError) as exc:
        print(f"  skip: MariaDB could not be started ({exc})")
        results["apply_mysql"] = {"skipped": str(exc)[:500]}
        return
    try:
        _bench(db, n, loop_sample, now, work, install, results)
    finally:
        db.stop()


def _bench(db: ThrowawayMariadb, n: int, loop_sample: int, now: str, work: Path, install: bool,
           results: dict[str, Any]) -> None:
    with _admin(db) as conn, conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        server = str((cur.fetchone() or ("?",))[0])
    repo = work / "apply-mysql" / "repo"
    accounts = generate_repo(repo, n, now)
    create_accounts(db, accounts)
    git = ["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "benchmark policies"], check=True)
    env = {**os.environ, DSN_ENV: db.dsn()}
    after = (datetime.fromisoformat(now) + timedelta(hours=5)).isoformat()
    entry: dict[str, Any] = {"memberships": n, "server": server, "pymysql": version("PyMySQL"),
                             "community_mysql": _collection_version("mysql")}
    print(f"  MariaDB {server}, PyMySQL {entry['pymysql']}, community.mysql {entry['community_mysql'] or '-'}")

    def jitpol_apply(at: str, expect: int) -> Measured:
        m = measure([*jitpol_cmd(), "apply", "--repo", str(repo), "--at", at], env)
        members = member_count(db)
        if m.returncode != 0 or members != expect:
            raise RuntimeError(f"jitpol apply --at {at}: exit {m.returncode}, {members} members (want {expect})"
                               f"\n{m.stderr[-1500:]}")
        return m

    grant = jitpol_apply(now, n)
    revoke = jitpol_apply(after, 0)
    entry["jitpol"] = {"grant_s": round(grant.seconds, 3), "revoke_s": round(revoke.seconds, 3),
                       "grant_rss_mib": round(grant.rss_mib, 1), "revoke_rss_mib": round(revoke.rss_mib, 1)}
    rows = [["tool", "grant run", "revoke run", "peak RSS"],
            ["jitpol apply", fmt_s(grant.seconds), fmt_s(revoke.seconds),
             f"{max(grant.rss_mib, revoke.rss_mib):.0f} MiB"]]
    notes: list[str] = []
    if ensure_peer("ansible", "ansible-playbook", install) is not None:
        aenv = ansible_env(work / "ansible-mysql", ("MYSQL", "MARIADB"),
                           {"MARIADB_PORT": str(db.port), "MARIADB_PASSWORD": db.password})
        try:
            present = run_ansible("mysql_role_list.yml", work, aenv, accounts, "present")
            got = member_count(db)
            absent = run_ansible("mysql_role_list.yml", work, aenv, accounts, "absent")
            gone = member_count(db)
            if (got, gone) != (n, 0):
                raise RuntimeError(f"ansible list playbook left {got} then {gone} members (want {n} then 0)")
            record_list_form("ansible, one mysql_role task with the member list", present, absent, grant, revoke,
                             entry, rows, notes)
            _loop(db, work, aenv, accounts, loop_sample, grant, revoke, entry, rows, notes)
        except (RuntimeError, OSError) as exc:
            print(f"  skip: ansible failed: {str(exc)[:1500]}")
            entry["ansible_error"] = str(exc)[:1500]
    else:
        entry["ansible_list"] = {"skipped": "not installed"}
    table(rows)
    for line in notes:
        print(f"  {line}")
    print("  note: jitpol's runs also evaluate every grant, read live memberships first, write an intent event"
          "\n        before each addition, make the role the account's default role, check the role for root-"
          "\n        equivalent privileges, KILL the account's connections and re-check after each REVOKE, append"
          "\n        hash-chained ledger events and commit the ledger to git; Ansible only sets the memberships.")
    results["apply_mysql"] = entry


def _loop(db: ThrowawayMariadb, work: Path, aenv: Mapping[str, str], accounts: Sequence[str], sample: int,
          grant: Measured, revoke: Measured, entry: dict[str, Any], rows: list[list[str]], notes: list[str]) -> None:
    """The per-item `loop:` playbook costs a module run per item: two samples, fitted linearly."""
    n = len(accounts)
    big = min(sample, n)
    small = max(1, big // 5)
    samples: list[tuple[int, float, float]] = []
    for k in sorted({small, big}):
        present = run_ansible("mysql_role_loop.yml", work, aenv, accounts[:k], "present")
        got = member_count(db)
        absent = run_ansible("mysql_role_loop.yml", work, aenv, accounts[:k], "absent")
        gone = member_count(db)
        if (got, gone) != (k, 0):
            raise RuntimeError(f"ansible loop playbook left {got} then {gone} members (want {k} then 0)")
        samples.append((k, present.seconds, absent.seconds))
    (k1, g1, r1), (k2, g2, r2) = samples[0], samples[-1]
    gper = (g2 - g1) / (k2 - k1) if k2 != k1 else g2 / k2
    rper = (r2 - r1) / (k2 - k1) if k2 != k1 else r2 / k2
    est_grant, est_revoke = g2 + gper * (n - k2), r2 + rper * (n - k2)
    entry["ansible_loop"] = {
        "samples": [{"items": k, "grant_s": round(p, 3), "revoke_s": round(a, 3)} for k, p, a in samples],
        "per_item_s": {"grant": round(gper, 3), "revoke": round(rper, 3)},
        "estimated_s": {"grant": round(est_grant, 1), "revoke": round(est_revoke, 1)}, "items": n,
    }
    for k, p, a in samples:
        rows.append([f"ansible, loop: per item (measured, {k} items)", fmt_s(p), fmt_s(a), ""])
    rows.append([f"ansible, loop: per item (estimated, {n:,} items)", f"~{est_grant:.0f} s", f"~{est_revoke:.0f} s",
                 ""])
    entry["ratio_ansible_loop_over_jitpol_estimated"] = {"grant": round(est_grant / grant.seconds, 1),
                                                         "revoke": round(est_revoke / revoke.seconds, 1)}
    notes.append(f"loop variant: {gper:.2f} s per item (grant), {rper:.2f} s (revoke); estimated "
                 f"ansible (loop) / jitpol = {est_grant / grant.seconds:.0f} (grant), "
                 f"{est_revoke / revoke.seconds:.0f} (revoke), linear fit over {small} and {big} items")


def _collection_version(name: str) -> str | None:
    for base in map(Path, sys.path):
        manifest = base / "ansible_collections" / "community" / name / "MANIFEST.json"
        if manifest.is_file():
            found: str | None = json.loads(manifest.read_text())["collection_info"]["version"]
            return found
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--apply-n", type=int, default=1_000)
    parser.add_argument("--loop-sample", type=int, default=100)
    parser.add_argument("--now", default=DEFAULT_NOW)
    parser.add_argument("--no-install", action="store_true")
    args = parser.parse_args(argv)
    work = OUT / "work-mysql"
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    compile_bytecode()
    results: dict[str, Any] = {}
    try:
        bench_mysql_apply(args.apply_n, args.loop_sample, args.now, work, not args.no_install, results)
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"  FAILED: {str(exc)[:2000]}")
        return 1
    (OUT / "results-mysql.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults: {OUT / 'results-mysql.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
