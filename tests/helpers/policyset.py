"""PolicySet values built in code, for unit tests of the pure core (no files, no ssh-keygen).

Keys are well-formed SSH public key lines derived from their owner's name, so fingerprints are
real and stable; signatures are stood in by `sign(message, key)`, which `Signatures` (a
Verifier) accepts exactly for that message and that key, as a real verifier would.

Defaults: people alice and bob (team eng, the requesters), lead and lead2 (team leads, the
approvers), admin (team admins); one fake target `db`; workflow `prod` (1 approval from
team:leads, at most 4h, shared checkout); resource `db-prod` (role-membership, roles read and
write). Times are far from any real now: T0 is Monday 1999-03-01 10:00 UTC.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from jitpol.model.canonical import approval_message, canonical_json, policy_message
from jitpol.model.documents import (
    Approval,
    Config,
    Grant,
    Person,
    PolicyApproval,
    PolicySet,
    Resource,
    Role,
    Source,
    Target,
    Team,
    Workflow,
)
from jitpol.model.refs import Ref
from jitpol.model.sshkey import fingerprint
from jitpol.model.times import utc_text
from jitpol.policy.approvals import NAMESPACE

T0 = datetime(1999, 3, 1, 10, 0, tzinfo=UTC)  # a Monday
H = timedelta(hours=1)
M = timedelta(minutes=1)
SRC = Source("x.yaml")

TEAMS: dict[str, tuple[str, ...]] = {"eng": ("alice", "bob"), "leads": ("lead", "lead2"), "admins": ("admin",)}


def _ssh_string(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def key_line(owner: str, kind: str = "ssh-ed25519") -> str:
    """A well-formed public key line of `kind`, unique to `owner` (an sk- kind for a security key)."""
    blob = _ssh_string(kind.encode()) + _ssh_string(hashlib.sha256(f"{kind}/{owner}".encode()).digest())
    return f"{kind} {base64.b64encode(blob).decode()} {owner}"


def fp(owner: str, kind: str = "ssh-ed25519") -> str:
    return fingerprint(key_line(owner, kind))


def sign(message: bytes, key: str) -> str:
    """The stand-in for an SSH signature of `message` by the private half of `key`."""
    return "sig:" + hashlib.sha256(message + b"|" + key.split()[1].encode()).hexdigest()


class Signatures:
    """A Verifier: a signature verifies when it is sign(message, key). Records every batch."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[bytes, str, str]]] = []

    def verify_many(self, items: Sequence[tuple[bytes, str, str]], *, namespace: str = NAMESPACE) -> list[bool]:
        self.batches.append(list(items))
        return [signature == sign(message, key) for message, signature, key in items]


def person(name: str, *, disabled: bool = False, accounts: Mapping[str, Any] | None = None,
           keys: Iterable[str] | None = None) -> Person:
    return Person(name, f"{name}@example.com", tuple(keys) if keys is not None else (key_line(name),),
                  dict(accounts) if accounts is not None else {"fake": name}, Source(f"people/{name}.yaml"),
                  disabled)


def workflow(name: str = "prod", **kw: Any) -> Workflow:
    wf = Workflow(name, (Ref("team", "eng"),), 1, (Ref("team", "leads"),), "signature", "none", 4 * H, None,
                  "shared", False, None, Source(f"workflows/{name}.yaml"))
    return replace(wf, **kw)


ROLES: dict[str, Role] = {
    "read": Role("read", ("app_read",), SRC),
    "write": Role("write", ("app_read", "app_write"), SRC),
}


def resource(name: str = "db-prod", **kw: Any) -> Resource:
    res = Resource(name, "db", "prod", "role-membership", ROLES, False, None, {}, Source(f"resources/{name}.yaml"))
    return replace(res, **kw)


def digest_of(name: str, requester: str, res: str, role: str, start: datetime, end: datetime,
              justification: str, revoke: bool, breakglass: bool) -> str:
    """A grant digest that changes with any field (as the real one does with any edit)."""
    body = [name, requester, res, role, utc_text(start), utc_text(end), justification, revoke, breakglass]
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def approval(digest: str, by: str, *, key_owner: str | None = None, kind: str = "ssh-ed25519",
             signed_digest: str | None = None) -> Approval:
    """`by`'s approval of a grant digest, signed with `key_owner`'s key (default: their own), over
    `signed_digest` (default: this digest)."""
    key = key_line(key_owner or by, kind)
    return Approval(by, fingerprint(key), sign(approval_message(signed_digest or digest), key), SRC)


def grant(name: str, requester: str = "alice", *, start: datetime = T0, hours: float = 2,
          resource: str = "db-prod", role: str = "read", justification: str = "INC-1",
          approvers: Sequence[str] = ("lead",), revoke: bool = False, breakglass: bool = False,
          end: datetime | None = None, digest: str | None = None) -> Grant:
    """A grant signed by `approvers` (each with their own key, over this grant's digest)."""
    stop = end if end is not None else start + hours * H
    dg = digest or digest_of(name, requester, resource, role, start, stop, justification, revoke, breakglass)
    return Grant(name, requester, resource, role, start, stop, justification,
                 tuple(approval(dg, a) for a in approvers), revoke, dg, Source(f"grants/{name}.yaml"),
                 breakglass=breakglass)


def with_approvals(g: Grant, *approvals: Approval) -> Grant:
    return replace(g, approvals=approvals)


def config(*targets: Target, admins: Sequence[str] = ("team:admins",), required: int = 1) -> Config:
    found = targets or (Target("db", "fake", {}, SRC),)
    return Config("test", tuple(Ref.parse(a) for a in admins), "UTC", {t.name: t for t in found}, None, SRC,
                  required)


def policy(*grants: Grant, people: Iterable[Person] | None = None, teams: Mapping[str, Sequence[str]] | None = None,
           workflows: Iterable[Workflow] | None = None, resources: Iterable[Resource] | None = None,
           cfg: Config | None = None, policy_approvals: Iterable[PolicyApproval] = ()) -> PolicySet:
    folks = people if people is not None else [person(n) for n in ("alice", "bob", "lead", "lead2", "admin")]
    return PolicySet(
        cfg if cfg is not None else config(),
        {p.name: p for p in folks},
        {n: Team(n, tuple(m), SRC) for n, m in (teams if teams is not None else TEAMS).items()},
        {w.name: w for w in (workflows if workflows is not None else [workflow()])},
        {r.name: r for r in (resources if resources is not None else [resource()])},
        {g.name: g for g in grants},
        {a.name: a for a in policy_approvals},
    )


def policy_approval(name: str, digest: str, by: str, *, key_owner: str | None = None,
                    signed_digest: str | None = None) -> PolicyApproval:
    """`by`'s approval of a policy digest, signed with `key_owner`'s key (default: their own)."""
    key = key_line(key_owner or by)
    return PolicyApproval(name, digest, by, fingerprint(key), sign(policy_message(signed_digest or digest), key), SRC)


def activated(g: Grant, *keys: tuple[str, str, str, str], until: datetime | None = None,
              **extra: Any) -> dict[str, Any]:
    """The grant.activated ledger event for `g` holding `keys`."""
    return {"event": "grant.activated", "time": utc_text(g.start), "grant": g.name, "digest": g.digest,
            "requester": g.requester, "resource": g.resource, "role": g.role, "start": utc_text(g.start),
            "end": utc_text(g.end), "until": utc_text(until or g.end), "approvals": [], "breakglass": g.breakglass,
            "assignments": [dict(zip(("target", "model", "principal", "privilege"), k, strict=True)) for k in keys],
            **extra}
