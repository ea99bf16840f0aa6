"""Observe: read the live state of every target the policy or the ledger involves, in parallel,
through connectors opened lazily (one per target).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from jitpol.clock import Clock
from jitpol.connectors import registry
from jitpol.connectors.base import Connector
from jitpol.errors import JitpolError, TargetError
from jitpol.evaluate.prepare import Prepared
from jitpol.model.assignment import Assignment
from jitpol.model.documents import Target
from jitpol.observe.scopes import scopes

Progress = Callable[[str], None]


@dataclass(slots=True)
class Connections:
    """Connectors opened lazily, one per target, closed together."""

    targets: Mapping[str, Target]
    env: Mapping[str, str]
    # the run's time (`--at`), for the connectors that read a time of their own (Azure PIM
    # schedules): the run always has its time, and no connector reads the wall clock
    clock: Clock
    _open: dict[str, Connector] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, name: str) -> Connector:
        with self._lock:
            if name not in self._open:
                target = self.targets.get(name)
                if target is None:
                    raise TargetError(f"target {name} is not configured in jitpol.yaml")
                self._open[name] = registry.create(name, target.type, target.settings, self.env,
                                                   clock=self.clock)
            return self._open[name]

    def close(self) -> None:
        for c in self._open.values():
            c.close()
        self._open.clear()


@dataclass(frozen=True, slots=True)
class Observation:
    assignments: Mapping[str, frozenset[Assignment] | None]  # None: could not observe
    errors: Mapping[str, str]


def observe(prep: Prepared, conns: Connections, progress: Progress | None = None) -> Observation:
    """Read live state of every target the policy or the ledger involves, targets in parallel."""
    # an invalid or untrusted run observes too what a trusted policy names (read-only): marked
    # access on those privileges is found even where the ledger does not name it
    policy = prep.effective if prep.effective is not None else prep.approved
    by_target: dict[str, list[Any]] = {}
    for (target, _model), scope in scopes(policy, prep.history).items():
        if target in prep.targets:  # not another shard's, nor a target only an unapproved change adds
            by_target.setdefault(target, []).append(scope)

    def one(target: str) -> tuple[str, frozenset[Assignment] | None, str | None]:
        try:
            found: set[Assignment] = set()
            conn = conns.get(target)
            for scope in by_target[target]:
                found |= conn.observe(scope)
            return target, frozenset(found), None
        except JitpolError as exc:
            return target, None, str(exc)

    results: dict[str, frozenset[Assignment] | None] = {}
    errors: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(by_target)))) as pool:
        for target, found, err in pool.map(one, sorted(by_target)):
            results[target] = found
            if err is not None:
                errors[target] = err
            if progress:
                progress(f"observed {target}" + (f": {err}" if err else f" ({len(found or ())} holders)"))
    return Observation(results, errors)
