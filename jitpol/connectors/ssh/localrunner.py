"""LocalRunner: the commands on this machine with subprocess (type `local`, `jitpol agent` in
pull mode), only as root and only on the host the settings name (host_matches)."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Sequence

from jitpol.connectors.kit import shown
from jitpol.connectors.ssh.runner import _COMMAND_TIMEOUT, _short
from jitpol.errors import PermanentTargetError, TargetUnavailable

# what LocalRunner's commands see: system programs first, output in the C locale
_LOCAL_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C",
              "HOME": "/root"}


class LocalRunner:
    """Runs commands on this machine with subprocess: an argument list (no shell), stdin
    through a pipe, a fixed environment (system PATH, C locale), working directory /.

    Refuses (PermanentTargetError, before running anything) unless the process is root, and,
    when `hostname` is given, unless this machine is that host (see host_matches): a repository
    copied to the wrong machine must not apply another host's grants there."""

    def __init__(self, target: str, *, hostname: str | None = None, timeout: float = _COMMAND_TIMEOUT) -> None:
        self.name = target
        self._hostname = hostname
        self._timeout = timeout
        self._ready = False

    def shown(self, argv: Sequence[str]) -> str:
        return " ".join(shlex.quote(arg) for arg in argv)

    def run(self, argv: Sequence[str], stdin: str | None = None) -> tuple[int, str, str]:
        self._check_ready()
        try:
            proc = subprocess.run(
                list(argv), input=(stdin or "").encode(), capture_output=True, env=_LOCAL_ENV, cwd="/",
                timeout=self._timeout, check=False,
            )
        except subprocess.TimeoutExpired:
            raise TargetUnavailable(f"target {self.name}: timed out running {_short(argv)}") from None
        except FileNotFoundError:
            raise PermanentTargetError(
                f"target {self.name}: {shown(argv[0])} is not installed on this host"
            ) from None
        except OSError as exc:
            raise PermanentTargetError(
                f"target {self.name}: cannot run {_short(argv)}: {type(exc).__name__}"
            ) from None
        return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")

    def close(self) -> None:
        """Nothing to release."""

    def _check_ready(self) -> None:
        if self._ready:
            return
        uid = os.geteuid()
        if uid != 0:
            raise PermanentTargetError(
                f"target {self.name}: type local changes users, groups and sudoers on this host and must run as "
                f"root (running as uid {uid}); run `jitpol agent` as root"
            )
        if self._hostname is not None:
            here = os.uname().nodename
            if not host_matches(self._hostname, here):
                raise PermanentTargetError(
                    f"target {self.name}: this machine is {shown(here)}, not {self._hostname!r} "
                    "(setting hostname); refusing to apply another host's grants here"
                )
        self._ready = True


def host_matches(configured: str, actual: str) -> bool:
    """True when `actual` (this machine's name) is the host `configured` names: equal ignoring
    case, or with the same first label when either is a dotted name (`web-1` is
    `web-1.internal`)."""
    a, b = configured.lower().rstrip("."), actual.lower().rstrip(".")
    if a == b:
        return True
    return ("." in a or "." in b) and a.split(".", 1)[0] == b.split(".", 1)[0]
