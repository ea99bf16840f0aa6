"""The connector contract every target type implements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

from jitpol.connectors.kit import shown
from jitpol.model.assignment import Action, Assignment, Capabilities, Outcome, Scope

__all__ = ["Connector", "ConnectorFactory", "MfaPush", "SecretEscrow", "mapping_entry", "shown"]


class Connector(Protocol):
    """One connector instance per configured target.

    Constructors take (name, settings, env) and do no I/O; connect lazily on first use.
    Errors: jitpol.errors.TargetUnavailable for temporary failures (the run goes on with other
    targets, the next run retries), PermanentTargetError for everything else.
    """

    type: ClassVar[str]

    @property
    def capabilities(self) -> Capabilities:
        """What this instance offers (a class attribute for most types; a connector whose mode
        changes what the target enforces, such as Azure with PIM, answers per instance)."""
        ...

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


# -- optional capabilities: a connector offers them besides the Connector protocol, and its
# registry record says so (registry.TargetType.mfa_factors, .escrow)


@runtime_checkable
class MfaPush(Protocol):
    """A connector that asks a person's second factor to confirm (a workflow's `mfa:` factor
    among its record's mfa_factors)."""

    def push(self, user: str, timeout_s: float) -> str:
        """Ask `user` (their account on this target) and wait at most `timeout_s` seconds:
        "SUCCESS", "REJECTED" or "TIMEOUT". Raises InvalidInput for an account that is no
        account of this target, TargetError when the target cannot be asked. No secret in any
        message."""
        ...


@runtime_checkable
class BatchApply(Protocol):
    """A connector that applies several actions of one phase at once: one statement per role and
    the sessions of every revoked principal ended together (databases), one read-modify-write of
    a resource's policy for all its binding changes (GCP), concurrent calls up to the provider's
    documented limits (Okta, AWS, Azure, Entra). The executor calls it with actions of one phase
    (all revocations, or all additions) on this target, in plan order, and records each
    addition's intent before the call and each action's own result after it."""

    def apply_batch(self, actions: Sequence[Action]) -> list[Outcome | Exception]:
        """One entry per action, in order: its Outcome (as `apply` would return it), or the
        exception that action met (a TargetError, InvalidInput, ...). Exact: an action reported
        applied is applied, one reported failed is not applied (or its effect is one the next
        run plans again, idempotently); one failing action never hides the others' results.
        Raises only for a failure of the whole batch before anything was applied."""
        ...


@runtime_checkable
class SecretEscrow(Protocol):
    """A connector that keeps secrets for other targets (a resource's options.escrow; its
    record's escrow is True)."""

    def escrow(self, secret_id: str, value: str, description: str = "") -> str:
        """Store `value` as the new current version of secret `secret_id` (creating the secret
        if needed) and return that version's id. Raises TargetError; the value never appears in a
        message."""
        ...


def mapping_entry(value: object, keys: frozenset[str], form: str) -> Mapping[str, Any]:
    """A role entry that must be a mapping with exactly `keys`, given as the mapping or as its
    canonical JSON text (as privileges reach connectors). Raises InvalidInput naming `form`."""
    import json

    from jitpol.errors import InvalidInput

    data: object = value
    if isinstance(value, str):
        try:
            data = json.loads(value)
        except ValueError:
            raise InvalidInput(f"privilege {shown(value)} is not valid: {form}") from None
    if not isinstance(data, Mapping) or set(data) != keys:
        raise InvalidInput(f"privilege {shown(value)} is not valid: {form}")
    return data
