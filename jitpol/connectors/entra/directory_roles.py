"""Directory roles: active role assignments through
`POST /roleManagement/directory/roleAssignmentScheduleRequests` (adminAssign / adminUpdate /
adminRemove with directoryScopeId "/" or "/administrativeUnits/<id>" and scheduleInfo.expiration
afterDateTime = the grant's end), so Entra ends them itself. Observed with
`roleAssignmentScheduleInstances?$filter=roleDefinitionId eq '<id>' and directoryScopeId eq
'<scope>'` (direct assignments only: a role held through a role-assignable group is that group's),
ownership through `roleAssignmentSchedules` (createdUsing) and the creating request's
justification (pim.py). A role given by display name is resolved through
`roleDefinitions?$filter=displayName eq '<name>'`, once per connector."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jitpol.connectors.entra.names import RolePrivilege
from jitpol.connectors.entra.pim import Held, ScheduleRequests, schedule_info, summary_times
from jitpol.connectors.entra.session import graph_error, str_of, when
from jitpol.errors import PermanentTargetError

COLLECTION = "/roleManagement/directory/roleAssignmentScheduleRequests"

RoleKey = tuple[str, str]  # (role definition id, directory scope id)


class DirectoryRoles(ScheduleRequests):
    """Schedule requests for directory roles; the privilege key is (role definition id, scope)."""

    path = COLLECTION
    what = "directory role"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._names: dict[str, str | None] = {}  # display name (lower) -> role definition id

    def role_id(self, priv: RolePrivilege, *, must_exist: bool) -> str | None:
        """The role definition id; None for a name no role definition has (unless `must_exist`,
        then PermanentTargetError). A name two definitions share is refused."""
        if priv.role_id is not None:
            return priv.role_id
        key = priv.role.lower()
        if key not in self._names:
            ids = self.session.run(f"look up directory role {priv.role!r}", lambda c: self._lookup(c, priv.role))
            if len(ids) > 1:
                raise PermanentTargetError(
                    f"target {self.session.target}: directory role name {priv.role!r} matches {len(ids)} role "
                    "definitions; name the role by its id instead"
                )
            self._names[key] = ids.pop() if ids else None
        found = self._names[key]
        if found is None and must_exist:
            raise PermanentTargetError(f"target {self.session.target}: no directory role is named {priv.role!r}")
        return found

    async def _lookup(self, client: Any, name: str) -> set[str]:
        from msgraph.generated.role_management.directory.role_definitions.role_definitions_request_builder import (
            RoleDefinitionsRequestBuilder as Builder,
        )

        escaped = name.replace("'", "''")  # names carry no quote (names.py); escaped all the same
        query = Builder.RoleDefinitionsRequestBuilderGetQueryParameters(
            filter=f"displayName eq '{escaped}'", select=["id", "displayName", "templateId"])
        found: set[str] = set()
        async for d in self.session.pages(client.role_management.directory.role_definitions, query):
            if str_of(d, "id") and str_of(d, "displayName").lower() == name.lower():
                found.add(str_of(d, "id").lower())
        return found

    def _filter(self, key: Any) -> str:
        role, scope = key
        return f"roleDefinitionId eq '{role}' and directoryScopeId eq '{scope}'"

    async def instances(self, client: Any, key: Any) -> list[Held]:
        from msgraph.generated.role_management.directory.role_assignment_schedule_instances.role_assignment_schedule_instances_request_builder import (  # noqa: E501
            RoleAssignmentScheduleInstancesRequestBuilder as Builder,
        )

        role, scope = key
        query = Builder.RoleAssignmentScheduleInstancesRequestBuilderGetQueryParameters(
            filter=self._filter(key), top=self.session.page_size)
        found: list[Held] = []
        async for inst in self.session.pages(client.role_management.directory.role_assignment_schedule_instances,
                                              query):
            principal = str_of(inst, "principalId").lower()
            if str_of(inst, "memberType").lower() not in ("", "direct") or not principal:
                continue  # held through a group, or inherited
            if str_of(inst, "roleDefinitionId").lower() != role or str_of(inst, "directoryScopeId") != scope:
                continue
            found.append(Held(principal, when(inst.get("endDateTime")),
                              str_of(inst, "roleAssignmentScheduleId") or None))
        return found

    async def schedules(self, client: Any, key: Any) -> dict[str, str]:
        from msgraph.generated.role_management.directory.role_assignment_schedules.role_assignment_schedules_request_builder import (  # noqa: E501
            RoleAssignmentSchedulesRequestBuilder as Builder,
        )

        query = Builder.RoleAssignmentSchedulesRequestBuilderGetQueryParameters(
            filter=self._filter(key), top=self.session.page_size)
        found: dict[str, str] = {}
        async for sched in self.session.pages(client.role_management.directory.role_assignment_schedules, query):
            if str_of(sched, "id") and str_of(sched, "createdUsing"):
                found[str_of(sched, "id").lower()] = str_of(sched, "createdUsing")
        return found

    async def justification(self, client: Any, request_id: str) -> str | None:
        from kiota_abstractions.api_error import APIError

        requests = client.role_management.directory.role_assignment_schedule_requests
        try:
            request = await requests.by_unified_role_assignment_schedule_request_id(request_id).get()
        except APIError as exc:
            if graph_error(exc)[0] == 404:
                return None
            raise
        return None if request is None else request.justification

    def body(self, kind: str, key: Any, principal: str, start: datetime, end: datetime | None,
             justification: str) -> tuple[Any, dict[str, Any]]:
        from msgraph.generated.models.unified_role_assignment_schedule_request import (
            UnifiedRoleAssignmentScheduleRequest,
        )
        from msgraph.generated.models.unified_role_schedule_request_actions import UnifiedRoleScheduleRequestActions

        role, scope = key
        body = UnifiedRoleAssignmentScheduleRequest(
            action=UnifiedRoleScheduleRequestActions(kind),
            role_definition_id=role,
            directory_scope_id=scope,
            principal_id=principal,
            justification=justification,  # the ownership marker: fixed text and a grant name
            schedule_info=schedule_info(start, end),
        )
        summary = {"action": kind, "directoryScopeId": scope, "justification": justification,
                   "principalId": principal, "roleDefinitionId": role}
        return body, summary_times(summary, end)

    async def post(self, client: Any, body: Any) -> None:
        await client.role_management.directory.role_assignment_schedule_requests.post(body)
