"""audit verify."""

from __future__ import annotations

from pathlib import Path

import click

from jitpol.cli.common import Exit, emit_json, format_option, handle_errors, repo_option
from jitpol.ledger.store import Ledger, ledger_files


@click.group()
def audit() -> None:
    """The hash-chained ledger under audit/."""


@audit.command()
@repo_option
@format_option("text", "json")
@handle_errors
def verify(repo: Path, fmt: str) -> None:
    """Check the hash chain of every ledger file. Exit 1 naming the first bad entry."""
    files = ledger_files(repo / "audit")
    report: list[dict[str, object]] = []
    for path in files:
        problem = Ledger(path).verify()
        rel = path.relative_to(repo).as_posix() if path.is_relative_to(repo) else str(path)
        count = sum(1 for _ in path.open(encoding="utf-8"))
        report.append({"file": rel, "entries": count, "intact": problem is None,
                       "line": problem.line if problem else None, "problem": problem.message if problem else None})
        if fmt == "json":
            continue
        if problem is None:
            click.echo(f"ok: {rel}: {count} entries, chain intact")
        else:
            click.secho(f"BROKEN: {rel}:{problem.line}: {problem.message}", fg="red", err=True)
    if fmt == "json":
        emit_json({"intact": all(r["intact"] for r in report), "files": report})
    elif not files:
        click.echo("ok: no ledger yet (audit/ is empty)")
    if not all(r["intact"] for r in report):
        raise Exit(1)
