"""Growth with the number of grants: `validate`, `plan` and `apply` on generated repositories of
1,000 / 10,000 / 100,000 grants (200 people, 200 resources), time and peak memory, and a plot.

Called by run.py (`--sizes`); each size gets its own repository from `generate.generate` (same
seed, so the same people and roles at every size) and runs, one after another:

- `jitpol validate` with the file cache off (a cold run);
- `jitpol plan --at NOW --format json` against the benchmark's PostgreSQL, cache off, then again
  with a warm file cache (filled by one `validate`), as a CI that carries the cache would run it;
- `jitpol apply --at NOW` (the repository is a git repository; about 3.5% of the grants are
  active at NOW), after every membership of the benchmark's roles was removed, unless the size
  is above `--apply-max`.

Memory is reported twice: the largest single process (ru_maxrss, as everywhere in run.py) and the
sum over the process tree sampled every 20 ms (the load runs on worker processes above 1,500 files,
so the sum is what the machine needs). The plot (`benchmarks/out/scaling.png`) is log-log with
a dotted line of slope 1 through each 1,000-grant point: a curve parallel to it grows linearly.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.generate import DSN_ENV, generate

SCALING_PEOPLE = 200
SCALING_RESOURCES = 200


@dataclass(frozen=True, slots=True)
class Run:
    """One child process: exit status, wall seconds, largest process and sampled tree peak (MiB)."""

    returncode: int
    seconds: float
    rss_mib: float
    tree_mib: float
    stdout: str
    stderr: str

    def as_dict(self) -> dict[str, float]:
        return {"seconds": round(self.seconds, 3), "peak_rss_mib": round(self.rss_mib, 1),
                "peak_tree_mib": round(self.tree_mib, 1)}


def _tree_rss_kib(pid: int) -> int:
    """Resident set of `pid` and every descendant, in KiB (0 for processes already gone)."""
    total = 0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/statm", "rb") as handle:
                total += int(handle.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except (OSError, ValueError, IndexError):
            continue
        stack.extend(int(c) for c in children)
    return total


def run(argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None) -> Run:
    """Run argv to completion: wall time, ru_maxrss (largest process) and the sampled tree peak."""
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=out, stderr=err, env=dict(env), cwd=cwd)
        peak = 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, _tree_rss_kib(proc.pid))
                stop.wait(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        stop.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        rss = usage.ru_maxrss / 1024
        return Run(proc.returncode, seconds, rss, max(peak / 1024, rss), out.read().decode(errors="replace"),
                   err.read().decode(errors="replace"))


def reset_memberships(dsn: str, groups: Sequence[str]) -> None:
    """Remove every member of the benchmark's group roles (a clean start for each size)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT g.rolname, m.rolname FROM pg_auth_members am JOIN pg_roles g ON g.oid = am.roleid "
            "JOIN pg_roles m ON m.oid = am.member WHERE g.rolname = ANY(%s)", (list(groups),)).fetchall()
        for group, member in rows:
            conn.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(group), sql.Identifier(member)))


def ensure_roles(dsn: str, groups: Sequence[str], logins: Sequence[str]) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        existing = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
        with conn.transaction():
            for role in groups:
                if role not in existing:
                    conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
            for role in logins:
                if role not in existing:
                    conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))


