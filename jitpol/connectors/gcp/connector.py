"""GCP connector: the `idp-elevation` model as IAM policy bindings with an end Google enforces.

    principal   an IAM member in lower case: "user:alice@example.com", "group:sre@example.com",
                "serviceAccount:ci@my-proj.iam.gserviceaccount.com", or a workforce identity
                "principal://iam.googleapis.com/locations/global/workforcePools/<pool>/subject/<id>"
    privilege   canonical JSON of {"resource": ..., "role": ...}:
                resource  projects/<id or number> | folders/<number> | organizations/<number>
                role      roles/<name> or a custom role projects/<id>/roles/<name> |
                          organizations/<number>/roles/<name>; not the basic roles
                          roles/owner, roles/editor, roles/viewer (IAM refuses conditions on them)

A grant adds the member to a CONDITIONAL binding of the role,

    {role, members: [member], condition: {title: "jitpol until <END>",
                                          description: "...",
                                          expression: 'request.time < timestamp("<END>")'}}

with END = action.until in RFC 3339 UTC (rounded up to the second): IAM itself stops honouring
it at END even if jitpol never runs again (the binding stays in the policy until revoked;
revoking removes it). Conditional bindings need policy version 3, so policies are always read
with requestedPolicyVersion 3 and written as version 3.

The condition's title is jitpol's ownership marker: a binding is jitpol's exactly when its title
is "jitpol until END" and its expression is `request.time < timestamp("END")` with the same END
(fixed text and a time jitpol computed; no user text, no secret). Every binding jitpol ever wrote
has that form, so ownership is read from the policy alone, without the ledger.

Every change is a read-modify-write of the whole policy guarded by its etag: a concurrent writer
makes setIamPolicy fail with 409 ABORTED, and the connector re-reads and tries again (at most
MAX_ATTEMPTS times, then TargetUnavailable). Bindings are edited one member at a time; every
other binding, condition, member and the audit configuration are written back exactly as read.

apply_batch (base.BatchApply) makes ONE read-modify-write per resource for all the batch's
changes to it: getIamPolicy, every action's edit in order on the bindings read, one setIamPolicy
(at most two calls per resource; a 409 re-reads and re-applies the whole set). Resources are
written MAX_IN_FLIGHT at a time. Each action gets its own result: unchanged when already true, its
own error when its edit is refused (the others are still written), the write's error for every
action the failed write carried. Calls are paced to Google's quotas (session.py).

    observe   for each privilege, every member of an unconditional binding of the role (expires
              None, owned False: standing access) and of jitpol's conditional bindings (expires
              END, owned True; ends in the past are reported too, so they get cleaned up). A
              member holding the role both ways is standing (owned False, expires None).
              Members under someone else's condition are neither reported nor touched;
              `deleted:` members hold nothing and are skipped.
    grant     already true when the member holds the role unconditionally (standing access: no
              write, no marker, so the grant's end never takes it away) or through jitpol's
              bindings that all end exactly at `until`; otherwise the member leaves every
              jitpol binding of the role and joins the one ending at `until`, whether that is
              later or EARLIER than before (the end follows the grant's live end both ways, and
              no two jitpol bindings with different ends are left for one member and role).
    revoke    removes the member from jitpol's conditional bindings of the role (dropping those
              left empty). Unconditional bindings are standing access jitpol did not create: a
              revoke marked as drift (exclusive resources) removes the member from them as well;
              any other revoke leaves them and fails with PermanentTargetError, because the
              member would keep the role. A revoke of marked access that no grant backs (drift
              with no resource, kit.marker_driven) removes jitpol's bindings only: a standing
              binding found then (added since observe) stays, and is no error.

Settings (the target's entry in jitpol.yaml):
    api_endpoint      optional, e.g. http://127.0.0.1:8085 for a local server; default Google's
    credentials_env   optional NAME of an environment variable holding a credentials JSON (a
                      service account key, or a workload identity federation config) or a path
                      to such a file. Without it, Application Default Credentials are used
                      (GOOGLE_APPLICATION_CREDENTIALS, workload identity / OIDC federation in CI,
                      the metadata server on GCP, gcloud's user credentials).
    max_wait_s        optional seconds, default 300: the most one call waits for Google's quotas
                      (its turn plus throttles); past it the action fails as TargetUnavailable and
                      the next run applies it

Errors: unreachable endpoint, timeouts, HTTP 429/5xx -> TargetUnavailable; 401/403/404 and
everything else -> PermanentTargetError with Google's message. Credentials never appear in
messages. The Google SDK is imported lazily: importing this module (and check_name) costs
nothing. google-cloud-iam is not used: setIamPolicy itself refuses a role that does not exist
or cannot be granted on the resource (400 INVALID_ARGUMENT), which is reported as it is.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from jitpol.connectors.gcp.bindings import holders, plan_grant, plan_revoke
from jitpol.connectors.gcp.names import ANY_MEMBER, MODEL, OPS, GcpPrivilege, check_principal, parse_privilege
from jitpol.connectors.gcp.session import MAX_IN_FLIGHT, RATES, GcpSession
from jitpol.connectors.kit import check_apply, check_model, marker_driven, shown
from jitpol.connectors.pacing import Pacing, max_wait_setting, run_batch
from jitpol.errors import InvalidInput, PermanentTargetError, TargetError, TargetUnavailable
from jitpol.model.assignment import Action, Assignment, Capabilities, Outcome, Scope

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.iam.v1 import policy_pb2  # type: ignore[import-untyped]  # .pyi stubs, no py.typed

MAX_ATTEMPTS = 5  # read-modify-write rounds before giving up on a busy policy
BACKOFF_SECONDS = 0.05  # doubled after every conflict

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class GcpConnector(GcpSession):
    """Connector for GCP IAM policies on projects, folders and organizations (see the module
    docstring). Clients (REST transport) are made on first use, one per resource kind.
    Keyword-only hooks for tests and embedding: `credentials` (google.auth credentials used
    instead of the configured ones), `timeout` (seconds per request) and `pacing` (other rates,
    clock or in-flight cap than Google's documented quotas: connectors.pacing.Pacing)."""

    type: ClassVar[str] = "gcp"
    # the condition IAM evaluates enforces the end; its title marks what jitpol granted
    capabilities: ClassVar[Capabilities] = Capabilities(
        models=frozenset({MODEL}), native_expiry=frozenset({MODEL}), marks=frozenset({MODEL})
    )

    def __init__(
        self,
        name: str,
        settings: Mapping[str, Any],
        env: Mapping[str, str],
        *,
        credentials: Credentials | None = None,
        timeout: float = 30.0,
        pacing: Pacing | None = None,
    ) -> None:
        self.name = name
        endpoint = settings.get("api_endpoint")
        if endpoint is not None and (
            not isinstance(endpoint, str) or not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+/?", endpoint)
        ):
            raise PermanentTargetError(
                f"target {name}: setting api_endpoint must be an http(s) URL without a path, e.g. http://127.0.0.1:8085"
            )
        credentials_env = settings.get("credentials_env")
        if credentials_env is not None and (
            not isinstance(credentials_env, str) or not _ENV_NAME.fullmatch(credentials_env)
        ):
            raise PermanentTargetError(f"target {name}: setting credentials_env must be an environment variable name")
        self._endpoint = endpoint.rstrip("/") if endpoint else None
        self._credentials_env = credentials_env
        self._env = env  # read when credentials are loaded; the key is not kept as text
        self._credentials = credentials
        self._timeout = timeout
        self._clients = {}
        self._pacer = (pacing or Pacing()).pacer(
            f"target {name}", RATES, max_in_flight=MAX_IN_FLIGHT, max_wait_s=max_wait_setting(name, settings),
            provider="Google Cloud",
        )

    # -- Connector protocol -----------------------------------------------------------------

    def observe(self, scope: Scope) -> frozenset[Assignment]:
        """Every member holding each privilege in scope.privileges, with the end IAM enforces and
        whether jitpol's marker is on it. Texts that are no GCP privilege have no holders.
        Read-only."""
        check_model(self.name, scope.model, OPS)
        parsed: dict[str, GcpPrivilege] = {}
        for text in sorted(scope.privileges):
            try:
                parsed[text] = parse_privilege(text)
            except InvalidInput:
                continue  # nothing can hold it, and it is never sent
        policies: dict[str, policy_pb2.Policy] = {}
        out: set[Assignment] = set()
        for text, priv in parsed.items():
            if priv.resource not in policies:
                policies[priv.resource] = self._get(priv.resource)
            for member, held in holders(policies[priv.resource].bindings, priv.role).items():
                out.add(Assignment(self.name, scope.model, member, text, expires=held.end, owned=held.owned))
        return frozenset(out)

    def apply(self, action: Action, *, check: bool = False) -> Outcome:
        """Grant or revoke one member's role on one resource by an etag-guarded read-modify-write
        of the IAM policy, retried on concurrent changes; idempotent. check=True only reads,
        and lists the write it would send."""
        priv, member = self._parse(action)
        until = action.until
        if action.op == "grant" and until is None:
            raise PermanentTargetError(
                f"target {self.name}: a grant needs an end for its IAM condition, and the action has none"
            )

        from google.api_core import exceptions as gexc

        operations: list[str] = []  # failed attempts stay listed: they were sent
        for attempt in range(MAX_ATTEMPTS):
            policy = self._get(priv.resource)
            new_bindings, notes, standing = self._edit(action, policy.bindings, priv, member, until)
            if new_bindings is None:
                if standing:
                    self._refuse_standing(priv, member, removed_ours=False)
                return Outcome(changed=False, before=True, after=True, operations=tuple(operations))
            operation = (
                f"{priv.resource}:setIamPolicy version=3 etag={base64.b64encode(policy.etag).decode()}: "
                + "; ".join(notes)
            )
            if check:
                return Outcome(changed=True, before=False, after=False, operations=(*operations, operation))
            try:
                self._set(priv.resource, policy, new_bindings)
            except gexc.Conflict:  # 409 ABORTED: the etag is stale, someone else wrote first
                operations.append(f"{operation} -> 409 ABORTED (concurrent change), read again")
                if attempt + 1 < MAX_ATTEMPTS:
                    self._pacer.clock.sleep(BACKOFF_SECONDS * 2**attempt)
                continue
            operations.append(operation)
            if standing:
                self._refuse_standing(priv, member, removed_ours=True)
            return Outcome(changed=True, before=False, after=True, operations=tuple(operations))
        raise TargetUnavailable(
            f"target {self.name}: the IAM policy of {priv.resource} changed concurrently {MAX_ATTEMPTS} times in a "
            "row; the next run tries again"
        )

    def apply_batch(self, actions: Sequence[Action]) -> list[Outcome | Exception]:
        """base.BatchApply: one read-modify-write per resource for all its changes in `actions`
        (see the module docstring); one entry per action, in order."""
        results: list[Outcome | Exception | None] = [None] * len(actions)
        by_resource: dict[str, list[_Change]] = {}
        for i, action in enumerate(actions):
            try:
                priv, member = self._parse(action)
                if action.op == "grant" and action.until is None:
                    raise PermanentTargetError(
                        f"target {self.name}: a grant needs an end for its IAM condition, and the action has none"
                    )
            except TargetError as exc:
                results[i] = exc
                continue
            by_resource.setdefault(priv.resource, []).append(_Change(i, action, priv, member))
        for resource in by_resource:
            self._client(resource)  # made here, once, before the threads share them
        groups = list(by_resource.values())
        done = run_batch(self._apply_resource, groups, max_workers=self._pacer.max_in_flight)
        for changes, outcome in zip(groups, done, strict=True):
            for change in changes:
                results[change.index] = outcome if isinstance(outcome, Exception) else change.result
        assert all(r is not None for r in results)
        return [r for r in results if r is not None]

    def close(self) -> None:
        """Close the HTTP sessions. Safe to call twice."""
        self._close_session()

    def _apply_resource(self, changes: list[_Change]) -> None:
        """One read-modify-write of the policy of the changes' resource for all of them, retried
        whole on a conflict; sets each change's result. Raises for a failure of the read or the
        write (every change of this resource then has that failure)."""
        from google.api_core import exceptions as gexc

        resource = changes[0].priv.resource
        for attempt in range(MAX_ATTEMPTS):
            policy = self._get(resource)
            bindings: list[policy_pb2.Binding] = list(policy.bindings)
            written: list[_Change] = []
            for change in changes:
                change.result = None
                new_bindings, notes, standing = self._edit(
                    change.action, bindings, change.priv, change.member, change.action.until
                )
                if new_bindings is None:
                    change.result = (
                        _standing_error(self.name, change.priv, change.member, removed_ours=False) if standing
                        else Outcome(changed=False, before=True, after=True, operations=tuple(change.tried))
                    )
                    continue
                bindings = new_bindings
                change.notes, change.standing = notes, standing
                written.append(change)
            if not written:
                return
            head = f"{resource}:setIamPolicy version=3 etag={base64.b64encode(policy.etag).decode()}: "
            try:
                self._set(resource, policy, bindings)
            except gexc.Conflict:  # 409 ABORTED: someone else wrote first; read again, redo them all
                for change in written:
                    sent = head + "; ".join(change.notes)
                    change.tried.append(f"{sent} -> 409 ABORTED (concurrent change), read again")
                if attempt + 1 < MAX_ATTEMPTS:
                    self._pacer.clock.sleep(BACKOFF_SECONDS * 2**attempt)
                continue
            for change in written:
                operations = (*change.tried, head + "; ".join(change.notes))
                change.result = (
                    _standing_error(self.name, change.priv, change.member, removed_ours=True) if change.standing
                    else Outcome(changed=True, before=False, after=True, operations=operations)
                )
            return
        raise TargetUnavailable(
            f"target {self.name}: the IAM policy of {resource} changed concurrently {MAX_ATTEMPTS} times in a "
            "row; the next run tries again"
        )

    # -- internals --------------------------------------------------------------------------

    def _parse(self, action: Action) -> tuple[GcpPrivilege, str]:
        """The action's privilege and member, after the model/operation check. A grant goes only
        to a member jitpol may grant to; a revoke may name any member IAM stores."""
        a = action.assignment
        check_apply(self.name, a.model, action.op, OPS)
        try:
            priv = parse_privilege(a.privilege)
            if action.op == "grant":
                member = check_principal(a.principal)
            elif not ANY_MEMBER.fullmatch(a.principal):
                raise InvalidInput(f"principal {shown(a.principal)} is not an IAM member")
            else:
                member = a.principal
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {self.name}: {exc}") from None
        return priv, member

    @staticmethod
    def _edit(
        action: Action,
        bindings: Sequence[policy_pb2.Binding],
        priv: GcpPrivilege,
        member: str,
        until: datetime | None,
    ) -> tuple[list[policy_pb2.Binding] | None, list[str], bool]:
        """(the new bindings or None if nothing changes, what changed, whether a standing
        binding the action may not take keeps the member holding the role)."""
        if until is not None and action.op == "grant":
            planned = plan_grant(bindings, priv.role, member, until)
            new_bindings, notes = planned if planned is not None else (None, [])
            return new_bindings, notes, False
        # only drift on an exclusive resource takes standing access; a marker-driven revoke
        # takes jitpol's bindings alone, and a standing binding that appeared since observe
        # is not jitpol's to take nor an error
        new_bindings, notes, standing = plan_revoke(
            bindings, priv.role, member, drift=action.drift and not marker_driven(action)
        )
        return new_bindings, notes, standing and not action.drift

    def _refuse_standing(self, priv: GcpPrivilege, member: str, *, removed_ours: bool) -> NoReturn:
        raise _standing_error(self.name, priv, member, removed_ours=removed_ours)


def _standing_error(target: str, priv: GcpPrivilege, member: str, *, removed_ours: bool) -> PermanentTargetError:
    done = "removed jitpol's conditional binding, but " if removed_ours else ""
    return PermanentTargetError(
        f"target {target}: {done}{member} still holds {priv.role} on {priv.resource} through an "
        "unconditional binding that jitpol did not create; jitpol removes such bindings only as drift on "
        "resources marked exclusive"
    )


@dataclass(eq=False)
class _Change:
    """One action of a batch on its resource, and what became of it."""

    index: int  # in the batch
    action: Action
    priv: GcpPrivilege
    member: str
    notes: list[str] = field(default_factory=list)
    standing: bool = False  # written, but a standing binding keeps the member holding the role
    tried: list[str] = field(default_factory=list)  # writes sent that met a conflict
    result: Outcome | Exception | None = None
