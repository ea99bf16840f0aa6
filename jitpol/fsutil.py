"""Files written whole: the one atomic write jitpol uses.

A reader of the file sees its old content or its new content, never a part, and a write that
fails (or is interrupted) leaves the old file and no temporary file behind:

1. a new temporary file is created in the same folder (O_EXCL|O_NOFOLLOW: nothing already there,
   not even a link planted under the temporary name, is reused or followed);
2. the data is written and fsynced, and the file gets exactly `mode`, whatever the umask;
3. it is renamed over the destination. rename(2) replaces a symbolic link at the destination
   rather than following it; callers that must not replace one either refuse it first
   (jitpol.ledger.nofollow.replace_file);
4. on any error in 1-3 the temporary file is removed and the error goes on.

Imports nothing of jitpol's, so every layer may use it.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def replace_at(dir_fd: int, name: str, data: bytes, *, mode: int = 0o600, prefix: str | None = None) -> None:
    """Write the file `name` in the folder open as `dir_fd` whole (steps 1-4 above). The
    temporary file is named `{prefix}{random}.tmp`; `prefix` defaults to `.{name}-`."""
    tmp = f"{prefix if prefix is not None else '.' + name + '-'}{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    try:
        with open(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600, prefix: str | None = None) -> None:
    """replace_at for `path`. Its folder is opened normally (following links: where the file goes
    is the caller's choice); FileNotFoundError when the folder is missing."""
    path = Path(path).absolute()
    dir_fd = os.open(path.parent, _DIR_FLAGS)
    try:
        replace_at(dir_fd, path.name, data, mode=mode, prefix=prefix)
    finally:
        os.close(dir_fd)


def fs_now(folder: Path) -> float:
    """The file system's idea of now in `folder` (the mtime a new file gets there), to tell the
    age of a file left behind like with like, whatever the process clock says (and without
    reading the wall clock, which only jitpol.clock may)."""
    fd, name = tempfile.mkstemp(prefix=".jitpol-now-", dir=folder)
    try:
        return os.fstat(fd).st_mtime
    finally:
        os.close(fd)
        os.unlink(name)
