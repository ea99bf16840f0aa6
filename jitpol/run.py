"""One run, start to end: the stages in order, outside any command line. Each stage is a folder:

    load       jitpol/load      the repository, strict YAML and schemas
    trust      jitpol/trust     the trust root, the ledger's authentication, the effective policy
    evaluate   jitpol/evaluate  the grants -> what should exist now (`Prepared`)
    observe    jitpol/observe   every target in parallel
    plan       jitpol/plan      the pure diff; `Plan` carries its time and its renderers
    execute    jitpol/execute   revocations first, intent before effect
    record     jitpol/record    adoption and lifecycle events, appended to the ledger as they
                                happen, then the reconciler's checkpoint signed

Every command that runs stages calls this module: `apply`, `reconcile` and `agent` call run_apply,
`plan` calls plan_run (load -> plan, nothing written), `status`, `notify`, `report` and `check` call
prepare_run (load -> evaluate). What a run has to say goes to a Reporter (the command line's prints it; a
test's may collect it), never to a terminal directly.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from jitpol.clock import FixedClock
from jitpol.errors import JitpolError, LedgerBroken
from jitpol.evaluate.prepare import Prepared, prepare
from jitpol.execute.apply import Result, execute
from jitpol.execute.delivery import CredentialIssuer
from jitpol.execute.lock import RunLock
from jitpol.execute.mfa import okta_pushes
from jitpol.ledger.store import Appender, Ledger
from jitpol.model.times import utc_text
from jitpol.observe.targets import Connections, Observation, observe
from jitpol.plan.build import make_plan
from jitpol.plan.diff import Plan
from jitpol.plan.render import plan_json, plan_summary
from jitpol.policy.approvals import Verifier
from jitpol.record.lifecycle import adopt_policy, lifecycle_events
from jitpol.scope import Part, ledger_path
from jitpol.trust.ledger import sign_checkpoint
from jitpol.vcs.sshsig import FastVerifier


class Reporter(Protocol):
    """Where a run says what it does."""

    def plan(self, plan: Plan) -> None:
        """The plan, before any of it runs."""

    def progress(self, line: str) -> None:
        """One step done (a target observed, an action applied)."""

    def note(self, text: str) -> None:
        """Something to know on the side (a diagnostic, an operation with --debug)."""

    def summary(self, text: str) -> None:
        """The run's outcome in one line."""

    def error(self, text: str) -> None:
        """Something that went wrong, as the line to show; the run goes on where it can."""

    def unrecorded(self, body: Mapping[str, Any]) -> None:
        """A ledger event that could not be appended (its file is damaged): the job log keeps it."""


class Silent:
    """A Reporter that says nothing."""

    def plan(self, plan: Plan) -> None:
        pass

    def progress(self, line: str) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def summary(self, text: str) -> None:
        pass

    def error(self, text: str) -> None:
        pass

    def unrecorded(self, body: Mapping[str, Any]) -> None:
        pass


@dataclass(frozen=True, slots=True)
class RunSummary:
    ok: bool
    results: tuple[Result, ...]
    events: tuple[dict[str, Any], ...]  # bodies appended this run (for re-chaining on push)
    message: str
    plan: dict[str, Any] | None = None  # the plan as `plan --format json` shows it
    signing: str | None = None  # the ledger public key to sign re-chained events against
    signable: bool = False  # the ledger was trusted at the start: a re-chained ledger is signed again

    def as_json(self, commit: str | None) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "plan": self.plan,
            "results": [
                {"op": r.action.op, "target": r.action.target, "principal": r.action.principal,
                 "privilege": r.action.assignment.privilege, "grants": list(r.action.grants), "ok": r.ok,
                 "changed": bool(r.outcome and r.outcome.changed), "error": r.error}
                for r in self.results
            ],
            "ledger_events": len(self.events),
            "commit": commit,
        }


def prepare_run(repo: Path, now: datetime, env: Mapping[str, str] | None = None, *, shard: Part | None = None,
                verifier: Verifier | None = None) -> Prepared:
    """Load -> trust -> evaluate, for commands that change nothing on a target (status, notify,
    report, check): the grants under the effective policy at `now`."""
    return prepare(repo, now, verifier if verifier is not None else FastVerifier(), env, shard)


@dataclass(frozen=True, slots=True)
class Planned:
    """What `plan` shows: the prepared run, what the targets hold, and the plan."""

    prepared: Prepared
    observation: Observation
    plan: Plan


def plan_run(repo: Path, now: datetime, env: Mapping[str, str], report: Reporter | None = None, *,
             shard: Part | None = None) -> Planned:
    """Load -> plan without the run lock: targets are read, nothing is written anywhere."""
    prep = prepare_run(repo, now, env, shard=shard)
    conns = Connections(prep.targets, env, clock=FixedClock(now))
    try:
        obs = observe(prep, conns, report.progress if report is not None else None)
    finally:
        conns.close()
    return Planned(prep, obs, make_plan(prep, obs))


