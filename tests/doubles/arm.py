"""A local HTTPS double of Azure Resource Manager's Microsoft.Authorization provider.

The real `azure-mgmt-authorization` client talks to it over real HTTPS (the SDK's bearer-token
policy refuses plain HTTP), so tests exercise the SDK's URL building, serialisation, paging and
error mapping. What it reproduces of the documented service:

    roleDefinitions                  GET list at any scope with $filter=roleName eq '...'
                                     (built-in roles are global; ids come back in the
                                     subscription form of the scope asked about)
    roleAssignments        2022-04-01
                                     PUT {scope}/.../roleAssignments/{guid}: 201; 409
                                     RoleAssignmentExists when the name, or the same (scope,
                                     role, principal) under ANOTHER name, already exists; 400 for
                                     a non-GUID name, an unknown role definition or principal.
                                     `properties.description` is stored as sent (free text,
                                     ARM returns it on every read; null when none was given)
                                     GET list: $filter=atScope() (at and above the scope),
                                     principalId eq '...' (at, above and below), none (at, above
                                     and below); paged with nextLink + an opaque $skipToken
                                     GET / DELETE one, DELETE by id: 200 with the body, 204 when
                                     absent
    roleAssignmentScheduleRequests 2020-10-01 (PIM)
                                     PUT AdminAssign / AdminUpdate / AdminExtend / AdminRemove
                                     with scheduleInfo {startDateTime, expiration {type:
                                     AfterDateTime|AfterDuration|NoExpiration, ...}}; the role
                                     management policy's ExpirationRule (active assignments must
                                     end, at most `max_active_days` ahead); 400
                                     RoleAssignmentExists / RoleAssignmentDoesNotExist.
                                     AdminUpdate ("for administrators to change existing role
                                     assignments") sets the end either way; AdminExtend ("to
                                     extend expiring assignments") only to a later end (an
                                     earlier one: 400 InvalidScheduleInfo, this double's
                                     answer: Azure documents no code for it). PIM's documented
                                     five-minute floor: an assignment "can't be assigned for a
                                     duration of less than five minutes" and "can't be removed
                                     within five minutes of it being assigned" -> 400
                                     ActiveDurationTooShort (`min_active`, set to 0 to switch it
                                     off). The request is stored with its justification and
                                     ticketInfo as sent; GET {scope}/.../{name} returns it (404
                                     RoleAssignmentScheduleRequestNotFound otherwise)
    roleAssignmentSchedules          GET list with $filter=atScope(): one schedule per live
                                     assignment; roleAssignmentScheduleRequestId is "the id of
                                     roleAssignmentScheduleRequest used to create this
                                     roleAssignmentSchedule" (the AdminAssign; later updates do
                                     not change it; null for an assignment made outside PIM)
    roleAssignmentScheduleInstances  GET list with $filter=atScope(): every active assignment
                                     (PIM-made and plain) with startDateTime/endDateTime and
                                     memberType Direct or Inherited; paged. Neither instances
                                     nor schedules carry the request's justification

An assignment made through PIM is also a role assignment (as in Azure), and a plain role
assignment shows up as a schedule instance without an end. Assignments whose end has passed
(by `now()`, settable) disappear on the next request: Azure ends them itself.

Errors use ARM's body `{"error": {"code", "message"}}`. Authentication: `Authorization: Bearer
<token>` must carry one of `tokens`, else 401 InvalidAuthenticationToken; `forbidden` (a set of
HTTP methods, or "*") answers 403 AuthorizationFailed. `fail_next` injects responses (say a 409
race on the next PUT, or a 503).

Throttling as documented
(https://learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling):
a token bucket per principal (bearer token) and operation type, `buckets` {kind: (size, refill
per second)}, default reads 250/25, writes 200/10, deletes 200/10; a request finding its bucket
empty is answered 429 SubscriptionRequestsThrottled with Retry-After (whole seconds until a
token is back) and counted in `throttled`; every answer carries
x-ms-ratelimit-remaining-subscription-{reads,writes,deletes}. `clock` (monotonic seconds) is
injectable; `answered` counts the requests let through per kind.
"""

from __future__ import annotations

