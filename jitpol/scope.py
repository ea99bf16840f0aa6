"""What one run covers: all targets, a shard of them (`--shard K/N`), or one host's pull-mode
targets (`jitpol agent`), and the ledger file each writes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from jitpol.errors import InvalidInput
from jitpol.model.documents import Target

AUDIT_DIR = Path("audit")


LEDGER_PATH = AUDIT_DIR / "ledger.jsonl"


@dataclass(frozen=True, slots=True)
class Shard:
    """Part K of N of the targets, chosen by a stable hash of the target name, so N CI jobs can
    reconcile in parallel; each appends to its own ledger file."""

    k: int
    n: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        k, sep, n = text.partition("/")
        if not sep or not k.isdigit() or not n.isdigit() or not 1 <= int(k) <= int(n) <= 256:
            raise InvalidInput(f"--shard {text!r}: write K/N with 1 <= K <= N <= 256, e.g. 2/4")
        return cls(int(k), int(n))

    def owns(self, target: Target) -> bool:
        return (target.type not in PULL_TYPES
                and int(hashlib.sha256(target.name.encode()).hexdigest(), 16) % self.n == self.k - 1)

    @property
    def ledger(self) -> Path:
        return AUDIT_DIR / f"ledger-{self.k}-of-{self.n}.jsonl"

    @property
    def lock_scope(self) -> str:
        return f"{self.k}-of-{self.n}"

    @property
    def records_rejections(self) -> bool:
        return self.k == 1  # one shard records them, so N jobs do not record each N times


# target types applied by `jitpol agent` on the endpoint itself, never by a central run
PULL_TYPES: frozenset[str] = frozenset({"local"})


@dataclass(frozen=True, slots=True)
class HostScope:
    """The targets an endpoint's own agent applies: `local` targets naming this host."""

    host: str

    def owns(self, target: Target) -> bool:
        return target.type in PULL_TYPES and str(target.settings.get("hostname", "")).lower() == self.host.lower()

    @property
    def ledger(self) -> Path:
        return AUDIT_DIR / f"agent-{self.host}.jsonl"

    @property
    def lock_scope(self) -> str:
        return f"agent-{self.host}"

    @property
    def records_rejections(self) -> bool:
        return False


class Part(Protocol):
    """Which targets a run applies and where it records: a shard, an agent's host."""

    def owns(self, target: Target) -> bool: ...

    @property
    def ledger(self) -> Path: ...

    @property
    def lock_scope(self) -> str: ...

    @property
    def records_rejections(self) -> bool: ...


def ledger_path(shard: Part | None) -> Path:
    return shard.ledger if shard is not None else LEDGER_PATH
