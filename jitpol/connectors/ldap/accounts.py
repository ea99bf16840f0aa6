"""ephemeral-account: an entry created for one grant below people_base, carrying jitpol's
marker, a member of exactly its groups, with the end the server enforces (OpenLDAP pwdEndTime,
AD accountExpires)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jitpol.connectors.kit import shown
from jitpol.connectors.ldap.encodings import (
    ad_domain,
    enforced_end,
    from_filetime,
    parse_generalized_time,
    ssha_matches,
)
from jitpol.connectors.ldap.membership import Membership, _Group
from jitpol.connectors.ldap.names import (
    _EPHEMERAL_NAME,
    _MARKER_VALUE,
    MARKER_PREFIX,
    DnError,
    canonical_dn,
    marker,
    parse_dn,
)
from jitpol.connectors.ldap.requests import (
    Request,
    Step,
    ad_account_request,
    end_request,
    openldap_account_request,
    password_request,
)
from jitpol.connectors.ldap.session import _texts
from jitpol.errors import PermanentTargetError
from jitpol.model.assignment import Action, Assignment
from jitpol.model.canonical import canonical_json


@dataclass(frozen=True, slots=True)
class _Account:
    dn: str
    principal: str
    marked: bool
    end: datetime | None


class Accounts(Membership):
    """ephemeral-account (joins and leaves groups through Membership)."""

    def _observe_accounts(self, model: str) -> list[Assignment]:
        out = []
        for account in self._accounts():
            if not account.marked:
                continue
            groups = sorted(self._groups_of(account.dn))
            out.append(Assignment(self.name, model, account.principal, canonical_json(groups), expires=account.end,
                                  owned=True))
        return out

    def _accounts(self) -> list[_Account]:
        from ldap3.utils.conv import escape_filter_chars

        object_class = "user" if self.flavor == "active-directory" else "inetOrgPerson"
        search_filter = f"(&(objectClass={object_class})(description={escape_filter_chars(MARKER_PREFIX)}*))"
        entries = self._search(self.people_base, search_filter, "LEVEL", self._account_attributes(), paged=True)
        accounts = (self._account(e) for e in entries)
        return [a for a in accounts if a is not None]

    def _account_attributes(self) -> list[str]:
        end = "accountExpires" if self.flavor == "active-directory" else "pwdEndTime"
        return [self._rdn_attr, "description", end, "objectClass"]

    def _account(self, entry: Mapping[str, Any]) -> _Account | None:
        """An entry below people_base as an account; None when its RDN is not `uid=`/`cn=`."""
        try:
            dn = canonical_dn(entry["dn"], lenient=True)
            first = parse_dn(dn)[0]
        except DnError:
            return None
        if len(first) != 1 or first[0][0] != self._rdn_attr:
            return None
        attrs = entry["raw_attributes"]
        marked = any(d.startswith(MARKER_PREFIX) for d in _texts(attrs, "description"))
        end: datetime | None = None
        try:
            if self.flavor == "active-directory":
                values = _texts(attrs, "accountExpires")
                end = from_filetime(int(values[0])) if values else None
            else:
                values = _texts(attrs, "pwdEndTime")
                end = parse_generalized_time(values[0]) if values else None
        except ValueError:
            end = None  # unreadable: report no enforced end, so an addition sets it again
        return _Account(dn=dn, principal=first[0][1], marked=marked, end=end)

    def _read_account(self, principal: str) -> _Account | None:
        entries = self._search(self._account_dn(principal), "(objectClass=*)", "BASE", self._account_attributes())
        return self._account(entries[0]) if entries else None

    def _groups_of(self, member_dn: str) -> set[str]:
        """Canonical DNs of the groups below base_dn that list `member_dn` in `member`."""
        from ldap3.utils.conv import escape_filter_chars

        search_filter = f"(member={escape_filter_chars(member_dn)})"
        entries = self._search(self.base_dn, search_filter, "SUBTREE", ["1.1"], paged=True)
        groups = set()
        for e in entries:
            try:
                groups.add(canonical_dn(e["dn"], lenient=True))
            except DnError:
                continue  # a DN we could not name in a privilege anyway
        return groups

    def _account_dn(self, principal: str) -> str:
        from ldap3.utils.dn import escape_rdn

        # the principal matched _EPHEMERAL_NAME already; escaping is defence in depth
        return f"{self._rdn_attr}={escape_rdn(principal)},{self.people_base}"

    def _checked_account_name(self, principal: str) -> str:
        if not isinstance(principal, str) or not _EPHEMERAL_NAME.fullmatch(principal):
            raise PermanentTargetError(
                f"target {self.name}: ephemeral account name {shown(principal)} is not allowed "
                "(jit- followed by 1 to 31 lower-case letters, digits or -)"
            )
        return principal

    def _checked_groups(self, privilege: str) -> list[str]:
        try:
            groups = json.loads(privilege)
        except ValueError:
            groups = None
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise PermanentTargetError(
                f"target {self.name}: the privilege of an ephemeral account must be a JSON list of group DNs"
            )
        if canonical_json(sorted(set(groups))) != privilege:
            raise PermanentTargetError(
                f"target {self.name}: the privilege {shown(privilege)} is not the canonical JSON of a sorted "
                "list of distinct group DNs"
            )
        return [self._checked_group(g) for g in groups]

    def _marker(self, action: Action) -> str:
        fields = {"grant": action.detail("grant"), "person": action.detail("person")}
        for key, value in fields.items():
            if not _MARKER_VALUE.fullmatch(value):
                raise PermanentTargetError(
                    f"target {self.name}: detail {key} {shown(value)} is missing or not a jitpol name"
                )
        return marker(fields["grant"], fields["person"])

    def _plan_create(self, action: Action) -> list[Step]:
        a = action.assignment
        principal = self._checked_account_name(a.principal)
        wanted = self._checked_groups(a.privilege)
        description = self._marker(action)
        password = self._checked_password(action)
        ad = self.flavor == "active-directory"
        if ad and password and not self._encrypted:
            raise PermanentTargetError(
                f"target {self.name}: Active Directory takes passwords only over an encrypted connection "
                "(use ldaps:// or start_tls: true)"
            )
        dn = self._account_dn(principal)
        existing = self._read_account(principal)
        if existing is not None and not existing.marked:
            raise PermanentTargetError(
                f"target {self.name}: {dn!r} exists and does not carry jitpol's marker; jitpol does not touch it"
            )
        groups: dict[str, _Group] = {}
        for g in wanted:
            group = self._read_group(g)
            if group is None:
                raise PermanentTargetError(f"target {self.name}: group {g!r} does not exist")
            if not group.is_group:
                raise PermanentTargetError(f"target {self.name}: {g!r} is not a groupOfNames (or AD group)")
            groups[g] = group
        enforce = ad or self._ppolicy()
        end = action.until if enforce else None
        steps: list[Step] = []
        current: set[str] = set()
        if existing is None:
            if ad:
                steps.append((ad_account_request(dn, principal, description, end=end, password=password,
                                                 domain=ad_domain(self._base)), None))  # fmt: skip
            else:
                steps.append((openldap_account_request(dn, principal, description, end=end, password=password), None))
        else:
            current = self._groups_of(dn)
            if password and not self._password_verifies(dn, password):
                # a new secret re-delivered (the first one was lost with a run that died before
                # recording it): the account must take it, or its holder could not log in
                steps.append((password_request(dn, self.flavor, password), None))
            # the end follows the grant's live end both ways: a schedule, a restriction or a
            # break-glass deadline that cuts the window moves it earlier, an extension later
            if end is not None and existing.end != enforced_end(self.flavor, end):
                steps.append((end_request(dn, self.flavor, end), None))
        for g in wanted:
            if g not in current:
                steps.append(self._join(g, dn, groups[g]))
        for g in sorted(current - set(wanted)):
            steps.extend(self._leave(g, dn))
        return steps

    def _password_verifies(self, dn: str, password: str) -> bool:
        """Does the entry's userPassword already verify `password` (the same action applied
        again)? Always False on AD, whose unicodePwd cannot be read: the password is set again."""
        if self.flavor == "active-directory":
            return False
        entry = self._read_entry(dn, ["userPassword"])
        return entry is not None and ssha_matches(_texts(entry["raw_attributes"], "userPassword"), password)

    def _leave(self, group_dn: str, member_dn: str) -> list[Step]:
        group = self._read_group(group_dn)
        if group is None or group.find(member_dn) is None:
            return []
        return [self._part(group_dn, member_dn, group)]

    def _plan_delete(self, action: Action) -> list[Step]:
        principal = self._checked_account_name(action.assignment.principal)
        existing = self._read_account(principal)
        if existing is None:
            return []
        if not existing.marked:
            raise PermanentTargetError(
                f"target {self.name}: {existing.dn!r} does not carry jitpol's marker; jitpol does not delete it"
            )
        steps: list[Step] = []
        if self.flavor == "openldap":
            # AD drops the links of a deleted object itself; OpenLDAP's refint may not be loaded,
            # and would fail on a group's last member without refint_nothing
            for g in sorted(self._groups_of(existing.dn)):
                steps.extend(self._leave(g, existing.dn))
        steps.append((Request("delete", existing.dn), None))
        return steps
