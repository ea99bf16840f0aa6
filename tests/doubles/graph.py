"""A local HTTPS double of the Microsoft Graph endpoints the entra connector uses, and of the
Microsoft identity platform's token endpoint.

The real `msgraph-sdk` (kiota over httpx, with its retry middleware) talks to it over real HTTPS,
and the real azure-identity ClientSecretCredential (MSAL) gets its token from it, so tests
exercise URL building, OData query parameters, serialisation, paging, error mapping and retries.
What it reproduces of the documented service (v1.0):

    groups/{id}                      GET: id, displayName, groupTypes, mailEnabled,
                                     securityEnabled, onPremisesSyncEnabled
    groups/{id}/members              GET with $select/$top, paged with @odata.nextLink (an
                                     absolute URL with an opaque $skiptoken); items carry
                                     @odata.type (#microsoft.graph.user, ...)
    groups/{id}/members/$ref         POST {"@odata.id": ".../directoryObjects/{id}"}: 204; 400
                                     Request_BadRequest "One or more added object references
                                     already exist for the following modified properties:
                                     'members'." for a member; 400 for dynamic, on-premises and
                                     mail-enabled groups; 404 Request_ResourceNotFound for an
                                     unknown object
    groups/{id}/members/{id}/$ref    DELETE: 204; 404 Request_ResourceNotFound when no member
    users/{id}                       GET (id, userType Member|Guest); 404 for an unknown user
    users/{id}/revokeSignInSessions  POST: 200 {"value": true}; 403 Authorization_RequestDenied
                                     for the users in `sessions_forbidden`; counted in
                                     `sessions_revoked`
    roleManagement/directory/roleDefinitions
                                     GET with $filter=displayName eq '...' (quotes doubled)
    roleManagement/directory/roleAssignmentScheduleRequests
                                     POST adminAssign / adminUpdate / adminExtend / adminRemove
                                     (roleDefinitionId, principalId, directoryScopeId "/" or
                                     "/administrativeUnits/{id}", scheduleInfo {startDateTime,
                                     expiration {type afterDateTime|afterDuration|noExpiration}})
                                     -> 201 with the request (status Provisioned / Revoked,
                                     targetScheduleId); GET {id}; 400 RoleAssignmentExists /
                                     RoleAssignmentDoesNotExist / ActiveDurationTooShort ("The
                                     Active duration is too short. Miniumum Required is 5
                                     minutes.", sic) / InvalidScheduleInfo
    ... roleAssignmentScheduleInstances, roleAssignmentSchedules
                                     GET with $filter on roleDefinitionId, directoryScopeId,
                                     principalId (eq, joined with and); instances carry
                                     startDateTime/endDateTime (null without an end),
                                     memberType Direct|Group, assignmentType Assigned,
                                     roleAssignmentScheduleId, roleAssignmentOriginId; schedules
                                     carry createdUsing: the request that created them (for a
                                     role assignment made outside PIM, its role assignment id)
    identityGovernance/privilegedAccess/group/assignmentScheduleRequests,
    ... assignmentScheduleInstances, assignmentSchedules
                                     PIM for Groups: the same life cycle with accessId member,
                                     groupId; the lists require $filter on groupId or principalId
                                     (400 otherwise, as documented); a plain member shows as an
                                     instance without start and end; an active PIM member is also
                                     a member of the group

Assignments whose end has passed (by `now()`, settable) disappear: Entra ends them itself. The
five-minute floor (`min_active`; 0 switches it off) refuses assignments shorter than that and
removals of PIM-made assignments younger than that.

Errors use Graph's body {"error": {"code", "message", "innerError": {"date", "request-id",
"client-request-id"}}}. Authentication: `Authorization: Bearer <token>` must carry one of
`tokens` (which the token endpoint adds to), else 401 InvalidAuthenticationToken with
WWW-Authenticate; `forbidden` (HTTP methods, or "*") answers 403 Authorization_RequestDenied.
`fail_next` injects answers (status, body, headers) for requests matching a method and a path
fragment, each used once: a 429 TooManyRequests with Retry-After, a 503, a 400 race.

Token endpoint (MSAL, for azure-identity's ClientSecretCredential pointed here with
authority=<url> and instance discovery off): GET /{tenant}/v2.0/.well-known/openid-configuration
and POST /{tenant}/oauth2/v2.0/token (grant_type client_credentials, client_id, client_secret,
scope) -> {"token_type": "Bearer", "expires_in", "access_token"}; a wrong secret -> 401
invalid_client (AADSTS7000215). `clients` maps client id -> secret.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import threading
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.doubles.server import QuietHandler, Served

# a few real built-in directory role definitions (id == templateId for built-ins)
BUILTIN_ROLES = {
    "62e90394-69f5-4237-9190-012177145e10": "Global Administrator",
    "fe930be7-5e62-47db-91af-98c3a49a38b1": "User Administrator",
    "fdd7a751-b60b-444a-984c-02652fe8fa1c": "Groups Administrator",
    "729827e3-9c14-49f7-bb1b-9608f156bbb8": "Helpdesk Administrator",
}
_FILTER_TERM = re.compile(r"(\w+) eq '((?:[^']|'')*)'")
ROLE_PATH = "/roleManagement/directory"
PIM_GROUP_PATH = "/identityGovernance/privilegedAccess/group"


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str) -> datetime:
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class GraphError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Assignment:
    """One active assignment: a group membership (PIM or plain) or a directory role assignment."""

    principal: str
    end: datetime | None = None
    request_id: str | None = None  # the schedule request that created it (None: made outside PIM)
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    start: datetime | None = None
    schedule_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    origin_id: str = field(default_factory=lambda: str(uuid.uuid4()))  # the role assignment's id
    member_type: str = "Direct"


@dataclass
class Group:
    id: str
    name: str
    group_types: list[str] = field(default_factory=list)
    mail_enabled: bool = False
    security_enabled: bool = True
    on_premises: bool | None = None
    members: dict[str, Assignment] = field(default_factory=dict)  # principal -> assignment
    others: list[str] = field(default_factory=list)  # members that are no users (groups, devices)


@dataclass
class RoleAssignment(Assignment):
    role: str = ""
    scope: str = "/"


class FakeGraph(Served):
    """The double's state and server. start() -> base URL (the Graph root, without /v1.0)."""

    def __init__(self, certfile: Path, keyfile: Path, *, page_size: int = 2) -> None:
        self.certfile, self.keyfile = certfile, keyfile
        self.page_size = page_size
        self.tokens: set[str] = {"test-token"}
        self.clients: dict[str, str] = {}  # app client id -> secret (token endpoint)
        self.token_requests: list[dict[str, str]] = []
        self.forbidden: set[str] = set()
        self.users: dict[str, str] = {}  # id -> userType
        self.sessions_revoked: dict[str, int] = {}
        self.sessions_forbidden: set[str] = set()
        self.groups: dict[str, Group] = {}
        self.roles: dict[str, str] = dict(BUILTIN_ROLES)
        self.units: set[str] = set()  # administrative unit ids
        self.role_assignments: list[RoleAssignment] = []
        self.requests: dict[str, dict[str, Any]] = {}  # request id -> the stored request (both kinds)
        self.log: list[tuple[str, str, dict[str, str]]] = []  # (method, path after /v1.0, query)
        self.bodies: list[tuple[str, str, Any]] = []  # (method, path, JSON body) of writes
        # injected answers: (method or None, path fragment or None, status, body, headers)
        self.fail_next: list[tuple[str | None, str | None, int, Any, dict[str, str]]] = []
        self.min_active = timedelta(minutes=5)
        self.now: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.lock = threading.RLock()

    def start(self) -> str:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.certfile), str(self.keyfile))
        return self._serve(_handler(self), tls=ctx)

    # -- test helpers (behind jitpol's back) ----------------------------------------------------

    def add_user(self, user_type: str = "Member", uid: str | None = None) -> str:
        uid = uid or str(uuid.uuid4())
        with self.lock:
            self.users[uid] = user_type
        return uid

    def add_group(self, name: str = "group", **kind: Any) -> str:
        gid = str(uuid.uuid4())
        with self.lock:
            self.groups[gid] = Group(gid, name, **kind)
        return gid

    def add_member(self, group: str, principal: str, *, end: datetime | None = None,
                   justification: str | None = None) -> Assignment:
        """A member someone added: plain, or through PIM for Groups when it has an `end` (made by an
        adminAssign request carrying `justification`, stored like any other)."""
        with self.lock:
            a = Assignment(principal, end, start=self.now() if end else None, created=self.now())
            if end is not None:
                a.request_id = self._store_request(PIM_GROUP_PATH, {
                    "accessId": "member", "action": "adminAssign", "groupId": group, "principalId": principal,
                    "justification": justification,
                    "scheduleInfo": {"startDateTime": _iso(a.start),
                                     "expiration": {"type": "afterDateTime", "endDateTime": _iso(end)}},
                }, "Provisioned")
                a.schedule_id = f"{group}_member_{a.request_id}"
            self.groups[group].members[principal] = a
            return a

    def add_role_assignment(self, role: str, principal: str, *, scope: str = "/", end: datetime | None = None,
                            justification: str | None = None, member_type: str = "Direct") -> RoleAssignment:
        """A role assignment someone made: plain (roleAssignments API), or through PIM when it has
        an `end`; member_type "Group" for a role held through a role-assignable group."""
        with self.lock:
            a = RoleAssignment(principal, end, start=self.now() if end else None, created=self.now(), role=role,
                               scope=scope, member_type=member_type)
            if end is not None:
                a.request_id = self._store_request(ROLE_PATH, {
                    "action": "adminAssign", "roleDefinitionId": role, "principalId": principal,
                    "directoryScopeId": scope, "justification": justification,
                    "scheduleInfo": {"startDateTime": _iso(a.start),
                                     "expiration": {"type": "afterDateTime", "endDateTime": _iso(end)}},
                }, "Provisioned")
                a.schedule_id = a.request_id
            self.role_assignments.append(a)
            return a

    def members(self, group: str) -> dict[str, datetime | None]:
        """principal -> end of every live member of `group`."""
        with self.lock:
            self._expire()
            return {p: a.end for p, a in self.groups[group].members.items()}

    def role_holders(self, role: str, scope: str = "/") -> dict[str, datetime | None]:
        with self.lock:
            self._expire()
            return {a.principal: a.end for a in self.role_assignments if a.role == role and a.scope == scope}

    def writes(self) -> list[tuple[str, str, dict[str, str]]]:
        return [e for e in self.log if e[0] in ("POST", "PATCH", "PUT", "DELETE")]

    def throttle_next(self, method: str | None = None, path: str | None = None, *, retry_after: int = 1,
                      times: int = 1) -> None:
        """The next `times` matching requests answer 429 TooManyRequests with Retry-After."""
        for _ in range(times):
            self.fail_next.append((method, path, 429, _body("TooManyRequests", "Too many requests."),
                                   {"Retry-After": str(retry_after)}))

    # -- behaviour ------------------------------------------------------------------------------

    def _expire(self) -> None:
        now = self.now()
        for g in self.groups.values():
            for p in [p for p, a in g.members.items() if a.end is not None and a.end <= now]:
                del g.members[p]
        self.role_assignments = [a for a in self.role_assignments if a.end is None or a.end > now]

    def _store_request(self, base: str, props: dict[str, Any], status: str) -> str:
        rid = str(uuid.uuid4())
        now = _iso(self.now())
        request = {
            "id": rid, "status": status, "createdDateTime": now, "completedDateTime": now, "approvalId": None,
            "customData": None, "isValidationOnly": False,
            "createdBy": {"user": {"id": "00000000-0000-0000-0000-00000000aaaa"}},
            "ticketInfo": {"ticketNumber": None, "ticketSystem": None}, **props,
        }
        if base == ROLE_PATH:
            request["@odata.context"] = "https://graph.microsoft.com/v1.0/$metadata#roleManagement/directory/" \
                                        "roleAssignmentScheduleRequests/$entity"
            request.setdefault("appScopeId", None)
        self.requests[rid] = {**request, "_base": base}
        return rid

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        self._expire()
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["groups"] and len(parts) >= 2:
            return self._groups(method, parts[1:], query, body)
        if parts[:1] == ["users"] and len(parts) >= 2:
            return self._users(method, parts[1:])
        if path.startswith(ROLE_PATH + "/"):
            return self._schedules(method, ROLE_PATH, path[len(ROLE_PATH) + 1:], query, body)
        if path.startswith(PIM_GROUP_PATH + "/"):
            return self._schedules(method, PIM_GROUP_PATH, path[len(PIM_GROUP_PATH) + 1:], query, body)
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{parts[0] if parts else ''}'.")

    def _page(self, items: list[dict[str, Any]], path: str, query: dict[str, str], context: str) -> dict[str, Any]:
        offset = 0
        if "$skiptoken" in query:
            offset = json.loads(base64.urlsafe_b64decode(query["$skiptoken"]))["o"]
        size = min(self.page_size, int(query.get("$top", self.page_size)))
        page: dict[str, Any] = {"@odata.context": f"https://graph.microsoft.com/v1.0/$metadata#{context}",
                                "value": items[offset:offset + size]}
        if offset + size < len(items):
            token = base64.urlsafe_b64encode(json.dumps({"o": offset + size}).encode()).decode()
            params = {k: v for k, v in query.items() if k != "$skiptoken"}
            params["$skiptoken"] = token
            page["@odata.nextLink"] = f"{self.url}/v1.0{urllib.parse.quote(path)}?{urllib.parse.urlencode(params)}"
        return page

    def _group(self, gid: str) -> Group:
        g = self.groups.get(gid)
        if g is None:
            raise GraphError(404, "Request_ResourceNotFound", f"Resource '{gid}' does not exist or one of its "
                             "queried reference-property objects are not present.")
        return g

    def _unmanageable(self, g: Group) -> GraphError | None:
        if "DynamicMembership" in g.group_types:
            return GraphError(400, "Request_BadRequest", "Insufficient privileges to complete the operation. "
                              "Members of a dynamic group cannot be changed.")
        if g.on_premises:
            return GraphError(400, "Request_BadRequest", "Unable to update the specified properties for "
                              "on-premises mastered Directory Sync objects or objects currently undergoing migration.")
        if g.mail_enabled and "Unified" not in g.group_types:
            return GraphError(400, "Request_BadRequest", "Cannot Update a mail-enabled security groups and or "
                              "distribution list.")
        return None

    def _groups(self, method: str, parts: list[str], query: dict[str, str], body: Any) -> tuple[int, Any]:
        g = self._group(parts[0])
        rest = parts[1:]
        if not rest and method == "GET":
            return 200, {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#groups/$entity",
                         "id": g.id, "displayName": g.name, "groupTypes": g.group_types, "mailEnabled": g.mail_enabled,
                         "securityEnabled": g.security_enabled, "onPremisesSyncEnabled": g.on_premises}
        if rest == ["members"] and method == "GET":
            items = [{"@odata.type": "#microsoft.graph.user", "id": p} for p in sorted(g.members)]
            items += [{"@odata.type": "#microsoft.graph.group", "id": o} for o in sorted(g.others)]
            return 200, self._page(items, f"/groups/{g.id}/members", query, "directoryObjects")
        if rest == ["members", "$ref"] and method == "POST":
            ref = str((body or {}).get("@odata.id") or "")
            m = re.fullmatch(r"https://[^/]+/v1\.0/directoryObjects/([0-9a-f-]{36})", ref)
            if m is None:
                raise GraphError(400, "Request_BadRequest", "Invalid object identifier '" + ref + "'.")
            refused = self._unmanageable(g)
            if refused is not None:
                raise refused
            uid = m.group(1)
            if uid not in self.users:
                raise GraphError(404, "Request_ResourceNotFound", f"Resource '{uid}' does not exist or one of its "
                                 "queried reference-property objects are not present.")
            if uid in g.members:
                raise GraphError(400, "Request_BadRequest", "One or more added object references already exist for "
                                 "the following modified properties: 'members'.")
            g.members[uid] = Assignment(uid, created=self.now())
            return 204, None
        if len(rest) == 3 and rest[0] == "members" and rest[2] == "$ref" and method == "DELETE":
            refused = self._unmanageable(g)
            if refused is not None:
                raise refused
            if rest[1] not in g.members:
                raise GraphError(404, "Request_ResourceNotFound", f"Resource '{rest[1]}' does not exist or one of "
                                 "its queried reference-property objects are not present.")
            del g.members[rest[1]]
            return 204, None
        raise GraphError(405, "Request_BadRequest", f"{method} is not supported on this resource.")

    def _users(self, method: str, parts: list[str]) -> tuple[int, Any]:
        uid = parts[0]
        if uid not in self.users:
            raise GraphError(404, "Request_ResourceNotFound", f"Resource '{uid}' does not exist or one of its "
                             "queried reference-property objects are not present.")
        if len(parts) == 1 and method == "GET":
            return 200, {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users(id,userType)/$entity",
                         "id": uid, "userType": self.users[uid]}
        if parts[1:] == ["revokeSignInSessions"] and method == "POST":
            if uid in self.sessions_forbidden:
                raise GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the "
                                 "operation.")
            self.sessions_revoked[uid] = self.sessions_revoked.get(uid, 0) + 1
            return 200, {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean", "value": True}
        raise GraphError(405, "Request_BadRequest", f"{method} is not supported on this resource.")

    # -- schedule requests (directory roles and PIM for Groups) -----------------------------------

    def _filter(self, query: dict[str, str], allowed: set[str]) -> dict[str, str]:
        text = query.get("$filter", "")
        if not text:
            return {}
        terms: dict[str, str] = {}
        for clause in text.split(" and "):
            m = _FILTER_TERM.fullmatch(clause.strip())
            if m is None or m.group(1) not in allowed:
                raise GraphError(400, "BadRequest", f"Invalid filter clause: {text}")
            terms[m.group(1)] = m.group(2).replace("''", "'")
        return terms

    def _schedules(self, method: str, base: str, rest: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        roles = base == ROLE_PATH
        if roles and rest == "roleDefinitions" and method == "GET":
            terms = self._filter(query, {"displayName", "templateId", "id"})
            items = [{"id": rid, "displayName": name, "templateId": rid, "isBuiltIn": True, "isEnabled": True}
                     for rid, name in sorted(self.roles.items())
                     if all({"displayName": name, "templateId": rid, "id": rid}[k].lower() == v.lower()
                            for k, v in terms.items())]
            return 200, self._page(items, f"{base}/{rest}", query, "roleManagement/directory/roleDefinitions")
        collection, _, rid = rest.partition("/")
        kind = "roleAssignment" if roles else "assignment"
        if collection == f"{kind}ScheduleRequests":
            if method == "POST" and not rid:
                return self._request(base, body)
            if method == "GET" and rid:
                found = self.requests.get(rid)
                if found is None or found["_base"] != base:
                    raise GraphError(404, "ResourceNotFound", f"The resource '{rid}' is not found.")
                return 200, {k: v for k, v in found.items() if k != "_base"}
        if method == "GET" and not rid and collection in (f"{kind}ScheduleInstances", f"{kind}Schedules"):
            instances = collection.endswith("Instances")
            if roles:
                terms = self._filter(query, {"roleDefinitionId", "directoryScopeId", "principalId"})
                items = [self._role_json(a, instances) for a in self.role_assignments
                         if all({"roleDefinitionId": a.role, "directoryScopeId": a.scope,
                                 "principalId": a.principal}[k] == v for k, v in terms.items())]
            else:
                terms = self._filter(query, {"groupId", "principalId"})
                if not terms:
                    raise GraphError(400, "BadRequest", "The filter on groupId or principalId is required.")
                items = [self._member_json(g, a, instances) for g in self.groups.values()
                         for a in g.members.values()
                         if all({"groupId": g.id, "principalId": a.principal}[k] == v for k, v in terms.items())]
            return 200, self._page(items, f"{base}/{collection}", query, collection)
        raise GraphError(405, "BadRequest", f"{method} is not supported on {collection}.")

    def _role_json(self, a: RoleAssignment, instance: bool) -> dict[str, Any]:
        common = {"principalId": a.principal, "roleDefinitionId": a.role, "directoryScopeId": a.scope,
                  "appScopeId": None, "memberType": a.member_type, "assignmentType": "Assigned"}
        if instance:
            return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, a.schedule_id)), **common,
                    "startDateTime": _iso(a.start), "endDateTime": _iso(a.end),
                    "roleAssignmentOriginId": a.origin_id, "roleAssignmentScheduleId": a.schedule_id}
        return {"id": a.schedule_id, **common, "createdUsing": a.request_id or a.origin_id,
                "createdDateTime": _iso(a.created), "modifiedDateTime": None, "status": "Provisioned",
                "scheduleInfo": {"startDateTime": _iso(a.start), "recurrence": None,
                                 "expiration": {"type": "afterDateTime" if a.end else "noExpiration",
                                                "endDateTime": _iso(a.end), "duration": None}}}

    def _member_json(self, g: Group, a: Assignment, instance: bool) -> dict[str, Any]:
        schedule = a.schedule_id if a.request_id else f"{g.id}_member_{a.origin_id}"
        common = {"principalId": a.principal, "groupId": g.id, "accessId": "member", "memberType": a.member_type,
                  "assignmentType": "Assigned"}
        if instance:
            return {"id": f"{g.id}_member_{uuid.uuid5(uuid.NAMESPACE_URL, schedule)}", **common,
                    "startDateTime": _iso(a.start), "endDateTime": _iso(a.end), "assignmentScheduleId": schedule}
        return {"id": schedule, **common, "createdUsing": a.request_id, "createdDateTime": _iso(a.created),
                "modifiedDateTime": None, "status": "Provisioned",
                "scheduleInfo": {"startDateTime": _iso(a.start), "recurrence": None,
                                 "expiration": {"type": "afterDateTime" if a.end else "noExpiration",
                                                "endDateTime": _iso(a.end), "duration": None}}}

    def _request(self, base: str, props: Any) -> tuple[int, Any]:
        props = dict(props or {})
        roles = base == ROLE_PATH
        action = props.get("action")
        principal = str(props.get("principalId") or "")
        if principal not in self.users:
            raise GraphError(400, "InvalidPrincipal" if roles else "BadRequest",
                             f"The principal '{principal}' does not exist.")
        current: Assignment | None
        if roles:
            role, scope = str(props.get("roleDefinitionId") or ""), str(props.get("directoryScopeId") or "")
            if role not in self.roles:
                raise GraphError(400, "RoleDefinitionDoesNotExist", f"The role definition '{role}' does not exist.")
            if scope != "/" and not (scope.startswith("/administrativeUnits/")
                                     and scope.rsplit("/", 1)[1] in self.units):
                raise GraphError(400, "InvalidDirectoryScope", f"The directory scope '{scope}' is not valid.")
            current = next((a for a in self.role_assignments if a.role == role and a.scope == scope
                            and a.principal == principal and a.member_type == "Direct"), None)
        else:
            if props.get("accessId") != "member":
                raise GraphError(400, "BadRequest", "accessId must be member or owner; this double knows member.")
            g = self._group(str(props.get("groupId") or ""))
            refused = self._unmanageable(g)
            if refused is not None:
                raise refused
            current = g.members.get(principal)
        now = self.now()
        too_short = GraphError(400, "ActiveDurationTooShort", "The Active duration is too short. Miniumum Required "
                               f"is {int(self.min_active.total_seconds() // 60)} minutes.")
        status = "Provisioned"
        if action in ("adminAssign", "adminUpdate", "adminExtend"):
            info = props.get("scheduleInfo") or {}
            start = _parse_time(info["startDateTime"]) if info.get("startDateTime") else now
            exp = info.get("expiration") or {}
            kind = str(exp.get("type") or "").lower()
            end: datetime | None
            if kind == "afterdatetime" and exp.get("endDateTime"):
                end = _parse_time(exp["endDateTime"])
            elif kind == "afterduration" and exp.get("duration"):
                hours = re.fullmatch(r"PT(\d+)H", exp["duration"])
                if not hours:
                    raise GraphError(400, "InvalidScheduleInfo", "Only PTnH durations are supported by this double.")
                end = start + timedelta(hours=int(hours.group(1)))
            elif kind == "noexpiration":
                end = None
            else:
                raise GraphError(400, "InvalidScheduleInfo", "The schedule info is not valid.")
            if end is not None:
                if end <= now or end <= start:
                    raise GraphError(400, "InvalidScheduleInfo", "The schedule end must be after its start and now.")
                if end - max(start, now) < self.min_active:
                    raise too_short
            if action == "adminAssign":
                if current is not None:
                    raise GraphError(400, "RoleAssignmentExists", "The Role assignment already exists.")
                rid = self._store_request(base, props, status)
                if roles:
                    self.role_assignments.append(RoleAssignment(
                        principal, end, rid, now, start, schedule_id=rid, role=props["roleDefinitionId"],
                        scope=props["directoryScopeId"]))
                else:
                    g = self.groups[props["groupId"]]
                    g.members[principal] = Assignment(principal, end, rid, now, start,
                                                      schedule_id=f"{g.id}_member_{rid}")
            else:
                if current is None:
                    raise GraphError(400, "RoleAssignmentDoesNotExist", "The Role assignment does not exist.")
                if action == "adminExtend" and (current.end is None or end is None or end <= current.end):
                    raise GraphError(400, "InvalidScheduleInfo", "An extension must end after the current end.")
                # the schedule keeps the request that created it (createdUsing)
                current.start, current.end = start, end
                rid = self._store_request(base, props, status)
        elif action == "adminRemove":
            if current is None:
                raise GraphError(400, "RoleAssignmentDoesNotExist", "The Role assignment does not exist.")
            if current.request_id is not None and now - current.created < self.min_active:
                raise too_short
            if roles:
                self.role_assignments.remove(current)  # type: ignore[arg-type]
            else:
                del self.groups[props["groupId"]].members[principal]
            rid = self._store_request(base, props, "Revoked")
        else:
            raise GraphError(400, "InvalidRequestType", f"action {action!r} is not supported by this double.")
        out = {k: v for k, v in self.requests[rid].items() if k != "_base"}
        out["targetScheduleId"] = rid if roles else f"{props.get('groupId')}_member_{rid}"
        return 201, out

    # -- the identity platform's token endpoint -------------------------------------------------

    def token_endpoint(self, method: str, parts: list[str], form: dict[str, str]) -> tuple[int, Any]:
        tenant = parts[0]
        if method == "GET" and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            return 200, {"token_endpoint": f"{self.url}/{tenant}/oauth2/v2.0/token",
                         "authorization_endpoint": f"{self.url}/{tenant}/oauth2/v2.0/authorize",
                         "device_authorization_endpoint": f"{self.url}/{tenant}/oauth2/v2.0/devicecode",
                         "issuer": f"{self.url}/{tenant}/v2.0", "tenant_region_scope": "EU",
                         "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                                   "client_secret_basic"]}
        if method == "POST" and parts[1:] == ["oauth2", "v2.0", "token"]:
            self.token_requests.append({k: v for k, v in form.items() if k != "client_secret"})
            client = form.get("client_id", "")
            if form.get("grant_type") != "client_credentials" or self.clients.get(client) != form.get("client_secret"):
                return 401, {"error": "invalid_client", "error_codes": [7000215],
                             "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret "
                                                  f"being sent in the request is the client secret value, not the "
                                                  f"client secret ID, for a secret added to app '{client}'."}
            token = "eyJ0eXAiOiJKV1QifQ." + base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=") + ".sig"
            self.tokens.add(token)
            return 200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}
        return 404, {"error": "not_found"}


