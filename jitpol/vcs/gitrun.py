"""Running git: the one place jitpol starts a git command.

Every git command jitpol runs goes through `run_git`, in a folder the caller names, with:

- stdin closed (unless the caller feeds it), and GIT_TERMINAL_PROMPT=0: a missing credential
  fails instead of waiting for a prompt nobody answers;
- GIT_LITERAL_PATHSPECS=1: a file named `*` is that file, not a pattern;
- LC_ALL=C and LANGUAGE=C: git speaks English, since callers read its messages (a push refused
  because the remote moved, for one);
- the caller's `env` on top of the process environment (a private index, an identity).

stdout and stderr come back as text (bytes that do not decode are kept as surrogate escapes),
each without its one trailing newline. A `timeout` kills git and the processes it started (ssh,
a remote helper); the result then fails and its stderr says so. A failing git command is a
result with a non-zero status, not an exception: each caller decides what a failure means
(`Done.message` is what to show). VcsError only when git cannot be started at all.

git is started with `subprocess` directly (GitPython did this before; its import alone took
~50 ms of every command that runs git, a tenth of an `apply`, and it ran `git version` once per
process). git stays in jitpol's own process group, so that whatever stops jitpol's group (a CI
job cancelled, a kill of the run) stops git with it: a git left running could hold `index.lock`
against the next run. A timeout kills git and every process below it (ssh, a remote helper),
found through /proc, children first. The one exception is a push (`finish_alone`): it changes
another repository, where jitpol cannot clear a lock that a push killed half-way leaves (a local
bare remote's `refs/heads/<b>.lock` stops every later push), so it runs in a session of its own
and finishes (or fails) by itself when the run is killed; its timeout still stops it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Mapping, Sequence
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


def run_git(*args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float | None = None,
            finish_alone: bool = False, stdin: bytes | None = None) -> Done:
    """Run `git args...` in the folder `cwd`, `stdin` fed to it (else stdin is closed). VcsError
    when git is not installed or `cwd` is not a folder git can run in (git never runs anywhere
    else instead). `finish_alone`: in a session of its own, so that a kill of jitpol's process
    group does not stop it half-way (a push)."""
    status, out, err = _execute(args, cwd, env, timeout, stdin=stdin, finish_alone=finish_alone)
    return Done(status, out.decode("utf-8", "surrogateescape"), err.decode("utf-8", "surrogateescape"))


def run_git_bytes(*args: str, cwd: Path, stdin: bytes | None = None, timeout: float | None = None) -> bytes:
    """stdout of `git args...` as bytes, exactly (blob contents); `stdin` is fed to it. VcsError
    when git fails."""
    status, out, err = _execute(args, cwd, None, timeout, stdin=stdin, strip=False)
    if status != 0:
        raise VcsError(f"git {command(args)} failed: {git_message(err.decode('utf-8', 'surrogateescape'))}")
    return out


def _execute(args: tuple[str, ...], cwd: Path, env: Mapping[str, str] | None, timeout: float | None, *,
             stdin: bytes | None = None, strip: bool = True, finish_alone: bool = False) -> tuple[int, bytes, bytes]:
    folder = os.fspath(cwd)
    if not os.path.isdir(folder) or not os.access(folder, os.X_OK):
        raise VcsError(f"cannot run git in {folder}: not an accessible folder")
    full_env = {**os.environ, "LANGUAGE": "C", "LC_ALL": "C", **GIT_ENV, **(env or {})}
    try:
        proc = subprocess.Popen(  # git with arguments, never a shell
            ["git", *args], cwd=folder, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL, start_new_session=finish_alone)
    except FileNotFoundError as exc:
        raise VcsError("git is not installed or not on PATH") from exc
    except OSError as exc:
        raise VcsError(f"cannot start git: {exc}") from exc
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
        status = proc.returncode
    except subprocess.TimeoutExpired:
        _kill_tree(proc)
        out, err = proc.communicate()
        status = proc.returncode if proc.returncode else -9
        err = err + f"\ngit {command(args)} timed out after {timeout:g} s and was stopped".encode()
    except BaseException:
        _kill_tree(proc)  # interrupted: git and its children do not outlive the run
        proc.wait()
        raise
    if strip:
        out = out[:-1] if out.endswith(b"\n") else out
        err = err[:-1] if err.endswith(b"\n") else err
    return status, out, err


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """Kill git and every process below it (ssh, a remote helper): the deepest first, so that
    none is re-parented away before it is found. Where /proc cannot tell (not Linux), git alone."""
    for pid in reversed(_descendants(proc.pid)):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    proc.kill()


def parent_pid(pid: int) -> int | None:
    """The parent of process `pid`, read from /proc; None when that cannot tell (gone, not Linux)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            return int(handle.read().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _descendants(root: int) -> list[int]:
    """The processes below `root`, parents before their children (read from /proc)."""
    children: dict[int, list[int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    for name in names:
        if not name.isdigit():
            continue
        parent = parent_pid(int(name))
        if parent is not None:
            children.setdefault(parent, []).append(int(name))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def git_output(*args: str, cwd: Path, allow_fail: bool = False) -> str:
    """stdout of a local git command the git host clients need (`rev-list`, `rev-parse`, ...),
    run as run_git does with LOCAL_TIMEOUT_SECONDS. PermanentTargetError when it fails (to them a
    clone git cannot read is bad configuration); with `allow_fail` a failure gives "" instead."""
    try:
        done = run_git(*args, cwd=cwd, timeout=LOCAL_TIMEOUT_SECONDS)
    except VcsError as exc:
        raise PermanentTargetError(f"git {command(args)} failed in {cwd}: {exc}") from None
    if not done.ok and not allow_fail:
        raise PermanentTargetError(f"git {command(args)} failed in {cwd}: {done.message}")
    return done.out if done.ok else ""


def command(args: Sequence[str]) -> str:
    """The git command `args` run, for messages: its first word after any `-c name=value`."""
    i = 0
    while i + 1 < len(args) and args[i] == "-c":
        i += 2
    return args[i] if i < len(args) else "(no command)"


def redact(text: str) -> str:
    """`text` with the user:password part of every URL removed."""
    return _USERINFO.sub(r"\1", text)


def git_message(text: str) -> str:
    """git's output `text` as a message: stripped, credentials in URLs removed, never empty."""
    text = redact(text.strip())
    return text if text else "no message from git"
