"""One jitpol run at a time per repository.

The lock is an flock(2) on a file, held for the life of the run. The kernel drops it when the
holding process exits, however it dies, so a crashed run never leaves a stale lock behind and
there is nothing to clean up. The file itself stays (removing it would let a late opener lock
a different inode than the next run) and only says who holds it, for the error message.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import socket
from pathlib import Path
from types import TracebackType

from jitpol.errors import LockHeld

LOCK_NAME = "jitpol.lock"
FALLBACK_NAME = ".jitpol.lock"
_HOLDER = re.compile(r"pid=(\d{1,10}) host=(\S{1,255})")


def lock_path(repo_dir: Path, scope: str = "") -> Path:
    """Where the lock for `repo_dir` lives: in its git directory when `repo_dir` is a work-tree
    root (so the lock never shows up as a change), else `repo_dir/.jitpol.lock`. A `scope` (a
    shard, "2-of-4") gets a lock of its own: shards touch disjoint targets and ledger files."""
    if scope:
        base = lock_path(repo_dir)
        return base.with_name(f"{base.name}.{scope}" if base.name.startswith(".") else f"jitpol-{scope}.lock")
    dot_git = repo_dir / ".git"
    if dot_git.is_dir():
        return dot_git / LOCK_NAME
    if dot_git.is_file():
        # Linked work trees and submodules: ".git" is a file saying "gitdir: <path>".
        first = dot_git.read_text(encoding="utf-8", errors="replace").partition("\n")[0]
        if first.startswith("gitdir: "):
            git_dir = (repo_dir / first.removeprefix("gitdir: ").strip()).resolve()
            if git_dir.is_dir():
                return git_dir / LOCK_NAME
    return repo_dir / FALLBACK_NAME


class RunLock:
    """Context manager holding the repository's run lock.

    Entering raises LockHeld, naming the holder's pid and host, when another process (or
    another RunLock in this process) holds it; it never waits. Not re-entrant.
    """

    def __init__(self, repo_dir: Path, scope: str = "", *, shared: bool = False) -> None:
        self.path = lock_path(repo_dir, scope)
        self._shared = shared
        self._fd: int | None = None
        # a scoped run (a shard, an agent) also holds the repository's own lock SHARED: scoped runs
        # go side by side, but never beside a whole-repository run, which holds it exclusively
        self._outer = RunLock(repo_dir, shared=True) if scope else None

    def __enter__(self) -> RunLock:
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this RunLock")
        if self._outer is not None:
            self._outer.__enter__()
            try:
                return self._take()
            except BaseException:
                self._outer.__exit__(None, None, None)
                raise
        return self._take()

    def _take(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if self._shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LockHeld(
                    f"another jitpol run holds {self.path} ({_holder(self.path)}); wait for it to finish"
                ) from exc
            raise
        if not self._shared:  # shared holders leave the exclusive holder's note alone
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"pid={os.getpid()} host={socket.gethostname()}\n".encode(), 0)
            except OSError:
                os.close(fd)  # closing releases the lock
                raise
        self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
            if self._outer is not None:
                self._outer.__exit__(exc_type, exc, tb)


def _holder(path: Path) -> str:
    """The holder as "pid 1234 on host", from the lock file; vaguer if it cannot be read yet
    (the holder writes it just after taking the lock)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")[:512]
    except OSError:
        return "holder unknown"
    match = _HOLDER.search(text)
    if match is None:
        return "holder unknown"
    return f"pid {match[1]} on {match[2]}"
