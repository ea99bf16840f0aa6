"""What the throwaway servers (throwaway_pg, throwaway_slapd, throwaway_sshd, throwaway_moto) share
(stdlib only): free ports, waiting for and stopping processes, the DIR/env file, the
started/not-started checks, `with` support and the `start DIR` / `stop DIR` command line.

Contract:
- free_port() names a TCP port on 127.0.0.1 that was free a moment ago; the caller must retry
  when someone else binds it first.
- process_gone() counts a zombie (state Z) as gone: PID 1 here reaps orphaned daemons slowly,
  so a stopped server can linger as a zombie for a second or two.
- The env file holds KEY=VALUE lines with shell-quoted values, mode 0600 (it holds passwords);
  read_env_file() reads back exactly what write_env_file() wrote.
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, TypeVar

__all__ = [
    "NOT_STARTED",
    "Throwaway",
    "free_port",
    "process_gone",
    "read_env_file",
    "require_started",
    "run_cli",
    "send_signal",
    "stop_process",
    "wait_gone",
    "write_env_file",
]

NOT_STARTED = "the server is not started"

_T = TypeVar("_T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def process_gone(pid: int) -> bool:
    """True when `pid` no longer runs. A zombie counts as gone: here PID 1 reaps orphaned
    daemons slowly, so a stopped server can linger as state Z for a second or two."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    except OSError:  # no /proc (not Linux): ask the kernel instead
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    # the state follows the parenthesised command name, which may itself contain ") "
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def wait_gone(pid: int, timeout: float, interval: float) -> bool:
    """Poll every `interval` seconds until `pid` is gone (process_gone) or `timeout` seconds
    have passed; True when it is gone."""
    deadline = time.monotonic() + timeout
    while not process_gone(pid) and time.monotonic() < deadline:
        time.sleep(interval)
    return process_gone(pid)


def send_signal(pid: int, sig: int) -> bool:
    """Send `sig` to `pid`; False (and no error) when there is no such process any more."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def stop_process(pid: int, signals: Iterable[int], *, timeout: float, interval: float) -> bool:
    """Send each of `signals` in turn and wait up to `timeout` seconds after each for `pid` to
    be gone; True as soon as it is, False when it outlived them all."""
    for sig in signals:
        if not send_signal(pid, sig):
            return True
        if wait_gone(pid, timeout, interval):
            return True
    return False


def require_started(value: _T | None, error: type[Exception], message: str = NOT_STARTED) -> _T:
    """`value`, or `error(message)` when it is None (the server is not started)."""
    if value is None:
        raise error(message)
    return value


def write_env_file(path: Path, env: Mapping[str, str]) -> None:
    """Write `env` as KEY=VALUE lines (values shell-quoted) to `path`, created with mode 0600:
    it holds passwords."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.writelines(f"{k}={shlex.quote(v)}\n" for k, v in env.items())


def read_env_file(path: Path) -> dict[str, str] | None:
    """The variables write_env_file() wrote to `path`, or None when there is no such file."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return None
    values = dict(line.split("=", 1) for line in lines if "=" in line)
    return {k: shlex.split(v)[0] if v else "" for k, v in values.items()}


class Throwaway:
    """Base of the throwaway servers: `with Server(...) as s` starts s and stops it on the way
    out, whatever happened inside."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _Service(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...

    def env(self) -> dict[str, str]: ...


def run_cli(
    argv: list[str] | None,
    *,
    prog: str,
    description: str,
    error: type[Exception],
    make: Callable[[argparse.Namespace], _Service],
    options: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """`prog start DIR [options]` prints the server's env() as KEY=VALUE lines (shell-quoted);
    `prog stop DIR` stops it. `make` builds the server from the parsed arguments (`args.dir`
    and whatever `options` added). Timings go to stderr; an `error` is printed there as
    `prog: message` and the exit code is 1."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("command", choices=["start", "stop"])
    parser.add_argument("dir", type=Path)
    if options is not None:
        options(parser)
    args = parser.parse_args(argv)
    server = make(args)
    try:
        started = time.monotonic()
        if args.command == "start":
            server.start()
            for key, value in server.env().items():
                print(f"{key}={shlex.quote(value)}")
            print(f"# started in {time.monotonic() - started:.2f}s", file=sys.stderr)
        else:
            server.stop()
            print(f"# stopped in {time.monotonic() - started:.2f}s", file=sys.stderr)
    except error as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    return 0
