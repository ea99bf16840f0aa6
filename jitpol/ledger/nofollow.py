"""Files jitpol keeps in the repository (audit/ and below), opened without following symbolic links.

git stores a symbolic link as an ordinary blob, so anyone who can merge a change can put
`audit -> /elsewhere` (or a link in place of any file or folder jitpol keeps) into every clone.
Each path here is opened one component at a time from the repository root: every folder with
O_DIRECTORY|O_NOFOLLOW and the file with O_NOFOLLOW, each relative to the folder opened before it
(dir_fd). A link anywhere between the root and the file is refused with UnsafePath, never
followed, and a link swapped in while jitpol runs cannot redirect an open either. Only the root
itself is opened normally: it is the operator's choice (--repo) and may lie behind links.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from jitpol.errors import LedgerBroken
from jitpol.fsutil import replace_at

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class UnsafePath(LedgerBroken):
    """A symbolic link, or something of the wrong kind, where jitpol keeps a file or folder of its
    own. A LedgerBroken: everything under audit/ is the ledger's, and a run treats it as damage
    (revocations go on, nothing is added)."""

    def __init__(self, rel: str, message: str) -> None:
        self.rel = rel
        super().__init__(message)


def _parts(rel: str | PurePosixPath) -> tuple[str, ...]:
    parts = PurePosixPath(rel).parts
    if any(p in ("", ".", "..", "/") for p in parts):
        raise ValueError(f"{rel}: not a plain relative path")
    return parts


def _refusal(dir_fd: int, name: str, rel: str, want: str) -> UnsafePath:
    """Why `name` in `dir_fd` cannot be used as a `want` ("folder" or "file")."""
    try:
        info = os.lstat(name, dir_fd=dir_fd)
    except OSError:
        info = None
    if info is not None and stat.S_ISLNK(info.st_mode):
        try:
            to = f" (to {os.readlink(name, dir_fd=dir_fd)})"
        except OSError:
            to = ""
        return UnsafePath(rel, (
            f"{rel} is a symbolic link{to}: jitpol never follows a link in the repository, so it neither reads "
            f"nor writes through it; remove the link (git rm {rel}) and restore the real {want} from git history"))
    return UnsafePath(rel, (
        f"{rel} is not a {'directory' if want == 'folder' else 'regular file'}: jitpol keeps its own {want} "
        f"there; remove it (git rm -r {rel}) and restore the real {want} from git history"))


def open_dir(root: Path, rel: str | PurePosixPath, *, create: bool = False) -> int:
    """A file descriptor of the folder `root/rel` (the caller closes it); `rel` "" is the root.
    With `create`, missing folders are made. FileNotFoundError when one is missing otherwise;
    UnsafePath naming the first component that is a link or not a folder."""
    if create:
        root.mkdir(parents=True, exist_ok=True)  # the root is the operator's: followed like --repo
    fd = os.open(root, _DIR_FLAGS)
    done: list[str] = []
    try:
        for part in _parts(rel) if str(rel) not in ("", ".") else ():
            done.append(part)
            here = "/".join(done)
            try:
                nxt = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass  # made meanwhile by another run, or a dangling link: the open says which
                try:
                    nxt = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise _refusal(fd, part, here, "folder") from None
                    raise
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _refusal(fd, part, here, "folder") from None
                raise
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def folder(root: Path, rel: str | PurePosixPath, *, create: bool = False) -> Iterator[int]:
    """open_dir as a context manager."""
    fd = open_dir(root, rel, create=create)
    try:
        yield fd
    finally:
        os.close(fd)


def _split(rel: str | PurePosixPath) -> tuple[PurePosixPath, str]:
    path = PurePosixPath(*_parts(rel))
    return path.parent, path.name


def open_file(root: Path, rel: str | PurePosixPath, flags: int, mode: int = 0o644) -> tuple[int, int]:
    """(file descriptor of the regular file `root/rel`, descriptor of its folder); the caller closes
    both. With O_CREAT in `flags` missing folders are made too. FileNotFoundError when it (or a
    folder) is missing; UnsafePath when it or a folder above it is a link or of the wrong kind."""
    parent, name = _split(rel)
    dir_fd = open_dir(root, parent, create=bool(flags & os.O_CREAT))
    try:
        try:
            # O_NONBLOCK: a FIFO in its place must not hang the run (it is refused below)
            fd = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO, errno.ENOTDIR):
                raise _refusal(dir_fd, name, str(rel), "file") from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise _refusal(dir_fd, name, str(rel), "file")
    except BaseException:
        os.close(dir_fd)
        raise
    return fd, dir_fd


def read_bytes(root: Path, rel: str | PurePosixPath) -> bytes | None:
    """The content of the regular file `root/rel`; None when it or a folder above it is missing.
    UnsafePath when a link or something of the wrong kind is in the way."""
    try:
        fd, dir_fd = open_file(root, rel, os.O_RDONLY)
    except FileNotFoundError:
        return None
    os.close(dir_fd)
    with open(fd, "rb") as handle:
        return handle.read()


def replace_file(root: Path, rel: str | PurePosixPath, data: bytes, *, mode: int = 0o600,
                 prefix: str | None = None) -> None:
    """Write `root/rel` whole with jitpol.fsutil.replace_at (readers see the old or the new
    content, never a part; a failed write leaves no temporary file). Missing folders are made.
    UnsafePath when a folder on the way is a link (nothing is written) or `rel` itself is a link
    or a folder."""
    parent, name = _split(rel)
    with folder(root, parent, create=True) as dir_fd:
        try:
            info = os.lstat(name, dir_fd=dir_fd)
        except FileNotFoundError:
            info = None
        if info is not None and not stat.S_ISREG(info.st_mode):
            # rename(2) would replace a link rather than follow it, but it is not jitpol's file
            raise _refusal(dir_fd, name, str(rel), "file")
        replace_at(dir_fd, name, data, mode=mode, prefix=prefix)


def remove_file(root: Path, rel: str | PurePosixPath) -> bool:
    """Remove the file `root/rel` (a link there is removed itself, never followed); False when it
    was not there. UnsafePath when a folder above it is a link: nothing of jitpol's is there."""
    parent, name = _split(rel)
    try:
        with folder(root, parent) as dir_fd:
            try:
                os.unlink(name, dir_fd=dir_fd)
            except FileNotFoundError:
                return False
            return True
    except FileNotFoundError:
        return False


def entries(root: Path, rel: str | PurePosixPath) -> list[tuple[str, str]] | None:
    """(name, kind) of each entry of the folder `root/rel`, kind one of "file", "link", "dir",
    "other" (not followed); None when the folder is missing. UnsafePath when it or a folder above
    it is a link or not a folder."""
    try:
        dir_fd = open_dir(root, rel)
    except FileNotFoundError:
        return None
    try:
        out: list[tuple[str, str]] = []
        with os.scandir(dir_fd) as found:
            for entry in found:
                if entry.is_symlink():
                    kind = "link"
                elif entry.is_dir(follow_symlinks=False):
                    kind = "dir"
                elif entry.is_file(follow_symlinks=False):
                    kind = "file"
                else:
                    kind = "other"
                out.append((entry.name, kind))
        return sorted(out)
    finally:
        os.close(dir_fd)
