"""Entra connector: the `idp-elevation` model through Microsoft Graph (msgraph-sdk).

Privileges and principals are described in names.py. Settings (the target's entry in jitpol.yaml):

    tenant_id           required, the Entra tenant (GUID or primary domain)
    graph_url           optional Graph root, default https://graph.microsoft.com (https only, no
                        path: jitpol adds /v1.0). National clouds: https://graph.microsoft.us ...
    authority_url       optional sign-in authority for the credential, default azure-identity's
                        (https://login.microsoftonline.com); national clouds
    client_id_env       optional, with client_secret_env: NAMES of the environment variables of an
    client_secret_env   app registration -> azure.identity.ClientSecretCredential. Without them
                        DefaultAzureCredential (environment, workload identity / OIDC federation in
                        CI, managed identity, Azure CLI)
    pim_groups          optional bool, default false. false: plain group membership (members/$ref),
                        which Entra does not end by itself and which carries no marker. true: group
                        membership through PIM for Groups schedule requests, with an end Entra
                        enforces and jitpol's marker in the request's justification
    revoke_sessions     optional bool, default true: when jitpol takes access away it also revokes the
                        user's sign-in sessions (users.py says what that cannot reach)
    page_size           optional int 1..999, default 100 ($top of list calls)

Directory roles always go through role assignment schedule requests (end enforced, marked), so
capabilities are per instance: `native_expiry` and `marks` name the model only when every kind of
privilege carries them, that is with `pim_groups: true`. Without it, directory role assignments
still report their end and owned True/False, and plain memberships report neither (owned None).

A grant that finds the access already held without jitpol's marker (standing access) changes
nothing: no write, no marker, and its end is never moved. A revoke removes the principal's
direct assignment whoever made it (the core only asks for revocations of what jitpol granted,
or of standing access on exclusive resources); a revoke driven by the marker alone
(kit.marker_driven) removes only what still carries the marker.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from jitpol.clock import Clock
from jitpol.connectors.entra.directory_roles import DirectoryRoles
from jitpol.connectors.entra.groups import Groups
from jitpol.connectors.entra.names import (
    MODEL,
    PRIVILEGED_ROLES,
    GroupPrivilege,
    Privilege,
    RolePrivilege,
    check_principal,
    parse_privilege,
)
from jitpol.connectors.entra.pim import ScheduleRequests, latest
from jitpol.connectors.entra.pim_groups import PimGroups
from jitpol.connectors.entra.session import DEFAULT_GRAPH_URL, GraphSession
from jitpol.connectors.entra.users import revoke_sessions
from jitpol.connectors.kit import check_apply, check_model
from jitpol.errors import InvalidInput, PermanentTargetError
from jitpol.model.assignment import Action, Assignment, Capabilities, Outcome, Scope

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

_OPS = {MODEL: ("grant", "revoke")}
_TENANT = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
                     r"|[A-Za-z0-9][A-Za-z0-9.-]{0,252}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLAIN = Capabilities(models=frozenset({MODEL}), ends_sessions=True)
_PIM = Capabilities(models=frozenset({MODEL}), native_expiry=frozenset({MODEL}), marks=frozenset({MODEL}),
                    ends_sessions=True)


def _root_url(name: str, setting: str, value: object) -> str:
    """An https:// URL of a host (and port), no path, query or credentials."""
    parts = urllib.parse.urlsplit(value) if isinstance(value, str) else None
    if (parts is None or parts.scheme != "https" or not parts.hostname or parts.username or parts.password
            or parts.query or parts.fragment or parts.path not in ("", "/")):
        hint = " (without /v1.0: jitpol adds the version)" if isinstance(value, str) and "/v1.0" in value else ""
        raise PermanentTargetError(f"target {name}: setting {setting} must be an https:// URL of a host, no path{hint}")
    return f"https://{parts.netloc}"


