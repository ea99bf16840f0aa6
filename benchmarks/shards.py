"""How total reconcile time falls with the number of shards (`jitpol apply --shard K/N`).

A generated repository with many targets, each a `fake` target with a simulated network round
trip per call (--latency-ms, default 40 ms: a cloud API or a database in another region).

Two numbers per N:
- "runners": each shard job timed on its own, one after another; the slowest is what N CI
  matrix jobs on N runners take in total (each job loads the whole repository, so this also
  shows the fixed cost that does not shrink with N);
- "one box": all N jobs started at once on this machine (2 cores here), where they compete
  for CPU — an upper bound, not how CI runs them.
Run: .venv/bin/python benchmarks/shards.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOW = "2026-12-01T10:10:00Z"


def doc(kind: str, name: str, spec: dict[str, object]) -> dict[str, object]:
    return {"apiVersion": "jitpol/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def write(path: Path, data: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def generate(repo: Path, state: Path, targets: int, grants_per_target: int, latency_ms: int) -> None:
    write(repo / "jitpol.yaml", doc("Config", "bench", {"admins": ["team:admins"], "targets": {
        f"t{i:03d}": {"type": "fake", "state_file": str(state / f"t{i:03d}.json"), "latency_ms": latency_ms}
        for i in range(targets)}}))
    people = [f"p{i:03d}" for i in range(grants_per_target)]
    for p in people:
        write(repo / "people" / f"{p}.yaml", doc("Person", p, {"email": f"{p}@example.com", "accounts": {"fake": p}}))
    write(repo / "people" / "admin.yaml", doc("Person", "admin", {"email": "admin@example.com"}))
    write(repo / "teams" / "eng.yaml", doc("Team", "eng", {"members": people}))
    write(repo / "teams" / "admins.yaml", doc("Team", "admins", {"members": ["admin"]}))
    write(repo / "workflows" / "pre.yaml", doc("Workflow", "pre", {
        "requesters": ["team:eng"], "approvals": {"required": 0}, "maxDuration": "8h"}))
    for i in range(targets):
        write(repo / "resources" / f"r{i:03d}.yaml", doc("Resource", f"r{i:03d}", {
            "target": f"t{i:03d}", "workflow": "pre", "model": "role-membership",
            "roles": {"read": {"grants": ["app_read"]}}}))
        for p in people:
            write(repo / "grants" / f"g{i:03d}-{p}.yaml", doc("Grant", f"g{i:03d}-{p}", {
                "requester": p, "resource": f"r{i:03d}", "role": "read",
                "window": {"start": "2026-12-01T10:00:00Z", "duration": "1h"}, "justification": "bench"}))


def _cmd(repo: Path, k: int, n: int) -> list[str]:
    return [sys.executable, "-m", "jitpol.cli", "apply", "--repo", str(repo), "--at", NOW, "--no-commit",
            *(["--shard", f"{k}/{n}"] if n > 1 else [])]


def _check(p: subprocess.Popen[bytes]) -> None:
    _, err = p.communicate()
    if p.returncode != 0:
        raise SystemExit(f"shard run failed: {err.decode()[-2000:]}")


def run_parallel(repo: Path, n: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    procs = [subprocess.Popen(_cmd(repo, k, n), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for k in range(1, n + 1)]
    for p in procs:
        _check(p)
    return time.perf_counter() - start


def run_each(repo: Path, n: int) -> float:
    """The slowest single shard job, each run alone (as on its own CI runner)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    slowest = 0.0
    for k in range(1, n + 1):
        start = time.perf_counter()
        _check(subprocess.Popen(_cmd(repo, k, n), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        slowest = max(slowest, time.perf_counter() - start)
    return slowest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--targets", type=int, default=160)
    ap.add_argument("--grants-per-target", type=int, default=10)
    ap.add_argument("--latency-ms", type=int, default=40)
    ap.add_argument("--shards", default="1,2,4,8")
    args = ap.parse_args()
    print(f"{args.targets} targets x {args.grants_per_target} grants, {args.latency_ms} ms per call, "
          f"{os.cpu_count()} CPUs")
    results: list[tuple[int, float, float]] = []
    for n in [int(x) for x in args.shards.split(",")]:
        timings = []
        for runner in (run_each, run_parallel):
            with tempfile.TemporaryDirectory() as tmp:
                repo, state = Path(tmp) / "repo", Path(tmp) / "state"
                state.mkdir()
                generate(repo, state, args.targets, args.grants_per_target, args.latency_ms)
                timings.append(runner(repo, n))
                granted = sum(len(json.loads(f.read_text())["members"]["app_read"]) for f in state.glob("*.json"))
                assert granted == args.targets * args.grants_per_target, granted
        results.append((n, timings[0], timings[1]))
        base = results[0]
        print(f"N={n:<3} runners {timings[0]:6.2f} s ({base[1] / timings[0]:4.2f}x)   "
              f"one box {timings[1]:6.2f} s ({base[2] / timings[1]:4.2f}x)", flush=True)
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "shards.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=1))


if __name__ == "__main__":
    main()
