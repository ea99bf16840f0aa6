"""The connector contract every target type implements."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

from jitpol.model.assignment import Action, Assignment, Capabilities, Outcome, Scope


class Connector(Protocol):
    """One connector instance per configured target.

    Constructors take (name, settings, env) and do no I/O; connect lazily on first use.
    Errors: jitpol.errors.TargetUnavailable for temporary failures (the run goes on with other
    targets, the next run retries), PermanentTargetError for everything else.
    """

    type: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    def observe(self, scope: Scope) -> frozenset[Assignment]:
        """Every holder of scope.privileges on this target now, with the expiry the target
        enforces. Read-only."""
        ...

    def apply(self, action: Action, *, check: bool = False) -> Outcome:
        """Make one action true. Idempotent: if already true, Outcome(changed=False) and no
        writing operations. check=True computes `changed` without writing anything."""
        ...

    def close(self) -> None:
        """Release connections. Safe to call twice."""
        ...


class ConnectorFactory(Protocol):
    def __call__(self, name: str, settings: Mapping[str, Any], env: Mapping[str, str]) -> Connector: ...
