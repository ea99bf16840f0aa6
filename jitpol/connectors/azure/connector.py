"""Azure connector: the `idp-elevation` model as Azure RBAC role assignments.

    principal   the person's Microsoft Entra object id, a lower-case GUID as Azure reports it
                (people/<name>.yaml `accounts.azure: 0f8fad5b-d9cb-469f-a165-70867728950e`)
    privilege   canonical JSON of {"scope": ..., "role": ...}:
                scope  /subscriptions/<id>[/resourceGroups/<rg>[/providers/<Ns.Provider>/<type>/<name>...]]
                       or /providers/Microsoft.Management/managementGroups/<name>
                role   a role definition GUID, a full role definition id
                       (/subscriptions/<id>/providers/Microsoft.Authorization/roleDefinitions/<guid>)
                       or a role NAME ("Reader"), resolved once per run through
                       roleDefinitions?$filter=roleName eq '...'

Settings (the target's entry in jitpol.yaml):
    subscription_id     required, GUID (the SDK client's subscription)
    tenant_id           required, the Entra tenant (used by the client-secret credential)
    base_url            optional ARM endpoint, default https://management.azure.com (https only:
                        the SDK refuses to send bearer tokens over plain HTTP)
    client_id_env       optional, with client_secret_env: NAMES of the environment variables of a
    client_secret_env   service principal -> azure.identity.ClientSecretCredential. Without them
                        DefaultAzureCredential is used (workload identity / OIDC federation in CI,
                        managed identity, Azure CLI).
    pim                 optional bool, default false. false: plain role assignments
                        (roleAssignments PUT/DELETE), which Azure does not end by itself.
                        true: time-bound active assignments through Privileged Identity
                        Management schedule requests (AdminAssign / AdminUpdate / AdminRemove)
                        whose end is action.until: Azure ends them itself, and observe reports
                        that end in Assignment.expires. Capabilities follow the setting: only a
                        PIM instance declares native expiry.

Ownership marker (both modes): fixed text "jitpol: grant=<grant name>" (the name passes the
metadata.name allowlist, else just "jitpol"; never user text, never a secret). Plain mode writes
it into the role assignment's `description`, which ARM returns on every read. PIM writes it into
the schedule request's `justification`; schedule instances do not report that, so observe follows
instance -> roleAssignmentScheduleId -> the schedule's roleAssignmentScheduleRequestId (the
request that CREATED it) -> GET that request (once per request id and connector: requests do
not change) and reads its justification. An assignment shows owned True when its marker is
there, False otherwise (made by someone else, or outside PIM). A grant that finds the principal
already holding the role without the marker (standing access) answers unchanged: no write, no
marker, and its end is never moved.

PIM and the end: the end follows the grant both ways. A different end of jitpol's own
assignment is set with AdminUpdate ("for administrators to change existing role assignments"),
earlier or later; AdminExtend is not used (it only extends expiring assignments). PIM refuses an
assignment shorter than five minutes and the removal of one less than five minutes old
(ActiveDurationTooShort): an end less than five minutes away is applied as AdminRemove (access
ends now, never after the grant), and a removal PIM refuses for now is TargetUnavailable (the
next run retries it).

Only assignments made exactly at the privilege's scope count (those inherited from a parent
scope are neither reported nor touched). A revoke removes the principal's assignment of that
role at that scope whoever made it, marked or not (the ledger may know jitpol made it before
markers existed); the core only asks for revocations of what jitpol granted, or of standing
access on resources marked exclusive. A revoke driven by the marker alone (drift with no
resource, kit.marker_driven) removes only what still carries the marker when it runs.

Errors: unreachable ARM or a timeout -> TargetUnavailable (also HTTP 408/429/5xx); 401/403 and
everything else -> PermanentTargetError with ARM's error code and message. Tokens and secrets
never appear in messages. The Azure SDK is imported lazily: importing this module (and
check_name) costs nothing.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from jitpol.clock import Clock, SystemClock
from jitpol.connectors.base import mapping_entry
from jitpol.connectors.kit import (
    ceil_second,
    check_apply,
    check_model,
    marker_driven,
    name_check,
    redacted,
    shown,
    status_error,
)
from jitpol.errors import InvalidInput, PermanentTargetError, TargetUnavailable
from jitpol.model.assignment import Action, Assignment, Capabilities, Outcome, Scope
from jitpol.model.canonical import canonical_json

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.mgmt.authorization import AuthorizationManagementClient

MODEL = "idp-elevation"
DEFAULT_BASE_URL = "https://management.azure.com"

# API versions pinned to the model classes imported below (the SDK's defaults may move on)
RA_API_VERSION = "2022-04-01"
PIM_API_VERSION = "2020-10-01"
_PROFILE_TAG = "azure.mgmt.authorization.AuthorizationManagementClient"

# names of plain role assignments jitpol creates: uuid5(namespace, scope|role|principal), so a
# repeated grant hits the same name (409 RoleAssignmentExists) instead of making a duplicate
ASSIGNMENT_NAMESPACE = uuid.UUID("4d7e5a8c-2f3b-5c61-9a0e-6b1f2c3d4e5f")

# jitpol's ownership marker: a role assignment's description (plain) or a PIM schedule request's
# justification. Only fixed text and an allow-listed grant name ever go there.
MARKER = "jitpol"
_GRANT_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
# what counts as marked: the marker, alone or with a grant name; also the justification PIM
# requests carried before markers existed ("jitpol: <grant>, <grant>")
_MARKED = re.compile(
    rf"{MARKER}(?:: grant={_GRANT_NAME.pattern}|: {_GRANT_NAME.pattern}(?:, {_GRANT_NAME.pattern})*)?"
)
# PIM makes no active assignment shorter than this, and removes none younger than this
PIM_MIN_ACTIVE = timedelta(minutes=5)

_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_PRINCIPAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_NAME = r"[A-Za-z0-9_()][A-Za-z0-9_.()-]{0,89}"
_NAMESPACE_RE = r"[A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z][A-Za-z0-9]*)+"
_TYPE = r"[A-Za-z][A-Za-z0-9]*"
_SCOPE = re.compile(
    rf"/subscriptions/{_GUID}"
    rf"(?:/resourceGroups/{_NAME}(?:/providers/{_NAMESPACE_RE}/{_TYPE}/{_NAME}(?:/{_TYPE}/{_NAME})*)?)?"
    rf"|/providers/Microsoft\.Management/managementGroups/{_NAME}",
    re.IGNORECASE,
)
_ROLE_GUID = re.compile(_GUID)
_ROLE_ID = re.compile(
    rf"(?:/subscriptions/{_GUID})?/providers/Microsoft\.Authorization/roleDefinitions/({_GUID})", re.IGNORECASE
)
# role names: no quotes (they go into an OData $filter), no control characters
_ROLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._()/&+,:-]{0,255}")
_SUBSCRIPTION_OF = re.compile(rf"^/subscriptions/({_GUID})", re.IGNORECASE)
_REQUEST_ID = re.compile(
    rf"(?P<scope>/.+)/providers/Microsoft\.Authorization/roleAssignmentScheduleRequests/(?P<name>{_GUID})",
    re.IGNORECASE,
)
_TENANT = re.compile(rf"{_GUID}|[A-Za-z0-9][A-Za-z0-9.-]{{0,252}}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# things that look like credentials, cut out of any text that reaches a message
_SECRETS = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

_PRIVILEGE_FORM = (
    'an Azure privilege is a mapping {scope: "/subscriptions/<subscription id>[/resourceGroups/<rg>...]" '
    'or "/providers/Microsoft.Management/managementGroups/<name>", role: "<role definition GUID, full role '
    'definition id, or role name such as Reader>"}'
)


@dataclass(frozen=True, slots=True)
class AzurePrivilege:
    """One parsed privilege. `role_guid` is known without I/O when the role is a GUID or an id."""

    scope: str
    role: str
    role_guid: str | None


def parse_privilege(value: object) -> AzurePrivilege:
    """The privilege as a mapping, or its canonical JSON text. Raises InvalidInput naming the
    allowed form."""
    data = mapping_entry(value, frozenset({"scope", "role"}), _PRIVILEGE_FORM)
    scope, role = data["scope"], data["role"]
    if not isinstance(scope, str) or not _SCOPE.fullmatch(scope):
        raise InvalidInput(f"privilege scope {shown(scope)} is not an Azure scope: {_PRIVILEGE_FORM}")
    if not isinstance(role, str):
        raise InvalidInput(f"privilege role {shown(role)} is not valid: {_PRIVILEGE_FORM}")
    if _ROLE_GUID.fullmatch(role):
        return AzurePrivilege(scope, role, role.lower())
    m = _ROLE_ID.fullmatch(role)
    if m:
        return AzurePrivilege(scope, role, m.group(1).lower())
    if not _ROLE_NAME.fullmatch(role) or role.lower().startswith("/"):
        raise InvalidInput(
            f"privilege role {shown(role)} is not a role definition GUID, id or name "
            "(letters, digits, spaces and . _ ( ) / & + , : -; no quotes)"
        )
    return AzurePrivilege(scope, role, None)


def check_principal(value: object) -> str:
    """The principal (an Entra object id), or InvalidInput."""
    if not isinstance(value, str) or not _PRINCIPAL.fullmatch(value):
        raise InvalidInput(
            f"principal {shown(value)} is not an Azure principal: use the person's Microsoft Entra object id, "
            "a lower-case GUID such as 0f8fad5b-d9cb-469f-a165-70867728950e (as Azure reports it)"
        )
    return value


# the policy loader's hook (the registry record's name_check): a person's account, or a grants entry
check_name = name_check(check_principal, parse_privilege)


def marker(action: Action) -> str:
    """The ownership marker for what `action` grants: "jitpol: grant=<name>" for the grant it
    serves first when that name passes the allowlist, else "jitpol"."""
    name = action.detail("grant") or (action.grants[0] if action.grants else "")
    return f"{MARKER}: grant={name}" if _GRANT_NAME.fullmatch(name) else MARKER


def is_marked(text: str | None) -> bool:
    """Does a description or justification carry jitpol's marker?"""
    return text is not None and _MARKED.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class _Held:
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