def bench_scaling(*, sizes: Sequence[int], work: Path, keydir: Path, out: Path, now: str, dsn: str | None,
                  jitpol: Sequence[str], apply_max: int, table: Callable[[Sequence[Sequence[str]]], None],
                  results: dict[str, Any]) -> None:
    print(f"\n== d. growth: validate / plan / apply at {', '.join(f'{n:,}' for n in sizes)} grants "
          f"({SCALING_PEOPLE} people, {SCALING_RESOURCES} resources); one run each, file cache off")
    base_env = {**os.environ, "JITPOL_CACHE": "off"}
    points: list[dict[str, Any]] = []
    rows = [["grants", "files", "validate", "plan", "plan, warm", "apply", "validate peak", "plan peak",
             "plan warm peak", "apply peak"]]
    for n in sizes:
        repo = work / f"scale-{n}" / "repo"
        started = time.perf_counter()
        summary = generate(repo, keydir, grants=n, people=SCALING_PEOPLE, resources=SCALING_RESOURCES, now=now)
        files = sum(1 for _ in repo.rglob("*.yaml"))
        print(f"  generated {n:,} grants ({files:,} files) in {time.perf_counter() - started:.1f} s", flush=True)
        point: dict[str, Any] = {"grants": n, "files": files, "active_at_now": summary.expected.get("active", 0)}
        validate = run([*jitpol, "validate", "--repo", str(repo)], base_env)
        if validate.returncode != 0:
            raise RuntimeError(f"validate at {n}: exit {validate.returncode}\n{validate.stderr[-1500:]}")
        point["validate"] = validate.as_dict()
        plan = apply = warm_plan = None
        if dsn is not None:
            ensure_roles(dsn, summary.pg_roles, summary.pg_logins)
            reset_memberships(dsn, summary.pg_roles)
            env = {**base_env, DSN_ENV: dsn}
            plan = run([*jitpol, "plan", "--repo", str(repo), "--at", now, "--format", "json"], env)
            if plan.returncode != 0:
                raise RuntimeError(f"plan at {n}: exit {plan.returncode}\n{plan.stderr[-1500:]}")
            point["plan"] = {**plan.as_dict(), "actions": len(json.loads(plan.stdout)["actions"])}
            # the same plan with a warm file cache (filled by one validate), as a CI that carries it sees
            cached = {**env, "JITPOL_CACHE": "on", "JITPOL_CACHE_DIR": str(work / f"scale-{n}" / "cache")}
            run([*jitpol, "validate", "--repo", str(repo)], cached)
            warm_plan = run([*jitpol, "plan", "--repo", str(repo), "--at", now, "--format", "json"], cached)
            if warm_plan.returncode != 0:
                raise RuntimeError(f"plan (warm) at {n}: exit {warm_plan.returncode}\n{warm_plan.stderr[-1500:]}")
            point["plan_warm"] = warm_plan.as_dict()
            if n <= apply_max:
                git = ["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
                subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
                subprocess.run([*git, "add", "-A"], check=True)
                subprocess.run([*git, "commit", "-q", "-m", "benchmark policies"], check=True)
                apply = run([*jitpol, "apply", "--repo", str(repo), "--at", now], env)
                if apply.returncode != 0:
                    raise RuntimeError(f"apply at {n}: exit {apply.returncode}\n{apply.stderr[-1500:]}")
                point["apply"] = apply.as_dict()
            else:
                point["apply"] = {"skipped": f"above --apply-max {apply_max}"}
        points.append(point)

        def cell(r: Run | None) -> str:
            return "-" if r is None else f"{r.seconds:.2f} s"

        def mem(r: Run | None) -> str:
            return "-" if r is None else f"{r.rss_mib:.0f} / {r.tree_mib:.0f} MiB"

        rows.append([f"{n:,}", f"{files:,}", cell(validate), cell(plan), cell(warm_plan), cell(apply), mem(validate),
                     mem(plan), mem(warm_plan), mem(apply)])
        print(f"  {n:,}: validate {cell(validate)}, plan {cell(plan)}, apply {cell(apply)}", flush=True)
    table(rows)
    print("  peak: largest process / sum over the process tree (sampled every 20 ms)")
    for name in ("validate", "plan", "plan_warm", "apply"):
        timed = [(p["grants"], p[name]["seconds"]) for p in points if "seconds" in p.get(name, {})]
        if len(timed) >= 2:
            (n0, t0), (n1, t1) = timed[0], timed[-1]
            print(f"  {name}: x{n1 / n0:.0f} grants -> x{t1 / t0:.1f} time")
    results["scaling"] = {"people": SCALING_PEOPLE, "resources": SCALING_RESOURCES, "points": points}
    plot = plot_scaling(points, out / "scaling.png")
    if plot is not None:
        results["scaling"]["plot"] = str(plot)
        print(f"  plot: {plot}")


def plot_scaling(points: Sequence[Mapping[str, Any]], path: Path) -> Path | None:
    """Time and peak memory against grants, log-log, with slope-1 guides; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  skip plot: matplotlib is not installed (pip install -e '.[dev]')")
        return None
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, marker in (("validate", "o"), ("plan", "s"), ("plan_warm", "D"), ("apply", "^")):
        pts = [(p["grants"], p[name]) for p in points if "seconds" in p.get(name, {})]
        if not pts:
            continue
        xs = [n for n, _ in pts]
        line = ax_t.plot(xs, [v["seconds"] for _, v in pts], marker=marker, label=name)[0]
        ax_m.plot(xs, [v["peak_tree_mib"] for _, v in pts], marker=marker, label=f"{name} (process tree)",
                  color=line.get_color())
        ax_m.plot(xs, [v["peak_rss_mib"] for _, v in pts], marker=marker, linestyle="--", alpha=0.6,
                  label=f"{name} (largest process)", color=line.get_color())
        x0, y0 = xs[0], pts[0][1]["seconds"]
        ax_t.plot([x0, xs[-1]], [y0, y0 * xs[-1] / x0], linestyle=":", color=line.get_color(), alpha=0.5)
    for ax, title, unit in ((ax_t, "wall time (dotted: linear growth)", "seconds"), (ax_m, "peak memory", "MiB")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("grants")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"jitpol growth ({SCALING_PEOPLE} people, {SCALING_RESOURCES} resources, 2-core machine)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
