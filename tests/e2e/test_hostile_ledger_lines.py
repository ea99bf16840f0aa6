"""A ledger line whose chain is valid but whose body is not what jitpol writes (an edit by
someone without the reconciler's key, an older or foreign writer) never crashes a run: the line
is ignored, the run says so, and the revocations that are due still happen."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from jitpol.cli.main import cli
from jitpol.ledger.chain import seal
from jitpol.model.canonical import canonical_json
from tests.helpers.repo import RepoBuilder

START, AT, AFTER = "1998-12-01T10:00:00Z", "1998-12-01T10:30:00Z", "1998-12-01T15:00:00Z"
KEY = {"target": "db", "model": "role-membership", "principal": "alice", "privilege": "app_read"}

# (body, whether the run must report it as ignored); bodies seal() itself refuses (a grant or an
# event that is not text, a time that is not text) fail the chain check and are covered there
HOSTILE: list[tuple[dict[str, Any], bool]] = [
    ({"event": "grant.activated", "grant": "g", "until": "not a time", "assignments": [KEY]}, True),
    ({"event": "grant.activated", "grant": "g", "until": "2999-01-01T00:00:00", "assignments": [KEY]}, True),  # naive
    ({"event": "grant.activated", "grant": "g", "until": "2999-01-01T00:00:00Z", "assignments": "app_read"}, True),
    ({"event": "grant.activated", "grant": "g", "until": "2999-01-01T00:00:00Z", "assignments": [{"target": "db"}]},
     True),
    ({"event": "grant.activated", "grant": "g", "until": "2999-01-01T00:00:00Z", "assignments": [7]}, True),
    ({"event": "grant.activated", "grant": "g", "until": 5, "assignments": []}, True),
    ({"event": "action.started", "grant": "g", "grants": 5, "target": "db"}, True),
    ({"event": "action.started", "grant": "g", "grants": ["g"]}, True),
    ({"event": "credential.rotated", "grant": None, "target": "db", "account": "a", "holders": 3, "until": "x"}, True),
    ({"event": "policy.adopted", "grant": None, "digest": None}, True),
    ({"event": "policy.adopted", "grant": None, "digest": "d", "policy_commit": ["x"]}, True),
    # informational fields jitpol reads leniently: tolerated, never a crash
    ({"event": "grant.activated", "grant": "g", "start": "yesterday", "end": [], "until": "2999-01-01T00:00:00Z",
      "approvals": "many", "breakglass": "yes", "assignments": []}, False),
    ({"event": "no.such.event", "grant": None}, False),
]


@pytest.mark.forged_ledger
@pytest.mark.parametrize(("body", "reported"), HOSTILE, ids=[str(i) for i in range(len(HOSTILE))])
def test_a_malformed_line_never_stops_a_revocation(tmp_path: Path, body: dict[str, Any], reported: bool) -> None:
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    rb.grant("alice-read", "alice", START, "4h", approvers=("lead",))

    def run(*a: str) -> Result:
        return CliRunner().invoke(cli, [*a, "--repo", str(rb.root)], catch_exceptions=False)

    assert run("apply", "--at", AT).exit_code == 0
    assert rb.members("app_read") == ["alice"]
    ledger = rb.root / "audit" / "ledger.jsonl"
    last = json.loads(ledger.read_text().splitlines()[-1])
    line = seal({"time": AT, **body}, seq=last["seq"] + 1, prev=last["hash"])
    with ledger.open("a") as fh:
        fh.write(canonical_json(line) + "\n")
    for reader in (("status", "--at", AFTER), ("report", "--at", AFTER, "--html", str(tmp_path / "r.html")),
                   ("notify", "--at", AFTER, "--dry-run"), ("audit", "verify")):
        out = run(*reader)
        assert "internal error" not in out.output, (reader, out.output)
    res = run("apply", "--at", AFTER)
    assert "internal error" not in res.output, res.output
    assert rb.members("app_read") == [], res.output
    if reported:  # and, as a damaged ledger, it holds back additions (exit 1) but no revocation
        assert "not an event jitpol writes" in res.output and res.exit_code == 1, res.output
