"""Render a report model (jitpol.report.timeline.Report) as one self-contained HTML page.

Contract:
- One file: CSS inline, no scripts, no external references of any kind (no CDN, web fonts or
  remote images); the page carries a Content-Security-Policy that forbids every fetch except
  data: images and inline styles, so even a rendering mistake could not make it phone home.
- Jinja2 with autoescape ON and StrictUndefined: every value from YAML or the ledger is
  attacker-controlled text and reaches the page only escaped (element text and attributes).
  Nothing is marked safe; the only unescaped-looking values are numbers the model computed.
- Pure: same report in, same text out.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from jinja2 import Environment, PackageLoader, StrictUndefined

from jitpol import __version__
from jitpol.report.timeline import Report, fmt


@lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("jitpol.report", "templates"),
        autoescape=True,  # every template, whatever its file name
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["when"] = _when
    env.filters["short"] = _short
    return env


def _when(t: datetime | None) -> str:
    return fmt(t)


def _short(digest: str | None, n: int = 12) -> str:
    return (digest or "")[:n]


def render(report: Report) -> str:
    """The report as one HTML document (UTF-8 text)."""
    return _environment().get_template("report.html.j2").render(r=report, version=__version__)
