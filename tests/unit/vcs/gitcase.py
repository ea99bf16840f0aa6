"""Helpers the git tests share."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from jitpol.vcs.git import Repo


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def found(path: Path) -> Repo:
    repo = Repo.find(path)
    assert repo is not None
    return repo


def event(grant: str) -> dict[str, Any]:
    return {"time": "1998-11-30T10:00:00Z", "event": "grant.activated", "grant": grant}
