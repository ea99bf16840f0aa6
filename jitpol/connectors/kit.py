"""What every connector needs, written once: showing an untrusted value in a message, cutting
secrets out of text, rounding an end up to the second, mapping an HTTP status to the error the
run acts on, the model/operation check at the top of `apply`, telling a marker-driven revoke apart, and a
type's name check (the
policy loader's hook) made of its principal and grants checks. Imports no SDK and no connector."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from jitpol.errors import InvalidInput, PermanentTargetError, TargetError, TargetUnavailable
from jitpol.model.assignment import Action, Outcome
from jitpol.model.canonical import canonical_json

NameCheck = Callable[[object, str], None]  # (value, what) -> None, raises InvalidInput

SHOWN_MAX = 120  # characters of an untrusted value a message quotes
REDACTED = "***"


def shown(value: object) -> str:
    """An untrusted value for a message: repr (which escapes quotes and control characters), cut
    to SHOWN_MAX characters so that a hostile value cannot flood a log."""
    text = repr(value)
    return text if len(text) <= SHOWN_MAX else text[: SHOWN_MAX - 3] + "..."


def redacted(
    text: str,
    secrets: Iterable[str | None] = (),
    *,
    pattern: re.Pattern[str] | None = None,
    limit: int | None = None,
) -> str:
    """`text` for a message: every match of `pattern` replaced by *** (keeping the match's group
    1 when there is one, e.g. "Bearer "), every non-empty secret replaced by ***, on one line,
    cut to `limit` characters when given."""
    if pattern is not None:
        text = pattern.sub(lambda m: (m.group(1) if m.re.groups and m.group(1) else "") + REDACTED, text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    text = " ".join(text.split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def ceil_second(t: datetime) -> datetime:
    """`t` in UTC rounded UP to the second: a target that keeps whole seconds never enforces an
    end earlier than asked (a truncated end would read back as too early and be moved again on
    every run)."""
    t = t.astimezone(UTC)
    return t.replace(microsecond=0) + timedelta(seconds=1) if t.microsecond else t


def temporary_status(status: int, *, also: Collection[int] = ()) -> bool:
    """Is an HTTP status worth a retry by the next run? 429 (throttled) and 5xx, plus `also`
    (a connector whose service answers 408 for its own timeouts passes it)."""
    return status == 429 or status >= 500 or status in also


def status_error(status: int, message: str, *, also: Collection[int] = ()) -> TargetError:
    """The error for an HTTP answer that failed: TargetUnavailable when temporary_status says
    so (the run goes on, the next run retries), PermanentTargetError otherwise."""
    if temporary_status(status, also=also):
        return TargetUnavailable(message)
    return PermanentTargetError(message)


def name_check(principal: Callable[[object], object], privilege: Callable[[object], object]) -> NameCheck:
    """A type's name check (its registry record's name_check) from two checks that raise
    InvalidInput: `principal` for a person's account (`what` "principal"), `privilege` for an
    entry of a resource role's grants (anything else)."""

    def check(value: object, what: str) -> None:
        (principal if what == "principal" else privilege)(value)

    return check


def check_model(target: str, model: str, models: Collection[str]) -> None:
    """PermanentTargetError unless this connector offers `model`."""
    if model not in models:
        raise PermanentTargetError(
            f"target {target}: model {model!r} is not supported (only {', '.join(sorted(models))})"
        )


def check_apply(target: str, model: str, op: str, ops: Mapping[str, Collection[str]]) -> None:
    """The check at the top of every `apply`: the connector offers `model` (a key of `ops`) and,
    for it, operation `op`. Raises PermanentTargetError naming what is offered."""
    check_model(target, model, ops)
    allowed = ops[model]
    if op not in allowed:
        raise PermanentTargetError(
            f"target {target}: operation {op!r} is not supported for {model} (only {' and '.join(allowed)})"
        )


def marker_driven(action: Action) -> bool:
    """Is `action` a revoke of access carrying jitpol's marker that no grant or ledger entry
    backs (plan.diff: drift with no resource)? Such a revoke may take only what still carries the
    marker when it runs: standing access that appeared since observe is not jitpol's. (Drift on
    an exclusive resource names that resource and may remove standing access.)"""
    return action.drift and not action.resource


def password_detail(target: str, action: Action) -> str | None:
    """The action's password detail; None when there is none. Raises PermanentTargetError for
    one that C clients (libpq, the LDAP libraries) would cut short at a NUL, without showing it."""
    password = action.detail("password")
    if not password:
        return None
    if "\x00" in password:
        raise PermanentTargetError(f"target {target}: the password detail contains a NUL character")
    return password


def batch_runs(target: str, actions: Sequence[Action], ops: Mapping[str, Collection[str]], model: str,
               batch: Callable[[list[Action]], list[Outcome | Exception]],
               single: Callable[[Action], Outcome]) -> list[Outcome | Exception]:
    """A BatchApply.apply_batch built from a connector's own batch and single paths: one entry
    per action, in order. Consecutive actions of `model` go to `batch` together; any other
    action is applied alone by `single`, in its place; an action the connector does not offer
    (check_apply) gets its own error. One failing action never hides the others' results."""
    results: list[Outcome | Exception] = []
    run: list[Action] = []

    def flush() -> None:
        if run:
            results.extend(batch(list(run)))
            run.clear()

    for action in actions:
        try:
            check_apply(target, action.assignment.model, action.op, ops)
        except Exception as exc:  # noqa: BLE001 - that action's own result
            flush()
            results.append(exc)
            continue
        if action.assignment.model == model:
            run.append(action)
            continue
        flush()
        try:
            results.append(single(action))
        except Exception as exc:  # noqa: BLE001 - one failing action never hides the others' results
            results.append(exc)
    flush()
    return results


# jitpol's ownership marker where a target keeps a free text with an assignment (Azure's
# description and PIM justification, Entra's schedule requests): "jitpol: grant=<name>"
GRANT_MARKER = "jitpol"
GRANT_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")  # the grant names the schema allows


def grant_marker(action: Action) -> str:
    """The ownership marker for what `action` grants: "jitpol: grant=<name>" for the grant it
    serves first when that name passes the allowlist, else "jitpol". Only fixed text and an
    allow-listed name ever go there."""
    name = action.detail("grant") or (action.grants[0] if action.grants else "")
    return f"{GRANT_MARKER}: grant={name}" if GRANT_NAME.fullmatch(name) else GRANT_MARKER


def name_list(privilege: object, check: Callable[[str], object], what: str = "role") -> list[str]:
    """The names in an ephemeral account's privilege: the canonical JSON of a sorted list of
    distinct names (`canonical_json(sorted(names))`), each one `check` accepts (it raises
    InvalidInput). Any other spelling is refused, because jitpol compares privileges as plain
    strings. Raises InvalidInput."""
    try:
        names = json.loads(privilege) if isinstance(privilege, str) else None
    except ValueError:
        names = None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InvalidInput(
            f"the privilege {shown(privilege)} of an ephemeral account must be a JSON list of {what} names"
        )
    for name in names:
        check(name)
    if canonical_json(sorted(set(names))) != privilege:
        raise InvalidInput(
            f"the privilege {shown(privilege)} is not the canonical JSON of a sorted list of distinct {what} names"
        )
    return list(names)
