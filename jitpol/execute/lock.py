"""One jitpol run at a time per repository.

The lock is an flock(2) on a file, held for the life of the run. The kernel drops it when the
holding process exits, however it dies, so a crashed run never leaves a stale lock behind and
there is nothing to clean up. The file itself stays (removing it would let a late opener lock
a different inode than the next run) and only says who holds it, for the error message.

The lock cannot be redirected: in a git repository it lives in the git directory (found with
`git rev-parse --absolute-git-dir`, also when the policy is a subdirectory of the work tree), which
no commit can reach, and only outside git beside the policy as `.jitpol.lock`. It is opened with
O_NOFOLLOW and without O_TRUNC, and only a regular file with a single link is ever written: a
symbolic link (or a hard link, a FIFO, a folder) in its place is refused, never followed,
truncated or overwritten.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import socket
import stat
from pathlib import Path
from types import TracebackType

from jitpol.errors import InvalidInput, LockHeld, VcsError
from jitpol.vcs.gitrun import LOCAL_TIMEOUT_SECONDS, run_git

LOCK_NAME = "jitpol.lock"
FALLBACK_NAME = ".jitpol.lock"
_HOLDER = re.compile(r"pid=(\d{1,10}) host=(\S{1,255})")


def _git_dir(repo_dir: Path) -> Path | None:
    """The git directory of the work tree `repo_dir` lies in (its root or a subdirectory)."""
    dot_git = repo_dir / ".git"
    if dot_git.is_dir() and not dot_git.is_symlink():
        return dot_git
    try:
        done = run_git("rev-parse", "--absolute-git-dir", cwd=repo_dir, timeout=LOCAL_TIMEOUT_SECONDS)
    except VcsError:  # no git, or no such folder
        done = None
    if done is not None and done.ok and done.out.strip():
        found = Path(done.out.strip())
        if found.is_dir():
            return found
    if dot_git.is_file() and not dot_git.is_symlink():
        # Linked work trees and submodules: ".git" is a file saying "gitdir: <path>".
        first = dot_git.read_text(encoding="utf-8", errors="replace").partition("\n")[0]
        if first.startswith("gitdir: "):
            git_dir = (repo_dir / first.removeprefix("gitdir: ").strip()).resolve()
            if git_dir.is_dir():
                return git_dir
    return None


def lock_path(repo_dir: Path, scope: str = "") -> Path:
    """Where the lock for `repo_dir` lives: in the git directory of the work tree it lies in (at
    its root or in a subdirectory: the lock never shows up as a change, and no commit can put a
    link in its place), else `repo_dir/.jitpol.lock`. A `scope` (a shard, "2-of-4") gets a lock
    of its own: shards touch disjoint targets and ledger files."""
    if scope:
        base = lock_path(repo_dir)
        return base.with_name(f"{base.name}.{scope}" if base.name.startswith(".") else f"jitpol-{scope}.lock")
    git_dir = _git_dir(repo_dir)
    return git_dir / LOCK_NAME if git_dir is not None else repo_dir / FALLBACK_NAME


def _open_lock(path: Path) -> int:
    """The lock file, created if missing, never followed or truncated. InvalidInput when
    something other than a regular file of its own is in its place."""
    fd: int | None = None
    try:
        # O_NONBLOCK: a FIFO in its place must not hang the run (it is refused below)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
            raise
    info = os.fstat(fd) if fd is not None else None
    if fd is None or info is None or not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        if fd is not None:
            os.close(fd)
        what = "a symbolic link" if path.is_symlink() else (
            "a hard link to another file" if info is not None and stat.S_ISREG(info.st_mode) else "not a regular file")
        raise InvalidInput(f"{path} is {what}: jitpol never follows, truncates or overwrites anything through its run "
                           f"lock; remove {path} (it holds only the holder's pid) and run again")
    return fd


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
        fd = _open_lock(self.path)
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
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return "holder unknown"
    try:
        text = os.read(fd, 512).decode("utf-8", errors="replace") if stat.S_ISREG(os.fstat(fd).st_mode) else ""
    except OSError:
        return "holder unknown"
    finally:
        os.close(fd)
    match = _HOLDER.search(text)
    if match is None:
        return "holder unknown"
    return f"pid {match[1]} on {match[2]}"
