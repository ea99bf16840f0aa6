"""Every end-to-end scenario also checks the ledger it leaves: each line conforms to
schemas/ledger-event.json (jitpol.ledger.events), so a writer that adds, drops or retypes a field
without the shared definition fails here. Lines a test forged or damaged on purpose are the
test's own business: mark it `forged_ledger`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from jitpol.ledger.events import problems


@pytest.fixture(autouse=True)
def ledger_lines_conform(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    yield
    if request.node.get_closest_marker("forged_ledger") is not None:
        return
    bad: list[str] = []
    for path in sorted(tmp_path.rglob("audit/ledger*.jsonl")) + sorted(tmp_path.rglob("audit/agent-*.jsonl")):
        if path.is_symlink() or any(p.is_symlink() for p in path.parents if tmp_path in p.parents):
            continue
        for number, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
            try:
                event = json.loads(raw)
            except ValueError:
                continue  # a torn or damaged line: the chain check reports it, not this
            if isinstance(event, dict):
                bad += [f"{path.relative_to(tmp_path)}:{number}: {p}" for p in problems(event)]
    assert not bad, "ledger lines that do not conform to schemas/ledger-event.json:\n" + "\n".join(bad[:20])
