"""Options and helpers shared by commands: --repo, --at, --format, output, the error handler."""

from __future__ import annotations

import functools
import json
import sys
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from jitpol.clock import FixedClock, SystemClock
from jitpol.errors import InvalidInput, JitpolError, LedgerBroken, LockHeld, VcsError

F = TypeVar("F", bound=Callable[..., Any])


class Exit(Exception):
    """Raised by a command to end with a specific exit status after printing its output."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def parse_time(text: str) -> datetime:
    """ISO 8601 with an explicit offset; naive times are refused (SPEC section 4)."""
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 time like 2026-11-30T10:00:00Z") from None
    if t.tzinfo is None:
        raise click.BadParameter(f"{text!r} has no offset; add Z or +01:00")
    try:
        utc = t.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or utc.year < 1970:
        raise click.BadParameter(f"{text!r} is outside the times jitpol accepts (1970 to the year 9999, in UTC)")
    return utc


def now_from(at: str | None) -> datetime:
    return (FixedClock(parse_time(at)) if at else SystemClock()).now()


repo_option = click.option(
    "--repo", "repo", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
    show_default="current directory", help="The policy repository.",
)
at_option = click.option("--at", "at", metavar="TIME", help="Evaluate as if the time were TIME (ISO 8601 with offset).")


def format_option(*choices: str) -> Callable[[F], F]:
    return click.option("--format", "fmt", type=click.Choice(choices), default=choices[0], show_default=True,
                        help="Output format.")


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False))


def handle_errors(fn: F) -> F:
    """The one place exceptions become exit codes and messages."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = bool(click.get_current_context().find_root().params.get("debug"))
        try:
            return fn(*args, **kwargs)
        except Exit as e:
            sys.exit(e.code)
        except (InvalidInput, LedgerBroken, LockHeld, VcsError) as e:
            click.secho(f"error: {e}", fg="red", err=True)
            sys.exit(1)
        except JitpolError as e:
            click.secho(f"error: {e}", fg="red", err=True)
            sys.exit(1)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except Exception as e:  # noqa: BLE001 - the CLI's error handler: report, never a bare traceback
            if debug:
                traceback.print_exc()
            click.secho(f"internal error: {type(e).__name__}: {e} (run with --debug for details)", fg="red",
                        err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]
