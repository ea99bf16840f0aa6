"""jitpol benchmarks with a peer side by side (`make bench`). Prints tables, writes
benchmarks/out/results.json, exits 0 (a peer that cannot be installed or run is skipped with a
message, never a failure).

    a. `jitpol validate` on a generated 10,000-grant repository vs check-jsonschema on its grant files
    b. `jitpol plan --format json` on the same repository against a throwaway PostgreSQL
    c. `jitpol apply` of 1,000 memberships (grant run, then revoke run) vs Ansible community.postgresql,
       and the floor: `jitpol validate` of the same repository + a psycopg process sending the same statements

Options: --quick (small sizes, for a smoke run), --runs N, --grants N, --apply-n N, --loop-sample K,
--profile (write pyinstrument reports of validate and plan to benchmarks/out/), --no-install,
--sizes 1000,10000,100000 (the growth benchmark; '' skips it), --apply-max N.

Measuring: wall time with time.perf_counter around the child process; peak RSS from os.wait4()
on that child (ru_maxrss: the largest resident set of the child or of any descendant it waited
for; not a sum over processes). Generated repositories and the PostgreSQL cluster live under
benchmarks/out/work/ and are removed at the start of the next run.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.generate import (  # noqa: E402
    APPLY_GROUP_ROLE,
    DEFAULT_NOW,
    DSN_ENV,
    generate,
    generate_apply_repo,
)
from benchmarks.scaling import bench_scaling  # noqa: E402
from tools.throwaway_pg import PostgresNotFound, ThrowawayPostgres, ThrowawayPostgresError  # noqa: E402

# $JITPOL_BENCH_OUT: another folder, so that two runs at once do not remove each other's work/
OUT = Path(os.environ.get("JITPOL_BENCH_OUT") or HERE / "out")
BIN = Path(sys.executable).parent


# -- measuring -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Measured:
    """One child process: exit status, wall seconds, peak RSS in MiB, the ends of its output."""

    returncode: int
    seconds: float
    rss_mib: float
    stdout: str
    stderr: str


def measure(argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Measured:
    """Run argv to completion; wall time and the child's own peak RSS (os.wait4)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=out, stderr=err, env=dict(env or os.environ), cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen
        out.seek(0)
        err.seek(0)
        return Measured(proc.returncode, seconds, usage.ru_maxrss / 1024, out.read().decode(errors="replace"),
                        err.read().decode(errors="replace"))


@dataclass(slots=True)
class Series:
    """Repeated runs of one command."""

    label: str
    runs: list[Measured] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def peak_rss_mib(self) -> float:
        return max(r.rss_mib for r in self.runs)

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "median_s": round(self.median_s, 3),
                "runs_s": [round(r.seconds, 3) for r in self.runs], "peak_rss_mib": round(self.peak_rss_mib, 1)}


def repeat(label: str, runs: int, argv: Sequence[str], env: Mapping[str, str] | None = None,
           check: Callable[[Measured], str | None] | None = None) -> Series:
    """`runs` runs of argv; raises RuntimeError when a run fails `check` (or exits non-zero)."""
    series = Series(label)
    for _ in range(runs):
        m = measure(argv, env)
        problem = check(m) if check else (None if m.returncode == 0 else f"exit {m.returncode}")
        if problem:
            raise RuntimeError(f"{label}: {problem}\n{m.stderr[-2000:]}")
        series.runs.append(m)
    return series


# -- environment and peers -------------------------------------------------------------------

def version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def ensure_peer(dist: str, executable: str, allow_install: bool) -> Path | None:
    """The peer's executable in this venv, pip-installing `dist` once if allowed; None if absent."""
    path = BIN / executable
    if path.exists():
        return path
    if not allow_install:
        print(f"  skip: {executable} is not installed ({BIN}/pip install {dist})")
        return None
    print(f"  installing {dist} into {BIN.parent} (pip) ...", flush=True)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", dist], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0 or not path.exists():
        print(f"  skip: could not install {dist}: {done.stderr.strip()[-300:]}")
        return None
    return path


def jitpol_cmd() -> list[str]:
    script = BIN / "jitpol"
    return [str(script)] if script.exists() else [sys.executable, "-m", "jitpol.cli"]


