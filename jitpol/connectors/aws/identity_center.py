"""IAM Identity Center account assignments (sso-admin): list the holders, create or delete one
assignment and wait for the asynchronous request, find the instance."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from jitpol.connectors.aws.names import AccountAssignmentPrivilege
from jitpol.connectors.aws.session import AwsSession, _NotFound
from jitpol.errors import PermanentTargetError, TargetUnavailable
from jitpol.model.assignment import Outcome
from jitpol.model.canonical import canonical_json

if TYPE_CHECKING:
    pass


_INSTANCE_ID = re.compile(r"/((?:sso)?ins-[A-Za-z0-9.-]+)")


def wait_for_request(
    status: Mapping[str, Any],
    describe: Callable[[str], Mapping[str, Any]],
    *,
    wait_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> Mapping[str, Any]:
    """Poll an asynchronous sso-admin request until its Status leaves IN_PROGRESS or
    `wait_seconds` pass; return the last status seen (still IN_PROGRESS on timeout).

    `status` is the first answer (from Create/DeleteAccountAssignment), `describe(request_id)`
    the Describe…Status call. Waits back off from 0.1 s to 5 s and never overrun the deadline.
    """
    deadline = monotonic() + wait_seconds
    delay = 0.1
    while status.get("Status") == "IN_PROGRESS":
        remaining = deadline - monotonic()
        if remaining <= 0:
            break
        sleep(min(delay, remaining))
        delay = min(delay * 2, 5.0)
        status = describe(str(status["RequestId"]))
    return status


@dataclass
class Known:
    """What a batch read once for all its account assignment actions (_known)."""

    holders: dict[tuple[str, str], set[tuple[str, str]] | None] = field(default_factory=dict)
    parts: dict[tuple[str, str, str], PermanentTargetError | None] = field(default_factory=dict)
    permission_sets: dict[str, bool] = field(default_factory=dict)
    principals: dict[tuple[str, str], bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Instance:
    arn: str
    identity_store_id: str


class IdentityCenterAssignments(AwsSession):
    """AwsConnector's account assignments (privileges {account, permissionSet})."""

    # set by AwsConnector.__init__ from the target's settings
    _instance_arn: str | None
    _identity_store_id: str | None
    _wait_seconds: float
    _page_size: int
    _instance: _Instance | None

    def _apply_assignment(
        self,
        grant: bool,
        p: AccountAssignmentPrivilege,
        kind: Literal["USER", "GROUP"],
        ident: str,
        check: bool,
        known: Known | None = None,
    ) -> Outcome:
        """One assignment made true. `known`: what a batch read once for all its actions (the
        holders of each account and permission set, whether permission sets and principals
        exist); without it, read now."""
        instance = self._discover_instance()
        self._same_instance(instance, p)
        if known is not None:
            holders = known.holders[(p.account, p.permission_set)] or set()
        else:
            holders = self._assignment_holders(p, instance) or set()
        if ((kind, ident) in holders) == grant:
            return Outcome(changed=False, before=True, after=True)
        params = {
            "InstanceArn": instance.arn,
            "TargetId": p.account,
            "TargetType": "AWS_ACCOUNT",
            "PermissionSetArn": p.permission_set,
            "PrincipalType": kind,
            "PrincipalId": ident,
        }
        operation = "CreateAccountAssignment" if grant else "DeleteAccountAssignment"
        text = f"sso-admin {operation} {canonical_json(params)}"
        if grant:
            refused = (
                known.parts[(p.permission_set, kind, ident)] if known is not None
                else self._missing_parts(instance, p, kind, ident)
            )
            if refused is not None:
                raise refused
        if check:
            return Outcome(changed=True, before=False, after=False, operations=(text,))
        sso = self._sso()

        def send_and_wait() -> Mapping[str, Any]:
            """The request and its polling: one of the (at most MAX_IN_FLIGHT) outstanding ones."""
            first: Mapping[str, Any]
            with self._aws_errors(operation):
                if grant:
                    first = sso.create_account_assignment(
                        InstanceArn=instance.arn, TargetId=p.account, TargetType="AWS_ACCOUNT",
                        PermissionSetArn=p.permission_set, PrincipalType=kind, PrincipalId=ident,
                    )["AccountAssignmentCreationStatus"]
                else:
                    first = sso.delete_account_assignment(
                        InstanceArn=instance.arn, TargetId=p.account, TargetType="AWS_ACCOUNT",
                        PermissionSetArn=p.permission_set, PrincipalType=kind, PrincipalId=ident,
                    )["AccountAssignmentDeletionStatus"]
            return wait_for_request(
                first,
                lambda request_id: self._describe_request(grant, instance.arn, request_id),
                wait_seconds=self._wait_seconds,
                sleep=self._pacer.clock.sleep,
                monotonic=self._pacer.clock.monotonic,
            )

        final = self._pacer.call("assignment", send_and_wait, what=f"sso-admin {operation}")
        state = final.get("Status")
        if state == "FAILED":
            reason = final.get("FailureReason") or "no reason given"
            raise PermanentTargetError(f"target {self.name}: AWS {operation} FAILED: {reason}")
        if state != "SUCCEEDED":
            raise TargetUnavailable(
                f"target {self.name}: AWS {operation} still {state} after {self._wait_seconds:g} s "
                f"(request {final.get('RequestId')}); the next run checks again"
            )
        return Outcome(changed=True, before=False, after=True, operations=(text,))

    def _describe_request(self, grant: bool, instance_arn: str, request_id: str) -> Mapping[str, Any]:
        sso = self._sso()
        if grant:
            with self._aws_errors("DescribeAccountAssignmentCreationStatus"):
                return sso.describe_account_assignment_creation_status(
                    InstanceArn=instance_arn, AccountAssignmentCreationRequestId=request_id
                )["AccountAssignmentCreationStatus"]
        with self._aws_errors("DescribeAccountAssignmentDeletionStatus"):
            return sso.describe_account_assignment_deletion_status(
                InstanceArn=instance_arn, AccountAssignmentDeletionRequestId=request_id
            )["AccountAssignmentDeletionStatus"]

    def _assignment_holders(
        self, p: AccountAssignmentPrivilege, instance: _Instance | None = None
    ) -> set[tuple[str, str]] | None:
        """{(PrincipalType, PrincipalId)} of the assignment; None if the permission set is
        unknown to AWS."""
        instance = instance or self._discover_instance()
        paginator = self._sso().get_paginator("list_account_assignments")
        holders: set[tuple[str, str]] = set()
        try:
            with self._aws_errors("ListAccountAssignments"):
                pages = paginator.paginate(
                    InstanceArn=instance.arn,
                    AccountId=p.account,
                    PermissionSetArn=p.permission_set,
                    PaginationConfig={"PageSize": self._page_size},
                )
                for page in pages:
                    for item in page.get("AccountAssignments", []):
                        kind, ident = item.get("PrincipalType"), item.get("PrincipalId")
                        if kind in ("USER", "GROUP") and ident:
                            holders.add((kind, ident))
        except _NotFound:
            return None
        return holders

    def _same_instance(self, instance: _Instance, p: AccountAssignmentPrivilege) -> None:
        own = _INSTANCE_ID.search(instance.arn)
        theirs = _INSTANCE_ID.search(p.permission_set)
        if own and theirs and own.group(1) != theirs.group(1):
            raise PermanentTargetError(
                f"target {self.name}: permission set {p.permission_set} belongs to another Identity Center "
                f"instance than {instance.arn}"
            )

    def _known(self, wanted: Sequence[tuple[bool, AccountAssignmentPrivilege, str, str]]) -> Known:
        """What a batch of assignment actions (grant?, privilege, kind, id) needs read, read
        once: the holders of each account and permission set, and for grants whether the
        permission set and the principal exist. TargetError for a read that fails."""
        instance = self._discover_instance()
        known = Known()
        for grant, p, kind, ident in wanted:
            self._same_instance(instance, p)
            if (p.account, p.permission_set) not in known.holders:
                known.holders[(p.account, p.permission_set)] = self._assignment_holders(p, instance)
            if grant and (p.permission_set, kind, ident) not in known.parts:
                known.parts[(p.permission_set, kind, ident)] = self._missing_parts(
                    instance, p, kind, ident, known.permission_sets, known.principals)
        return known

    def _missing_parts(
        self,
        instance: _Instance,
        p: AccountAssignmentPrivilege,
        kind: str,
        ident: str,
        permission_sets: dict[str, bool] | None = None,
        principals: dict[tuple[str, str], bool] | None = None,
    ) -> PermanentTargetError | None:
        """The error to refuse a grant with when the permission set or the principal does not
        exist (AWS would accept the request and only fail it later, asynchronously); None when
        both do. `permission_sets` and `principals` remember answers across calls."""
        exists = permission_sets if permission_sets is not None else {}
        if p.permission_set not in exists:
            try:
                with self._aws_errors("DescribePermissionSet"):
                    self._sso().describe_permission_set(InstanceArn=instance.arn, PermissionSetArn=p.permission_set)
                exists[p.permission_set] = True
            except _NotFound:
                exists[p.permission_set] = False
        if not exists[p.permission_set]:
            return PermanentTargetError(
                f"target {self.name}: permission set {p.permission_set} does not exist in {instance.arn}"
            )
        found = principals if principals is not None else {}
        if (kind, ident) not in found:
            found[(kind, ident)] = self._principal_exists(instance, kind, ident)
        if not found[(kind, ident)]:
            what = "user" if kind == "USER" else "group"
            return PermanentTargetError(
                f"target {self.name}: identity store {instance.identity_store_id} has no {what} {ident}"
            )
        return None

    def _principal_exists(self, instance: _Instance, kind: str, ident: str) -> bool:
        store = self._identitystore()
        what = "user" if kind == "USER" else "group"
        try:
            with self._aws_errors(f"Describe{what.title()}"):
                if kind == "USER":
                    store.describe_user(IdentityStoreId=instance.identity_store_id, UserId=ident)
                else:
                    store.describe_group(IdentityStoreId=instance.identity_store_id, GroupId=ident)
        except _NotFound:
            return False
        return True

    def _discover_instance(self) -> _Instance:
        if self._instance is not None:
            return self._instance
        if self._instance_arn and self._identity_store_id:
            self._instance = _Instance(self._instance_arn, self._identity_store_id)
            return self._instance
        instances: list[_Instance] = []
        with self._aws_errors("ListInstances"):
            for page in self._sso().get_paginator("list_instances").paginate():
                for item in page.get("Instances", []):
                    if item.get("InstanceArn") and item.get("IdentityStoreId"):
                        instances.append(_Instance(item["InstanceArn"], item["IdentityStoreId"]))
        if self._instance_arn:
            matching = [i for i in instances if i.arn == self._instance_arn]
            if not matching:
                raise PermanentTargetError(
                    f"target {self.name}: instance_arn {self._instance_arn} is not among this account's "
                    "IAM Identity Center instances"
                )
            chosen = matching[0]
        elif len(instances) == 1:
            chosen = instances[0]
        else:
            raise PermanentTargetError(
                f"target {self.name}: found {len(instances)} IAM Identity Center instances in {self._region}; "
                "set instance_arn (and identity_store_id)"
            )
        self._instance = _Instance(chosen.arn, self._identity_store_id or chosen.identity_store_id)
        return self._instance
