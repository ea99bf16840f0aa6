"""`jitpol plan --format markdown`: the plan as a pull-request comment."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from jitpol.cli.main import cli
from tests.helpers.repo import RepoBuilder


def test_plan_as_markdown(tmp_path: Path) -> None:
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    rb.grant("alice-read", "alice", "1998-12-01T10:00:00Z", "4h", approvers=("lead",))
    res = CliRunner().invoke(cli, ["plan", "--at", "1998-12-01T10:30:00Z", "--format", "markdown",
                                   "--repo", str(rb.root)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert res.output.startswith("### 📝 jitpol plan at `1998-12-01T10:30:00Z`"), res.output
    assert "| add | `grant` | `app_read` | `alice` | `db` | `1998-12-01T14:00:00Z` | `grant alice-read is active` |" \
        in res.output, res.output
    assert res.output.rstrip().endswith("Plan: 1 to grant.")