def environment(pg_version: str | None) -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "postgresql": pg_version,
        "jitpol": version("jitpol"),
        "check_jsonschema": version("check-jsonschema"),
        "ansible_core": version("ansible-core"),
        "ansible": version("ansible"),
        "community_postgresql": _collection_version("postgresql"),
        "psycopg": version("psycopg"),
    }


def _collection_version(name: str) -> str | None:
    for base in map(Path, sys.path):
        manifest = base / "ansible_collections" / "community" / name / "MANIFEST.json"
        if manifest.is_file():
            version_: str | None = json.loads(manifest.read_text())["collection_info"]["version"]
            return version_
    return None


def print_environment(env: Mapping[str, Any]) -> None:
    print(f"environment: {env['cpus']} CPUs ({env['cpu_model']}), Python {env['python']}, "
          f"PostgreSQL {env['postgresql'] or '-'}, jitpol {env['jitpol']}, "
          f"check-jsonschema {env['check_jsonschema'] or '-'}, ansible-core {env['ansible_core'] or '-'} "
          f"(community.postgresql {env['community_postgresql'] or '-'}), {env['date']}")


def table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  " + "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(row, widths, strict=True))))
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


def fmt_s(seconds: float) -> str:
    return f"{seconds:.2f} s"


def ratio_text(peer: float, ours: float, peer_name: str) -> str:
    r = peer / ours
    return f"{peer_name} / jitpol = {r:.2f}" + (f" (jitpol {r:.1f}x faster)" if r >= 1 else
                                                f" (jitpol {1 / r:.1f}x slower)")


# -- PostgreSQL ------------------------------------------------------------------------------

def create_roles(dsn: str, groups: Sequence[str], logins: Sequence[str]) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        for role in groups:
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        for role in logins:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))


def member_count(dsn: str, group: str) -> int:
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE g.rolname = %s",
            (group,),
        ).fetchone()
    return int(row[0]) if row else 0


def server_version(dsn: str) -> str:
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


# The floor of the apply benchmark: a Python process that connects with psycopg and sends the
# statements jitpol's batch sends for the same change (the grantor role exists by then), and
# nothing else. Run as its own process, so interpreter start and `import psycopg` count, as they
# do for jitpol.
FLOOR_SCRIPT = """
import os, sys
import psycopg
from psycopg import sql
group, grantor, state = sys.argv[1], sys.argv[2], sys.argv[3]
roles = sys.argv[4:]
names = sql.SQL(", ").join(sql.Identifier(r) for r in roles)
with psycopg.connect(os.environ["BENCH_FLOOR_DSN"], autocommit=True) as conn:
    if state == "present":
        with conn.transaction():
            conn.execute(sql.SQL("GRANT {} TO {} GRANTED BY {}").format(sql.Identifier(group), names,
                                                                       sql.Identifier(grantor)))
    else:
        with conn.transaction():
            conn.execute(sql.SQL("REVOKE {} FROM {} GRANTED BY {}").format(sql.Identifier(group), names,
                                                                          sql.Identifier(grantor)))
        conn.execute(sql.SQL("SELECT pg_catalog.pg_terminate_backend(pid, 5000) FROM pg_catalog.pg_stat_activity "
                             "WHERE usename IN ({}) AND pid <> pg_catalog.pg_backend_pid()").format(
                                 sql.SQL(", ").join(sql.Literal(r) for r in roles)))
"""


def run_floor(dsn: str, group: str, grantor: str, roles: Sequence[str], state: str) -> Measured:
    m = measure([sys.executable, "-c", FLOOR_SCRIPT, group, grantor, state, *roles], {**os.environ,
                                                                                     "BENCH_FLOOR_DSN": dsn})
    if m.returncode != 0:
        raise RuntimeError(f"the psycopg floor ({state}) exit {m.returncode}:\n{m.stderr[-1500:]}")
    return m


# -- the benchmarks --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Options:
    grants: int
    people: int
    resources: int
    apply_n: int
    loop_sample: int
    runs: int
    now: str
    profile: bool
    install: bool


