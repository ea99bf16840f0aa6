"""agent: pull mode on an endpoint the reconciler cannot reach."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import click

from jitpol.cli.common import Exit, at_option, handle_errors, now_from, repo_option
from jitpol.cli.run import ClickReporter
from jitpol.errors import InvalidInput
from jitpol.run import run_apply
from jitpol.scope import HostScope


@click.command()
@repo_option
@at_option
@click.option("--once", is_flag=True, required=True, help="Run one reconcile pass and exit (run it from a timer).")
@click.option("--host", default=None, help="This endpoint's name as `hostname:` in jitpol.yaml (default: the host "
                                         "name, without domain).")
@handle_errors
def agent(repo: Path, at: str | None, once: bool, host: str | None) -> None:
    """Apply this endpoint's own grants locally: the `local` targets whose `hostname` is this
    host — sudo rules, accounts and group memberships — from a read-only clone of the policy
    repository. Records what it did in audit/agent-HOST.jsonl (hash-chained, the same format as
    the central ledger, which takes it in when the file is committed)."""
    name = (host or socket.gethostname().split(".")[0]).strip()
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise InvalidInput(f"host name {name!r} is not usable; pass --host")
    if os.geteuid() != 0:
        raise InvalidInput("the agent changes accounts, groups and sudoers on this host: run it as root")
    summary = run_apply(repo, now_from(at), dict(os.environ), ClickReporter(), shard=HostScope(name))
    if not summary.ok:
        raise Exit(1)
