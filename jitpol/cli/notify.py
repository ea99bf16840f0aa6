"""notify: tell requesters and approvers what changed, each message once per channel."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click

from jitpol.cli.common import Exit, at_option, emit_json, format_option, handle_errors, now_from, repo_option
from jitpol.cli.run import OWED_MESSAGE, commit_owed, heal_git, push_owed
from jitpol.errors import InvalidInput
from jitpol.evaluate.prepare import Prepared
from jitpol.execute.lock import RunLock
from jitpol.ledger.store import Ledger
from jitpol.model.duration import parse_duration
from jitpol.model.times import utc_text
from jitpol.notify import Delivery, Preview, collect, deliver, ledger_events
from jitpol.notify.channels import Channel, PullRequestComments, Webhook
from jitpol.notify.messages import Message, sent_event, sent_keys
from jitpol.notify.render import Format, Renderer
from jitpol.run import RunSummary, prepare_run
from jitpol.scope import LEDGER_PATH
from jitpol.trust.ledger import sign_checkpoint
from jitpol.vcs.git import Repo

_ENV_NAME = "[A-Za-z_][A-Za-z0-9_]*"


@dataclass(frozen=True, slots=True)
class _Named:
    """A channel in a dry run: renders like the real one, never delivers."""

    name: str
    fmt: Format

    def deliver(self, message: Message, text: str) -> str | None:
        raise AssertionError("a dry run delivers nothing")


def _duration(option: str, text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def _webhook(var: str, env: Mapping[str, str], dry_run: bool) -> Channel:
    if not re.fullmatch(_ENV_NAME, var):
        raise click.BadParameter(f"{var!r} is not an environment variable name", param_hint="--webhook-env")
    if dry_run:
        return _Named("webhook", "slack")
    url = env.get(var, "").strip()
    if not url:
        raise InvalidInput(f"--webhook-env {var}: the variable is not set (it must hold the webhook URL)")
    return Webhook(url, source=f"${var}")


def _github(prep: Prepared, env: Mapping[str, str], dry_run: bool) -> Channel:
    config = prep.decided.config  # the host and token variable of the policy in force
    git = (config.git if config is not None else None) or {}
    if not git.get("repository"):
        raise InvalidInput("--github needs spec.git in jitpol.yaml (repository, token_env; api_url for GitHub "
                           "Enterprise)")
    if git.get("host", "github") != "github":
        raise InvalidInput(f"--github: spec.git.host is {git.get('host')!r}; only github is supported")
    if dry_run:
        return _Named("github", "github")
    token_env = git.get("token_env")
    token = env.get(str(token_env), "") if token_env else ""
    if not token:
        raise InvalidInput("--github needs a token: set spec.git.token_env in jitpol.yaml and that variable "
                           f"({token_env or 'unset'}) in the environment")
    return PullRequestComments(str(git.get("api_url", "https://api.github.com")), str(git["repository"]), token,
                               prep.root)


@click.command("notify")
@repo_option
@at_option
@click.option("--expiring-within", "expiring_within", default="30m", show_default=True, metavar="DURATION",
              help="Tell requesters whose live access ends within this long.")
@click.option("--max-age", "max_age", default="24h", show_default=True, metavar="DURATION",
              help="Activations and ends recorded in the ledger longer ago than this are not news any more.")
@click.option("--webhook-env", "webhook_env", metavar="VAR",
              help="Post to the Slack-compatible incoming webhook whose URL is in environment variable VAR.")
@click.option("--github", "use_github", is_flag=True,
              help="Comment on each grant's pull request (spec.git in jitpol.yaml; token from its token_env).")
@click.option("--dry-run", is_flag=True, help="Print the messages that are due; send and record nothing.")
@click.option("--commit", "commit", is_flag=True, help="Commit the record of sent messages (audit/).")
@click.option("--push", "push", is_flag=True,
              help="Commit and push the record (re-chaining when the remote moved), so the next run, "
                   "wherever it runs, knows what was sent.")
@click.option("--remote", default="origin", show_default=True, help="Remote for --push.")
@format_option("text", "json")
@handle_errors
def notify(repo: Path, at: str | None, expiring_within: str, max_age: str, webhook_env: str | None,
           use_github: bool, dry_run: bool, commit: bool, push: bool, remote: str, fmt: str) -> None:
    """Notify requesters and approvers: new requests, approved, active, expiring, ended, rejected.

    Every message is sent once per channel: what was sent is recorded in the ledger as
    `notification.sent`, and a message that failed is tried again by the next run (exit 1).
    Texts come from Jinja2 templates a repository may override in notifications/.
    """
    now = now_from(at)
    within = _duration("--expiring-within", expiring_within)
    age = _duration("--max-age", max_age)
    env = dict(os.environ)
    if not dry_run and not webhook_env and not use_github:
        raise click.UsageError("nothing to send through: give --webhook-env VAR and/or --github "
                               "(or --dry-run to preview)")
    if dry_run and (commit or push):
        raise click.UsageError("--dry-run records nothing, so there is nothing to --commit or --push")

    signing: dict[str, Any] = {"trusted": False, "key": None}
    channels = _Channels(webhook_env, use_github, dry_run)
    if dry_run:
        deliveries, recorded = _send(repo, now, env, within, age, channels, signing)
    else:
        with RunLock(repo):  # never beside an apply: both append to the ledger
            deliveries, recorded = _send(repo, now, env, within, age, channels, signing)
    _show(deliveries, fmt, dry_run, now_text=utc_text(now))
    if commit or push:  # also what a killed run left uncommitted or unpushed, when this one sent nothing
        _commit_and_push(repo, recorded, push, remote, utc_text(now), env, signing)
    if any(d.outcome == "failed" for d in deliveries):
        raise Exit(1)


@dataclass(frozen=True, slots=True)
class _Channels:
    webhook_env: str | None
    use_github: bool
    dry_run: bool


def _send(repo: Path, now: datetime, env: dict[str, str], within: timedelta, age: timedelta, how: _Channels,
          signing: dict[str, Any]) -> tuple[list[Delivery], list[dict[str, Any]]]:
    """Collect the messages due at `now` and send each through every channel once; record each
    sent one in the ledger (not on a dry run) and sign the checkpoint over them when the ledger
    was trusted when this run read it (`signing` says with which key, for the push)."""
    prep = prepare_run(repo, now, env)
    if not prep.valid:
        click.secho(f"warning: the repository has {len(prep.diagnostics)} problem(s) (see `jitpol validate`); "
                    "only activations and ends from the ledger are announced", fg="yellow", err=True)
    channels: list[Channel] = []
    if how.webhook_env:
        channels.append(_webhook(how.webhook_env, env, how.dry_run))
    if how.use_github:
        channels.append(_github(prep, env, how.dry_run))
    if not channels:
        channels.append(Preview())
    events = ledger_events(repo)
    messages = collect(prep, events, expiring_within=within, max_age=age)
    config = prep.decided.config
    # repository templates are policy: used only when the policy in force is the current one
    trusted = prep.policy is not None and prep.policy.approved
    renderer = Renderer(repo if trusted else None, prep.decided.people,
                        config.timezone if config is not None else "UTC")
    if how.dry_run:
        return deliver(messages, sent_keys(events), channels, renderer, None), []
    recorded: list[dict[str, Any]] = []
    with Ledger(repo / LEDGER_PATH).appender() as add:
        def record(message: Message, channel: str) -> None:
            body = sent_event(message, channel, now)
            add(body)
            recorded.append(body)

        deliveries = deliver(messages, sent_keys(events), channels, renderer, record)
    # what the reconciler's key signs must cover these lines too (never bless a ledger that
    # was not trusted when this run read it)
    if prep.ledger is not None and prep.ledger.trusted:
        signing["key"] = prep.ledger.public_key
        signing["trusted"] = True
        if recorded:
            sign_checkpoint(repo, repo / LEDGER_PATH, env, utc_text(now), prep.ledger.public_key)
    return deliveries, recorded


def _show(deliveries: list[Delivery], fmt: str, dry_run: bool, now_text: str) -> None:
    counts = {k: sum(1 for d in deliveries if d.outcome == k) for k in ("sent", "failed", "skipped", "preview")}
    if fmt == "json":
        emit_json({
            "at": now_text, "dry_run": dry_run, **counts,
            "messages": [{"channel": d.channel, "kind": d.message.kind, "grant": d.message.grant,
                          "key": d.message.key, "to": list(d.message.to), "outcome": d.outcome,
                          "detail": d.detail, "text": d.text} for d in deliveries],
        })
        return
    for d in deliveries:
        to = ", ".join(d.message.to) or "nobody in particular"
        if d.outcome == "preview":
            click.echo(f"--- {d.channel}: {d.message.kind} {d.message.grant} (to {to})")
            click.echo(d.text)
            click.echo("")
        elif d.outcome == "failed":
            click.secho(f"FAILED  {d.channel:8} {d.message.kind:9} {d.message.grant}: {d.detail}", fg="red", err=True)
        else:
            click.echo(f"{d.outcome:7} {d.channel:8} {d.message.kind:9} {d.message.grant} (to {to}) {d.detail}")
    if dry_run:
        click.echo(f"Dry run: {counts['preview']} message(s) due, nothing sent or recorded"
                   + (f", {counts['failed']} failed to render." if counts["failed"] else "."))
    elif not deliveries:
        click.echo("Notify: nothing new to send.")
    else:
        click.echo(f"Notify: {counts['sent']} sent, {counts['failed']} failed, {counts['skipped']} skipped.")


def _commit_and_push(repo: Path, recorded: list[dict[str, Any]], push: bool, remote: str, when: str,
                     env: Mapping[str, str], signing: Mapping[str, Any]) -> None:
    """Commit (and push) what the ledger owes, decided from the repository as `reconcile` does:
    this run's lines and any an earlier, killed run left uncommitted or unpushed; after a moved
    remote every owed line is re-chained (and signed again when this run may sign), not only
    this run's."""
    git = Repo.find(repo)
    if git is None:
        raise InvalidInput(f"{repo} is not in a git repository: nothing to commit the record to")
    message = f"jitpol: {len(recorded)} notification(s) sent at {when}"
    summary = RunSummary(True, (), tuple(recorded), message, signing=signing["key"], signable=bool(signing["trusted"]))
    if not push:
        heal_git(repo, git)
        commit_owed(repo, git, message if recorded else OWED_MESSAGE)
        return
    push_owed(repo, git, summary, remote, None, env, when, repo / LEDGER_PATH, None)