def _body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "innerError": {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "request-id": str(uuid.uuid4()),
        "client-request-id": str(uuid.uuid4())}}}


def _handler(graph: FakeGraph) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def _send(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(code)
            if body is not None:
                self.send_header("Content-Type", "application/json;odata.metadata=minimal;charset=utf-8")
            self.send_header("request-id", str(uuid.uuid4()))
            for k, v in (headers or {}).items():
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
            with graph.lock:
                if not path.startswith("/v1.0/"):
                    form = {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode()).items()}
                    parts = [p for p in path.split("/") if p]
                    code, out = graph.token_endpoint(self.command, parts, form) if parts else (404, None)
                    return self._send(code, out)
                path = path[len("/v1.0"):]
                graph.log.append((self.command, path, query))
                for i, (method, fragment, status, answer, headers) in enumerate(graph.fail_next):
                    if method in (None, self.command) and (fragment is None or fragment in path):
                        del graph.fail_next[i]
                        return self._send(status, answer, headers)
                auth = self.headers.get("Authorization") or ""
                token = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
                if token not in graph.tokens:
                    return self._send(401, _body("InvalidAuthenticationToken", "Access token validation failure."),
                                      {"WWW-Authenticate": 'Bearer realm="", error="invalid_token", '
                                                           'error_description="The access token is invalid."'})
                if "*" in graph.forbidden or self.command in graph.forbidden:
                    return self._send(403, _body("Authorization_RequestDenied",
                                                 "Insufficient privileges to complete the operation."))
                try:
                    request = json.loads(raw) if raw else None
                    if self.command in ("POST", "PATCH", "PUT", "DELETE"):
                        graph.bodies.append((self.command, path, request))
                    code, out = graph.handle(self.command, path, query, request)
                except GraphError as exc:
                    return self._send(exc.status, _body(exc.code, exc.message))
                except (ValueError, KeyError, TypeError) as exc:
                    return self._send(400, _body("BadRequest", f"The request is not valid: {exc}"))
                return self._send(code, out)

        do_GET = do_PUT = do_DELETE = do_PATCH = do_POST = _route

    return Handler
