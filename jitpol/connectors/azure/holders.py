"""Reading who holds a role at a scope, and whether jitpol's marker is on it: role assignments
(plain; the marker is the description) or PIM schedule instances (the marker is the
justification of the schedule request that created the instance's schedule, read once per
request id and connector: requests do not change)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from jitpol.connectors.azure.marker import is_marked
from jitpol.connectors.azure.names import REQUEST_ID, SCOPE, AzurePrivilege, role_guid_of
from jitpol.connectors.azure.session import AzureSession


@dataclass(frozen=True, slots=True)
class Held:
    """One live assignment as ARM reports it, with where its ownership marker would be: the
    role assignment's description (plain), or the id of its schedule (PIM), whose creating
    request carries the marker in its justification."""

    principal: str
    role_guid: str
    scope: str
    expires: datetime | None
    id: str
    description: str | None = None
    schedule_id: str | None = None


class AzureHolders(AzureSession):
    """The live assignments at a scope (plain or PIM, as the target is set) and their markers."""

    _pim: bool
    _request_marks: dict[str, bool]  # schedule request id (lower) -> marked

    def _held_by(
        self, priv: AzurePrivilege, guid: str, principal: str, holders: list[Held] | None = None
    ) -> list[Held]:
        """The principal's assignments of the role exactly at the privilege's scope, among
        `holders` (a listing of that scope already read) or a fresh listing."""
        return [
            h for h in (self._holders(priv.scope) if holders is None else holders)
            if h.role_guid == guid and h.principal == principal and h.scope.lower() == priv.scope.lower()
        ]

    def _holders(self, scope: str) -> list[Held]:
        """Every live assignment at or above `scope` (atScope()), all pages."""
        client = self._client()
        out: list[Held] = []
        if self._pim:
            with self._calls(f"list role assignment schedule instances at {scope}"):
                for inst in client.role_assignment_schedule_instances.list_for_scope(scope, filter="atScope()"):
                    role = role_guid_of(inst.role_definition_id)
                    if role is None or not inst.principal_id or not inst.scope:
                        continue
                    end = inst.end_date_time
                    out.append(Held(
                        inst.principal_id.lower(), role, inst.scope,
                        end.astimezone(UTC) if end is not None else None,
                        inst.origin_role_assignment_id or inst.id or "",
                        schedule_id=inst.role_assignment_schedule_id,
                    ))
            return out
        with self._calls(f"list role assignments at {scope}"):
            for ra in client.role_assignments.list_for_scope(scope, filter="atScope()"):
                role = role_guid_of(ra.role_definition_id)
                if role is None or not ra.principal_id or not ra.scope:
                    continue
                out.append(Held(ra.principal_id.lower(), role, ra.scope, None, ra.id or "",
                                description=ra.description))
        return out

    # -- the ownership marker ---------------------------------------------------------------

    def _marked(self, held: list[Held], schedules: Mapping[str, str]) -> bool:
        """Do all these assignments of one principal carry jitpol's marker? (Any without it is
        standing access.) `schedules`: schedule id (lower) -> creating request id, PIM only."""
        if not held:
            return False
        if not self._pim:
            return all(is_marked(h.description) for h in held)
        return all(self._request_marked(schedules.get((h.schedule_id or "").lower())) for h in held)

    def _schedule_requests(self, scope: str) -> dict[str, str]:
        """Schedule id (lower) -> the id of the request that created it, for every schedule at
        or above `scope`; schedules of assignments made outside PIM have none."""
        found: dict[str, str] = {}
        with self._calls(f"list role assignment schedules at {scope}"):
            for sched in self._client().role_assignment_schedules.list_for_scope(scope, filter="atScope()"):
                if sched.id and sched.role_assignment_schedule_request_id:
                    found[sched.id.lower()] = sched.role_assignment_schedule_request_id
        return found

    def _request_marked(self, request_id: str | None) -> bool:
        """Does this schedule request's justification carry the marker? Requests do not change,
        so each is read once per connector. An id ARM gave in another form, or a request that is
        gone, counts as not jitpol's."""
        m = REQUEST_ID.fullmatch(request_id or "")
        if m is None or not SCOPE.fullmatch(m["scope"]):
            return False
        key = (request_id or "").lower()
        if key not in self._request_marks:
            from azure.core.exceptions import ResourceNotFoundError

            with self._calls(f"read role assignment schedule request {m['name']}"):
                try:
                    request = self._client().role_assignment_schedule_requests.get(m["scope"], m["name"])
                except ResourceNotFoundError:
                    request = None
            self._request_marks[key] = request is not None and is_marked(request.justification)
        return self._request_marks[key]


def latest(ends: Iterable[datetime | None]) -> datetime | None:
    """The latest of some enforced ends; None (no end) is latest of all, and so is the answer
    for no ends (callers ask only about assignments that exist)."""
    known: list[datetime] = []
    for end in ends:
        if end is None:
            return None
        known.append(end)
    return max(known) if known else None
