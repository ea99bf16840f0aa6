"""What PIM for Groups and directory roles share: active assignments made through schedule
requests whose expiration Entra enforces, marked in the request's justification, and the rules
for PIM's five-minute floor. Each kind (pim_groups.py, directory_roles.py) says how to list its
instances and schedules, read one request and build one request body.

Ownership: schedule instances do not carry the request's justification, so a holder is jitpol's
when instance -> its schedule id -> the schedule's `createdUsing` (the request that created it)
-> GET that request -> `justification` carries the marker (names.is_marked). Requests do not
change, so each is read once per connector.

The end follows the grant both ways: a different end of jitpol's own assignment is set with
adminUpdate ("for administrators to change existing ... assignments"), earlier or later. PIM
makes no active assignment shorter than five minutes and (documented for Azure resources, and
handled the same way here) removes none in its first five minutes (ActiveDurationTooShort): a
new grant ending under five minutes from now is refused before any request; moving jitpol's end
to under five minutes from now is done with adminRemove (access ends now, never after the grant);
a removal PIM refuses for now is TargetUnavailable (the next run retries it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from jitpol.clock import Clock
from jitpol.connectors.entra.names import is_marked, marker
from jitpol.connectors.entra.session import GraphSession, graph_error
from jitpol.connectors.kit import ceil_second, marker_driven
from jitpol.errors import PermanentTargetError, TargetUnavailable
from jitpol.model.assignment import Action, Outcome
from jitpol.model.canonical import canonical_json

PIM_MIN_ACTIVE = timedelta(minutes=5)
ASSIGN, UPDATE, REMOVE = "adminAssign", "adminUpdate", "adminRemove"


@dataclass(frozen=True, slots=True)
class Held:
    """One direct active assignment as Graph reports it: who, until when (None: no end), and the
    id of its schedule (whose creating request carries the marker)."""

    principal: str
    expires: datetime | None
    schedule_id: str | None


def latest(ends: Iterable[datetime | None]) -> datetime | None:
    """The latest of some enforced ends; None (no end) is latest of all."""
    known: list[datetime] = []
    for end in ends:
        if end is None:
            return None
        known.append(end.astimezone(UTC))
    return max(known) if known else None


class ScheduleRequests:
    """The schedule-request life cycle of one kind. Subclasses set `path` (the request
    collection, for operations) and `what`, and implement the four hooks below."""

    path = ""
    what = ""

    def __init__(self, session: GraphSession, clock: Clock) -> None:
        self.session = session
        self.clock = clock
        self._marks: dict[str, bool] = {}  # request id (lower) -> its justification carries the marker

    # -- hooks --------------------------------------------------------------------------------

    async def instances(self, client: Any, key: Any) -> list[Held]:
        """Every direct active assignment of the privilege `key`, all pages."""
        raise NotImplementedError

    async def schedules(self, client: Any, key: Any) -> dict[str, str]:
        """Schedule id (lower) -> id of the request that created it, for the privilege `key`."""
        raise NotImplementedError

    async def justification(self, client: Any, request_id: str) -> str | None:
        """The justification of one request; None when it is gone (404)."""
        raise NotImplementedError

    def body(self, kind: str, key: Any, principal: str, start: datetime, end: datetime | None,
             justification: str) -> tuple[Any, dict[str, Any]]:
        """(the SDK model to POST, a summary of it for the operations list)."""
        raise NotImplementedError

    async def post(self, client: Any, body: Any) -> None:
        raise NotImplementedError

    # -- reading ------------------------------------------------------------------------------

    def holders(self, key: Any, label: str) -> dict[str, list[Held]]:
        """principal -> that principal's direct assignments of the privilege."""
        found = self.session.run(f"list {self.what} assignments of {label}", lambda c: self.instances(c, key))
        out: dict[str, list[Held]] = {}
        for h in found:
            out.setdefault(h.principal, []).append(h)
        return out

    def marked(self, key: Any, label: str, held: list[Held], schedules: Mapping[str, str] | None = None) -> bool:
        """Do all these assignments of one principal carry jitpol's marker?"""
        if not held:
            return False
        if schedules is None:
            schedules = self.creating_requests(key, label)
        return all(self._request_marked(schedules.get((h.schedule_id or "").lower())) for h in held)

    def creating_requests(self, key: Any, label: str) -> dict[str, str]:
        return self.session.run(f"list {self.what} schedules of {label}", lambda c: self.schedules(c, key))

    def _request_marked(self, request_id: str | None) -> bool:
        if not request_id:
            return False  # made outside PIM (a plain membership or role assignment)
        rid = request_id.lower()
        if rid not in self._marks:
            text = self.session.run(f"read {self.what} schedule request {request_id}",
                                    lambda c: self.justification(c, request_id))
            self._marks[rid] = is_marked(text)
        return self._marks[rid]

    # -- writing ------------------------------------------------------------------------------

    def apply(self, action: Action, key: Any, label: str, principal: str, check: bool) -> tuple[Outcome, bool]:
        """Grant (with the end action.until) or revoke one assignment; idempotent. Returns the
        outcome and whether access was taken away (the caller then ends sign-in sessions)."""
        held = self.holders(key, label).get(principal, [])
        now = self.clock.now()
        end: datetime | None = None
        note = ""
        if action.op == "grant":
            if action.until is None:
                raise PermanentTargetError(
                    f"target {self.session.target}: a PIM assignment needs an end, and the grant action has none"
                )
            end = ceil_second(action.until)  # never earlier than asked
            if held:
                if not self.marked(key, label, held):
                    # standing access (permanent, or someone else's schedule): not jitpol's to end
                    return Outcome(changed=False, before=True, after=True), False
                current = latest(h.expires for h in held)
                if current is not None and abs(current - end) < timedelta(seconds=1):
                    return Outcome(changed=False, before=True, after=True), False
                if end - now < PIM_MIN_ACTIVE:
                    # PIM sets no end this close: remove now, so access never outlives the grant
                    kind, end, note = REMOVE, None, " (the end is under five minutes away)"
                else:
                    kind = UPDATE  # either way: adminExtend could only lengthen
            else:
                if end - now < PIM_MIN_ACTIVE:
                    raise PermanentTargetError(
                        f"target {self.session.target}: PIM makes no active assignment shorter than five minutes "
                        f"({self.what} {label} for {principal} would end at {end:%Y-%m-%dT%H:%M:%SZ})"
                    )
                kind = ASSIGN
        else:
            if not held:
                return Outcome(changed=False, before=True, after=True), False
            if marker_driven(action) and not self.marked(key, label, held):
                # adminRemove ends the whole assignment: standing access is not jitpol's to take
                return Outcome(changed=False, before=True, after=True), False
            kind = REMOVE
        body, summary = self.body(kind, key, principal, now.astimezone(UTC).replace(microsecond=0), end,
                                  marker(action))
        operation = f"POST {self.path} {canonical_json(summary)}{note}"
        if check:
            return Outcome(changed=True, before=False, after=False, operations=(operation,)), False

        async def send(client: Any) -> str | None:
            from kiota_abstractions.api_error import APIError

            try:
                await self.post(client, body)
            except APIError as exc:
                _status, code, _message = graph_error(exc)
                if code in ("RoleAssignmentExists", "RoleAssignmentDoesNotExist", "ActiveDurationTooShort"):
                    return code
                raise
            return None

        refused = self.session.run(f"{kind} {self.what} {label} for {principal}", send)
        if refused == "RoleAssignmentDoesNotExist" and kind == REMOVE:
            # gone meanwhile (its end passed, or someone removed it): already true
            return Outcome(changed=False, before=True, after=True, operations=(operation,)), False
        if refused == "ActiveDurationTooShort" and kind == REMOVE:
            raise TargetUnavailable(
                f"target {self.session.target}: PIM does not remove an assignment in its first five minutes "
                f"({self.what} {label} for {principal}); the next run removes it"
            )
        if refused == "RoleAssignmentExists" and kind == ASSIGN and self.holders(key, label).get(principal):
            # assigned meanwhile (another run, or someone else): already present; a jitpol end that
            # differs is set by the next run
            return Outcome(changed=False, before=True, after=True, operations=(operation,)), False
        if refused is not None:
            raise PermanentTargetError(
                f"target {self.session.target}: {kind} {self.what} {label} for {principal}: Microsoft Graph "
                f"refused it ({refused})"
            )
        return Outcome(changed=True, before=False, after=True, operations=(operation,)), kind == REMOVE


def schedule_info(start: datetime, end: datetime | None) -> Any:
    """The requestSchedule of an adminAssign/adminUpdate: from `start`, expiring afterDateTime
    `end`; None for adminRemove."""
    if end is None:
        return None
    from msgraph.generated.models.expiration_pattern import ExpirationPattern
    from msgraph.generated.models.expiration_pattern_type import ExpirationPatternType
    from msgraph.generated.models.request_schedule import RequestSchedule

    return RequestSchedule(
        start_date_time=start,
        expiration=ExpirationPattern(type=ExpirationPatternType.AfterDateTime, end_date_time=end),
    )


def summary_times(summary: dict[str, Any], end: datetime | None) -> dict[str, Any]:
    if end is not None:
        summary["endDateTime"] = end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return summary
