"""What the fixtures that need a real service (a server, an SDK, a program) share.

A test that needs a service which this machine lacks is skipped on a laptop but FAILS when the
CI environment variable is set: in CI a test that needs a service must run.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from typing import Protocol, TypeVar

import pytest

__all__ = ["require_module", "require_service", "serve"]


def require_service(available: bool, what: str, why: str | None = None) -> None:
    """Return when `available`; otherwise fail the test when CI is set ("CI is set and <what> is
    required[: <why>]") and skip it when not (reason `why`, default "<what> is not available")."""
    if available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and {what} is required" + (f": {why}" if why else ""), pytrace=False)
    pytest.skip(why or f"{what} is not available")


def require_module(module: str, what: str | None = None) -> None:
    """require_service() for an importable Python module (an SDK from the dev extras)."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        found = False
    require_service(found, what or module, f"{module} is not installed (pip install -e '.[dev]' brings it)")


class _Server(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


_S = TypeVar("_S", bound=_Server)


def serve(
    server: _S, *, what: str, missing: type[Exception], failed: type[Exception], name: str
) -> Iterator[_S]:
    """For a fixture to `yield from`: start `server`, yield it, stop it afterwards.

    `missing` (the server's "not installed" error, with its message as the reason) goes through
    require_service(); any other `failed` fails the test as "could not start <name>: ...".
    """
    try:
        server.start()
    except missing as exc:
        require_service(False, what, str(exc))
    except failed as exc:
        pytest.fail(f"could not start {name}: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()
