"""Entra group membership, plain: `POST /groups/{id}/members/$ref` and
`DELETE /groups/{id}/members/{id}/$ref`, observed with `GET /groups/{id}/members` (paged).

A plain membership has no end of its own and no place for a marker: jitpol's revocation ends it,
and only the ledger knows who gave it (observe reports owned None).

Which groups: Graph manages the members of assigned security groups and Microsoft 365 groups.
Groups whose members are owned elsewhere are refused with the reason, at observe and apply:
dynamic groups (`groupTypes` contains DynamicMembership: a rule computes the members),
groups synchronised from on-premises AD (`onPremisesSyncEnabled`: AD is the source of truth and
Graph refuses the write), and mail-enabled security groups and distribution lists (Exchange
Online manages them). Both this module and PIM for Groups use the check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jitpol.connectors.entra.session import GraphSession, graph_error, str_of
from jitpol.connectors.kit import marker_driven
from jitpol.errors import PermanentTargetError
from jitpol.model.assignment import Action, Outcome
from jitpol.model.canonical import canonical_json

GROUP_FIELDS = ["id", "displayName", "groupTypes", "mailEnabled", "securityEnabled", "onPremisesSyncEnabled"]
ALREADY_MEMBER = "One or more added object references already exist"


@dataclass(frozen=True, slots=True)
class GroupKind:
    """What jitpol needs to know of a group before touching its members."""

    exists: bool
    refusal: str | None = None  # why its members cannot be managed through Graph, if so


class Groups:
    """Group reads shared by both membership kinds, and plain membership."""

    def __init__(self, session: GraphSession) -> None:
        self.session = session
        self._kinds: dict[str, GroupKind] = {}

    # -- which groups ---------------------------------------------------------------------------

    def kind(self, group: str) -> GroupKind:
        """The group's kind, read once per connector."""
        if group not in self._kinds:
            self._kinds[group] = self.session.run(f"read group {group}", lambda c: self._read_kind(c, group))
        return self._kinds[group]

    async def _read_kind(self, client: Any, group: str) -> GroupKind:
        from kiota_abstractions.api_error import APIError
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.groups.item.group_item_request_builder import GroupItemRequestBuilder

        query = GroupItemRequestBuilder.GroupItemRequestBuilderGetQueryParameters(select=GROUP_FIELDS)
        try:
            found = await client.groups.by_group_id(group).get(
                request_configuration=RequestConfiguration(query_parameters=query))
        except APIError as exc:
            if graph_error(exc)[0] == 404:
                return GroupKind(False)
            raise
        if found is None:
            return GroupKind(False)
        types = [str(t) for t in (found.group_types or ())]
        if "DynamicMembership" in types:
            return GroupKind(True, "is a dynamic group (groupTypes DynamicMembership): a membership rule decides "
                                   "its members, so nobody can add or remove one; use an assigned group")
        if found.on_premises_sync_enabled:
            return GroupKind(True, "is synchronised from on-premises Active Directory (onPremisesSyncEnabled): "
                                   "its members are managed there, and Graph refuses to change them; manage it "
                                   "with an ldap target of flavor active-directory, or use a cloud group")
        if found.mail_enabled and "Unified" not in types:
            return GroupKind(True, "is a mail-enabled security group or distribution list: Exchange Online "
                                   "manages its members, and Graph refuses to change them; use a security group "
                                   "or a Microsoft 365 group")
        return GroupKind(True)

    def require_manageable(self, group: str, *, must_exist: bool) -> bool:
        """False for a group that does not exist (unless `must_exist`); PermanentTargetError for
        one whose members Graph cannot change (the reason named)."""
        kind = self.kind(group)
        if not kind.exists:
            if must_exist:
                raise PermanentTargetError(f"target {self.session.target}: group {group} does not exist")
            return False
        if kind.refusal is not None:
            raise PermanentTargetError(f"target {self.session.target}: group {group} {kind.refusal}")
        return True

    # -- plain membership -----------------------------------------------------------------------

    def members(self, group: str) -> set[str]:
        """The ids of the group's direct members (users, groups, service principals, devices)."""

        async def work(client: Any) -> set[str]:
            from msgraph.generated.groups.item.members.members_request_builder import MembersRequestBuilder

            query = MembersRequestBuilder.MembersRequestBuilderGetQueryParameters(
                select=["id"], top=self.session.page_size)
            found: set[str] = set()
            async for member in self.session.pages(client.groups.by_group_id(group).members, query):
                if str_of(member, "id"):
                    found.add(str_of(member, "id").lower())
            return found

        return self.session.run(f"list the members of group {group}", work)

    def apply(self, action: Action, group: str, principal: str, check: bool) -> tuple[Outcome, bool]:
        """Add or remove one direct member; idempotent. Returns the outcome and whether access was
        taken away."""
        grant = action.op == "grant"
        if not self.require_manageable(group, must_exist=grant):
            return Outcome(changed=False, before=True, after=True), False  # no group, no member
        if marker_driven(action):
            # a plain membership carries no marker, so nothing here is provably jitpol's
            return Outcome(changed=False, before=True, after=True), False
        if (principal in self.members(group)) == grant:
            return Outcome(changed=False, before=True, after=True), False
        ref = f"{self.session.base_url}/directoryObjects/{principal}"
        if grant:
            operation = f"POST /groups/{group}/members/$ref {canonical_json({'@odata.id': ref})}"
        else:
            operation = f"DELETE /groups/{group}/members/{principal}/$ref"
        if check:
            return Outcome(changed=True, before=False, after=False, operations=(operation,)), False

        async def work(client: Any) -> bool:
            from kiota_abstractions.api_error import APIError
            from msgraph.generated.models.reference_create import ReferenceCreate

            try:
                if grant:
                    await client.groups.by_group_id(group).members.ref.post(ReferenceCreate(odata_id=ref))
                else:
                    await client.groups.by_group_id(group).members.by_directory_object_id(principal).ref.delete()
            except APIError as exc:
                status, _code, message = graph_error(exc)
                if grant and status == 400 and ALREADY_MEMBER in message:
                    return False  # added meanwhile: already true
                if not grant and status == 404:
                    return False  # not a member (any more): removed meanwhile, already true
                raise
            return True

        done = self.session.run(f"{'add' if grant else 'remove'} {principal} {'to' if grant else 'from'} "
                                f"group {group}", work)
        return Outcome(changed=done, before=not done, after=True, operations=(operation,)), done and not grant
