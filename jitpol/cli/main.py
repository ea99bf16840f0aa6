"""`jitpol` entry point."""

from __future__ import annotations

import click

from jitpol import __version__
from jitpol.cli.agent import agent
from jitpol.cli.audit import audit
from jitpol.cli.check import check_cmd
from jitpol.cli.credentials import credentials
from jitpol.cli.inspect import plan, status, validate
from jitpol.cli.notify import notify
from jitpol.cli.report import report
from jitpol.cli.review import approve, request
from jitpol.cli.run import apply, reconcile


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Show operations sent to targets (secrets redacted) and tracebacks.")
@click.version_option(__version__, prog_name="jitpol")
def cli(debug: bool) -> None:
    """Just-in-time privileged access as code.

    Policies live in a git repository as YAML; jitpol validates them, evaluates who may hold
    which privilege now, makes the live systems match and records every change in a hash-chained
    ledger in the same repository.
    """


COMMANDS = (validate, status, plan, apply, reconcile, approve, request, check_cmd, credentials, report, notify,
            agent, audit)
for command in COMMANDS:
    cli.add_command(command)


def main() -> None:
    cli(prog_name="jitpol")
