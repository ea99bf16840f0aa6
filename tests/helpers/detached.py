"""Processes that are not this test's descendants: a stand-in for "another git user" on the machine.

jitpol never counts its own children as users of a git lock (a `git cat-file --batch` it runs
may still be alive), so a test that needs a live *foreign* holder must start it detached: a
short-lived parent forks the holder and exits, and the holder is re-parented away from us.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

_DETACH = """
import os, sys
pid = os.fork()
if pid:
    print(pid, flush=True)
    os._exit(0)
os.setsid()
cwd, argv = sys.argv[1], sys.argv[2:]
os.chdir(cwd)
devnull = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(devnull, fd)
os.execvp(argv[0], argv)
"""


@contextlib.contextmanager
def detached(argv: Sequence[str], cwd: Path) -> Iterator[int]:
    """Run `argv` in `cwd` as a process that does not descend from this one (in a session of its
    own, stdin, stdout and stderr on /dev/null); yield its pid and kill its process group
    afterwards."""
    done = subprocess.run([sys.executable, "-c", _DETACH, str(cwd), *argv], check=True, capture_output=True,
                          text=True)
    pid = int(done.stdout.strip())
    try:
        yield pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


@contextlib.contextmanager
def holding_open(path: Path) -> Iterator[int]:
    """A foreign process that keeps `path` open (as git does while it writes a lock file)."""
    script = "import sys, time\nf = open(sys.argv[1], 'rb')\ntime.sleep(120)\n"
    with detached([sys.executable, "-c", script, str(path)], path.parent) as pid:
        _wait_until_open(pid, path)
        yield pid


def _wait_until_open(pid: int, path: Path) -> None:
    target = os.path.realpath(path)
    for _ in range(200):
        with contextlib.suppress(OSError):
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") == target for fd in os.listdir(f"/proc/{pid}/fd")):
                return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} did not open {path}")
