"""A test that needs a service, a program or root may skip on a laptop but must run in CI: every
skip goes through tests.services.require_service (which fails instead when CI is set)."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
BARE_SKIP = re.compile(r"\bpytest\.skip\(|\bimportorskip\(|\bmark\.skip(if)?\b|\bunittest\.skip")


def test_no_test_skips_around_the_ci_rule() -> None:
    found = [
        f"{path.relative_to(TESTS.parent)}:{number}: {line.strip()}  (use tests.services.require_service)"
        for path in sorted(TESTS.rglob("*.py")) if path.name not in ("services.py", "test_skips.py")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if BARE_SKIP.search(line)
    ]
    assert not found, "\n".join(found)
