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

    max_wait_s          optional seconds, default 300: the most one request waits for ARM's
                        throttling (its turn, plus the Retry-After of a 429); past it the action
                        fails as TargetUnavailable and the next run applies it

Pacing and batches: every request is paced to ARM's documented token buckets (session.py).
apply_batch (base.BatchApply) lists each scope's assignments ONCE for the whole batch, then
sends the actions' writes concurrently, at most MAX_IN_FLIGHT at a time; one entry per action,
each its own result (a grant that meets RoleAssignmentExists is already true; a delete of what
is gone is done).

Errors: unreachable ARM or a timeout -> TargetUnavailable (also HTTP 408/429/5xx); 401/403 and
everything else -> PermanentTargetError with ARM's error code and message. Tokens and secrets
never appear in messages. The Azure SDK is imported lazily: importing this module (and
check_name) costs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from jitpol.clock import Clock
from jitpol.connectors.azure.holders import Held, latest
from jitpol.connectors.azure.names import GUID, MODEL, OPS, AzurePrivilege, check_principal, parse_privilege
from jitpol.connectors.azure.pim import PimSchedules
from jitpol.connectors.azure.role_assignments import RoleAssignments
from jitpol.connectors.azure.session import MAX_IN_FLIGHT, RATES
from jitpol.connectors.kit import check_apply, check_model
from jitpol.connectors.pacing import Pacing, max_wait_setting, run_batch
from jitpol.errors import InvalidInput, PermanentTargetError, TargetError
from jitpol.model.assignment import Action, Assignment, Capabilities, Outcome, Scope

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

DEFAULT_BASE_URL = "https://management.azure.com"

_TENANT = re.compile(rf"{GUID}|[A-Za-z0-9][A-Za-z0-9.-]{{0,252}}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_PLAIN = Capabilities(models=frozenset({MODEL}), marks=frozenset({MODEL}))
_PIM = Capabilities(models=frozenset({MODEL}), native_expiry=frozenset({MODEL}), marks=frozenset({MODEL}))


class AzureConnector(RoleAssignments, PimSchedules):
    """Connector for one Azure tenant/subscription (see the module docstring for settings).

    observe() lists assignments at each privilege's scope (paged); apply() creates or deletes
    one assignment (or, with pim, submits one schedule request) and is idempotent. One SDK
    client is made on first use. `clock` is the run's time (`--at`): when PIM schedules start
    and what PIM's five-minute floor counts from; the registry hands it. Keyword-only hooks for
    tests and embedding: `credential` (an azure.core TokenCredential used instead of the
    configured one) and `client_options` (extra keyword arguments for the SDK client, e.g.
    connection_verify, retry_total) and `pacing` (other rates, clock or in-flight cap than ARM's
    documented limits: connectors.pacing.Pacing).
    """

    type: ClassVar[str] = "azure"

    def __init__(
        self,
        name: str,
        settings: Mapping[str, Any],
        env: Mapping[str, str],
        *,
        clock: Clock,
        credential: TokenCredential | None = None,
        client_options: Mapping[str, Any] | None = None,
        pacing: Pacing | None = None,
    ) -> None:
        self.name = name
        subscription = settings.get("subscription_id")
        if not isinstance(subscription, str) or not re.fullmatch(GUID, subscription):
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
        self._id_env = id_env
        self._secret_env = secret_env
        self._pim = pim
        self._env = env  # read when the credential is made; secrets are not kept on this object
        self._given_credential = credential
        self._client_options = dict(client_options or {})
        self._clock = clock
        self._sdk = None
        self._own_credential = None
        self._role_cache = {}
        self._request_marks = {}
        self._pacer = (pacing or Pacing()).pacer(
            f"target {name}", RATES, max_in_flight=MAX_IN_FLIGHT, max_wait_s=max_wait_setting(name, settings),
            provider="Azure Resource Manager",
        )

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
        check_model(self.name, scope.model, OPS)
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
                mine: dict[str, list[Held]] = {}
                for h in held:
                    if h.role_guid == guid and h.scope.lower() == priv.scope.lower():
                        mine.setdefault(h.principal, []).append(h)
                if mine and self._pim and schedules is None:
                    schedules = self._schedule_requests(at)
                for principal, hs in mine.items():
                    out.add(Assignment(self.name, scope.model, principal, text,
                                       expires=latest(h.expires for h in hs),
                                       owned=self._marked(hs, schedules or {})))
        return frozenset(out)

    def apply(self, action: Action, *, check: bool = False) -> Outcome:
        """Grant or revoke one role assignment; idempotent. A grant that finds the role held
        without jitpol's marker (standing access) changes nothing. With pim a grant also sets
        the end Azure enforces to exactly action.until, earlier or later. check=True only reads,
        and lists the requests it would send."""
        priv, guid, principal = self._prepare(action)
        held = self._held_by(priv, guid, principal)
        if self._pim:
            return self._apply_pim(action, priv, guid, principal, held, check)
        return self._apply_plain(action, priv, guid, principal, held, check)

    def apply_batch(self, actions: Sequence[Action]) -> list[Outcome | Exception]:
        """base.BatchApply: each scope's assignments listed once for the batch, then every
        action's write, at most MAX_IN_FLIGHT at once; one entry per action, in order."""
        results: list[Outcome | Exception | None] = [None] * len(actions)
        ready: list[tuple[int, Action, AzurePrivilege, str, str]] = []
        for i, action in enumerate(actions):
            try:
                ready.append((i, action, *self._prepare(action)))
            except TargetError as exc:
                results[i] = exc
        listings: dict[str, list[Held] | TargetError] = {}
        for _, _, priv, _, _ in ready:
            if priv.scope.lower() not in listings:
                try:
                    listings[priv.scope.lower()] = self._holders(priv.scope)
                except TargetError as exc:  # every action at this scope meets it
                    listings[priv.scope.lower()] = exc

        def one(item: tuple[int, Action, AzurePrivilege, str, str]) -> Outcome:
            _, action, priv, guid, principal = item
            listing = listings[priv.scope.lower()]
            if isinstance(listing, TargetError):
                raise listing
            held = self._held_by(priv, guid, principal, listing)
            if self._pim:
                return self._apply_pim(action, priv, guid, principal, held, False)
            return self._apply_plain(action, priv, guid, principal, held, False)

        for (i, *_), outcome in zip(ready, run_batch(one, ready, max_workers=self._pacer.max_in_flight),
                                    strict=True):
            results[i] = outcome
        return [r for r in results if r is not None]

    def _prepare(self, action: Action) -> tuple[AzurePrivilege, str, str]:
        """(privilege, role definition GUID, principal) of an action, after the model/operation
        check; PermanentTargetError for what cannot be sent."""
        a = action.assignment
        check_apply(self.name, a.model, action.op, OPS)
        try:
            priv = parse_privilege(a.privilege)
            principal = check_principal(a.principal)
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {self.name}: {exc}") from None
        return priv, self._required_role_guid(priv), principal

    def close(self) -> None:
        """Close the SDK client and any credential this connector made. Safe to call twice."""
        self._close_session()
