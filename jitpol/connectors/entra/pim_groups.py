"""PIM for Groups (`pim_groups: true`): active membership through
`POST /identityGovernance/privilegedAccess/group/assignmentScheduleRequests` (accessId member,
adminAssign / adminUpdate / adminRemove, scheduleInfo.expiration afterDateTime = the grant's end),
so Entra ends the membership itself. Observed with `assignmentScheduleInstances?$filter=groupId
eq '<id>'` (direct member instances; plain members show there too, without an end), owners
ignored; ownership through `assignmentSchedules` (createdUsing) and the creating request's
justification (pim.py). The group checks of groups.py apply (dynamic and on-premises groups are
refused)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jitpol.connectors.entra.pim import Held, ScheduleRequests, schedule_info, summary_times
from jitpol.connectors.entra.session import graph_error, str_of, when

COLLECTION = "/identityGovernance/privilegedAccess/group/assignmentScheduleRequests"


class PimGroups(ScheduleRequests):
    """Schedule requests for group membership; the privilege key is the group id."""

    path = COLLECTION
    what = "PIM for Groups"

    async def instances(self, client: Any, key: Any) -> list[Held]:
        from msgraph.generated.identity_governance.privileged_access.group.assignment_schedule_instances.assignment_schedule_instances_request_builder import (  # noqa: E501
            AssignmentScheduleInstancesRequestBuilder as Builder,
        )

        query = Builder.AssignmentScheduleInstancesRequestBuilderGetQueryParameters(
            filter=f"groupId eq '{key}'", top=self.session.page_size)
        found: list[Held] = []
        builder = client.identity_governance.privileged_access.group.assignment_schedule_instances
        async for inst in self.session.pages(builder, query):
            if str_of(inst, "accessId").lower() != "member" or str_of(inst, "memberType").lower() not in ("", "direct"):
                continue  # owners; memberships through another group
            principal = str_of(inst, "principalId").lower()
            if not principal or (str_of(inst, "groupId").lower() or key) != key:
                continue
            found.append(Held(principal, when(inst.get("endDateTime")), str_of(inst, "assignmentScheduleId") or None))
        return found

    async def schedules(self, client: Any, key: Any) -> dict[str, str]:
        from msgraph.generated.identity_governance.privileged_access.group.assignment_schedules.assignment_schedules_request_builder import (  # noqa: E501
            AssignmentSchedulesRequestBuilder as Builder,
        )

        query = Builder.AssignmentSchedulesRequestBuilderGetQueryParameters(
            filter=f"groupId eq '{key}'", top=self.session.page_size)
        found: dict[str, str] = {}
        async for sched in self.session.pages(client.identity_governance.privileged_access.group.assignment_schedules,
                                              query):
            if str_of(sched, "id") and str_of(sched, "createdUsing"):
                found[str_of(sched, "id").lower()] = str_of(sched, "createdUsing")
        return found

    async def justification(self, client: Any, request_id: str) -> str | None:
        from kiota_abstractions.api_error import APIError

        requests = client.identity_governance.privileged_access.group.assignment_schedule_requests
        try:
            request = await requests.by_privileged_access_group_assignment_schedule_request_id(request_id).get()
        except APIError as exc:
            if graph_error(exc)[0] == 404:
                return None
            raise
        return None if request is None else request.justification

    def body(self, kind: str, key: Any, principal: str, start: datetime, end: datetime | None,
             justification: str) -> tuple[Any, dict[str, Any]]:
        from msgraph.generated.models.privileged_access_group_assignment_schedule_request import (
            PrivilegedAccessGroupAssignmentScheduleRequest,
        )
        from msgraph.generated.models.privileged_access_group_relationships import PrivilegedAccessGroupRelationships
        from msgraph.generated.models.schedule_request_actions import ScheduleRequestActions

        body = PrivilegedAccessGroupAssignmentScheduleRequest(
            access_id=PrivilegedAccessGroupRelationships.Member,
            action=ScheduleRequestActions(kind),
            group_id=key,
            principal_id=principal,
            justification=justification,  # the ownership marker: fixed text and a grant name
            schedule_info=schedule_info(start, end),
        )
        summary = {"accessId": "member", "action": kind, "groupId": key, "justification": justification,
                   "principalId": principal}
        return body, summary_times(summary, end)

    async def post(self, client: Any, body: Any) -> None:
        await client.identity_governance.privileged_access.group.assignment_schedule_requests.post(body)

