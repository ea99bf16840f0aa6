"""The policy repository as frozen values: one class per kind in SPEC section 1.

Values here are already validated (schema + references happen in jitpol.load); every document
keeps the file it came from so later errors can point at it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, Literal

from jitpol.model.refs import Ref

Model = Literal["role-membership", "ephemeral-account", "credential-checkout", "sudo-rule", "idp-elevation"]
MODELS: tuple[str, ...] = (
    "role-membership",
    "ephemeral-account",
    "credential-checkout",
    "sudo-rule",
    "idp-elevation",
)
DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Source:
    """Where a document (or a value in it) was written."""

    path: str
    line: int = 1
    col: int = 1

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    type: str
    settings: Mapping[str, Any]
    source: Source


@dataclass(frozen=True, slots=True)
class Config:
    name: str
    admins: tuple[Ref, ...]
    timezone: str
    targets: Mapping[str, Target]
    git: Mapping[str, Any] | None
    source: Source
    policy_approvals_required: int = 1


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    email: str
    keys: tuple[str, ...]
    accounts: Mapping[str, Any]
    source: Source
    disabled: bool = False  # kill switch: the person holds nothing

    def account_for(self, target: Target) -> Any | None:
        """Her principal on `target`: by target name first, then by target type (a `local`
        target — a host its own agent manages — falls back to her `ssh` account: the same Linux
        user)."""
        if target.name in self.accounts:
            return self.accounts[target.name]
        if target.type == "local" and "local" not in self.accounts:
            return self.accounts.get("ssh")
        return self.accounts.get(target.type)


@dataclass(frozen=True, slots=True)
class Team:
    name: str
    members: tuple[str, ...]
    source: Source


@dataclass(frozen=True, slots=True)
class ScheduleWindow:
    days: tuple[str, ...]
    start: time
    end: time  # end <= start means the window runs past midnight


@dataclass(frozen=True, slots=True)
class Schedule:
    timezone: str
    windows: tuple[ScheduleWindow, ...]


@dataclass(frozen=True, slots=True)
class Workflow:
    name: str
    requesters: tuple[Ref, ...]
    approvals_required: int
    approvers: tuple[Ref, ...]
    approvals_via: str  # "signature" | "github-review"
    mfa: str  # none | security-key | okta-push
    max_duration: timedelta
    schedule: Schedule | None
    checkout: str  # shared | exclusive
    justification_required: bool
    justification_pattern: str | None
    source: Source
    approval_timeout: timedelta | None = None  # unapproved requests expire this long after their start
    breakglass_deadline: timedelta | None = None  # None: break-glass not allowed
    # per person: at most this many break-glass grants starting within any rolling `per` ...
    breakglass_max_uses: int = 1
    breakglass_per: timedelta = timedelta(hours=24)
    # ... and none starting sooner than this after the end of the previous one (None: no cool-down)
    breakglass_cooldown: timedelta | None = None


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    grants: tuple[str, ...]  # canonical text of each entry (a name, or canonical JSON of a mapping)
    source: Source


@dataclass(frozen=True, slots=True)
class Resource:
    name: str
    target: str
    workflow: str
    model: str
    roles: Mapping[str, Role]
    exclusive: bool
    account: str | None
    settings: Mapping[str, Any]  # the rest of spec, for connector-specific options
    source: Source


@dataclass(frozen=True, slots=True)
class Approval:
    by: str
    key: str
    signature: str
    source: Source


@dataclass(frozen=True, slots=True)
class Grant:
    name: str
    requester: str
    resource: str
    role: str
    start: datetime
    end: datetime
    justification: str
    approvals: tuple[Approval, ...]
    revoke: bool
    digest: str  # SHA-256 of the canonical JSON without approvals (SPEC section 2)
    source: Source
    window_source: Source = field(default_factory=lambda: Source(""))
    breakglass: bool = False


@dataclass(frozen=True, slots=True)
class PolicyApproval:
    """An admin's signature over a policy digest (approvals/*.yaml)."""

    name: str
    digest: str
    by: str
    key: str
    signature: str
    source: Source


@dataclass(frozen=True, slots=True)
class PolicySet:
    """Everything loaded from one repository. Lookups by name per kind."""

    config: Config | None
    people: Mapping[str, Person]
    teams: Mapping[str, Team]
    workflows: Mapping[str, Workflow]
    resources: Mapping[str, Resource]
    grants: Mapping[str, Grant]
    policy_approvals: Mapping[str, PolicyApproval] = field(default_factory=dict)

    @classmethod
    def empty(cls) -> PolicySet:
        return cls(None, {}, {}, {}, {}, {})

    def with_grants(self, grants: Mapping[str, Grant]) -> PolicySet:
        """This policy judging other grants (the approved policy judges the proposed grants)."""
        return PolicySet(self.config, self.people, self.teams, self.workflows, self.resources, grants,
                         self.policy_approvals)