def _toggle_one_grant(repo: Path) -> Path:
    """Change one grant file (its justification gets or loses a trailing ' (edited)'): a warm run
    then has exactly one file the cache has not seen."""
    path = sorted((repo / "grants").rglob("*.yaml"))[len(list((repo / "grants").rglob("*.yaml"))) // 2]
    lines = path.read_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.lstrip().startswith("justification:"):
            body = line.rstrip("\n")
            quote = body[-1] if body[-1] in "'\"" else ""
            text = body[: len(body) - len(quote)]
            text = text[: -len(" (edited)")] if text.endswith(" (edited)") else text + " (edited)"
            lines[i] = text + quote + "\n"
            break
    path.write_text("".join(lines))
    return path


def bench_validate(opts: Options, repo: Path, files: int, results: dict[str, Any]) -> None:
    print(f"\n== a. validate: {opts.grants:,} grants ({files:,} files), median of {opts.runs} runs each")
    cache_root = OUT / "work" / "validate-cache"
    cold_runs: list[Measured] = []
    warm_runs: list[Measured] = []
    peer = ensure_peer("check-jsonschema", "check-jsonschema", opts.install)
    grant_files = sorted(str(p) for p in (repo / "grants").rglob("*.yaml"))
    # one process for all files (xargs would split the list over several)
    peer_argv = [str(peer), "--schemafile", str(ROOT / "schemas" / "grant.schema.json"), *grant_files] if peer else []
    theirs = Series("check-jsonschema")
    argv = [*jitpol_cmd(), "validate", "--repo", str(repo)]
    for n in range(opts.runs):
        # side by side: cold jitpol, warm jitpol, check-jsonschema, in turn, so each sees the same load
        shutil.rmtree(cache_root, ignore_errors=True)
        env = {**{k: v for k, v in os.environ.items() if k != "JITPOL_CACHE"},
               "JITPOL_CACHE_DIR": str(cache_root / str(n))}
        cold = measure(argv, env)
        if cold.returncode != 0:
            raise RuntimeError(f"jitpol validate (cold): exit {cold.returncode}\n{cold.stderr[-2000:]}")
        cold_runs.append(cold)
        _toggle_one_grant(repo)
        warm = measure(argv, env)
        _toggle_one_grant(repo)
        if warm.returncode != 0:
            raise RuntimeError(f"jitpol validate (warm): exit {warm.returncode}\n{warm.stderr[-2000:]}")
        warm_runs.append(warm)
        if peer_argv:
            try:
                m = measure(peer_argv)
            except OSError as exc:
                print(f"  skip: check-jsonschema failed: {exc}")
                peer_argv = []
            else:
                if m.returncode != 0:
                    print(f"  skip: check-jsonschema failed: exit {m.returncode} {m.stderr[-300:]}")
                    peer_argv = []
                else:
                    theirs.runs.append(m)
    ours, warm_series = Series("jitpol validate", cold_runs), Series("jitpol validate warm", warm_runs)
    rows = [["tool", "median wall", "runs", "peak RSS"],
            ["jitpol validate, cold (empty file cache)", fmt_s(ours.median_s),
             " ".join(f"{r.seconds:.2f}" for r in ours.runs), f"{ours.peak_rss_mib:.0f} MiB"],
            ["jitpol validate, warm (one grant changed)", fmt_s(warm_series.median_s),
             " ".join(f"{r.seconds:.2f}" for r in warm_series.runs), f"{warm_series.peak_rss_mib:.0f} MiB"]]
    entry: dict[str, Any] = {"files": files, "grants": opts.grants, "jitpol": ours.as_dict(),
                             "jitpol_warm_one_changed": warm_series.as_dict()}
    if theirs.runs:
        rows.append([f"check-jsonschema (grant files only, {len(grant_files):,})", fmt_s(theirs.median_s),
                     " ".join(f"{r.seconds:.2f}" for r in theirs.runs), f"{theirs.peak_rss_mib:.0f} MiB"])
        entry["check_jsonschema"] = {**theirs.as_dict(), "files": len(grant_files)}
        entry["ratio_jitpol_over_check_jsonschema"] = round(ours.median_s / theirs.median_s, 3)
        entry["ratio_check_jsonschema_over_jitpol"] = {"cold": round(theirs.median_s / ours.median_s, 2),
                                                       "warm": round(theirs.median_s / warm_series.median_s, 2)}
    else:
        entry["check_jsonschema"] = {"skipped": "not installed or failed"}
    table(rows)
    if theirs.runs:
        r = entry["ratio_check_jsonschema_over_jitpol"]
        print(f"  check-jsonschema / jitpol = {r['cold']:.1f} cold, {r['warm']:.1f} warm (wall time; runs interleaved)")
    print("  note: jitpol does more than check-jsonschema here: it reads every kind (people, teams, workflows,"
          "\n        resources, config too), with its strict YAML reader (duplicate keys, YAML 1.1 types, aliases"
          "\n        refused, line:col marks), JSON Schema, then cross-references and target name checks."
          "\n        check-jsonschema checks the grant files against grant.schema.json only. Above 1,500 files"
          "\n        jitpol reads on both cores (worker processes); peak RSS is the largest single process.")
    results["validate"] = entry


def bench_plan(opts: Options, repo: Path, env: Mapping[str, str], results: dict[str, Any]) -> None:
    print(f"\n== b. plan --at {opts.now} --format json on {opts.grants:,} grants, live PostgreSQL, "
          f"median of {opts.runs} runs")
    actions: list[int] = []

    def check(m: Measured) -> str | None:
        if m.returncode != 0:
            return f"exit {m.returncode}"
        plan = json.loads(m.stdout)
        actions.append(len(plan["actions"]))
        return None

    argv = [*jitpol_cmd(), "plan", "--repo", str(repo), "--at", opts.now, "--format", "json"]
    ours = repeat("jitpol plan", opts.runs, argv, {**env, "JITPOL_CACHE": "off"}, check)  # cold, every run
    table([["tool", "median wall", "runs", "peak RSS", "actions"],
           ["jitpol plan", fmt_s(ours.median_s), " ".join(f"{r.seconds:.2f}" for r in ours.runs),
            f"{ours.peak_rss_mib:.0f} MiB", str(actions[-1])]])
    print("  (loads and validates everything, verifies every approval signature of a live grant with"
          "\n   ssh-keygen, evaluates all grants at --at, reads the memberships of every managed role"
          "\n   from PostgreSQL and diffs; no peer does this job, so there is no side-by-side here)")
    results["plan"] = {**ours.as_dict(), "actions": actions[-1]}


def ansible_env(home: Path, drop: tuple[str, ...], extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of one ansible-playbook run: its own home and temp folders under `home`, the
    venv's python (it has the target's driver), no variables starting with `drop` (the target
    client's own settings), then `extra` (how the module reaches the throwaway server)."""
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update({
        "ANSIBLE_HOME": str(home), "ANSIBLE_LOCAL_TEMP": str(home / "tmp"), "ANSIBLE_REMOTE_TMP": str(home / "tmp"),
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_NOCOLOR": "true", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **extra,
    })
    if "UTF-8" not in env.get("LC_ALL", "") + env.get("LANG", ""):
        env["LC_ALL"] = "C.UTF-8"  # ansible-core refuses to start under a non-UTF-8 locale
    return env


def run_playbook(playbook: str, vars_file: Path, variables: Mapping[str, Any], env: Mapping[str, str],
                 what: str) -> Measured:
    """One timed ansible-playbook run of benchmarks/ansible/PLAYBOOK on localhost with `variables`."""
    vars_file.write_text(json.dumps(variables))
    m = measure([str(BIN / "ansible-playbook"), "-i", "localhost,", str(HERE / "ansible" / playbook),
                 "-e", f"@{vars_file}"], env)
    if m.returncode != 0:
        raise RuntimeError(f"ansible-playbook {playbook} ({what}) exit {m.returncode}:\n{m.stdout[-1500:]}")
    return m


def run_ansible(playbook: str, work: Path, env: Mapping[str, str], roles: Sequence[str], state: str) -> Measured:
    return run_playbook(playbook, work / f"vars-{state}-{len(roles)}.json",
                        {"jit_group": APPLY_GROUP_ROLE, "jit_roles": list(roles), "jit_state": state}, env, state)


def median_run(runs: Sequence[Measured]) -> Measured:
    """The run of median time (of an even count, the faster of the middle two)."""
    ordered = sorted(runs, key=lambda m: m.seconds)
    return ordered[(len(ordered) - 1) // 2]


def restore_repo(repo: Path) -> None:
    """Put a benchmark repository back to its first commit as a new one would be: the files a run
    wrote removed (the policy files, never rewritten, keep their inodes) and the git objects no
    commit reaches pruned, so that the next run writes its ledger objects anew."""
    git = ["git", "-C", str(repo)]
    root = subprocess.run([*git, "rev-list", "--max-parents=0", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.split()[0]
    subprocess.run([*git, "reset", "-q", "--hard", root], check=True)
    subprocess.run([*git, "clean", "-qfdx"], check=True)
    subprocess.run([*git, "reflog", "expire", "--expire=now", "--all"], check=True)
    subprocess.run([*git, "prune", "--expire=now"], check=True)


def record_list_form(label: str, present: Measured, absent: Measured, grant: Measured, revoke: Measured,
                     entry: dict[str, Any], rows: list[list[str]], notes: list[str]) -> None:
    """Ansible's list-form runs (`present`, `absent`) against jitpol's (`grant`, `revoke`): into the
    results entry, the table rows and the notes."""
    entry["ansible_list"] = {"grant_s": round(present.seconds, 3), "revoke_s": round(absent.seconds, 3),
                             "peak_rss_mib": round(max(present.rss_mib, absent.rss_mib), 1)}
    rows.append([label, fmt_s(present.seconds), fmt_s(absent.seconds),
                 f"{max(present.rss_mib, absent.rss_mib):.0f} MiB"])
    entry["ratio_ansible_list_over_jitpol"] = {"grant": round(present.seconds / grant.seconds, 3),
                                               "revoke": round(absent.seconds / revoke.seconds, 3)}
    notes.append(f"grant:  {ratio_text(present.seconds, grant.seconds, 'ansible (list)')}")
    notes.append(f"revoke: {ratio_text(absent.seconds, revoke.seconds, 'ansible (list)')}")


def bench_apply(opts: Options, work: Path, pg: ThrowawayPostgres, results: dict[str, Any]) -> None:
    n = opts.apply_n
    print(f"\n== c. apply: {n:,} grant memberships on PostgreSQL ({n:,} login roles exist, one group role)")
    repo = work / "apply" / "repo"
    logins = generate_apply_repo(repo, n, opts.now)
    create_roles(pg.superuser_dsn, [APPLY_GROUP_ROLE], logins)
    git = ["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "benchmark policies"], check=True)
    # jitpol's load cache in the work folder: warmed by one untimed validate, then the same for
    # the floor's validate and for both apply runs
    env = {**os.environ, DSN_ENV: pg.superuser_dsn, "JITPOL_CACHE_DIR": str(work / "jitpol-cache")}
    after = (datetime.fromisoformat(opts.now) + timedelta(hours=5)).isoformat()
    dsn = pg.superuser_dsn
    entry: dict[str, Any] = {"memberships": n}
    validate_argv = [*jitpol_cmd(), "validate", "--repo", str(repo)]
    measure(validate_argv, env)
    validate = repeat("jitpol validate (apply repository)", opts.runs, validate_argv, env)
    # what `jitpol validate` imports (jitpol.cli.main alone imports no command: they load lazily)
    imports = repeat("python -c 'from jitpol.cli.validate import validate'", opts.runs,
                     [sys.executable, "-c", "import jitpol.cli.main; from jitpol.cli.validate import validate"], env)

    def checked(what: str, m: Measured, expect: int) -> Measured:
        """`m`, once the group has exactly `expect` members after it (else RuntimeError)."""
        members = member_count(dsn, APPLY_GROUP_ROLE)
        if m.returncode != 0 or members != expect:
            raise RuntimeError(f"{what}: exit {m.returncode}, {members} members (want {expect})\n{m.stderr[-1500:]}")
        return m

    def jitpol_apply(at: str, expect: int) -> Measured:
        return checked(f"jitpol apply --at {at}", measure([*jitpol_cmd(), "apply", "--repo", str(repo), "--at", at],
                                                          env), expect)

    def floor_run(state: str, expect: int) -> Measured:
        return checked(f"the psycopg floor ({state})", run_floor(dsn, APPLY_GROUP_ROLE, "jitpol_grantor", logins,
                                                                 state), expect)

    aenv: dict[str, str] | None = None
    if ensure_peer("ansible", "ansible-playbook", opts.install) is not None:
        aenv = ansible_env(work / "ansible", ("PG",), {"PGPORT": str(pg.port), "PGPASSWORD": pg.password})

    def ansible_run(state: str, expect: int) -> Measured:
        assert aenv is not None
        return checked(f"ansible list playbook ({state})", run_ansible("membership_list.yml", work, aenv, logins,
                                                                       state), expect)

    def ansible_failed(exc: Exception) -> str:
        print(f"  skip: ansible failed: {str(exc)[:1500]}")
        return str(exc)[:1500]

    # `opts.runs` rounds, each side's grant then revoke in every round, interleaved so that all
    # sides meet the same machine; each round starts jitpol's repository as it was (the policy
    # files untouched, so the load cache stays warm; the ledger and its git objects gone)
    runs: dict[str, list[Measured]] = {}
    ansible_error: str | None = None
    for round_no in range(opts.runs):
        if round_no:
            restore_repo(repo)
        runs.setdefault("grant", []).append(jitpol_apply(opts.now, n))
        runs.setdefault("revoke", []).append(jitpol_apply(after, 0))
        runs.setdefault("floor_grant", []).append(floor_run("present", n))
        runs.setdefault("floor_revoke", []).append(floor_run("absent", 0))
        if aenv is not None and ansible_error is None:
            try:
                runs.setdefault("present", []).append(ansible_run("present", n))
                runs.setdefault("absent", []).append(ansible_run("absent", 0))
            except (RuntimeError, OSError) as exc:
                ansible_error = ansible_failed(exc)
    def times(name: str) -> list[float]:
        return [round(r.seconds, 3) for r in runs[name]]

    grant, revoke = median_run(runs["grant"]), median_run(runs["revoke"])
    floor_grant, floor_revoke = median_run(runs["floor_grant"]), median_run(runs["floor_revoke"])
    entry["jitpol"] = {"grant_s": round(grant.seconds, 3), "revoke_s": round(revoke.seconds, 3),
                       "grant_runs_s": times("grant"), "revoke_runs_s": times("revoke"),
                       "grant_rss_mib": round(grant.rss_mib, 1), "revoke_rss_mib": round(revoke.rss_mib, 1)}
    floor = {"grant": validate.median_s + floor_grant.seconds, "revoke": validate.median_s + floor_revoke.seconds}
    entry["floor"] = {
        "validate_s": round(validate.median_s, 3), "validate_runs_s": [round(r.seconds, 3) for r in validate.runs],
        "imports_s": round(imports.median_s, 3),
        "psycopg_grant_s": round(floor_grant.seconds, 3), "psycopg_revoke_s": round(floor_revoke.seconds, 3),
        "psycopg_grant_runs_s": times("floor_grant"), "psycopg_revoke_runs_s": times("floor_revoke"),
        "grant_s": round(floor["grant"], 3), "revoke_s": round(floor["revoke"], 3),
    }
    entry["ratio_jitpol_over_floor"] = {"grant": round(grant.seconds / floor["grant"], 3),
                                        "revoke": round(revoke.seconds / floor["revoke"], 3)}
    rows = [["tool (median of the rounds)", "grant run", "revoke run", "peak RSS"],
            ["jitpol apply", fmt_s(grant.seconds), fmt_s(revoke.seconds),
             f"{max(grant.rss_mib, revoke.rss_mib):.0f} MiB"],
            ["floor = jitpol validate + psycopg process", fmt_s(floor["grant"]), fmt_s(floor["revoke"]), ""],
            [f"  jitpol validate, same repository (median of {opts.runs})", fmt_s(validate.median_s),
             fmt_s(validate.median_s), f"{validate.peak_rss_mib:.0f} MiB"],
            ["  psycopg process, the same statements", fmt_s(floor_grant.seconds), fmt_s(floor_revoke.seconds),
             f"{max(floor_grant.rss_mib, floor_revoke.rss_mib):.0f} MiB"]]
    notes: list[str] = [
        f"jitpol / floor = {grant.seconds / floor['grant']:.2f} (grant), {revoke.seconds / floor['revoke']:.2f} "
        f"(revoke); of the floor, interpreter start + jitpol's imports: {imports.median_s:.2f} s"]

    if aenv is not None and ansible_error is None:
        present, absent = median_run(runs["present"]), median_run(runs["absent"])
        entry["ansible_list_runs_s"] = {"grant": times("present"), "revoke": times("absent")}
        record_list_form("ansible, one task with target_roles list", present, absent, grant, revoke,
                         entry, rows, notes)
        try:
            loop_variant(opts, work, aenv, dsn, logins, grant, revoke, entry, rows, notes)
        except (RuntimeError, OSError) as exc:
            entry["ansible_error"] = ansible_failed(exc)
    elif ansible_error is not None:
        entry["ansible_error"] = ansible_error
    else:
        entry["ansible_list"] = {"skipped": "not installed"}
    table(rows)
    for line in notes:
        print(f"  {line}")
    print("  note: jitpol's runs also evaluate every grant, read live memberships first, make the additions'"
          "\n        intent events durable before the batch that applies them, end the revoked principals' sessions"
          "\n        and re-check, append hash-chained ledger events and commit the ledger to git; Ansible only"
          "\n        sets the memberships. The floor is what jitpol cannot avoid: loading and validating the same"
          "\n        repository (`jitpol validate`, same load cache) plus one Python process that sends the same"
          "\n        statements with psycopg (one GRANT ... GRANTED BY for all; one REVOKE and one"
          "\n        pg_terminate_backend query for all).")
    results["apply"] = entry


def loop_variant(opts: Options, work: Path, aenv: Mapping[str, str], dsn: str, logins: Sequence[str],
                 grant: Measured, revoke: Measured, entry: dict[str, Any], rows: list[list[str]],
                 notes: list[str]) -> None:
    """The per-item `loop:` playbook costs about a second per item, so it runs on two samples and
    is extrapolated linearly to the full count (a full run would take a quarter of an hour)."""
    n = len(logins)
    big = min(opts.loop_sample, n)
    small = max(1, big // 5)
    samples: list[tuple[int, float, float]] = []
    for k in sorted({small, big}):
        present = run_ansible("membership_loop.yml", work, aenv, logins[:k], "present")
        got = member_count(dsn, APPLY_GROUP_ROLE)
        absent = run_ansible("membership_loop.yml", work, aenv, logins[:k], "absent")
        gone = member_count(dsn, APPLY_GROUP_ROLE)
        if (got, gone) != (k, 0):
            raise RuntimeError(f"ansible loop playbook left {got} then {gone} members (want {k} then 0)")
        samples.append((k, present.seconds, absent.seconds))

    def fit(index: int) -> tuple[float, float]:
        (k1, *t1), (k2, *t2) = samples[0], samples[-1]
        if k1 == k2:
            return 0.0, t2[index] / k2
        per = (t2[index] - t1[index]) / (k2 - k1)
        return t2[index] - per * k2, per

    (g0, gper), (r0, rper) = fit(0), fit(1)
    est_grant, est_revoke = g0 + gper * n, r0 + rper * n
    entry["ansible_loop"] = {
        "samples": [{"items": k, "grant_s": round(p, 3), "revoke_s": round(a, 3)} for k, p, a in samples],
        "per_item_s": {"grant": round(gper, 3), "revoke": round(rper, 3)},
        "estimated_s": {"grant": round(est_grant, 1), "revoke": round(est_revoke, 1)},
        "items": n,
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


def profile(opts: Options, repo: Path, env: Mapping[str, str], results: dict[str, Any]) -> None:
    """Stage timings (breakdown.py) and pyinstrument call trees of validate and plan, written to
    benchmarks/out/. Not part of the timed results: a profiler slows the run down."""
    reports: dict[str, str] = {}
    out = OUT / "breakdown.txt"
    done = subprocess.run([sys.executable, str(HERE / "breakdown.py"), str(repo), "--at", opts.now,
                           "--dsn-env", DSN_ENV], env=dict(env), capture_output=True, text=True, check=False)
    out.write_text(done.stdout + done.stderr)
    print(done.stdout.rstrip())
    reports["breakdown"] = str(out)
    tool = BIN / "pyinstrument"
    if not tool.exists():
        print("  skip pyinstrument: not installed (pip install pyinstrument)")
    else:
        for name, args in (("validate", ["validate", "--repo", str(repo)]),
                           ("plan", ["plan", "--repo", str(repo), "--at", opts.now, "--format", "json"])):
            out = OUT / f"profile-{name}.txt"
            ran = subprocess.run([str(tool), "-r", "text", "-o", str(out), "-m", "jitpol.cli", *args],
                                 env=dict(env), capture_output=True, text=True, check=False)
            print(f"  pyinstrument {name}: {out} (exit {ran.returncode})")
            reports[name] = str(out)
    results["profiles"] = reports


# -- main ------------------------------------------------------------------------------------

def compile_bytecode() -> None:
    """jitpol's modules compiled to bytecode first, as an installed package has them (pip compiles
    on install): with PYTHONDONTWRITEBYTECODE set, or a module just edited, every timed run would
    otherwise compile that source again."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "jitpol")], check=True,
                   stdout=subprocess.DEVNULL)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run in about a minute")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--grants", type=int, default=10_000)
    parser.add_argument("--people", type=int, default=1_000)
    parser.add_argument("--resources", type=int, default=200)
    parser.add_argument("--apply-n", type=int, default=1_000)
    parser.add_argument("--loop-sample", type=int, default=100, help="items for the measured ansible loop sample")
    parser.add_argument("--now", default=DEFAULT_NOW)
    parser.add_argument("--profile", action="store_true", help="also write pyinstrument reports")
    parser.add_argument("--no-install", action="store_true", help="never pip-install a missing peer")
    parser.add_argument("--sizes", default="1000,10000,100000",
                        help="grant counts for the growth benchmark (d), comma-separated; '' to skip it")
    parser.add_argument("--apply-max", type=int, default=100_000, help="largest size the growth benchmark applies")
    args = parser.parse_args(argv)
    if args.quick:
        args.grants, args.people, args.resources, args.apply_n, args.loop_sample, args.runs = 1000, 100, 20, 100, 5, 1
        args.sizes = "500,1000,2000"
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    opts = Options(args.grants, args.people, args.resources, args.apply_n, args.loop_sample, args.runs, args.now,
                   args.profile, not args.no_install)

    work = OUT / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    compile_bytecode()
    results: dict[str, Any] = {"options": asdict(opts)}
    print(f"jitpol benchmarks (sizes: {opts.grants:,} grants, {opts.people:,} people, {opts.resources} resources;"
          f" apply {opts.apply_n:,}; now = {opts.now})")

    started = time.perf_counter()
    summary = generate(work / "big" / "repo", OUT / "keys", grants=opts.grants, people=opts.people,
                       resources=opts.resources, now=opts.now)
    gen_s = time.perf_counter() - started
    files = sum(1 for p in summary.root.rglob("*.yaml"))
    expected = ", ".join(f"{v} {k}" for k, v in sorted(summary.expected.items()))
    print(f"generated {files:,} files in {gen_s:.1f} s: {summary.signed_grants} grants carry "
          f"{summary.signatures} signatures; intended states at now: {expected}")
    results["generated"] = {**summary.as_dict(), "files": files, "seconds": round(gen_s, 2)}

    failures: list[str] = []

    def attempt(name: str, fn: Callable[[], None]) -> None:
        # a failing jitpol run is reported and recorded; the other benchmarks still run
        try:
            fn()
        except (RuntimeError, OSError, ValueError) as exc:
            print(f"  FAILED: {str(exc)[:2000]}")
            results.setdefault("failures", {})[name] = str(exc)[:2000]
            failures.append(name)

    env_info = environment(None)
    try:
        with ThrowawayPostgres(work / "pg") as pg:
            env_info = environment(server_version(pg.superuser_dsn))
            print_environment(env_info)
            results["environment"] = env_info
            attempt("validate", lambda: bench_validate(opts, summary.root, files, results))
            create_roles(pg.superuser_dsn, summary.pg_roles, summary.pg_logins)
            env = {**os.environ, DSN_ENV: pg.superuser_dsn}
            attempt("plan", lambda: bench_plan(opts, summary.root, env, results))
            attempt("apply", lambda: bench_apply(opts, work, pg, results))
            if sizes:
                attempt("scaling", lambda: bench_scaling(
                    sizes=sizes, work=work, keydir=OUT / "keys", out=OUT, now=opts.now, dsn=pg.superuser_dsn,
                    jitpol=jitpol_cmd(), apply_max=args.apply_max, table=table, results=results))
            if opts.profile:
                print("\n== profiles (not timed)")
                attempt("profile", lambda: profile(opts, summary.root, env, results))
    except (PostgresNotFound, ThrowawayPostgresError) as exc:
        print_environment(env_info)
        results["environment"] = env_info
        print(f"\nPostgreSQL could not be started ({exc}); running the validate benchmark only")
        attempt("validate", lambda: bench_validate(opts, summary.root, files, results))
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    OUT.mkdir(exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults: {OUT / 'results.json'} (total {results['total_seconds']:.0f} s)")
    if failures:
        print(f"jitpol failed in: {', '.join(failures)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