class EntraConnector:
    """Connector for one Entra tenant (see the module docstring for settings).

    Keyword-only hooks for tests and embedding: `credential` (an azure-core TokenCredential used
    instead of the configured one) and `client_options` (session.GraphSession options: verify,
    max_retries, retry_delay, timeout, credential_options). `clock` is the run's time (`--at`,
    handed over by the registry): the start of schedules and the "now" of PIM's five-minute
    floor; the connector never reads the wall clock."""

    type: ClassVar[str] = "entra"

    def __init__(
        self,
        name: str,
        settings: Mapping[str, Any],
        env: Mapping[str, str],
        *,
        clock: Clock,
        credential: TokenCredential | None = None,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        tenant = settings.get("tenant_id")
        if not isinstance(tenant, str) or not _TENANT.fullmatch(tenant):
            raise PermanentTargetError(f"target {name}: setting tenant_id (a GUID or the tenant's domain) is required")
        graph_url = _root_url(name, "graph_url", settings.get("graph_url", DEFAULT_GRAPH_URL))
        authority = settings.get("authority_url")
        if authority is not None:
            authority = _root_url(name, "authority_url", authority)
        id_env, secret_env = settings.get("client_id_env"), settings.get("client_secret_env")
        for setting, value in (("client_id_env", id_env), ("client_secret_env", secret_env)):
            if value is not None and (not isinstance(value, str) or not _ENV_NAME.fullmatch(value)):
                raise PermanentTargetError(f"target {name}: setting {setting} must be an environment variable name")
        if (id_env is None) != (secret_env is None):
            raise PermanentTargetError(
                f"target {name}: set both client_id_env and client_secret_env, or neither (then the default "
                "credential chain is used: environment, workload identity, managed identity, Azure CLI)"
            )
        flags: dict[str, bool] = {}
        for setting, default in (("pim_groups", False), ("revoke_sessions", True)):
            value = settings.get(setting, default)
            if not isinstance(value, bool):
                raise PermanentTargetError(f"target {name}: setting {setting} must be true or false")
            flags[setting] = value
        page_size = settings.get("page_size", 100)
        if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= 999:
            raise PermanentTargetError(f"target {name}: setting page_size must be an integer from 1 to 999")
        self._pim_groups = flags["pim_groups"]
        self._revoke_sessions = flags["revoke_sessions"]
        self._session = GraphSession(
            name, graph_url, tenant=tenant, authority=authority, id_env=id_env, secret_env=secret_env, env=env,
            credential=credential, options={"page_size": page_size, **(client_options or {})},
        )
        self._groups = Groups(self._session)
        self._pim = PimGroups(self._session, clock)
        self._roles = DirectoryRoles(self._session, clock)

    # -- Connector protocol -------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        """Per instance: the end and the marker are declared only when every kind carries them
        (pim_groups); sessions are ended unless revoke_sessions is false."""
        caps = _PIM if self._pim_groups else _PLAIN
        if not self._revoke_sessions:
            return Capabilities(caps.models, caps.native_expiry, caps.marks, ends_sessions=False)
        return caps

    def observe(self, scope: Scope) -> frozenset[Assignment]:
        """Every direct holder of each privilege in scope.privileges, with the end Entra enforces
        and whether jitpol's marker is on it (plain memberships: neither). Groups and roles that
        do not exist, and texts that are no Entra privilege, have no holders; a group whose
        members Graph cannot change (dynamic, on-premises synchronised, mail-enabled) is an error
        naming the reason. Read-only."""
        check_model(self.name, scope.model, _OPS)
        out: set[Assignment] = set()
        for text in sorted(scope.privileges):
            try:
                priv = parse_privilege(text)
            except InvalidInput:
                continue  # nothing in Entra can hold a privilege that is not one; it is never sent
            kind: ScheduleRequests
            key: str | tuple[str, str]
            if isinstance(priv, GroupPrivilege):
                if not self._groups.require_manageable(priv.group, must_exist=False):
                    continue
                if not self._pim_groups:
                    out.update(Assignment(self.name, scope.model, p, text) for p in self._groups.members(priv.group))
                    continue
                kind, key, label = self._pim, priv.group, f"group {priv.group}"
            else:
                role = self._roles.role_id(priv, must_exist=False)
                if role is None:
                    continue
                kind, key, label = self._roles, (role, priv.scope), _role_label(priv)
            holders = kind.holders(key, label)
            schedules = kind.creating_requests(key, label) if holders else {}
            for principal, held in holders.items():
                out.add(Assignment(self.name, scope.model, principal, text, expires=latest(h.expires for h in held),
                                   owned=kind.marked(key, label, held, schedules)))
        return frozenset(out)

    def apply(self, action: Action, *, check: bool = False) -> Outcome:
        """Grant or revoke one membership or role assignment; idempotent. Schedule requests set
        the end Entra enforces to exactly action.until, earlier or later. When access is taken
        away the user's sign-in sessions are revoked too (revoke_sessions). check=True only
        reads, and lists the requests it would send."""
        a = action.assignment
        check_apply(self.name, a.model, action.op, _OPS)
        try:
            priv: Privilege = parse_privilege(a.privilege)
            principal = check_principal(a.principal)
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {self.name}: {exc}") from None
        if isinstance(priv, GroupPrivilege):
            if self._pim_groups:
                if not self._groups.require_manageable(priv.group, must_exist=action.op == "grant"):
                    return Outcome(changed=False, before=True, after=True)
                outcome, removed = self._pim.apply(action, priv.group, f"group {priv.group}", principal, check)
            else:
                outcome, removed = self._groups.apply(action, priv.group, principal, check)
        else:
            role = self._roles.role_id(priv, must_exist=action.op == "grant")
            if role is None:
                return Outcome(changed=False, before=True, after=True)  # no such role: nobody holds it
            if action.op == "grant" and role in PRIVILEGED_ROLES and not action.privileged_allowed:
                raise PermanentTargetError(
                    f"target {self.name}: directory role {PRIVILEGED_ROLES[role]} can take over the tenant; "
                    f"resource {action.resource or '?'} must say spec.allowPrivileged: true to hand it out"
                )
            outcome, removed = self._roles.apply(action, (role, priv.scope), _role_label(priv), principal, check)
        takes_away = removed or (check and outcome.changed and _removes(outcome))
        if takes_away and self._revoke_sessions:
            note = revoke_sessions(self._session, principal, check=check)
            return Outcome(outcome.changed, outcome.before, outcome.after, (*outcome.operations, note))
        return outcome

    def close(self) -> None:
        """Close the HTTP pool, the event loop and any credential this connector made. Safe to
        call twice."""
        self._session.close()


def _role_label(priv: RolePrivilege) -> str:
    return f"{priv.role} at {priv.scope}"


def _removes(outcome: Outcome) -> bool:
    """Does a check-mode outcome take access away (a removal it would send)?"""
    return any(op.startswith("DELETE ") or '"action":"adminRemove"' in op for op in outcome.operations)
