"""How LinuxHost reaches its host: the Runner protocol (one argument list run as root), and the
way both runners name a command in a message."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Protocol

_COMMAND_TIMEOUT = 60.0  # seconds of silence before a remote command counts as hung


class Runner(Protocol):
    """How LinuxHost reaches its host. Every privileged command of the connector goes through
    run(); a runner adds nothing of its own to the host."""

    def run(self, argv: Sequence[str], stdin: str | None = None) -> tuple[int, str, str]:
        """Run `argv` (an argument list, never a shell string) as root on the host, `stdin` as
        its standard input (None: empty). Returns (exit status, stdout, stderr), whatever the
        status. Raises TargetUnavailable when the host cannot be reached or the command hangs,
        PermanentTargetError when nothing can be run (login refused, wrong host key, not root,
        program missing). Messages never contain `stdin`."""
        ...

    def shown(self, argv: Sequence[str]) -> str:
        """The command as Outcome.operations records it: exactly what run() executes."""
        ...

    def close(self) -> None:
        """Release connections. Safe to call twice; a later run() reconnects."""
        ...



def _first_line(text: str) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= 200 else line[:197] + "..."


def _short(argv: Sequence[str]) -> str:
    """The command for a message: scripts by their $0 name, everything else quoted and cut."""
    if len(argv) > 3 and argv[0] == "sh" and argv[1] == "-c":
        return " ".join(shlex.quote(a) for a in argv[3:])[:160]
    return " ".join(shlex.quote(a) for a in argv)[:160]
