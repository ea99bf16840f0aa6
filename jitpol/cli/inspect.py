"""status, plan: read-only commands (validate has a module of its own: it imports only the loader)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from jitpol.cli.common import Exit, at_option, emit_json, format_option, handle_errors, now_from, repo_option
from jitpol.cli.render import status_json, status_text
from jitpol.plan.render import plan_json, plan_markdown, plan_text
from jitpol.policy.evaluate import evaluate
from jitpol.run import plan_run, prepare_run
from jitpol.scope import Shard
from jitpol.vcs.sshsig import FastVerifier


@click.command()
@repo_option
@at_option
@format_option("text", "json")
@handle_errors
def status(repo: Path, at: str | None, fmt: str) -> None:
    """Every grant with its state: pending, scheduled, active, expired, revoked, rejected."""
    now = now_from(at)
    verifier = FastVerifier()
    prep = prepare_run(repo, now, dict(os.environ), verifier=verifier)
    ev = prep.evaluation
    if ev is None:  # invalid repository: show what can be said, nothing of it is applied
        click.secho(f"warning: the repository has {len(prep.diagnostics)} problem(s) (see `jitpol validate`);"
                    " nothing new is applied until they are fixed", fg="yellow", err=True)
        ev = evaluate(prep.loaded.policy, now, prep.history, verifier)
    holders = [{"target": t, "account": a, "holders": list(h)} for (t, a), h in sorted(prep.history.holders.items())]
    if fmt == "json":
        out = status_json(ev.statuses)
        out["checkouts"] = holders
        if prep.policy is not None:
            out["policy"] = {"digest": prep.policy.digest, "in_force": prep.policy.in_force,
                             "approved": prep.policy.approved, "approvals": list(prep.policy.counted),
                             "required": prep.policy.required, "summary": prep.policy.summary()}
        emit_json(out)
    else:
        click.echo(status_text(ev.statuses, now))
        for h in holders:
            who = ", ".join(h["holders"]) or "nobody (rotated to a secret no one holds)"
            click.echo(f"Shared account {h['account']} on {h['target']}: held by {who}")
        if prep.policy is not None:
            click.echo(prep.policy.summary())


@click.command()
@repo_option
@at_option
@format_option("text", "json", "markdown")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes, 0 when none, 1 on error.")
@click.option("--shard", "shard_text", metavar="K/N", default=None, help="Only targets in shard K of N.")
@handle_errors
def plan(repo: Path, at: str | None, fmt: str, detailed_exitcode: bool, shard_text: str | None) -> None:
    """What apply would do, reading live state. Writes nothing."""
    now = now_from(at)
    planned = plan_run(repo, now, dict(os.environ), shard=Shard.parse(shard_text) if shard_text else None)
    prep, obs, the_plan = planned.prepared, planned.observation, planned.plan
    for d in prep.diagnostics:
        click.echo(str(d), err=True)
    if fmt == "json":
        emit_json(plan_json(the_plan))
    else:
        click.echo(plan_markdown(the_plan) if fmt == "markdown" else plan_text(the_plan))
    if not prep.valid or obs.errors:
        raise Exit(1)
    if detailed_exitcode and the_plan.actions:
        raise Exit(2)