def run_apply(repo: Path, now: datetime, env: Mapping[str, str], report: Reporter, *, debug: bool = False,
              shard: Part | None = None, require_root: bool = False, committed_only: bool = False) -> RunSummary:
    """Do one full run under the repository lock. Ledger events are appended even when
    execution fails part-way."""
    ledger_file = repo / ledger_path(shard)
    with RunLock(repo, shard.lock_scope if shard else ""):
        verifier = FastVerifier()
        prep = prepare(repo, now, verifier, env, shard, require_root=require_root, committed_only=committed_only)
        appended: list[dict[str, Any]] = []
        not_adopted: list[str] = []  # a policy that could not be adopted: its additions were dropped
        asked = okta_pushes(prep, env)
        if asked:  # second factors answered: record them, then judge again
            answers = [{"time": utc_text(now), "policy_commit": prep.policy_commit, **e} for e in asked]
            Ledger(ledger_file).append(answers)
            appended.extend(answers)
            prep = prepare(repo, now, verifier, env, shard, require_root=require_root, committed_only=committed_only)
        for d in prep.diagnostics:
            report.note(str(d))
        conns = Connections(prep.targets, env, clock=FixedClock(now))
        results: list[Result] = []
        ledger = Ledger(ledger_file)
        try:
            obs = observe(prep, conns, report.progress)
            plan = make_plan(prep, obs)
            report.plan(plan)
            base = {"time": utc_text(now), "policy_commit": prep.policy_commit}
            with _recorder(ledger, report) as append_one:
                def append(body: Mapping[str, Any]) -> None:
                    appended.append(dict(body))
                    append_one(body)

                def append_many(bodies: Sequence[Mapping[str, Any]], durable: bool) -> None:
                    appended.extend(dict(body) for body in bodies)
                    append_one.many(bodies, durable=durable, parsed=False)
                try:
                    adopted = adopt_policy(prep)
                except JitpolError as exc:  # e.g. a link where the snapshot goes: adopt nothing, revoke on
                    report.error(f"error: the policy was not adopted: {exc}")
                    adopted, plan = [], replace(plan, actions=plan.revocations)
                    not_adopted.append(str(exc))
                for ev in adopted:
                    append({**base, **ev})
                issuer = CredentialIssuer(repo, prep.decided, prep.targets, prep.history.holders, now,
                                          conns.get)
                try:
                    results = execute(plan, conns, append, base, report.progress, issuer, append_many=append_many)
                finally:
                    append_many([{**base, **lifecycle} for lifecycle in lifecycle_events(prep, obs, results)], False)
        finally:
            conns.close()
        signing_problem = _sign(repo, ledger_file, env, now, prep, report)
        failed = [r for r in results if not r.ok]
        if debug:
            for r in results:
                for op in (r.outcome.operations if r.outcome else ()):
                    report.note(f"  [{r.action.target}] {op}")
        for r in failed:
            report.error(f"FAILED {r.action.op} {r.action.assignment.privilege} for {r.action.principal} on "
                         f"{r.action.target}: {r.error}")
        done = len(results) - len(failed)
        message = (f"jitpol: ledger for run at {utc_text(now)} "
                   f"({done} applied, {len(failed)} failed; {plan_summary(plan)})")
        ok = prep.valid and not failed and not obs.errors and signing_problem is None and not not_adopted
        report.summary(f"Apply complete: {done} applied, {len(failed)} failed, {len(appended)} ledger events.")
        signable = prep.ledger is not None and prep.ledger.trusted
        signing = prep.ledger.key_for(ledger_file.name) if prep.ledger is not None and signable else None
        return RunSummary(ok, tuple(results), tuple(appended), message, plan_json(plan),
                          signing=signing, signable=signable)


@contextmanager
def _recorder(ledger: Ledger, report: Reporter) -> Iterator[Appender | _Echo]:
    """The ledger's appender; when its file is damaged (it cannot be extended), a stand-in that
    prints each event to stderr as JSON instead, so the due revocations still run and leave a
    record in the job's log. The run then exits 1; the next run re-observes and repeats nothing."""
    stack = ExitStack()
    try:  # the appender verifies the file once, before it hands out anything
        add = stack.enter_context(ledger.appender())
    except LedgerBroken as exc:
        report.error(f"error: {exc}: events of this run are not appended; they follow on stderr (revocations go on)")
    else:
        with stack:
            yield add
        return

    yield _Echo(report)


class _Echo:
    """The stand-in for a damaged ledger's appender: each event goes to the Reporter."""

    def __init__(self, report: Reporter) -> None:
        self._report = report

    def __call__(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self._report.unrecorded(body)
        return dict(body)

    def many(self, bodies: Sequence[Mapping[str, Any]], *, durable: bool = False,
             parsed: bool = True) -> list[dict[str, Any]]:
        events = [self(body) for body in bodies]
        return events if parsed else []


def _sign(repo: Path, ledger_file: Path, env: Mapping[str, str], now: datetime, prep: Prepared,
          report: Reporter) -> str | None:
    """Sign a checkpoint of the ledger file this run wrote, when the ledger was trusted at the
    start (never bless what someone else wrote) and $JITPOL_LEDGER_KEY is set. The problem, or None."""
    if prep.ledger is None or not prep.ledger.trusted:
        return None
    try:
        sign_checkpoint(repo, ledger_file, env, utc_text(now), prep.ledger.key_for(ledger_file.name))
    except JitpolError as exc:
        report.error(f"error: the ledger checkpoint was not signed: {exc}")
        return str(exc)
    return None


