"""LDAP writes as values: Request (add, modify or delete of one entry) and its Changes, the
builders for each write the models send, and what goes on the wire for a value. Pure; needs no
ldap3. A Request describes itself with passwords and hashes shown as ***."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from jitpol.connectors.ldap.encodings import (
    ad_password_value,
    ad_sam_account_name,
    ad_ttl_member,
    filetime,
    generalized_time,
    ssha,
)
from jitpol.connectors.ldap.names import PLACEHOLDER_DN

SECRET_ATTRIBUTES = frozenset({"userpassword", "unicodepwd"})


@dataclass(frozen=True, slots=True)
class Change:
    op: Literal["add", "delete", "replace"]
    attribute: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Request:
    """One LDAP write. For "add" the changes are the new entry's attributes (op "add")."""

    kind: Literal["add", "modify", "delete"]
    dn: str
    changes: tuple[Change, ...] = ()

    def describe(self) -> str:
        """The request as text for Outcome.operations, with password values replaced by ***."""
        if self.kind == "delete":
            return f"delete {self.dn}"
        parts = []
        for c in self.changes:
            shown = ["***"] * len(c.values) if c.attribute.lower() in SECRET_ATTRIBUTES else list(c.values)
            values = " | ".join(shown) or "(none)"  # a replace without values removes the attribute
            if self.kind == "add":
                parts.append(f"{c.attribute}: {values}")
            else:
                parts.append(f"{c.op} {c.attribute}: {values}")
        return f"{self.kind} {self.dn}: " + "; ".join(parts)

    def secrets(self) -> tuple[str, ...]:
        """The values never to be shown: passwords (AD) and password hashes (OpenLDAP)."""
        return tuple(v for c in self.changes if c.attribute.lower() in SECRET_ATTRIBUTES for v in c.values)


Step = tuple[Request, Request | None]  # a write, and what to send instead on a conflict


def member_add_request(group: str, member: str, *, ttl: int | None = None, drop_placeholder: bool = False) -> Request:
    """Add one member (AD: with a TTL); drop the empty-group placeholder in the same modify."""
    changes = [Change("add", "member", (ad_ttl_member(member, ttl) if ttl is not None else member,))]
    if drop_placeholder:
        changes.append(Change("delete", "member", (PLACEHOLDER_DN,)))
    return Request("modify", group, tuple(changes))


def member_delete_request(group: str, member: str, *, last: bool = False) -> Request:
    """Remove one member; when it is the last one of a groupOfNames, put the placeholder in."""
    if last:
        changes = (Change("add", "member", (PLACEHOLDER_DN,)), Change("delete", "member", (member,)))
        return Request("modify", group, changes)
    return Request("modify", group, (Change("delete", "member", (member,)),))


def member_extend_request(group: str, member: str, ttl: int) -> Request:
    """AD: replace a member's link by one with another TTL (a later or an earlier end),
    atomically."""
    return Request(
        "modify", group, (Change("delete", "member", (member,)), Change("add", "member", (ad_ttl_member(member, ttl),)))
    )


def openldap_account_request(
    dn: str, uid: str, description: str, *, end: datetime | None, password: str | None
) -> Request:
    """The add request of an ephemeral OpenLDAP account (inetOrgPerson: it can bind with a
    password; pwdEndTime when the server enforces it)."""
    changes = [
        Change("add", "objectClass", ("inetOrgPerson",)),
        Change("add", "uid", (uid,)),
        Change("add", "cn", (uid,)),
        Change("add", "sn", (uid,)),
        Change("add", "description", (description,)),
    ]
    if end is not None:
        changes.append(Change("add", "pwdEndTime", (generalized_time(end),)))
    if password:
        changes.append(Change("add", "userPassword", (ssha(password),)))
    return Request("add", dn, tuple(changes))


