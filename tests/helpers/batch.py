"""A connector seen through its apply_batch: what the contract suite runs against to prove that
a batch of one behaves exactly as apply() does."""

from __future__ import annotations

from typing import Any, Protocol

from jitpol.connectors.base import BatchApply
from jitpol.model.assignment import Action, Outcome


class _Batching(BatchApply, Protocol):
    def apply(self, action: Action, *, check: bool = False) -> Outcome: ...


class WrappedBatch:
    """The real connector seen through apply_batch: apply() of one action is a batch of one."""

    def __init__(self, real: _Batching) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def apply(self, action: Action, *, check: bool = False) -> Outcome:
        if check:  # apply_batch has no check mode
            return self.real.apply(action, check=True)
        (result,) = self.real.apply_batch([action])
        if isinstance(result, Exception):
            raise result
        return result
