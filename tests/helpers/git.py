"""Run git in a test repository as a named author (no global config needed)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def git(root: Path, *args: str, who: str = "tester") -> str:
    """`git ARGS` in `root` as author and committer `who`; its stripped stdout. Raises on failure."""
    env = {**os.environ, "GIT_AUTHOR_NAME": who, "GIT_AUTHOR_EMAIL": f"{who}@example.com",
           "GIT_COMMITTER_NAME": who, "GIT_COMMITTER_EMAIL": f"{who}@example.com"}
    return subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def publish(root: Path, remote: Path) -> Path:
    """Make `root` a repository on branch main holding everything in it as one commit, pushed to a
    new bare `remote` set as its upstream `origin`; returns `remote`."""
    git(remote.parent, "init", "-q", "--bare", "-b", "main", str(remote))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "policies")
    git(root, "remote", "add", "origin", str(remote))
    git(root, "push", "-q", "-u", "origin", "main")
    return remote