def ad_account_request(
    dn: str, name: str, description: str, *, end: datetime | None, password: str | None, domain: str | None
) -> Request:
    """The add request of an ephemeral AD user. With a password it is enabled (userAccountControl
    512 NORMAL_ACCOUNT); without one it stays disabled (514), since it could not log on anyway."""
    changes = [
        Change("add", "objectClass", ("top", "person", "organizationalPerson", "user")),
        Change("add", "cn", (name,)),
        Change("add", "sAMAccountName", (ad_sam_account_name(name),)),
        Change("add", "description", (description,)),
        Change("add", "accountExpires", (str(filetime(end)) if end is not None else "0",)),
        Change("add", "userAccountControl", ("512" if password else "514",)),
    ]
    if domain:
        changes.append(Change("add", "userPrincipalName", (f"{name}@{domain}",)))
    if password:
        changes.append(Change("add", "unicodePwd", (password,)))
    return Request("add", dn, tuple(changes))


def end_request(dn: str, flavor: str, end: datetime) -> Request:
    """Move an ephemeral account's enforced end to `end`, earlier or later."""
    if flavor == "active-directory":
        return Request("modify", dn, (Change("replace", "accountExpires", (str(filetime(end)),)),))
    return Request("modify", dn, (Change("replace", "pwdEndTime", (generalized_time(end),)),))


def password_request(dn: str, flavor: str, password: str) -> Request:
    """Replace an ephemeral account's password (a new secret re-delivered): userPassword
    ({SSHA}); AD: unicodePwd (an administrative reset) and userAccountControl 512, because an
    account created without a password was created disabled (514)."""
    if flavor == "active-directory":
        changes = (Change("replace", "unicodePwd", (password,)), Change("replace", "userAccountControl", ("512",)))
        return Request("modify", dn, changes)
    return Request("modify", dn, (Change("replace", "userPassword", (ssha(password),)),))


def rotate_request(dn: str, flavor: str, password: str, *, end: datetime | None, set_end: bool) -> Request:
    """The modify that sets a shared entry's new password: userPassword ({SSHA}); AD: unicodePwd
    (an administrative reset), sent after ad_flush_request (see there why AD needs two). When
    `set_end` (the server enforces an end: OpenLDAP with ppolicy, AD always) the end is replaced
    in the same modify, so password and end never disagree: `end` when given, else removed
    (pwdEndTime without values; accountExpires 0, never)."""
    if flavor == "active-directory":
        changes = [Change("replace", "unicodePwd", (password,))]
        if set_end:
            changes.append(Change("replace", "accountExpires", (str(filetime(end)) if end is not None else "0",)))
    else:
        changes = [Change("replace", "userPassword", (ssha(password),))]
        if set_end:
            changes.append(Change("replace", "pwdEndTime", (generalized_time(end),) if end is not None else ()))
    return Request("modify", dn, tuple(changes))


# accountExpires 1 (a tick after 1601-01-01): long past, so the DC refuses every bind (data 701)
AD_EXPIRED = "1"


def discarded_password() -> str:
    """A random password nobody ever learns (AD's intermediate rotation step): 256 bits, and one
    character of each class AD's default complexity rule counts (upper, lower, digit, other)."""
    return secrets.token_urlsafe(32) + "aA1-"


def ad_flush_request(dn: str, throwaway: str | None = None) -> Request:
    """AD: the first of the two modifies of a rotation (rotate_request is the second). An
    administrative unicodePwd reset leaves the replaced password valid for the DC's "old password
    allowed period" (60 minutes by default; KB 906305; Samba does the same): the DC keeps ONE
    previous password. Resetting to a `throwaway` password first pushes the holder's password out
    of that slot when the real one is set; the throwaway is never shown or kept. The account is
    expired (accountExpires AD_EXPIRED) in the same modify, so while only the first step has run
    (the second refused or never sent) the holder's password, still the previous one, does not
    bind either: a rotation that fails half-way fails closed."""
    password = throwaway if throwaway is not None else discarded_password()
    changes = (Change("replace", "unicodePwd", (password,)), Change("replace", "accountExpires", (AD_EXPIRED,)))
    return Request("modify", dn, changes)


def wire_value(attribute: str, value: str) -> str | bytes:
    """What goes on the wire for one value (unicodePwd is quoted UTF-16-LE)."""
    return ad_password_value(value) if attribute.lower() == "unicodepwd" else value
