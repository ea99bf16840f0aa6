"""`jitpol` entry point.

Each command's module is imported only when that command runs (or when `--help` lists the
commands): `jitpol apply` does not pay for the imports of `notify`, `report` or `review` (Jinja,
the git host clients, ...). The loaders below are plain functions with ordinary imports, so
import-linter and mypy see every edge.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Mapping

import click

from jitpol import __version__


def _validate() -> click.Command:
    from jitpol.cli.validate import validate
    return validate


def _status() -> click.Command:
    from jitpol.cli.inspect import status
    return status


def _plan() -> click.Command:
    from jitpol.cli.inspect import plan
    return plan


def _apply() -> click.Command:
    from jitpol.cli.run import apply
    return apply


def _reconcile() -> click.Command:
    from jitpol.cli.run import reconcile
    return reconcile


def _approve() -> click.Command:
    from jitpol.cli.review import approve
    return approve


def _request() -> click.Command:
    from jitpol.cli.review import request
    return request


def _check() -> click.Command:
    from jitpol.cli.check import check_cmd
    return check_cmd


def _credentials() -> click.Command:
    from jitpol.cli.credentials import credentials
    return credentials


def _report() -> click.Command:
    from jitpol.cli.report import report
    return report


def _notify() -> click.Command:
    from jitpol.cli.notify import notify
    return notify


def _agent() -> click.Command:
    from jitpol.cli.agent import agent
    return agent


def _audit() -> click.Command:
    from jitpol.cli.audit import audit
    return audit


# command name -> the function that imports it (the name is checked against the command's own)
COMMANDS: Mapping[str, Callable[[], click.Command]] = {
    "validate": _validate, "status": _status, "plan": _plan, "apply": _apply, "reconcile": _reconcile,
    "approve": _approve, "request": _request, "check": _check, "credentials": _credentials, "report": _report,
    "notify": _notify, "agent": _agent, "audit": _audit,
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def __init__(self, *args: object, lazy: Mapping[str, Callable[[], click.Command]], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        load = self._lazy.pop(cmd_name, None)
        if load is not None:
            command = load()
            if command.name != cmd_name:
                raise RuntimeError(f"jitpol/cli/main.py: command {cmd_name!r} loads {command.name!r}")
            self.add_command(command)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, lazy=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Show operations sent to targets (secrets redacted) and tracebacks.")
@click.version_option(__version__, prog_name="jitpol")
def cli(debug: bool) -> None:
    """Just-in-time privileged access as code.

    Policies live in a git repository as YAML; jitpol validates them, evaluates who may hold
    which privilege now, makes the live systems match and records every change in a hash-chained
    ledger in the same repository.
    """


def main() -> None:
    try:
        cli(prog_name="jitpol")  # ends with SystemExit (click's standalone mode), its exit status
    finally:
        # The command has finished: its output is written (stdout and stderr are flushed at exit as
        # always), its files closed and the ledger fsynced. Moving every object to the permanent
        # generation spares the interpreter's last collection at exit a walk of the whole heap
        # (0.05-0.1 s after an apply); nothing is left that needs a collection to be finished.
        gc.freeze()
