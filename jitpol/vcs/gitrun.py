"""Running git: the one place jitpol starts a git command.

Every git command jitpol runs goes through `run_git`, in a folder the caller names, with:

- stdin closed, and GIT_TERMINAL_PROMPT=0: a missing credential fails instead of waiting for a
  prompt nobody answers;
- GIT_LITERAL_PATHSPECS=1: a file named `*` is that file, not a pattern;
- LC_ALL=C and LANGUAGE=C: git speaks English, since callers read its messages (a push refused
  because the remote moved, for one);
- the caller's `env` on top of the process environment (a private index, an identity).

stdout and stderr come back as text (bytes that do not decode are kept as surrogate escapes),
each without its one trailing newline. A `timeout` kills git and the processes it started (ssh,
a remote helper); the result then fails and its stderr says so. A failing git command is a
result with a non-zero status, not an exception: each caller decides what a failure means
(`Done.message` is what to show). VcsError only when git cannot be started at all.

git itself is started through GitPython's `Git.execute`, which the rest of jitpol does not use
(GitPython is imported by the first call: commands that run no git do not pay for the import).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from jitpol.errors import PermanentTargetError, VcsError

# What git is always run with; a caller's `env` may add to it (never needs to undo it).
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_LITERAL_PATHSPECS": "1"}

# How long the git host clients (review approvals, pull-request comments) let one local git
# command take.
LOCAL_TIMEOUT_SECONDS = 60.0

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]*@")


@dataclass(frozen=True, slots=True)
class Done:
    """A finished git command: its exit status, stdout and stderr."""

    status: int
    out: str
    err: str

    @property
    def ok(self) -> bool:
        return self.status == 0

    @property
    def message(self) -> str:
        """What git said about a failure (stderr, else stdout), credentials in URLs removed."""
        return git_message(self.err or self.out)


def run_git(*args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float | None = None) -> Done:
    """Run `git args...` in the folder `cwd`. VcsError when git is not installed or `cwd` is not
    a folder git can run in (git never runs anywhere else instead)."""
    folder = os.fspath(cwd)
    if not os.path.isdir(folder) or not os.access(folder, os.X_OK):
        raise VcsError(f"cannot run git in {folder}: not an accessible folder")
    import git

    try:
        status, out, err = git.Git(folder).execute(
            ["git", *args],
            with_extended_output=True,
            with_exceptions=False,
            env={**GIT_ENV, **(env or {})},
            kill_after_timeout=timeout,
        )
    except git.GitCommandNotFound as exc:
        raise VcsError("git is not installed or not on PATH") from exc
    assert isinstance(out, str)  # stdout_as_string defaults to True
    return Done(status, out, err)


def git_output(*args: str, cwd: Path, allow_fail: bool = False) -> str:
    """stdout of a local git command the git host clients need (`rev-list`, `rev-parse`, ...),
    run as run_git does with LOCAL_TIMEOUT_SECONDS. PermanentTargetError when it fails (to them a
    clone git cannot read is bad configuration); with `allow_fail` a failure gives "" instead."""
    try:
        done = run_git(*args, cwd=cwd, timeout=LOCAL_TIMEOUT_SECONDS)
    except VcsError as exc:
        raise PermanentTargetError(f"git {args[0]} failed in {cwd}: {exc}") from None
    if not done.ok and not allow_fail:
        raise PermanentTargetError(f"git {args[0]} failed in {cwd}: {done.message}")
    return done.out if done.ok else ""


def redact(text: str) -> str:
    """`text` with the user:password part of every URL removed."""
    return _USERINFO.sub(r"\1", text)


def git_message(text: str) -> str:
    """git's output `text` as a message: stripped, credentials in URLs removed, never empty."""
    text = redact(text.strip())
    return text if text else "no message from git"
