"""apply and reconcile: the commands that change targets."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from jitpol.cli.common import Exit, at_option, emit_json, format_option, handle_errors, now_from, repo_option
from jitpol.cli.render import plan_json, plan_summary, plan_text
from jitpol.errors import InvalidInput, JitpolError
from jitpol.execute.delivery import CredentialIssuer
from jitpol.execute.engine import (
    AUDIT_DIR,
    Connections,
    Part,
    Prepared,
    Result,
    Shard,
    execute,
    ledger_path,
    lifecycle_events,
    make_plan,
    observe,
    policy_events,
    prepare,
)
from jitpol.execute.ledgerauth import sign_checkpoint
from jitpol.execute.lock import RunLock
from jitpol.execute.mfa import okta_pushes
from jitpol.ledger.store import Ledger
from jitpol.model.times import utc_text
from jitpol.vcs.git import Repo
from jitpol.vcs.sshsig import FastVerifier


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


def _progress(line: str) -> None:
    # progress on a terminal; quiet in CI logs unless --debug
    if sys.stderr.isatty():
        click.echo(f"  {line}", err=True)


def run_apply(repo: Path, now_at: str | None, env: Mapping[str, str], debug: bool = False,
              shard: Part | None = None, quiet: bool = False, *, require_root: bool = False) -> RunSummary:
    """Do one full run under the repository lock. Ledger events are appended even when
    execution fails part-way."""
    now = now_from(now_at)
    ledger_file = repo / ledger_path(shard)
    with RunLock(repo, shard.lock_scope if shard else ""):
        verifier = FastVerifier()
        prep = prepare(repo, now, verifier, env, shard, require_root=require_root)
        appended: list[dict[str, Any]] = []
        asked = okta_pushes(prep, env)
        if asked:  # second factors answered: record them, then judge again
            answers = [{"time": utc_text(now), "policy_commit": prep.policy_commit, **e} for e in asked]
            Ledger(ledger_file).append(answers)
            appended.extend(answers)
            prep = prepare(repo, now, verifier, env, shard, require_root=require_root)
        for d in prep.diagnostics:
            click.echo(str(d), err=True)
        conns = Connections(prep.targets, env)
        results: list[Result] = []
        ledger = Ledger(ledger_file)
        try:
            obs = observe(prep, conns, _progress)
            plan = make_plan(prep, obs)
            if not quiet:
                click.echo(plan_text(plan, now))
            base = {"time": utc_text(now), "policy_commit": prep.policy_commit}
            with _recorder(ledger) as append_one:
                def append(body: Mapping[str, Any]) -> None:
                    appended.append(dict(body))
                    append_one(body)
                for ev in policy_events(prep):
                    append({**base, **ev})
                issuer = CredentialIssuer(repo, prep.decided, prep.targets, prep.history.holders, now,
                                          conns.get)
                try:
                    results = execute(plan, conns, append, base, _progress, issuer)
                finally:
                    for ev in lifecycle_events(prep, obs, results):
                        append({**base, **ev})
        finally:
            conns.close()
        signing_problem = _sign(repo, ledger_file, env, now, prep)
        failed = [r for r in results if not r.ok]
        if debug:
            for r in results:
                for op in (r.outcome.operations if r.outcome else ()):
                    click.echo(f"  [{r.action.target}] {op}", err=True)
        for r in failed:
            click.secho(f"FAILED {r.action.op} {r.action.assignment.privilege} for {r.action.principal} on "
                        f"{r.action.target}: {r.error}", fg="red", err=True)
        done = len(results) - len(failed)
        message = (f"jitpol: ledger for run at {utc_text(now)} "
                   f"({done} applied, {len(failed)} failed; {plan_summary(plan)})")
        ok = prep.valid and not failed and not obs.errors and signing_problem is None
        if not quiet:
            click.echo(f"Apply complete: {done} applied, {len(failed)} failed, {len(appended)} ledger events.")
        signable = prep.ledger is not None and prep.ledger.trusted
        return RunSummary(ok, tuple(results), tuple(appended), message, plan_json(plan, now),
                          signing=(prep.ledger.public_key if prep.ledger else None) if signable else None,
                          signable=signable)


@contextmanager
def _recorder(ledger: Ledger) -> Iterator[Callable[[Mapping[str, Any]], Any]]:
    """The ledger's appender; when its file is damaged (it cannot be extended), a stand-in that
    prints each event to stderr as JSON instead, so the due revocations still run and leave a
    record in the job's log. The run then exits 1; the next run re-observes and repeats nothing."""
    problem = ledger.verify()
    if problem is None:
        with ledger.appender() as add:
            yield add
        return
    click.secho(f"error: {ledger.path.name}:{problem.line}: {problem.message}: events of this run are not "
                "appended; they follow on stderr (revocations go on)", fg="red", err=True)

    def echo(body: Mapping[str, Any]) -> dict[str, Any]:
        click.echo("unrecorded " + json.dumps(dict(body), sort_keys=True), err=True)
        return dict(body)

    yield echo