import base64
import json
import math
import re
import ssl
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.doubles.server import QuietHandler, Served

RA_VERSIONS = frozenset({"2022-04-01"})
PIM_VERSIONS = frozenset({"2020-10-01"})

_PATH = re.compile(
    r"^/*(?:(?P<scope>.*?)/+)?providers/Microsoft\.Authorization/"
    r"(?P<coll>roleAssignments|roleDefinitions|roleAssignmentScheduleRequests|roleAssignmentScheduleInstances"
    r"|roleAssignmentSchedules)"
    r"(?:/(?P<name>[^/]+))?/?$",
    re.IGNORECASE,
)
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_SUBSCRIPTION = re.compile(r"^/subscriptions/([^/]+)", re.IGNORECASE)

# a few real built-in role definition ids
BUILTIN_ROLES = {
    "acdd72a7-3385-48ef-bd42-f606fba81ae7": "Reader",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
}


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (subjectAltName IP) made with openssl; returns
    (cert.pem, key.pem). Clients trust it with `connection_verify=cert.pem`."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str) -> datetime:
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _norm_scope(scope: str) -> str:
    return "/" + scope.strip("/")


def _at_or_above(record_scope: str, scope: str) -> bool:
    r, s = record_scope.lower(), scope.lower()
    return s == r or s.startswith(r + "/")


@dataclass
class Record:
    """One live role assignment."""

    name: str
    scope: str
    role: str  # role definition GUID, lower case
    principal: str
    start: datetime
    end: datetime | None = None
    via: str = "roleAssignments"  # or "pim"
    schedule: str = field(default_factory=lambda: str(uuid.uuid4()))
    description: str | None = None  # the role assignment's description property
    request_id: str | None = None  # PIM: id of the schedule request that created it
    created: datetime | None = None  # when it was assigned (PIM's five-minute floor); default start

    def __post_init__(self) -> None:
        if self.created is None:
            self.created = self.start

    @property
    def id(self) -> str:
        return f"{self.scope}/providers/Microsoft.Authorization/roleAssignments/{self.name}"


