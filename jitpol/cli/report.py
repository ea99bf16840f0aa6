"""report: the access timeline as one self-contained HTML file."""

from __future__ import annotations

import os
from pathlib import Path

import click

from jitpol.cli.common import at_option, handle_errors, now_from, repo_option
from jitpol.fsutil import write_atomic
from jitpol.report import DEFAULT_DAYS, build, gather, render


@click.command("report")
@repo_option
@at_option
@click.option("--html", "out", required=True, metavar="OUT", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the HTML report to this file (- for standard output).")
@click.option("--days", type=click.IntRange(1, 3650), default=DEFAULT_DAYS, show_default=True,
              help="Timeline range: at most this many days before and after now.")
@handle_errors
def report(repo: Path, at: str | None, out: Path, days: int) -> None:
    """Who held what when: active, upcoming, pending and rejected grants, timelines per resource and
    per person, drift corrected, failures, credential rotations and policy adoptions, from the
    grants and the ledger. One HTML file that loads nothing from anywhere."""
    now = now_from(at)
    inputs = gather(repo, now, dict(os.environ))
    if inputs.statuses is None:
        click.secho(f"warning: the repository has {len(inputs.problems)} problem(s) (see `jitpol validate`); "
                    "the report shows the ledger's history only", fg="yellow", err=True)
    model = build(inputs, days)
    html = render(model)
    if str(out) == "-":
        click.echo(html, nl=False)
        return
    _write(out, html)
    click.echo(f"Wrote {out}: {len(model.active.rows)} active, {model.upcoming.total} upcoming, "
               f"{model.pending.total} pending, {model.rejected.total} rejected; {model.ledger_events} ledger events.")


def _write(path: Path, text: str) -> None:
    """Replace `path` atomically: a reader never sees half a report."""
    write_atomic(path, text.encode("utf-8"), mode=0o644, prefix=f".{path.name}.")
