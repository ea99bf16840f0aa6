"""audit verify."""

from __future__ import annotations

from pathlib import Path

import click

from jitpol.cli.common import Exit, handle_errors, repo_option
from jitpol.ledger.store import Ledger, ledger_files


@click.group()
def audit() -> None:
    """The hash-chained ledger under audit/."""


@audit.command()
@repo_option
@handle_errors
def verify(repo: Path) -> None:
    """Check the ledger's hash chain. Exit 1 naming the first bad entry."""
    files = ledger_files(repo / "audit")
    bad = False
    for path in files:
        problem = Ledger(path).verify()
        rel = path.relative_to(repo).as_posix() if path.is_relative_to(repo) else str(path)
        if problem is None:
            count = sum(1 for _ in path.open(encoding="utf-8"))
            click.echo(f"ok: {rel}: {count} entries, chain intact")
        else:
            bad = True
            click.secho(f"BROKEN: {rel}:{problem.line}: {problem.message}", fg="red", err=True)
    if not files:
        click.echo("ok: no ledger yet (audit/ is empty)")
    if bad:
        raise Exit(1)
