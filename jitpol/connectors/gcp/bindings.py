"""Edits of an IAM policy's bindings, one member at a time: protobuf values in, new binding lists
out (pure; no I/O). Only jitpol's conditional bindings are edited, plus unconditional ones for a
drift revoke on an exclusive resource; every other binding, condition and member is kept exactly
as read. Also who holds a role, with the end IAM enforces and whether it is jitpol's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from jitpol.connectors.gcp.conditions import (
    CONDITION_DESCRIPTION,
    condition_end,
    condition_expression,
    condition_title,
    rfc3339,
)

if TYPE_CHECKING:
    from google.iam.v1 import policy_pb2  # type: ignore[import-untyped]  # .pyi stubs, no py.typed


def _end_of(binding: policy_pb2.Binding) -> datetime | None:
    if not binding.HasField("condition"):
        return None
    return condition_end(binding.condition.expression, binding.condition.title)


def _is_ours(binding: policy_pb2.Binding) -> bool:
    return _end_of(binding) is not None


def _without(binding: policy_pb2.Binding, member: str) -> policy_pb2.Binding | None:
    """A copy of `binding` without `member`; None when nobody would be left."""
    from google.iam.v1 import policy_pb2

    keep = [m for m in binding.members if m != member]
    if not keep:
        return None
    out = policy_pb2.Binding()
    out.CopyFrom(binding)
    del out.members[:]
    out.members.extend(keep)
    return out


def _describe(binding: policy_pb2.Binding) -> str:
    cond = f" if {binding.condition.expression}" if binding.HasField("condition") else ""
    return f"{binding.role}{cond}"


def plan_grant(
    bindings: Sequence[policy_pb2.Binding], role: str, member: str, until: datetime
) -> tuple[list[policy_pb2.Binding], list[str]] | None:
    """The bindings after granting `role` to `member` until exactly `until` (and what changed),
    or None if nothing changes: the member holds the role unconditionally (standing access,
    left unmarked and untouched), or only through jitpol's bindings ending exactly then. An
    earlier or later jitpol end is moved to `until` either way."""
    from google.iam.v1 import policy_pb2
    from google.type import expr_pb2  # type: ignore[import-untyped]

    end_text = rfc3339(until)
    end = datetime.fromisoformat(end_text.replace("Z", "+00:00"))
    ends: set[datetime] = set()
    for b in bindings:
        if b.role != role or member not in b.members:
            continue
        if not b.HasField("condition"):
            return None  # standing access with no end: nothing to add, and no marker
        ours = _end_of(b)
        if ours is not None:
            ends.add(ours)
    if ends == {end}:
        return None

    out: list[policy_pb2.Binding] = []
    notes: list[str] = []
    for b in bindings:
        if b.role == role and member in b.members and _is_ours(b):
            smaller = _without(b, member)
            notes.append(f"remove {member} from {_describe(b)}")
            if smaller is not None:
                out.append(smaller)
            continue
        out.append(b)
    condition = expr_pb2.Expr(
        expression=condition_expression(end_text),
        title=condition_title(end_text),
        description=CONDITION_DESCRIPTION,
    )
    for i, b in enumerate(out):
        if b.role == role and b.HasField("condition") and b.condition == condition:
            joined = policy_pb2.Binding()
            joined.CopyFrom(b)
            joined.members.append(member)
            out[i] = joined
            break
    else:
        out.append(policy_pb2.Binding(role=role, members=[member], condition=condition))
    notes.append(f"add {member} to {role} if {condition.expression}")
    return out, notes


def plan_revoke(
    bindings: Sequence[policy_pb2.Binding], role: str, member: str, *, drift: bool
) -> tuple[list[policy_pb2.Binding] | None, list[str], bool]:
    """(new bindings or None if nothing changes, what changed, whether the member still holds
    the role unconditionally afterwards). Only jitpol's conditional bindings are edited, plus
    unconditional ones when `drift`; other conditions are never touched."""
    out: list[policy_pb2.Binding] = []
    notes: list[str] = []
    standing = False
    for b in bindings:
        if b.role != role or member not in b.members:
            out.append(b)
            continue
        conditional = b.HasField("condition")
        if _is_ours(b) or (drift and not conditional):
            smaller = _without(b, member)
            notes.append(f"remove {member} from {_describe(b)}")
            if smaller is not None:
                out.append(smaller)
            continue
        standing = standing or not conditional
        out.append(b)
    return (out if notes else None), notes, standing


@dataclass(frozen=True, slots=True)
class Holding:
    """How one member holds a role: the end IAM enforces (None: unconditional) and whether it is
    jitpol's alone (True: only through bindings carrying jitpol's marker; False: standing)."""

    end: datetime | None
    owned: bool


def holders(bindings: Sequence[policy_pb2.Binding], role: str) -> dict[str, Holding]:
    """member -> Holding for everyone holding `role` by an unconditional binding or one of
    jitpol's conditions. Unconditional access wins: such a member is standing (owned False,
    end None), so no marker-driven revoke can reach it."""
    found: dict[str, list[datetime | None]] = {}
    for b in bindings:
        if b.role != role:
            continue
        end: datetime | None = None
        if b.HasField("condition"):
            end = _end_of(b)
            if end is None:
                continue  # someone else's condition: not ours to judge or to touch
        for m in b.members:
            if not m.startswith("deleted:"):
                found.setdefault(m, []).append(end)
    out: dict[str, Holding] = {}
    for m, ends in found.items():
        known = [e for e in ends if e is not None]
        out[m] = Holding(None, False) if len(known) < len(ends) else Holding(max(known), True)
    return out
