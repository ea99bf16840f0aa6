"""credentials: show the holder the account and secret delivered for a grant."""

from __future__ import annotations

from pathlib import Path

import click

from jitpol.cli.common import emit_json, format_option, handle_errors, repo_option
from jitpol.execute.delivery import open_delivery
from jitpol.load.repository import NAME_PATTERN


@click.command()
@click.argument("grant")
@repo_option
@click.option("--key", "key_file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Your private SSH key (ssh-ed25519 or ssh-rsa) whose public half is in your person file.")
@format_option("text", "json")
@handle_errors
def credentials(grant: str, repo: Path, key_file: Path, fmt: str) -> None:
    """Decrypt the account and secret delivered for GRANT. Only its holder's key opens it."""
    if not NAME_PATTERN.fullmatch(grant):
        raise click.BadParameter(f"{grant!r} is not a grant name")
    payload = open_delivery(repo, grant, key_file)
    if fmt == "json":
        emit_json({"username": payload["username"], "password": payload["password"], "target": payload.get("target"),
                   "grant": grant, "until": payload.get("until")})
    else:
        click.echo(f"target:   {payload.get('target')}")
        click.echo(f"username: {payload['username']}")
        click.echo(f"password: {payload['password']}")
        if payload.get("until"):
            click.echo(f"valid until {payload['until']} (rotated when the window ends)")
