"""`jitpol report` end to end: a repository reconciled through the CLI at several times, the report
rendered, and the page opened in a real headless Chromium that records every request it
attempts and every console message (tools/report_screenshot.py drives it over the DevTools pipe).

Without Chromium these tests skip on a laptop and FAIL when the CI environment variable is set.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from jitpol.cli.main import cli
from jitpol.cli.report import report
from tests.helpers.repo import RepoBuilder
from tests.services import require_service
from tools.report_screenshot import Chromium, chromium, find_chromium, visit

HOSTILE = "<script>alert(1)</script>"
TIMES = ("1998-12-01T10:10:00Z", "1998-12-01T11:10:00Z", "1998-12-01T12:10:00Z", "1998-12-01T13:10:00Z")
REPORT_AT = "1998-12-01T13:30:00Z"


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    require_service(find_chromium() is not None, "Chromium (the report's browser test)",
                    "chromium is not installed (apt-get install chromium)")
    with chromium() as b:
        yield b


def run(rb: RepoBuilder, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--repo", str(rb.root)], catch_exceptions=False)


def render_report(rb: RepoBuilder, out: Path, *args: str) -> Result:
    return CliRunner().invoke(report, ["--html", str(out), "--repo", str(rb.root), *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def reconciled(tmp_path_factory: pytest.TempPathFactory) -> RepoBuilder:
    """Every kind of history: grants held and ended, one held now, a scheduled and a pending one,
    a rejection, drift on an exclusive resource, a failed addition and shared-credential rotations;
    hostile text in a justification and a resource description."""
    tmp = tmp_path_factory.mktemp("report")
    rb = RepoBuilder(tmp / "repo", tmp / "keys").standard()
    rb.workflow("ops", approvals={"required": 0}, checkout="exclusive")
    rb.resource("db-prod", description=f"Orders {HOSTILE}")
    rb.resource("shared-admin", model="credential-checkout", account="app_admin", roles=None, workflow="ops")
    rb.resource("analytics", exclusive=True, roles={"read": {"grants": ["an_read"]}})
    rb.set_fake_state({"members": {"an_read": ["legacy"]}, "shared": {"app_admin": {"password": "unknown"}},
                       "fail": ["bob"]})
    rb.grant("alice-read", "alice", "1998-12-01T10:00:00Z", "2h", approvers=("lead",),
             justification=f'INC-1 {HOSTILE} "quoted" <img src=x onerror=alert(2)>')
    rb.grant("alice-write", "alice", "1998-12-01T11:00:00Z", "3h", role="write", approvers=("lead",))
    rb.grant("bob-read", "bob", "1998-12-01T10:30:00Z", "1h", approvers=("lead",))  # bob's additions fail
    rb.grant("alice-co", "alice", "1998-12-01T10:00:00Z", "1h", resource="shared-admin", role=None)
    rb.grant("bob-co", "bob", "1998-12-01T11:00:00Z", "1h", resource="shared-admin", role=None)
    rb.grant("alice-an", "alice", "1998-12-01T13:00:00Z", "2h", resource="analytics", approvers=("lead",))
    rb.grant("bob-later", "bob", "1998-12-02T09:00:00Z", "2h", approvers=("lead",))
    rb.grant("alice-pend", "alice", "1998-12-01T15:00:00Z", "2h")
    rb.grant("alice-long", "alice", "1998-12-01T15:00:00Z", "9h", approvers=("lead",))
    subprocess.run(["git", "init", "-q", "-b", "main", str(rb.root)], check=True)
    for at in TIMES:
        res = run(rb, "apply", "--at", at)
        assert res.exit_code in (0, 1), res.output  # 1: bob's addition fails on purpose
    kinds = {json.loads(line)["event"] for line in (rb.root / "audit" / "ledger.jsonl").read_text().splitlines()}
    assert {"grant.activated", "grant.revoked", "grant.rejected", "drift.corrected", "action.failed",
            "credential.rotated", "policy.adopted"} <= kinds
    return rb


def test_report_renders_the_history_and_escapes_hostile_text(reconciled: RepoBuilder, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    res = render_report(reconciled, out, "--at", REPORT_AT)
    assert res.exit_code == 0, res.output
    assert f"Wrote {out}" in res.stdout
    html = out.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script" not in html.lower()
    assert "&lt;img src=x onerror=alert(2)&gt;" in html and "<img" not in html
    for text in ("alice-write", "alice-an", "bob-later", "alice-pend", "window is 9h",
                 "needs 1 more approval(s)", "legacy", "permission denied for bob", "Orders &lt;script&gt;"):
        assert text in html, text
    secret = reconciled.fake_state()["shared"]["app_admin"]["password"]
    assert secret and secret not in html  # rotations show fingerprints, never secrets
    # same inputs, same page
    again = tmp_path / "again.html"
    assert render_report(reconciled, again, "--at", REPORT_AT).exit_code == 0
    assert again.read_text(encoding="utf-8") == html


def test_report_in_chromium_makes_no_requests_and_logs_no_errors(reconciled: RepoBuilder, tmp_path: Path,
                                                                   browser: Chromium) -> None:
    out = tmp_path / "report.html"
    assert render_report(reconciled, out, "--at", REPORT_AT).exit_code == 0
    seen = visit(browser, out.as_uri(), pdf=True, evaluate={
        "scripts": "document.scripts.length",
        "hostile_as_text": "document.body.innerText.includes('<script>alert(1)</script>')",
        "overflow": "document.documentElement.scrollWidth > window.innerWidth",
        "bars": "Object.fromEntries(['held','open','planned','scheduled','pending'].map("
                "k => [k, document.querySelectorAll('#by-resource .tl .bar.' + k).length]))",
        "lanes": "[...document.querySelectorAll('#by-resource .lane:not(.axis) .lane-name')].map(e => e.textContent)",
        "active": "[...document.querySelectorAll('#active tbody tr td:first-child')].map(e => e.textContent)",
    })
    (tmp_path / "report.png").write_bytes(seen.screenshot)
    assert seen.errors == [], seen.errors
    assert seen.requests == [out.as_uri()]  # the page itself, and nothing else
    assert seen.foreign_requests == []
    assert seen.values["scripts"] == 0
    assert seen.values["hostile_as_text"] is True  # shown to the reader as text, never run
    assert seen.values["overflow"] is False  # fits 1280 px
    bars = seen.values["bars"]
    assert bars["held"] >= 3 and bars["open"] >= 1 and bars["planned"] >= 1, bars
    assert bars["scheduled"] >= 1 and bars["pending"] >= 1, bars
    assert seen.values["lanes"] == ["analytics", "db-prod", "shared-admin"]
    assert seen.values["active"] == ["alice-write", "alice-an"]
    assert seen.screenshot.startswith(b"\x89PNG\r\n\x1a\n") and len(seen.screenshot) > 20_000
    assert seen.height > 900
    assert seen.pdf.startswith(b"%PDF")  # prints


def test_the_browser_check_catches_requests_and_console_errors(tmp_path: Path, browser: Chromium) -> None:
    """The harness itself can fail: a page that reaches out and logs an error is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!doctype html><title>bad</title><img src="http://example.invalid/pixel.png">'
                   '<link rel="stylesheet" href="https://cdn.example.invalid/x.css">'
                   '<script>console.error("boom")</script>', encoding="utf-8")
    seen = visit(browser, bad.as_uri())
    assert "http://example.invalid/pixel.png" in seen.foreign_requests
    assert "https://cdn.example.invalid/x.css" in seen.foreign_requests
    assert any("boom" in e for e in seen.errors), seen.errors


def test_invalid_repository_still_reports_the_ledger(reconciled: RepoBuilder, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    subprocess.run(["cp", "-a", str(reconciled.root), str(broken)], check=True)
    (broken / "grants" / "alice-pend.yaml").write_text('{"apiVersion": "jitpol/v1", "kind": "Grant"}\n')
    out = tmp_path / "report.html"
    res = CliRunner().invoke(report, ["--html", str(out), "--repo", str(broken), "--at", REPORT_AT],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "problem(s)" in res.stderr
    html = out.read_text(encoding="utf-8")
    assert "The repository is invalid" in html and "alice-pend.yaml" in html
    assert "Held now, per the ledger" in html and "alice-write" in html and "alice-an" in html


def test_report_to_stdout_and_days_option(reconciled: RepoBuilder) -> None:
    res = CliRunner().invoke(report, ["--html", "-", "--repo", str(reconciled.root), "--at", REPORT_AT,
                                      "--days", "1"], catch_exceptions=False)
    assert res.exit_code == 0 and res.stdout.startswith("<!doctype html>")
    assert "at most 1 day either side" in res.stdout
    bad = CliRunner().invoke(report, ["--html", "-", "--repo", str(reconciled.root), "--days", "0"])
    assert bad.exit_code == 2
