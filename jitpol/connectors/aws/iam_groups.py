"""IAM group membership (privileges {iamGroup}): list members, add or remove one user, and
the optional "revoke older sessions" deny policy on a revoked user, dated by AWS's clock."""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from jitpol.connectors.aws.session import AwsSession, _NotFound
from jitpol.errors import PermanentTargetError
from jitpol.model.assignment import Outcome
from jitpol.model.canonical import canonical_json

SESSION_POLICY_NAME = "jitpol-revoke-older-sessions"


def revoke_sessions_policy(issued_before: datetime) -> str:
    """The inline policy denying everything to temporary credentials issued before
    `issued_before` (an aware datetime): AWS's "revoke older sessions" pattern. Canonical JSON."""
    stamp = issued_before.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return canonical_json({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "JitpolRevokeOlderSessions",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"DateLessThan": {"aws:TokenIssueTime": stamp}},
        }],
    })



class IamGroups(AwsSession):
    """AwsConnector's IAM group memberships."""

    # set by AwsConnector.__init__ from the target's settings
    _revoke_sessions: bool
    _page_size: int

    def _apply_iam(self, grant: bool, group: str, user: str, check: bool) -> Outcome:
        groups, server_time = self._iam_groups_of(user)
        if groups is None:
            if not grant:  # no such user: it holds nothing
                return Outcome(changed=False, before=True, after=True)
            raise PermanentTargetError(f"target {self.name}: IAM user {user} does not exist")
        if (group in groups) == grant:
            return Outcome(changed=False, before=True, after=True)
        if grant and self._iam_group_members(group, probe=True) is None:
            raise PermanentTargetError(f"target {self.name}: IAM group {group} does not exist")
        membership = {"GroupName": group, "UserName": user}
        policy: str | None = None
        operations: list[str] = []
        if not grant and self._revoke_sessions:
            if server_time is None:  # every AWS answer carries a Date header; a proxy removed it?
                raise PermanentTargetError(
                    f"target {self.name}: AWS sent no Date header, so the session deny policy cannot be "
                    f"dated; {user} was not removed from {group}"
                )
            # Put first, dated by AWS's own clock just before the removal: if the run dies in
            # between, the user is still a member and the next run does both again.
            policy = revoke_sessions_policy(server_time)
            put = {"UserName": user, "PolicyName": SESSION_POLICY_NAME, "PolicyDocument": policy}
            operations.append(f"iam PutUserPolicy {canonical_json(put)}")
        change = "AddUserToGroup" if grant else "RemoveUserFromGroup"
        operations.append(f"iam {change} {canonical_json(membership)}")
        if not check:
            iam = self._iam()
            if policy is not None:
                with self._aws_errors("PutUserPolicy"):
                    iam.put_user_policy(UserName=user, PolicyName=SESSION_POLICY_NAME, PolicyDocument=policy)
            with self._aws_errors(change):
                if grant:
                    iam.add_user_to_group(GroupName=group, UserName=user)
                else:
                    iam.remove_user_from_group(GroupName=group, UserName=user)
        return Outcome(changed=True, before=False, after=not check, operations=tuple(operations))

    def _iam_groups_of(self, user: str) -> tuple[set[str] | None, datetime | None]:
        """(names of the user's groups, or None if there is no such user; AWS's time of the
        first answer, from its Date header)."""
        groups: set[str] = set()
        server_time: datetime | None = None
        try:
            with self._aws_errors("ListGroupsForUser"):
                pages = self._iam().get_paginator("list_groups_for_user").paginate(
                    UserName=user, PaginationConfig={"PageSize": self._page_size}
                )
                for page in pages:
                    if server_time is None:
                        server_time = _response_time(page)
                    groups.update(g["GroupName"] for g in page.get("Groups", []))
        except _NotFound:
            return None, server_time
        return groups, server_time

    def _iam_group_members(self, group: str, *, probe: bool = False) -> set[str] | None:
        """User names in the group; None if there is no such group. probe=True reads one page."""
        members: set[str] = set()
        try:
            with self._aws_errors("GetGroup"):
                pages = self._iam().get_paginator("get_group").paginate(
                    GroupName=group,
                    PaginationConfig={"PageSize": self._page_size, **({"MaxItems": 1} if probe else {})},
                )
                for page in pages:
                    members.update(u["UserName"] for u in page.get("Users", []))
        except _NotFound:
            return None
        return members


def _response_time(page: Mapping[str, Any]) -> datetime | None:
    date = page.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if not date:
        return None
    try:
        return email.utils.parsedate_to_datetime(str(date)).astimezone(UTC)
    except (TypeError, ValueError):
        return None