class ArmError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class FakeArm(Served):
    """The double's state and server. start() -> base URL; stop() when done."""

    def __init__(self, certfile: Path, keyfile: Path, *, page_size: int = 2) -> None:
        self.certfile, self.keyfile = certfile, keyfile
        self.page_size = page_size
        self.tokens: set[str] = {"test-token"}
        self.forbidden: set[str] = set()  # HTTP methods answered 403, or {"*"}
        self.directory: set[str] | None = None  # known principal ids (None: any GUID exists)
        self.roles: dict[str, str] = dict(BUILTIN_ROLES)  # guid -> roleName
        self.records: dict[str, Record] = {}  # name -> record
        self.requests: list[dict[str, Any]] = []  # PIM schedule requests received
        self.log: list[tuple[str, str, dict[str, str]]] = []  # (method, path, query)
        # injected answers: (HTTP method or None for any, status, body), first match used once
        self.fail_next: list[tuple[str | None, int, dict[str, Any]]] = []
        self.max_active_days: int | None = 180
        # PIM's floor: no active assignment shorter than this, none removed sooner after it was made
        self.min_active = timedelta(minutes=5)
        self.now: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.lock = threading.RLock()
        # throttling (module docstring)
        self.buckets: dict[str, tuple[float, float]] = {"read": (250, 25), "write": (200, 10), "delete": (200, 10)}
        self.clock: Callable[[], float] = time.monotonic
        self.throttled = 0
        self.answered: Counter[str] = Counter()
        self._levels: dict[tuple[str, str], tuple[float, float]] = {}  # (token, kind) -> (tokens, at)

    def take(self, token: str, method: str) -> tuple[str, int, float]:
        """Take a token of the request's kind: (kind, tokens left, seconds until one is back
        when none was left: then nothing was taken)."""
        kind = "read" if method in ("GET", "HEAD") else "delete" if method == "DELETE" else "write"
        size, refill = self.buckets[kind]
        now = self.clock()
        level, at = self._levels.get((token, kind), (size, now))
        level = min(size, level + (now - at) * refill)
        if level < 1:
            self._levels[(token, kind)] = (level, now)
            return kind, 0, (1 - level) / refill
        self._levels[(token, kind)] = (level - 1, now)
        self.answered[kind] += 1
        return kind, int(level - 1), 0.0

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> str:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.certfile), str(self.keyfile))
        return self._serve(_handler(self), tls=ctx)

    # -- test helpers (behind jitpol's back) --------------------------------------------------

    def add_role(self, name: str, guid: str | None = None) -> str:
        guid = (guid or str(uuid.uuid4())).lower()
        self.roles[guid] = name
        return guid

    def add_assignment(self, scope: str, role: str, principal: str, *, end: datetime | None = None,
                       description: str | None = None, justification: str | None = None,
                       start: datetime | None = None) -> Record:
        """An assignment someone made: plain (with `description`), or through PIM when it has an
        `end` (made by an AdminAssign request carrying `justification`, stored like any other)."""
        with self.lock:
            scope = _norm_scope(scope)
            rec = Record(str(uuid.uuid4()), scope, role.lower(), principal, start or self.now(), end,
                         "pim" if end else "roleAssignments", description=description)
            if end is not None:
                name = str(uuid.uuid4())
                request_id = f"{scope}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{name}"
                request: dict[str, Any] = {
                    "id": request_id,
                    "name": name, "type": "Microsoft.Authorization/RoleAssignmentScheduleRequests",
                    "properties": {
                        "scope": scope, "roleDefinitionId": self.role_definition_id(scope, role.lower()),
                        "principalId": principal, "principalType": "User", "requestType": "AdminAssign",
                        "status": "Provisioned", "justification": justification,
                        "scheduleInfo": {"startDateTime": _iso(rec.start),
                                         "expiration": {"type": "AfterDateTime", "endDateTime": _iso(end)}},
                        "createdOn": _iso(rec.start), "requestorId": "00000000-0000-0000-0000-00000000bbbb",
                    },
                }
                self.requests.append(request)
                rec.request_id = request_id
            self.records[rec.name] = rec
            return rec

    def holders(self, scope: str, role: str) -> dict[str, datetime | None]:
        """principal -> end of every live assignment exactly at `scope` for role GUID `role`."""
        with self.lock:
            self._expire()
            return {r.principal: r.end for r in self.records.values()
                    if r.scope.lower() == _norm_scope(scope).lower() and r.role == role.lower()}

    def writes(self) -> list[tuple[str, str, dict[str, str]]]:
        return [entry for entry in self.log if entry[0] in ("PUT", "DELETE", "PATCH", "POST")]

    # -- behaviour --------------------------------------------------------------------------

    def _expire(self) -> None:
        now = self.now()
        for name in [n for n, r in self.records.items() if r.end is not None and r.end <= now]:
            del self.records[name]

    def role_definition_id(self, scope: str, guid: str) -> str:
        m = _SUBSCRIPTION.match(scope)
        prefix = f"/subscriptions/{m.group(1)}" if m else ""
        return f"{prefix}/providers/Microsoft.Authorization/roleDefinitions/{guid}"

    def _role_guid(self, role_definition_id: object) -> str:
        text = str(role_definition_id or "")
        m = re.fullmatch(r"(?:/subscriptions/[^/]+)?/providers/Microsoft\.Authorization/roleDefinitions/([^/]+)",
                         text, re.IGNORECASE)
        guid = (m.group(1) if m else "").lower()
        if guid not in self.roles:
            raise ArmError(400, "RoleDefinitionDoesNotExist", "The specified role definition with ID "
                           f"'{guid or text}' does not exist.")
        return guid

    def _check_principal(self, principal: object) -> str:
        text = str(principal or "")
        if not _GUID.fullmatch(text):
            raise ArmError(400, "InvalidPrincipalId", "A valid principal ID must be provided for role assignment.")
        if self.directory is not None and text.lower() not in self.directory:
            raise ArmError(400, "PrincipalNotFound", f"Principal {text.replace('-', '')} does not exist in the "
                           "directory.")
        return text

    def ra_json(self, r: Record) -> dict[str, Any]:
        return {
            "id": r.id, "name": r.name, "type": "Microsoft.Authorization/roleAssignments",
            "properties": {
                "roleDefinitionId": self.role_definition_id(r.scope, r.role), "principalId": r.principal,
                "principalType": "User", "scope": r.scope, "condition": None, "conditionVersion": None,
                "createdOn": _iso(r.start), "updatedOn": _iso(r.start), "createdBy": None, "updatedBy": None,
                "delegatedManagedIdentityResourceId": None, "description": r.description,
            },
        }

    def schedule_json(self, r: Record, asked: str) -> dict[str, Any]:
        return {
            "id": f"{r.scope}/providers/Microsoft.Authorization/roleAssignmentSchedules/{r.schedule}",
            "name": r.schedule, "type": "Microsoft.Authorization/roleAssignmentSchedules",
            "properties": {
                "scope": r.scope, "roleDefinitionId": self.role_definition_id(r.scope, r.role),
                "principalId": r.principal, "principalType": "User",
                "roleAssignmentScheduleRequestId": r.request_id, "linkedRoleEligibilityScheduleId": None,
                "assignmentType": "Assigned",
                "memberType": "Direct" if r.scope.lower() == asked.lower() else "Inherited",
                "status": "Provisioned", "startDateTime": _iso(r.start),
                "endDateTime": _iso(r.end) if r.end else None, "condition": None, "conditionVersion": None,
                "createdOn": _iso(r.created or r.start), "updatedOn": _iso(r.start),
            },
        }

    def instance_json(self, r: Record, asked: str) -> dict[str, Any]:
        name = str(uuid.uuid5(uuid.NAMESPACE_URL, r.schedule))
        return {
            "id": f"{r.scope}/providers/Microsoft.Authorization/roleAssignmentScheduleInstances/{name}",
            "name": name, "type": "Microsoft.Authorization/roleAssignmentScheduleInstances",
            "properties": {
                "scope": r.scope, "roleDefinitionId": self.role_definition_id(r.scope, r.role),
                "principalId": r.principal, "principalType": "User",
                "roleAssignmentScheduleId":
                    f"{r.scope}/providers/Microsoft.Authorization/roleAssignmentSchedules/{r.schedule}",
                "originRoleAssignmentId": r.id, "status": "Provisioned",
                "startDateTime": _iso(r.start), "endDateTime": _iso(r.end) if r.end else None,
                "linkedRoleEligibilityScheduleId": None, "linkedRoleEligibilityScheduleInstanceId": None,
                "assignmentType": "Assigned",
                "memberType": "Direct" if r.scope.lower() == asked.lower() else "Inherited",
                "condition": None, "conditionVersion": None, "createdOn": _iso(r.start),
            },
        }

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        m = _PATH.match(path)
        if not m:
            raise ArmError(404, "InvalidResourceType", f"The resource type could not be found: {path}")
        scope = _norm_scope(m["scope"] or "")
        coll = {c.lower(): c for c in ("roleAssignments", "roleDefinitions", "roleAssignmentScheduleRequests",
                                       "roleAssignmentScheduleInstances", "roleAssignmentSchedules")}[m["coll"].lower()]
        name = m["name"]
        version = query.get("api-version", "")
        allowed = PIM_VERSIONS if coll.startswith("roleAssignmentSchedule") else RA_VERSIONS
        if coll != "roleDefinitions" and version not in allowed:
            raise ArmError(400, "InvalidApiVersionParameter", f"The api-version '{version}' is invalid. The "
                           f"supported versions are '{','.join(sorted(allowed))}'.")
        self._expire()
        if coll == "roleDefinitions":
            return self._role_definitions(scope, name, query)
        if coll == "roleAssignments":
            return self._role_assignments(method, scope, name, query, body)
        if coll == "roleAssignmentScheduleRequests" and method == "PUT" and name:
            return self._schedule_request(scope, name, body)
        if coll == "roleAssignmentScheduleRequests" and method == "GET" and name:
            found = next((q for q in self.requests if q["name"] == name.lower()
                          and q["properties"]["scope"].lower() == scope.lower()), None)
            if found is None:
                raise ArmError(404, "RoleAssignmentScheduleRequestNotFound",
                               f"The role assignment schedule request '{name}' is not found.")
            return 200, found
        if coll == "roleAssignmentScheduleInstances" and method == "GET" and not name:
            return self._instances(scope, coll, query, self.instance_json)
        if coll == "roleAssignmentSchedules" and method == "GET" and not name:
            return self._instances(scope, coll, query, self.schedule_json)
        raise ArmError(405, "MethodNotAllowed", f"{method} is not supported on {coll}")

    def _page(self, items: list[dict[str, Any]], path: str, query: dict[str, str]) -> dict[str, Any]:
        offset = 0
        if "$skipToken" in query:
            offset = json.loads(base64.urlsafe_b64decode(query["$skipToken"]))["o"]
        page: dict[str, Any] = {"value": items[offset:offset + self.page_size]}
        if offset + self.page_size < len(items):
            # ARM's skip tokens are opaque; this one carries the offset only, and the filter
            # rides along as a normal parameter
            token = base64.urlsafe_b64encode(json.dumps({"o": offset + self.page_size}).encode()).decode()
            params = {k: v for k, v in query.items() if k != "$skipToken"}
            params["$skipToken"] = token
            page["nextLink"] = f"{self.url}{urllib.parse.quote(path)}?{urllib.parse.urlencode(params)}"
        return page

    def _role_definitions(self, scope: str, name: str | None, query: dict[str, str]) -> tuple[int, Any]:
        def as_json(guid: str) -> dict[str, Any]:
            return {"id": self.role_definition_id(scope, guid), "name": guid,
                    "type": "Microsoft.Authorization/roleDefinitions",
                    "properties": {"roleName": self.roles[guid], "type": "BuiltInRole", "description": "",
                                   "permissions": [], "assignableScopes": ["/"]}}

        if name:
            if name.lower() not in self.roles:
                raise ArmError(404, "RoleDefinitionDoesNotExist", "The specified role definition with ID "
                               f"'{name}' does not exist.")
            return 200, as_json(name.lower())
        guids = sorted(self.roles)
        flt = query.get("$filter", "")
        if flt:
            fm = re.fullmatch(r"roleName eq '((?:[^']|'')*)'", flt)
            if not fm:
                raise ArmError(400, "InvalidFilter", f"The filter '{flt}' is not supported.")
            wanted = fm.group(1).replace("''", "'").lower()
            guids = [g for g in guids if self.roles[g].lower() == wanted]
        return 200, {"value": [as_json(g) for g in guids]}

    def _role_assignments(self, method: str, scope: str, name: str | None, query: dict[str, str],
                          body: Any) -> tuple[int, Any]:
        if not name and method == "GET":
            flt = query.get("$filter", "")
            recs = sorted(self.records.values(), key=lambda r: (r.scope.lower(), r.name))
            pm = re.fullmatch(r"principalId eq '?([^']+?)'?", flt)
            if flt == "atScope()":
                recs = [r for r in recs if _at_or_above(r.scope, scope)]
            elif pm:
                recs = [r for r in recs if r.principal.lower() == pm.group(1).lower()
                        and (_at_or_above(r.scope, scope) or _at_or_above(scope, r.scope))]
            elif not flt:
                recs = [r for r in recs if _at_or_above(r.scope, scope) or _at_or_above(scope, r.scope)]
            else:
                raise ArmError(400, "InvalidFilter", f"The filter '{flt}' is not supported.")
            path = f"{scope}/providers/Microsoft.Authorization/roleAssignments"
            return 200, self._page([self.ra_json(r) for r in recs], path, query)
        if not name:
            raise ArmError(405, "MethodNotAllowed", method)
        found = next((r for r in self.records.values()
                      if r.name.lower() == name.lower() and r.scope.lower() == scope.lower()), None)
        if method == "GET":
            if found is None:
                raise ArmError(404, "RoleAssignmentNotFound", f"The role assignment '{name}' is not found.")
            return 200, self.ra_json(found)
        if method == "DELETE":
            if found is None:
                return 204, None
            del self.records[found.name]
            return 200, self.ra_json(found)
        if method != "PUT":
            raise ArmError(405, "MethodNotAllowed", method)
        if not _GUID.fullmatch(name):
            raise ArmError(400, "InvalidRoleAssignmentId", f"The role assignment ID '{name}' is not valid. "
                           "The role assignment ID must be a GUID.")
        props = (body or {}).get("properties") or {}
        role = self._role_guid(props.get("roleDefinitionId"))
        principal = self._check_principal(props.get("principalId"))
        if found is not None or any(
            r.scope.lower() == scope.lower() and r.role == role and r.principal.lower() == principal.lower()
            for r in self.records.values()
        ):
            raise ArmError(409, "RoleAssignmentExists", "The role assignment already exists.")
        description = props.get("description")
        if description is not None and not isinstance(description, str):
            raise ArmError(400, "InvalidRequestContent", "The request content was invalid: description.")
        rec = Record(name.lower(), scope, role, principal, self.now(), description=description)
        self.records[rec.name] = rec
        return 201, self.ra_json(rec)

    def _schedule_request(self, scope: str, name: str, body: Any) -> tuple[int, Any]:
        if not _GUID.fullmatch(name):
            raise ArmError(400, "InvalidRoleAssignmentScheduleRequestName", "The request name must be a GUID.")
        if any(q["name"] == name.lower() for q in self.requests):
            raise ArmError(409, "RoleAssignmentScheduleRequestExists", "A request with this name already exists.")
        props = (body or {}).get("properties") or {}
        role = self._role_guid(props.get("roleDefinitionId"))
        principal = self._check_principal(props.get("principalId"))
        kind = props.get("requestType")
        current = next((r for r in self.records.values() if r.scope.lower() == scope.lower() and r.role == role
                        and r.principal.lower() == principal.lower()), None)
        now = self.now()
        status = "Provisioned"
        request_id = f"{scope}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{name.lower()}"
        too_short = ArmError(400, "ActiveDurationTooShort", "The Active duration is too short. Miniumum Required "
                             f"is {int(self.min_active.total_seconds() // 60)} minutes.")  # sic, as ARM says it
        if kind in ("AdminAssign", "AdminUpdate", "AdminExtend"):
            info = props.get("scheduleInfo") or {}
            start = _parse_time(info["startDateTime"]) if info.get("startDateTime") else now
            exp = info.get("expiration") or {}
            if exp.get("type") == "AfterDateTime" and exp.get("endDateTime"):
                end = _parse_time(exp["endDateTime"])
            elif exp.get("type") == "AfterDuration" and exp.get("duration"):
                hours = re.fullmatch(r"PT(\d+)H", exp["duration"])
                if not hours:
                    raise ArmError(400, "InvalidScheduleInfo", "Only PTnH durations are supported by this double.")
                end = start + timedelta(hours=int(hours.group(1)))
            else:  # NoExpiration: the default role management policy forbids permanent active access
                raise ArmError(400, "RoleAssignmentRequestPolicyValidationFailed",
                               'The following policy rules failed: ["ExpirationRule"]')
            if end <= now or end <= start:
                raise ArmError(400, "InvalidScheduleInfo", "The schedule end must be after its start and now.")
            if self.max_active_days is not None and end - now > timedelta(days=self.max_active_days):
                raise ArmError(400, "RoleAssignmentRequestPolicyValidationFailed",
                               'The following policy rules failed: ["ExpirationRule"]')
            if end - max(start, now) < self.min_active:
                raise too_short
            if kind == "AdminAssign":
                if current is not None:
                    raise ArmError(400, "RoleAssignmentExists", "The Role assignment already exists.")
                rec = Record(str(uuid.uuid4()), scope, role, principal, start, end, "pim", request_id=request_id,
                             created=now)
                self.records[rec.name] = rec
            else:
                if current is None:
                    raise ArmError(400, "RoleAssignmentDoesNotExist", "The Role assignment does not exist.")
                if kind == "AdminExtend" and (current.end is None or end <= current.end):
                    raise ArmError(400, "InvalidScheduleInfo", "An extension must end after the assignment's "
                                   "current end.")
                # the schedule keeps the request that created it (roleAssignmentScheduleRequestId)
                current.start, current.end = start, end
        elif kind == "AdminRemove":
            if current is None:
                raise ArmError(400, "RoleAssignmentDoesNotExist", "The Role assignment does not exist.")
            if current.via == "pim" and now - (current.created or current.start) < self.min_active:
                raise too_short
            del self.records[current.name]
            status = "Revoked"
        else:
            raise ArmError(400, "InvalidRequestType", f"requestType {kind!r} is not supported by this double.")
        request = {
            "id": request_id,
            "name": name.lower(), "type": "Microsoft.Authorization/RoleAssignmentScheduleRequests",
            "properties": {**props, "scope": scope, "status": status, "principalType": "User",
                           "createdOn": _iso(now), "requestorId": "00000000-0000-0000-0000-00000000aaaa"},
        }
        self.requests.append(request)
        return 201, request

    def _instances(self, scope: str, coll: str, query: dict[str, str],
                   as_json: Callable[[Record, str], dict[str, Any]]) -> tuple[int, Any]:
        """Schedule instances or schedules (`coll`): one per live assignment, paged."""
        flt = query.get("$filter", "")
        recs = sorted(self.records.values(), key=lambda r: (r.scope.lower(), r.name))
        if flt == "atScope()":
            recs = [r for r in recs if _at_or_above(r.scope, scope)]
        elif flt:
            raise ArmError(400, "InvalidFilter", f"The filter '{flt}' is not supported by this double.")
        else:
            recs = [r for r in recs if _at_or_above(r.scope, scope) or _at_or_above(scope, r.scope)]
        path = f"{scope}/providers/Microsoft.Authorization/{coll}"
        return 200, self._page([as_json(r, scope) for r in recs], path, query)


