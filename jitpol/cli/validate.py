"""validate: the one command that only loads. Its module imports the loader and nothing of the
run (no evaluation, plan, trust or git): a warm `jitpol validate` of 10,000 grants is mostly
interpreter start and imports."""

from __future__ import annotations

from pathlib import Path

import click

from jitpol.cli.common import Exit, emit_json, format_option, handle_errors, repo_option
from jitpol.load.repository import load_repository


@click.command()
@repo_option
@format_option("text", "json")
@handle_errors
def validate(repo: Path, fmt: str) -> None:
    """Check schemas, references and policy rules. Errors read `path:line:col: message`."""
    result = load_repository(repo)
    if fmt == "json":
        emit_json({"valid": result.ok, "files": result.files,
                   "errors": [{"path": d.path, "line": d.line, "col": d.col, "message": d.message}
                              for d in result.diagnostics]})
    else:
        for d in result.diagnostics:
            click.echo(str(d), err=True)
        if result.ok:
            click.echo(f"ok: {result.files} files valid")
        else:
            click.echo(f"{len(result.diagnostics)} problem(s) in {result.files} files", err=True)
    if not result.ok:
        raise Exit(1)
