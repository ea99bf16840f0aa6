"""role-membership: a person's DN as a direct `member` of a group (OpenLDAP's empty-group
placeholder, AD's TTL links); also the group reads and the join/part steps that ephemeral
accounts reuse."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from jitpol.connectors.ldap.encodings import parse_ttl_member, ttl_seconds
from jitpol.connectors.ldap.names import PLACEHOLDER_DN, DnError, canonical_dn
from jitpol.connectors.ldap.requests import Step, member_add_request, member_delete_request, member_extend_request
from jitpol.connectors.ldap.session import LdapSession, _texts
from jitpol.errors import PermanentTargetError
from jitpol.model.assignment import Action, Assignment, Scope

LINK_TTL_CONTROL = "1.2.840.113556.1.4.2309"  # AD: return member values as <TTL=n>,DN
# A TTL link counts down in whole seconds from the DC's clock, so the end read back drifts from
# the one written by a second or two: within this it is the end already in place. Well below the
# core's END_SLACK, so an end the core asks to move is always moved.
TTL_SLACK = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class _Member:
    value: str  # as the server returned it (TTL prefix removed)
    canonical: str  # canonical DN, or the raw value when it does not parse
    ttl: int | None = None


@dataclass(frozen=True, slots=True)
class _Group:
    object_classes: frozenset[str]
    members: tuple[_Member, ...]

    @property
    def is_group(self) -> bool:
        return bool(self.object_classes & {"groupofnames", "group"})

    @property
    def has_placeholder(self) -> bool:
        return any(m.canonical == PLACEHOLDER_DN for m in self.members)

    def find(self, dn: str) -> _Member | None:
        return next((m for m in self.members if m.canonical == dn), None)

    def others(self, dn: str) -> list[_Member]:
        return [m for m in self.members if m.canonical not in (dn, PLACEHOLDER_DN)]


class Membership(LdapSession):
    """role-membership, and the group reads and writes ephemeral accounts reuse."""

    def _observe_members(self, scope: Scope) -> frozenset[Assignment]:
        if not scope.privileges:
            return frozenset()
        ttl = self._pam_enabled()
        now = self._server_time() if ttl else None
        out: set[Assignment] = set()
        for privilege in sorted(scope.privileges):
            try:
                group_dn = canonical_dn(privilege)
            except DnError:
                continue  # not a DN: no such group can exist
            group = self._read_group(group_dn, ttl=ttl)
            if group is None:
                continue
            for m in group.members:
                if m.canonical == PLACEHOLDER_DN:
                    continue
                expires = now + timedelta(seconds=m.ttl) if now is not None and m.ttl is not None else None
                out.add(Assignment(self.name, scope.model, m.canonical, privilege, expires=expires))
        return frozenset(out)

    def _plan_membership(self, action: Action) -> list[Step]:
        a = action.assignment
        principal = self._checked_dn(a.principal, "principal")
        group_dn = self._checked_group(a.privilege)
        if principal == self.bind_dn:
            raise PermanentTargetError(
                f"target {self.name}: refusing to {action.op} {group_dn!r} for {principal!r}: "
                "it is jitpol's own bind DN"
            )
        ttl_links = self._pam_enabled()
        group = self._read_group(group_dn, ttl=ttl_links)
        if group is None:
            raise PermanentTargetError(f"target {self.name}: group {group_dn!r} does not exist")
        if not group.is_group:
            raise PermanentTargetError(
                f"target {self.name}: {group_dn!r} is not a groupOfNames (or AD group); "
                "jitpol manages `member` only there"
            )
        current = group.find(principal)
        if action.op == "grant":
            if self._read_entry(principal, ["objectClass"]) is None:
                raise PermanentTargetError(f"target {self.name}: principal {principal!r} does not exist")
            if current is not None:
                if not (ttl_links and current.ttl is not None and action.until is not None):
                    return []  # a member without TTL stays a member for good
                # the link's end follows the grant's live end both ways (a later or an earlier end)
                now = self._server_time()
                if abs(now + timedelta(seconds=current.ttl) - action.until) <= TTL_SLACK:
                    return []
                return [(member_extend_request(group_dn, principal, ttl_seconds(action.until, now)), None)]
            ttl = ttl_seconds(action.until, self._server_time()) if ttl_links and action.until is not None else None
            return [self._join(group_dn, principal, group, ttl=ttl)]
        if current is None:
            return []
        return [self._part(group_dn, principal, group)]

    def _join(self, group_dn: str, member: str, group: _Group, *, ttl: int | None = None) -> Step:
        """Add `member`. OpenLDAP: drop the placeholder in the same modify, or, should it be gone
        by the time we write (16), add plainly."""
        if self.flavor == "openldap" and group.has_placeholder:
            return member_add_request(group_dn, member, drop_placeholder=True), member_add_request(group_dn, member)
        return member_add_request(group_dn, member, ttl=ttl), None

    def _part(self, group_dn: str, member: str, group: _Group) -> Step:
        """Remove `member`. OpenLDAP: swap the last member for the placeholder; the other form is
        the fallback when other writers changed the group since we read it (65, or 20 when the
        placeholder is there already)."""
        if self.flavor != "openldap":
            return member_delete_request(group_dn, member), None
        last = not group.others(member)
        return (
            member_delete_request(group_dn, member, last=last),
            member_delete_request(group_dn, member, last=not last),
        )

    def _read_group(self, dn: str, *, ttl: bool = False) -> _Group | None:
        controls = [(LINK_TTL_CONTROL, False, None)] if ttl else None
        entries = self._search(dn, "(objectClass=*)", "BASE", ["objectClass", "member"], controls=controls)
        if not entries:
            return None
        attrs = entries[0]["raw_attributes"]
        members = []
        for raw in _texts(attrs, "member"):
            value, seconds = parse_ttl_member(raw) if ttl else (raw, None)
            try:
                canonical = canonical_dn(value, lenient=True)
            except DnError:
                canonical = value
            members.append(_Member(value, canonical, seconds))
        return _Group(frozenset(v.lower() for v in _texts(attrs, "objectClass")), tuple(members))
