"""References to people and teams: `person:alice`, `team:sre`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

RefKind = Literal["person", "team"]


@dataclass(frozen=True, slots=True, order=True)
class Ref:
    kind: RefKind
    name: str

    @classmethod
    def parse(cls, text: str) -> Ref:
        kind, sep, name = text.partition(":")
        if not sep or kind not in ("person", "team") or not name:
            raise ValueError(f"{text!r} is not a reference; write person:NAME or team:NAME")
        return cls(kind, name)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"
