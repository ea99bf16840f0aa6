"""What exists (or should exist) on a target, and the actions that change it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Op = Literal["grant", "revoke", "create-account", "delete-account", "rotate"]
REVOKING_OPS: frozenset[str] = frozenset({"revoke", "delete-account", "rotate"})

AssignmentKey = tuple[str, str, str, str]

# The detail that says the action's resource opts in to root-equivalent privileges
# (`spec.allowPrivileged: true`): set by the policy evaluation, read by the connectors, which refuse
# a privileged grant (a PostgreSQL role reaching CREATEROLE or pg_execute_server_program, a Linux
# group such as docker, a sudo rule for a file writer) without it. Revocations never look at it.
PRIVILEGED_OPT_IN: tuple[str, str] = ("privileged", "allowed")


@dataclass(frozen=True, slots=True)
class Assignment:
    """`principal` holds `privilege` on `target` under `model`.

    `privilege` is canonical text: a role or group name, a DN, or the canonical JSON of a
    mapping entry (cloud grants). `expires` is the end the target itself enforces, if any; it is
    not part of identity. `owned` is what the target says about who gave it (not part of
    identity either): True when it carries jitpol's ownership marker (a PostgreSQL grantor, a
    sudoers file header, a cloud condition title or description, an account comment), False when
    the target can carry the marker and this one does not (standing access someone else gave),
    None when the target cannot carry a marker for this model (only the ledger knows).
    """

    target: str
    model: str
    principal: str
    privilege: str
    expires: datetime | None = field(default=None, compare=False)
    owned: bool | None = field(default=None, compare=False)

    @property
    def key(self) -> AssignmentKey:
        return (self.target, self.model, self.principal, self.privilege)


@dataclass(frozen=True, slots=True)
class Scope:
    """What a connector is asked to observe: every holder of these privileges on its target."""

    target: str
    model: str
    privileges: frozenset[str]
    settings: tuple[tuple[str, str], ...] = ()  # resource options that change observing, sorted


@dataclass(frozen=True, slots=True)
class Action:
    """One change to make true on a target. Revoking ops sort before additions."""

    op: Op
    assignment: Assignment
    resource: str
    grants: tuple[str, ...]  # grants this action serves (additions) or ends (revocations)
    until: datetime | None = None  # additions: end of the live interval (for native expiry)
    reason: str = ""
    drift: bool = False
    # facts a connector may need beyond the assignment, sorted (key, value) pairs:
    #   person    the requester's person name        grant   the grant the action serves first
    #   ssh_keys  the person's public keys, one per line (ssh ephemeral accounts)
    #   privileged  "allowed" when the resource opts in to root-equivalent privileges (PRIVILEGED_OPT_IN)
    details: tuple[tuple[str, str], ...] = ()

    def detail(self, key: str, default: str = "") -> str:
        return next((v for k, v in self.details if k == key), default)

    @property
    def privileged_allowed(self) -> bool:
        """True when the resource opted in to root-equivalent privileges (PRIVILEGED_OPT_IN)."""
        return self.detail(PRIVILEGED_OPT_IN[0]) == PRIVILEGED_OPT_IN[1]

    @property
    def target(self) -> str:
        return self.assignment.target

    @property
    def principal(self) -> str:
        return self.assignment.principal

    @property
    def revoking(self) -> bool:
        return self.op in REVOKING_OPS


@dataclass(frozen=True, slots=True)
class Capabilities:
    models: frozenset[str]
    native_expiry: frozenset[str] = frozenset()  # models whose end the target enforces itself
    # models whose assignments carry jitpol's ownership marker, so observe() reports `owned` as
    # True or False (never None): what jitpol owns there stays knowable without the ledger
    marks: frozenset[str] = frozenset()
    ends_sessions: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    """Result of Connector.apply. `operations` are the exact statements sent, secrets redacted."""

    changed: bool
    before: bool  # was the action's end state already true?
    after: bool
    operations: tuple[str, ...] = ()
