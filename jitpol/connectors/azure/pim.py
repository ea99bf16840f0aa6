"""PIM (pim: true): time-bound active assignments through Privileged Identity Management
schedule requests. AdminAssign makes one ending at the grant's end, AdminUpdate moves jitpol's
own end either way (AdminExtend only lengthens), AdminRemove ends it. PIM makes no assignment
shorter than PIM_MIN_ACTIVE and removes none younger than that (ActiveDurationTooShort): an end
closer than that is applied as AdminRemove, and a removal refused for now is TargetUnavailable.
Schedules start at the run's clock (`--at`), never the wall clock."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from jitpol.clock import Clock
from jitpol.connectors.azure.holders import AzureHolders, Held, latest
from jitpol.connectors.azure.marker import marker
from jitpol.connectors.azure.names import AzurePrivilege, role_definition_id
from jitpol.connectors.azure.roles import RoleDefinitions
from jitpol.connectors.azure.session import error_code
from jitpol.connectors.kit import ceil_second, marker_driven
from jitpol.errors import PermanentTargetError, TargetUnavailable
from jitpol.model.assignment import Action, Outcome
from jitpol.model.canonical import canonical_json

# PIM makes no active assignment shorter than this, and removes none younger than this
PIM_MIN_ACTIVE = timedelta(minutes=5)


class PimSchedules(AzureHolders, RoleDefinitions):
    """Grant, move the end of, and revoke one PIM active assignment."""

    _clock: Clock  # the run's time: when schedules start, what the five-minute floor counts from

    def _apply_pim(
        self, action: Action, priv: AzurePrivilege, guid: str, principal: str, held: list[Held], check: bool
    ) -> Outcome:
        request = self._pim_request(action, priv, held)
        if request is None:
            return Outcome(changed=False, before=True, after=True)
        kind, end, note = request
        request_name = "<new GUID>" if check else str(uuid.uuid4())
        body = self._schedule_request(kind, priv, guid, principal, end, action)
        operation = (
            f"PUT {priv.scope}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{request_name} "
            f"{canonical_json(_request_summary(body))}{note}"
        )
        if check:
            return Outcome(changed=True, before=False, after=False, operations=(operation,))
        from azure.core.exceptions import HttpResponseError

        with self._calls(f"{kind} schedule request at {priv.scope}"):
            try:
                self._client().role_assignment_schedule_requests.create(priv.scope, request_name, body)
            except HttpResponseError as exc:
                code = error_code(exc)
                if kind == "AdminRemove" and code == "RoleAssignmentDoesNotExist":
                    return Outcome(changed=False, before=True, after=True, operations=(operation,))
                if kind == "AdminRemove" and code == "ActiveDurationTooShort":
                    raise TargetUnavailable(
                        f"target {self.name}: PIM does not remove an assignment in its first five minutes "
                        f"({principal} at {priv.scope}); the next run removes it"
                    ) from None
                if kind != "AdminAssign" or code != "RoleAssignmentExists":
                    raise
                # assigned meanwhile (another run, or someone else): already present; a jitpol
                # end that differs is set by the next run
                if self._held_by(priv, guid, principal):
                    return Outcome(changed=False, before=True, after=True, operations=(operation,))
                raise
        return Outcome(changed=True, before=False, after=True, operations=(operation,))

    def _pim_request(
        self, action: Action, priv: AzurePrivilege, held: list[Held]
    ) -> tuple[str, datetime | None, str] | None:
        """(request type, end, a note for the operation text) of the schedule request `action`
        needs, given the principal's assignments `held`; None when nothing is to be sent."""
        if action.op != "grant":
            if not held:
                return None
            if marker_driven(action) and not self._marked(held, self._schedule_requests(priv.scope)):
                # AdminRemove ends the whole assignment: standing access is not jitpol's to take
                return None
            return "AdminRemove", None, ""
        if action.until is None:
            raise PermanentTargetError(
                f"target {self.name}: a PIM assignment needs an end, and the grant action has none"
            )
        end = ceil_second(action.until)  # never earlier than asked
        if not held:
            return "AdminAssign", end, ""
        if not self._marked(held, self._schedule_requests(priv.scope)):
            # standing access (permanent, or someone else's schedule): not jitpol's to end
            return None
        current = latest(h.expires for h in held)
        if current is not None and abs(current - end) < timedelta(seconds=1):
            return None  # Azure may keep sub-seconds
        if end - self._clock.now() < PIM_MIN_ACTIVE:
            # PIM sets no end this close: remove now, so access never outlives the grant
            return "AdminRemove", None, " (the end is under five minutes away)"
        return "AdminUpdate", end, ""  # either way: AdminExtend could only lengthen

    def _schedule_request(
        self, kind: str, priv: AzurePrivilege, guid: str, principal: str, end: datetime | None, action: Action
    ) -> Any:
        from azure.mgmt.authorization.v2020_10_01.models import (
            RoleAssignmentScheduleRequest,
            RoleAssignmentScheduleRequestPropertiesScheduleInfo,
            RoleAssignmentScheduleRequestPropertiesScheduleInfoExpiration,
        )

        schedule = None
        if end is not None:
            schedule = RoleAssignmentScheduleRequestPropertiesScheduleInfo(
                start_date_time=self._clock.now().astimezone(UTC).replace(microsecond=0),
                expiration=RoleAssignmentScheduleRequestPropertiesScheduleInfoExpiration(
                    type="AfterDateTime", end_date_time=end
                ),
            )
        return RoleAssignmentScheduleRequest(
            role_definition_id=role_definition_id(priv, guid),
            principal_id=principal,
            request_type=kind,
            schedule_info=schedule,
            justification=marker(action),  # the ownership marker: fixed text and a grant name
        )


def _request_summary(body: Any) -> dict[str, Any]:
    info = body.schedule_info
    summary: dict[str, Any] = {
        "justification": body.justification,
        "principalId": body.principal_id,
        "requestType": body.request_type,
        "roleDefinitionId": body.role_definition_id,
    }
    if info is not None and info.expiration is not None and info.expiration.end_date_time is not None:
        summary["endDateTime"] = info.expiration.end_date_time.strftime("%Y-%m-%dT%H:%M:%SZ")
    return summary