def _handler(arm: FakeArm) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        remaining: dict[str, str] = {}  # noqa: RUF012 - this answer's x-ms-ratelimit-remaining header

        def _send(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(code)
            if body is not None:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("x-ms-request-id", str(uuid.uuid4()))
            for k, v in {**self.remaining, **(headers or {})}.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self) -> None:
            split = urllib.parse.urlsplit(self.path)
            path = urllib.parse.unquote(split.path)
            query = {k: v[0] for k, v in urllib.parse.parse_qs(split.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            with arm.lock:
                arm.log.append((self.command, path, query))
                for i, (method, status, answer) in enumerate(arm.fail_next):
                    if method in (None, self.command):
                        del arm.fail_next[i]
                        return self._send(status, answer)
                auth = self.headers.get("Authorization") or ""
                token = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
                if token not in arm.tokens:
                    return self._send(401, {"error": {"code": "InvalidAuthenticationToken",
                                                      "message": "The access token is invalid."}},
                                      {"WWW-Authenticate": 'Bearer authorization_uri="https://login.windows.net/", '
                                                           'error="invalid_token", '
                                                           'error_description="The access token is invalid."'})
                kind, left, wait = arm.take(token, self.command)
                remaining = {f"x-ms-ratelimit-remaining-subscription-{kind}s": str(left)}
                if wait > 0:
                    arm.throttled += 1
                    return self._send(429, {"error": {"code": "SubscriptionRequestsThrottled", "message": (
                        f"Number of '{kind}' requests for subscription exceeded the limit. Please try again after "
                        f"'{math.ceil(wait)}' seconds.")}}, {"Retry-After": str(math.ceil(wait)), **remaining})
                self.remaining = remaining
                if "*" in arm.forbidden or self.command in arm.forbidden:
                    return self._send(403, {"error": {"code": "AuthorizationFailed", "message": (
                        "The client 'jitpol' with object id '00000000-0000-0000-0000-00000000aaaa' does not "
                        f"have authorization to perform this action over scope '{path}' or the scope is "
                        "invalid.")}})
                try:
                    request = json.loads(raw) if raw else None
                    code, out = arm.handle(self.command, path, query, request)
                except ArmError as exc:
                    return self._send(exc.status, {"error": {"code": exc.code, "message": exc.message}})
                except (ValueError, KeyError) as exc:
                    return self._send(400, {"error": {"code": "InvalidRequestContent",
                                                      "message": f"The request content was invalid: {exc}"}})
                return self._send(code, out)

        do_GET = do_PUT = do_DELETE = do_PATCH = do_POST = _route

    return Handler
