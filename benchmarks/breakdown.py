"""Where `jitpol validate` / `plan` spend their time, stage by stage, in one process.

    .venv/bin/python benchmarks/breakdown.py REPO [--at TIME] [--dsn-env BENCH_PG_DSN]
    .venv/bin/python benchmarks/breakdown.py --scaling 1000,2000,4000 [--at TIME]

Times the public building blocks with perf_counter (no profiler, so no profiler overhead):
reading every file with the strict YAML reader, JSON Schema validation of every document, the
whole `load_repository` (the rest of it is building values, cross-references and name checks),
`evaluate` once with a verifier that accepts everything and once with the real ssh-keygen
verifier (the difference is signature verification), and, when the DSN variable is set,
observing PostgreSQL and diffing. Prints a table; writes nothing but (--scaling) generated
repositories in a temporary directory. For call-level detail run
`pyinstrument -m jitpol.cli validate --repo REPO`.

--scaling generates the apply benchmark's repository (one team of N people, N active grants)
for each N and times load, evaluate and the ledger's lifecycle_events with every desired
membership observed present: shows how each grows with N (2x N -> 2x time is linear).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.generate import generate_apply_repo  # noqa: E402
from jitpol.clock import FixedClock  # noqa: E402
from jitpol.evaluate.prepare import prepare  # noqa: E402
from jitpol.load.repository import load_repository  # noqa: E402
from jitpol.load.schema import validate_document  # noqa: E402
from jitpol.load.yamlstrict import YamlError, load_yaml_file  # noqa: E402
from jitpol.observe.targets import Connections, Observation, observe  # noqa: E402
from jitpol.plan.build import make_plan  # noqa: E402
from jitpol.policy.evaluate import evaluate  # noqa: E402
from jitpol.policy.history import History  # noqa: E402
from jitpol.record.lifecycle import lifecycle_events  # noqa: E402
from jitpol.vcs.sshsig import SshKeygenVerifier  # noqa: E402

T = TypeVar("T")


class AcceptAll:
    """A Verifier that says yes without checking: isolates the cost of ssh-keygen."""

    def verify_many(self, items: Sequence[tuple[bytes, str, str]], *, namespace: str = "") -> list[bool]:
        return [True] * len(items)


def timed(rows: list[tuple[str, float, str]], label: str, fn: Callable[[], T], note: str = "") -> T:
    started = time.perf_counter()
    value = fn()
    rows.append((label, time.perf_counter() - started, note))
    return value


def policy_files(repo: Path) -> list[Path]:
    files = [repo / "jitpol.yaml"]
    for directory in ("people", "teams", "workflows", "resources"):
        files += sorted((repo / directory).glob("*.yaml"))
    return files + sorted((repo / "grants").rglob("*.yaml"))


def scaling(sizes: Sequence[int], at: str) -> None:
    now = datetime.fromisoformat(at).astimezone(UTC)
    print(f"{'grants':>7}  {'load_repository':>15}  {'evaluate':>9}  {'lifecycle_events':>16}")
    with tempfile.TemporaryDirectory(prefix="jitpol-scaling-") as tmp:
        for n in sizes:
            repo = Path(tmp) / str(n)
            generate_apply_repo(repo, n, at)
            rows: list[tuple[str, float, str]] = []
            loaded = timed(rows, "load", lambda: load_repository(repo))  # noqa: B023 - called at once
            timed(rows, "evaluate", lambda: evaluate(loaded.policy, now, History(), AcceptAll()))  # noqa: B023
            prep = prepare(repo, now, AcceptAll())
            desired = prep.evaluation.desired if prep.evaluation is not None else {}
            obs = Observation({t: frozenset(d.assignment for d in desired.values()) for t in prep.targets}, {})
            timed(rows, "lifecycle", lambda: lifecycle_events(prep, obs, []))  # noqa: B023
            print(f"{n:>7}  {rows[0][1]:>14.3f}s  {rows[1][1]:>8.3f}s  {rows[2][1]:>15.3f}s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("repo", type=Path, nargs="?")
    parser.add_argument("--at", default="2026-06-17T10:00:00Z")
    parser.add_argument("--dsn-env", default="BENCH_PG_DSN")
    parser.add_argument("--scaling", help="comma-separated grant counts, e.g. 1000,2000,4000")
    args = parser.parse_args(argv)
    if args.scaling:
        scaling([int(x) for x in args.scaling.split(",")], args.at)
        return 0
    if args.repo is None:
        parser.error("REPO is required (or --scaling)")
    repo: Path = args.repo
    now = datetime.fromisoformat(args.at).astimezone(UTC)
    rows: list[tuple[str, float, str]] = []

    files = timed(rows, "find files", lambda: policy_files(repo))

    def read_all() -> list[Any]:
        docs = []
        for f in files:
            try:
                docs.append(load_yaml_file(f).data)
            except YamlError:
                pass
        return docs

    docs = timed(rows, "strict YAML read (load_yaml_file)", read_all, f"{len(files):,} files")
    timed(rows, "JSON Schema (validate_document)", lambda: [validate_document(d) for d in docs])
    loaded = timed(rows, "load_repository (all of validate)", lambda: load_repository(repo),
                   "= the two above + building values + cross-references")
    ev = timed(rows, "evaluate, signatures not checked", lambda: evaluate(loaded.policy, now, History(), AcceptAll()))
    ev2 = timed(rows, "evaluate, ssh-keygen verifier",
                lambda: evaluate(loaded.policy, now, History(), SshKeygenVerifier()))
    active = sum(1 for s in ev2.statuses if s.state == "active")
    rows[-1] = (*rows[-1][:2], f"{active} active ({sum(1 for s in ev.statuses if s.state == 'active')} "
                               "if every signature were good)")
    if os.environ.get(args.dsn_env):
        prep = timed(rows, "prepare (load + ledger + evaluate)", lambda: prepare(repo, now, SshKeygenVerifier()))
        conns = Connections(prep.targets, dict(os.environ), clock=FixedClock(now))
        try:
            obs = timed(rows, "observe PostgreSQL", lambda: observe(prep, conns))
        finally:
            conns.close()
        plan = timed(rows, "diff (make_plan)", lambda: make_plan(prep, obs))
        rows[-1] = (*rows[-1][:2], f"{len(plan.actions)} actions")

    width = max(len(r[0]) for r in rows)
    print(f"{'stage'.ljust(width)}  {'seconds':>8}  note")
    for label, seconds, note in rows:
        print(f"{label.ljust(width)}  {seconds:8.3f}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