_OPS = {MODEL: ("grant", "revoke")}
_PLAIN = Capabilities(models=frozenset({MODEL}), marks=frozenset({MODEL}))
_PIM = Capabilities(models=frozenset({MODEL}), native_expiry=frozenset({MODEL}), marks=frozenset({MODEL}))


class AzureConnector:
    """Connector for one Azure tenant/subscription (see the module docstring for settings).

    observe() lists assignments at each privilege's scope (paged); apply() creates or deletes
    one assignment (or, with pim, submits one schedule request) and is idempotent. One SDK
    client is made on first use. Keyword-only hooks for tests and embedding: `credential` (an
    azure.core TokenCredential used instead of the configured one), `client_options` (extra
    keyword arguments for the SDK client, e.g. connection_verify, retry_total) and `clock`
    (the start time of PIM schedules; default the system clock).
    """

    type: ClassVar[str] = "azure"

    def __init__(
        self,
        name: str,
        settings: Mapping[str, Any],
        env: Mapping[str, str],
        *,
        credential: TokenCredential | None = None,
        client_options: Mapping[str, Any] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        subscription = settings.get("subscription_id")
        if not isinstance(subscription, str) or not re.fullmatch(_GUID, subscription):
            raise PermanentTargetError(f"target {name}: setting subscription_id (a GUID) is required")
        tenant = settings.get("tenant_id")
        if not isinstance(tenant, str) or not _TENANT.fullmatch(tenant):
            raise PermanentTargetError(f"target {name}: setting tenant_id (a GUID or the tenant's domain) is required")
        base_url = settings.get("base_url", DEFAULT_BASE_URL)
        if not isinstance(base_url, str) or not base_url.startswith("https://"):
            raise PermanentTargetError(f"target {name}: setting base_url must be an https:// URL")
        id_env, secret_env = settings.get("client_id_env"), settings.get("client_secret_env")
        for setting, value in (("client_id_env", id_env), ("client_secret_env", secret_env)):
            if value is not None and (not isinstance(value, str) or not _ENV_NAME.fullmatch(value)):
                raise PermanentTargetError(f"target {name}: setting {setting} must be an environment variable name")
        if (id_env is None) != (secret_env is None):
            raise PermanentTargetError(
                f"target {name}: set both client_id_env and client_secret_env, or neither (then the default "
                "credential chain is used: workload identity, managed identity, Azure CLI)"
            )
        pim = settings.get("pim", False)
        if not isinstance(pim, bool):
            raise PermanentTargetError(f"target {name}: setting pim must be true or false")
        self._subscription = subscription
        self._tenant = tenant
        self._base_url = base_url.rstrip("/")
        self._id_env: str | None = id_env
        self._secret_env: str | None = secret_env
        self._pim = pim
        self._env = env  # read when the credential is made; secrets are not kept on this object
        self._given_credential = credential
        self._client_options = dict(client_options or {})
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._sdk: AuthorizationManagementClient | None = None
        self._own_credential: Any = None
        self._role_cache: dict[tuple[str, str], str] = {}
        self._request_marks: dict[str, bool] = {}  # schedule request id (lower) -> marked

    # -- Connector protocol -----------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        """Per instance: both modes mark what jitpol grants; only PIM assignments end by
        themselves (plain role assignments end when jitpol revokes them)."""
        return _PIM if self._pim else _PLAIN

    def observe(self, scope: Scope) -> frozenset[Assignment]:
        """Every principal holding each privilege in scope.privileges, exactly at its scope, and
        whether jitpol's marker is on the assignment. Roles named but not defined, and texts
        that are no Azure privilege, have no holders. With pim, `expires` is the schedule's end
        (None for a permanent assignment). Read-only."""
        check_model(self.name, scope.model, _OPS)
        parsed: dict[str, AzurePrivilege] = {}
        for text in sorted(scope.privileges):
            try:
                parsed[text] = parse_privilege(text)
            except InvalidInput:
                continue  # nothing on Azure can hold a privilege that is not one; it is never sent
        by_scope: dict[str, list[str]] = {}
        for text, priv in parsed.items():
            by_scope.setdefault(priv.scope.lower(), []).append(text)
        out: set[Assignment] = set()
        for texts in by_scope.values():
            at = parsed[texts[0]].scope
            held = self._holders(at)
            schedules: dict[str, str] | None = None  # read only when some holder needs it
            for text in texts:
                priv = parsed[text]
                guid = self._role_guid(priv)
                if guid is None:
                    continue
                mine: dict[str, list[_Held]] = {}
                for h in held:
                    if h.role_guid == guid and h.scope.lower() == priv.scope.lower():
                        mine.setdefault(h.principal, []).append(h)
                if mine and self._pim and schedules is None:
                    schedules = self._schedule_requests(at)
                for principal, hs in mine.items():
                    out.add(Assignment(self.name, scope.model, principal, text,
                                       expires=_latest(h.expires for h in hs),
                                       owned=self._marked(hs, schedules or {})))
        return frozenset(out)

    def apply(self, action: Action, *, check: bool = False) -> Outcome:
        """Grant or revoke one role assignment; idempotent. A grant that finds the role held
        without jitpol's marker (standing access) changes nothing. With pim a grant also sets
        the end Azure enforces to exactly action.until, earlier or later. check=True only reads,
        and lists the requests it would send."""
        a = action.assignment
        check_apply(self.name, a.model, action.op, _OPS)
        priv = self._parse_privilege(a.privilege)
        try:
            principal = check_principal(a.principal)
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {self.name}: {exc}") from None
        guid = self._required_role_guid(priv)
        held = self._held_by(priv, guid, principal)
        if self._pim:
            return self._apply_pim(action, priv, guid, principal, held, check)
        return self._apply_plain(action, priv, guid, principal, held, check)

    def close(self) -> None:
        """Close the SDK client and any credential this connector made. Safe to call twice."""
        sdk, self._sdk = self._sdk, None
        if sdk is not None:
            sdk.close()  # type: ignore[no-untyped-call]  # the multi-API client is not annotated
        cred, self._own_credential = self._own_credential, None
        if cred is not None:
            cred.close()

    # -- plain role assignments -------------------------------------------------------------

    def _apply_plain(
        self, action: Action, priv: AzurePrivilege, guid: str, principal: str, held: list[_Held], check: bool
    ) -> Outcome:
        from azure.core.exceptions import ResourceExistsError
        from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters

        if action.op == "grant":
            if held:  # jitpol's (already true), or standing access: left as it is, unmarked
                return Outcome(changed=False, before=True, after=True)
            name = str(uuid.uuid5(ASSIGNMENT_NAMESPACE, f"{priv.scope.lower()}|{guid}|{principal}"))
            role_id = self._role_definition_id(priv, guid)
            description = marker(action)
            operation = (
                f"PUT {priv.scope}/providers/Microsoft.Authorization/roleAssignments/{name} "
                f"{canonical_json({'description': description, 'principalId': principal, 'roleDefinitionId': role_id})}"
            )
            if check:
                return Outcome(changed=True, before=False, after=False, operations=(operation,))
            with self._calls(f"create role assignment at {priv.scope}"):
                try:
                    parameters = RoleAssignmentCreateParameters(
                        role_definition_id=role_id, principal_id=principal, description=description
                    )
                    self._client().role_assignments.create(priv.scope, name, parameters)
                except ResourceExistsError as exc:
                    if _error_code(exc) != "RoleAssignmentExists":
                        raise
                    # made meanwhile by someone else (or by an earlier run that died): already true
                    return Outcome(changed=False, before=True, after=True, operations=(operation,))
            return Outcome(changed=True, before=False, after=True, operations=(operation,))

        if marker_driven(action):  # only what still carries the marker: standing access is not jitpol's
            held = [h for h in held if is_marked(h.description)]
        if not held:
            return Outcome(changed=False, before=True, after=True)
        operations = tuple(f"DELETE {h.id}" for h in held)
        if check:
            return Outcome(changed=True, before=False, after=False, operations=operations)
        for h in held:
            with self._calls(f"delete role assignment {h.id}"):
                self._client().role_assignments.delete_by_id(h.id)
        return Outcome(changed=True, before=False, after=True, operations=operations)

    # -- PIM schedule requests --------------------------------------------------------------

    def _apply_pim(
        self, action: Action, priv: AzurePrivilege, guid: str, principal: str, held: list[_Held], check: bool
    ) -> Outcome:
        kind: str
        end: datetime | None = None
        note = ""
        if action.op == "grant":
            if action.until is None:
                raise PermanentTargetError(
                    f"target {self.name}: a PIM assignment needs an end, and the grant action has none"
                )
            end = ceil_second(action.until)  # never earlier than asked
            if held:
                if not self._marked(held, self._schedule_requests(priv.scope)):
                    # standing access (permanent, or someone else's schedule): not jitpol's to end
                    return Outcome(changed=False, before=True, after=True)
                current = _latest(h.expires for h in held)
                if current is not None and abs(current - end) < timedelta(seconds=1):
                    return Outcome(changed=False, before=True, after=True)  # Azure may keep sub-seconds
                if end - self._clock.now() < PIM_MIN_ACTIVE:
                    # PIM sets no end this close: remove now, so access never outlives the grant
                    kind, end, note = "AdminRemove", None, " (the end is under five minutes away)"
                else:
                    kind = "AdminUpdate"  # either way: AdminExtend could only lengthen
            else:
                kind = "AdminAssign"
        else:
            if not held:
                return Outcome(changed=False, before=True, after=True)
            if marker_driven(action) and not self._marked(held, self._schedule_requests(priv.scope)):
                # AdminRemove ends the whole assignment: standing access is not jitpol's to take
                return Outcome(changed=False, before=True, after=True)
            kind = "AdminRemove"
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
                code = _error_code(exc)
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
            role_definition_id=self._role_definition_id(priv, guid),
            principal_id=principal,
            request_type=kind,
            schedule_info=schedule,
            justification=marker(action),  # the ownership marker: fixed text and a grant name
        )

    # -- reading ----------------------------------------------------------------------------

    def _held_by(self, priv: AzurePrivilege, guid: str, principal: str) -> list[_Held]:
        return [
            h for h in self._holders(priv.scope)
            if h.role_guid == guid and h.principal == principal and h.scope.lower() == priv.scope.lower()
        ]

    def _holders(self, scope: str) -> list[_Held]:
        """Every live assignment at or above `scope` (atScope()), all pages."""
        client = self._client()
        out: list[_Held] = []
        if self._pim:
            with self._calls(f"list role assignment schedule instances at {scope}"):
                for inst in client.role_assignment_schedule_instances.list_for_scope(scope, filter="atScope()"):
                    role = _role_guid_of(inst.role_definition_id)
                    if role is None or not inst.principal_id or not inst.scope:
                        continue
                    end = inst.end_date_time
                    out.append(_Held(
                        inst.principal_id.lower(), role, inst.scope,
                        end.astimezone(UTC) if end is not None else None,
                        inst.origin_role_assignment_id or inst.id or "",
                        schedule_id=inst.role_assignment_schedule_id,
                    ))
            return out
        with self._calls(f"list role assignments at {scope}"):
            for ra in client.role_assignments.list_for_scope(scope, filter="atScope()"):
                role = _role_guid_of(ra.role_definition_id)
                if role is None or not ra.principal_id or not ra.scope:
                    continue
                out.append(_Held(ra.principal_id.lower(), role, ra.scope, None, ra.id or "",
                                 description=ra.description))
        return out

    # -- the ownership marker ---------------------------------------------------------------

    def _marked(self, held: list[_Held], schedules: Mapping[str, str]) -> bool:
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
        m = _REQUEST_ID.fullmatch(request_id or "")
        if m is None or not _SCOPE.fullmatch(m["scope"]):
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

    def _required_role_guid(self, priv: AzurePrivilege) -> str:
        guid = self._role_guid(priv)
        if guid is None:
            raise PermanentTargetError(
                f"target {self.name}: no role definition named {priv.role!r} is assignable at {priv.scope}"
            )
        return guid

    def _role_guid(self, priv: AzurePrivilege) -> str | None:
        """The role definition GUID, None for a name that no role definition has; names are
        looked up once per connector."""
        if priv.role_guid is not None:
            return priv.role_guid
        key = (priv.scope.lower(), priv.role.lower())
        if key in self._role_cache:
            return self._role_cache[key]
        escaped = priv.role.replace("'", "''")
        with self._calls(f"look up role {priv.role!r} at {priv.scope}"):
            found = {
                str(d.name).lower()
                for d in self._client().role_definitions.list(priv.scope, filter=f"roleName eq '{escaped}'")
                if d.name and d.role_name and d.role_name.lower() == priv.role.lower()
            }
        if len(found) > 1:
            raise PermanentTargetError(
                f"target {self.name}: role name {priv.role!r} matches {len(found)} role definitions at "
                f"{priv.scope}; name the role by its GUID instead"
            )
        if not found:
            return None
        guid = found.pop()
        self._role_cache[key] = guid
        return guid

    def _role_definition_id(self, priv: AzurePrivilege, guid: str) -> str:
        if _ROLE_ID.fullmatch(priv.role):
            return priv.role
        m = _SUBSCRIPTION_OF.match(priv.scope)
        prefix = f"/subscriptions/{m.group(1)}" if m else ""
        return f"{prefix}/providers/Microsoft.Authorization/roleDefinitions/{guid}"

    # -- plumbing ---------------------------------------------------------------------------

    def _parse_privilege(self, text: str) -> AzurePrivilege:
        try:
            return parse_privilege(text)
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {self.name}: {exc}") from None

    def _credential(self) -> TokenCredential:
        if self._given_credential is not None:
            return self._given_credential
        if self._own_credential is not None:
            cred: TokenCredential = self._own_credential
            return cred
        if self._id_env is not None and self._secret_env is not None:
            from azure.identity import ClientSecretCredential

            client_id, secret = self._env.get(self._id_env), self._env.get(self._secret_env)
            if not client_id or not secret:
                missing = self._id_env if not client_id else self._secret_env
                raise PermanentTargetError(f"target {self.name}: environment variable {missing} is not set")
            self._own_credential = ClientSecretCredential(self._tenant, client_id, secret)
        else:
            from azure.identity import DefaultAzureCredential

            # workload identity (OIDC federation in CI), managed identity, Azure CLI ...
            self._own_credential = DefaultAzureCredential()
        own: TokenCredential = self._own_credential
        return own

    def _client(self) -> AuthorizationManagementClient:
        if self._sdk is not None:
            return self._sdk
        from azure.mgmt.authorization import AuthorizationManagementClient
        from azure.profiles import ProfileDefinition  # type: ignore[import-untyped]

        profile = ProfileDefinition(
            {_PROFILE_TAG: {
                None: RA_API_VERSION,
                "role_assignments": RA_API_VERSION,
                "role_definitions": RA_API_VERSION,
                "role_assignment_schedule_requests": PIM_API_VERSION,
                "role_assignment_schedule_instances": PIM_API_VERSION,
                "role_assignment_schedules": PIM_API_VERSION,
            }},
            "jitpol-azure",
        )
        options: dict[str, Any] = {"connection_timeout": 10, "read_timeout": 60, **self._client_options}
        self._sdk = AuthorizationManagementClient(
            self._credential(),
            self._subscription,
            base_url=self._base_url,
            profile=profile,
            credential_scopes=[f"{self._base_url}/.default"],
            **options,
        )
        return self._sdk

    @contextmanager
    def _calls(self, what: str) -> Iterator[None]:
        """Translate SDK errors raised inside the block (paged lists raise while iterating)."""
        from azure.core.exceptions import (
            AzureError,
            ClientAuthenticationError,
            HttpResponseError,
            ServiceRequestError,
            ServiceResponseError,
        )

        try:
            yield
        except ClientAuthenticationError as exc:  # 401, or the credential could not get a token
            raise PermanentTargetError(
                f"target {self.name}: {what}: authentication failed: {self._describe(exc)}"
            ) from None
        except HttpResponseError as exc:
            # ARM answers 408 for its own timeouts: worth a retry like 429 and 5xx
            raise status_error(exc.status_code or 0, f"target {self.name}: {what}: {self._describe(exc)}",
                               also=(408,)) from None
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise TargetUnavailable(
                f"target {self.name}: {what}: cannot reach Azure Resource Manager at {self._base_url} "
                f"({type(exc).__name__})"
            ) from None
        except AzureError as exc:
            raise PermanentTargetError(f"target {self.name}: {what}: {self._redact(str(exc))}") from None

    def _describe(self, exc: Any) -> str:
        status = getattr(exc, "status_code", None)
        code = _error_code(exc)
        error = getattr(exc, "error", None)
        message = getattr(error, "message", None) or getattr(exc, "reason", None) or str(exc)
        head = " ".join(p for p in (f"HTTP {status}" if status else "", code or "") if p)
        return self._redact(f"{head}: {message}" if head else str(message))

    def _redact(self, text: str) -> str:
        secret = self._env.get(self._secret_env) if self._secret_env else None
        return redacted(text, [secret], pattern=_SECRETS, limit=500)


def _role_guid_of(role_definition_id: str | None) -> str | None:
    m = _ROLE_ID.fullmatch(role_definition_id or "")
    return m.group(1).lower() if m else None


def _latest(ends: Iterable[datetime | None]) -> datetime | None:
    """The latest of some enforced ends; None (no end) is latest of all, and so is the answer
    for no ends (callers ask only about assignments that exist)."""
    known: list[datetime] = []
    for end in ends:
        if end is None:
            return None
        known.append(end)
    return max(known) if known else None


def _error_code(exc: Any) -> str | None:
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    return str(code) if code else None


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
