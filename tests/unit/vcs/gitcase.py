"""Helpers the git tests share."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from jitpol.ledger.store import Ledger
from jitpol.vcs.git import Repo


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def found(path: Path) -> Repo:
    repo = Repo.find(path)
    assert repo is not None
    return repo


def event(grant: str) -> dict[str, Any]:
    return {"time": "1998-11-30T10:00:00Z", "event": "grant.activated", "grant": grant}


def seeded(tmp_path: Path) -> Path:
    """A work tree whose one commit holds a one-event ledger (audit/ledger.jsonl)."""
    root = tmp_path / "work"
    root.mkdir()
    git(root, "init", "-q")
    Ledger(root / "audit" / "ledger.jsonl").append([event("seed")])
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "seed")
    return root