def _sign(repo: Path, ledger_file: Path, env: Mapping[str, str], now: datetime, prep: Prepared) -> str | None:
    """Sign a checkpoint of the ledger file this run wrote, when the ledger was trusted at the
    start (never bless what someone else wrote) and $JITPOL_LEDGER_KEY is set. The problem, or None."""
    if prep.ledger is None or not prep.ledger.trusted:
        return None
    try:
        sign_checkpoint(repo, ledger_file, env, utc_text(now), prep.ledger.public_key)
    except JitpolError as exc:
        click.secho(f"error: the ledger checkpoint was not signed: {exc}", fg="red", err=True)
        return str(exc)
    return None


def _ledger_paths(repo: Path) -> list[str]:
    """What a run writes: audit/ — the ledger, policy snapshots, delivered credentials (added
    and removed)."""
    return [AUDIT_DIR.as_posix()]


def _commit(repo: Path, summary: RunSummary, quiet: bool = False) -> str | None:
    git = Repo.find(repo)
    if git is None or not summary.events:
        return None
    sha = git.commit_paths(_ledger_paths(repo), summary.message)
    if sha and not quiet:
        click.echo(f"Committed ledger: {sha[:12]}")
    return sha


shard_option = click.option(
    "--shard", "shard_text", metavar="K/N", default=None,
    help="Only targets in shard K of N (stable hash of the target name); ledger audit/ledger-K-of-N.jsonl.")


@click.command()
@repo_option
@at_option
@shard_option
@click.option("--no-commit", is_flag=True, help="Append the ledger but do not commit it.")
@format_option("text", "json")
@click.pass_context
@handle_errors
def apply(ctx: click.Context, repo: Path, at: str | None, shard_text: str | None, no_commit: bool,
          fmt: str) -> None:
    """Make the targets match the active grants; append and commit the ledger."""
    debug = bool(ctx.find_root().params.get("debug"))
    quiet = fmt == "json"
    summary = run_apply(repo, at, dict(os.environ), debug, Shard.parse(shard_text) if shard_text else None, quiet)
    sha = None if no_commit else _commit(repo, summary, quiet)
    if quiet:
        emit_json(summary.as_json(sha))
    if not summary.ok:
        raise Exit(1)


@click.command()
@repo_option
@click.option("--remote", default="origin", show_default=True)
@click.option("--branch", default=None, help="Branch to push (default: the current branch).")
@click.option("--at", "at", hidden=True)
@shard_option
@click.pass_context
@handle_errors
def reconcile(ctx: click.Context, repo: Path, remote: str, branch: str | None, at: str | None,
              shard_text: str | None) -> None:
    """apply, then push the ledger commit (re-chaining and retrying when the remote moved)."""
    debug = bool(ctx.find_root().params.get("debug"))
    shard = Shard.parse(shard_text) if shard_text else None
    env = dict(os.environ)
    # the scheduled CI run: without a pinned trust root it adopts nothing unless told to trust on
    # first use (revocations still run)
    in_ci = env.get("CI", "").strip().lower() not in ("", "0", "false")
    summary = run_apply(repo, at, env, debug, shard, require_root=in_ci)  # the plan's notes say why
    git = Repo.find(repo)
    if git is not None and summary.events:
        _commit(repo, summary)
        branch = branch or git.current_branch()
        if branch is None:
            raise InvalidInput("HEAD is detached: pass --branch to say where the ledger commit goes")

        def rebuild() -> str | None:
            Ledger(repo / ledger_path(shard)).append(summary.events)
            if summary.signable:
                sign_checkpoint(repo, repo / ledger_path(shard), env, utc_text(now_from(at)), summary.signing)
            return git.commit_paths(_ledger_paths(repo), summary.message + " (re-chained)")

        git.push_with_retry(remote, branch, rebuild=rebuild)
        click.echo(f"Pushed ledger to {remote}/{branch}")
    if not summary.ok:
        raise Exit(1)
