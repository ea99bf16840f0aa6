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

Errors: unreachable endpoint, timeouts, HTTP 429/5xx -> TargetUnavailable; 401/403/404 and
everything else -> PermanentTargetError with Google's message. Credentials never appear in
messages. The Google SDK is imported lazily: importing this module (and check_name) costs
nothing. google-cloud-iam is not used: setIamPolicy itself refuses a role that does not exist
or cannot be granted on the resource (400 INVALID_ARGUMENT), which is reported as it is.
"""

from __future__ import annotations

import base64
import builtins
import json
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

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

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.iam.v1 import policy_pb2  # type: ignore[import-untyped]  # .pyi stubs, no py.typed

MODEL = "idp-elevation"
MAX_ATTEMPTS = 5  # read-modify-write rounds before giving up on a busy policy
BACKOFF_SECONDS = 0.05  # doubled after every conflict
CONDITION_TITLE_PREFIX = "jitpol"
CONDITION_DESCRIPTION = "Just-in-time access granted by jitpol; IAM stops honouring it at the time in the expression."
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
# IAM refuses conditions on these, so they cannot be granted with an end
BASIC_ROLES = frozenset({"roles/owner", "roles/editor", "roles/viewer"})

_PROJECT = r"(?:[a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]{1,20})"
_RESOURCE = re.compile(rf"projects/{_PROJECT}|folders/[0-9]{{1,20}}|organizations/[0-9]{{1,20}}")
_ROLE = re.compile(
    rf"roles/[A-Za-z0-9_.]{{1,128}}|(?:projects/{_PROJECT}|organizations/[0-9]{{1,20}})/roles/[A-Za-z0-9_.]{{3,64}}"
)
_EMAIL = r"[a-z0-9._%+-]{1,64}@[a-z0-9-]{1,63}(?:\.[a-z0-9-]{1,63})+"
_PERSON = re.compile(
    rf"(?:user|group|serviceAccount):{_EMAIL}|principal://iam\.googleapis\.com/[A-Za-z0-9._/@:-]{{1,400}}"
)
# any member IAM stores: what a drift revoke may have to remove (never handed out by a grant)
_ANY_MEMBER = re.compile(
    r"(?:user|group|serviceAccount):[^\s@\"']{1,64}@[A-Za-z0-9.-]{1,253}|domain:[A-Za-z0-9.-]{1,253}"
    r"|allUsers|allAuthenticatedUsers|principal(?:Set)?://iam\.googleapis\.com/[A-Za-z0-9._/@:*-]{1,400}"
)
_EXPRESSION = re.compile(
    r'request\.time < timestamp\("(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z)"\)'
)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SECRETS = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+|ya29\.[A-Za-z0-9._-]+|-----BEGIN [A-Z ]+-----[^-]*")

_PRIVILEGE_FORM = (
    'a GCP privilege is a mapping {resource: "projects/<id>" | "folders/<number>" | "organizations/<number>", '
    'role: "roles/<name>" | "projects/<id>/roles/<name>" | "organizations/<number>/roles/<name>"}'
)
_PRINCIPAL_FORM = (
    'a GCP principal is an IAM member in lower case: "user:alice@example.com", "group:team@example.com", '
    '"serviceAccount:name@project.iam.gserviceaccount.com" or "principal://iam.googleapis.com/..."'
)


_OPS = {MODEL: ("grant", "revoke")}


@dataclass(frozen=True, slots=True)
class GcpPrivilege:
    resource: str
    role: str


def parse_privilege(value: object) -> GcpPrivilege:
    """The privilege as a mapping, or its canonical JSON text. Raises InvalidInput naming the
    allowed form."""
    data = mapping_entry(value, frozenset({"resource", "role"}), _PRIVILEGE_FORM)
    resource, role = data["resource"], data["role"]
    if not isinstance(resource, str) or not _RESOURCE.fullmatch(resource):
        raise InvalidInput(f"privilege resource {shown(resource)} is not valid: {_PRIVILEGE_FORM}")
    if not isinstance(role, str) or not _ROLE.fullmatch(role):
        raise InvalidInput(f"privilege role {shown(role)} is not valid: {_PRIVILEGE_FORM}")
    if role in BASIC_ROLES:
        raise InvalidInput(
            f"privilege role {role} is a basic role: IAM conditions (which end jitpol's access) cannot be "
            "used with roles/owner, roles/editor or roles/viewer; grant predefined or custom roles instead"
        )
    return GcpPrivilege(resource, role)


def check_principal(value: object) -> str:
    """A member jitpol may grant to, or InvalidInput."""
    if not isinstance(value, str) or not _PERSON.fullmatch(value):
        raise InvalidInput(f"principal {shown(value)} is not valid: {_PRINCIPAL_FORM}")
    return value


# the policy loader's hook (the registry record's name_check): a person's account, or a grants entry
check_name = name_check(check_principal, parse_privilege)


def condition_title(end_text: str) -> str:
    """jitpol's ownership marker: the title of the condition that ends at `end_text`."""
    return f"{CONDITION_TITLE_PREFIX} until {end_text}"


def condition_end(expression: str, title: str) -> datetime | None:
    """The END of a condition jitpol wrote (expression exactly `request.time < timestamp("END")`
    and title exactly "jitpol until END", the same END), else None: someone else's condition."""
    m = _EXPRESSION.fullmatch(expression)
    if m is None or title != condition_title(m.group(1)):
        return None
    return datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).astimezone(UTC)


def rfc3339(t: datetime) -> str:
    """`t` in UTC as RFC 3339 with a Z, rounded UP to the second: an end that reads back earlier
    than asked would be 'extended' again on every run."""
    return ceil_second(t).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- policy edits (pure: protobuf values in, new binding lists out) ------------------------------


def _end_of(binding: policy_pb2.Binding) -> datetime | None:
    if not binding.HasField("condition"):
        return None
    return condition_end(binding.condition.expression, binding.condition.title)


def _is_ours(binding: policy_pb2.Binding) -> bool:
    return _end_of(binding) is not None


def _without(binding: policy_pb2.Binding, member: str) -> policy_pb2.Binding | None:
    """A copy of `binding` without `member`; None when nobody would be left."""
    from google.iam.v1 import policy_pb2

    keep = [m for m in binding.members if m != member]
    if not keep:
        return None
    out = policy_pb2.Binding()
    out.CopyFrom(binding)
    del out.members[:]
    out.members.extend(keep)
    return out


def _describe(binding: policy_pb2.Binding) -> str:
    cond = f" if {binding.condition.expression}" if binding.HasField("condition") else ""
    return f"{binding.role}{cond}"


def plan_grant(
    bindings: Sequence[policy_pb2.Binding], role: str, member: str, until: datetime
) -> tuple[list[policy_pb2.Binding], list[str]] | None:
    """The bindings after granting `role` to `member` until exactly `until` (and what changed),
    or None if nothing changes: the member holds the role unconditionally (standing access,
    left unmarked and untouched), or only through jitpol's bindings ending exactly then. An
    earlier or later jitpol end is moved to `until` either way."""
    from google.iam.v1 import policy_pb2
    from google.type import expr_pb2  # type: ignore[import-untyped]

    end_text = rfc3339(until)
    end = datetime.fromisoformat(end_text.replace("Z", "+00:00"))
    ends: set[datetime] = set()
    for b in bindings:
        if b.role != role or member not in b.members:
            continue
        if not b.HasField("condition"):
            return None  # standing access with no end: nothing to add, and no marker
        ours = _end_of(b)
        if ours is not None:
            ends.add(ours)
    if ends == {end}:
        return None

    out: list[policy_pb2.Binding] = []
    notes: list[str] = []
    for b in bindings:
        if b.role == role and member in b.members and _is_ours(b):
            smaller = _without(b, member)
            notes.append(f"remove {member} from {_describe(b)}")
            if smaller is not None:
                out.append(smaller)
            continue
        out.append(b)
    condition = expr_pb2.Expr(
        expression=f'request.time < timestamp("{end_text}")',
        title=condition_title(end_text),
        description=CONDITION_DESCRIPTION,
    )
    for i, b in enumerate(out):
        if b.role == role and b.HasField("condition") and b.condition == condition:
            joined = policy_pb2.Binding()
            joined.CopyFrom(b)
            joined.members.append(member)
            out[i] = joined
            break
    else:
        out.append(policy_pb2.Binding(role=role, members=[member], condition=condition))
    notes.append(f"add {member} to {role} if {condition.expression}")
    return out, notes


def plan_revoke(
    bindings: Sequence[policy_pb2.Binding], role: str, member: str, *, drift: bool
) -> tuple[list[policy_pb2.Binding] | None, list[str], bool]:
    """(new bindings or None if nothing changes, what changed, whether the member still holds
    the role unconditionally afterwards). Only jitpol's conditional bindings are edited, plus
    unconditional ones when `drift`; other conditions are never touched."""
    out: list[policy_pb2.Binding] = []
    notes: list[str] = []
    standing = False
    for b in bindings:
        if b.role != role or member not in b.members:
            out.append(b)
            continue
        conditional = b.HasField("condition")
        if _is_ours(b) or (drift and not conditional):
            smaller = _without(b, member)
            notes.append(f"remove {member} from {_describe(b)}")
            if smaller is not None:
                out.append(smaller)
            continue
        standing = standing or not conditional
        out.append(b)
    return (out if notes else None), notes, standing


@dataclass(frozen=True, slots=True)
class Holding:
    """How one member holds a role: the end IAM enforces (None: unconditional) and whether it is
    jitpol's alone (True: only through bindings carrying jitpol's marker; False: standing)."""

    end: datetime | None
    owned: bool


def holders(bindings: Sequence[policy_pb2.Binding], role: str) -> dict[str, Holding]:
    """member -> Holding for everyone holding `role` by an unconditional binding or one of
    jitpol's conditions. Unconditional access wins: such a member is standing (owned False,
    end None), so no marker-driven revoke can reach it."""
    found: dict[str, list[datetime | None]] = {}
    for b in bindings:
        if b.role != role:
            continue
        end: datetime | None = None
        if b.HasField("condition"):
            end = _end_of(b)
            if end is None:
                continue  # someone else's condition: not ours to judge or to touch
        for m in b.members:
            if not m.startswith("deleted:"):
                found.setdefault(m, []).append(end)
    out: dict[str, Holding] = {}
    for m, ends in found.items():
        known = [e for e in ends if e is not None]
        out[m] = Holding(None, False) if len(known) < len(ends) else Holding(max(known), True)
    return out


class GcpConnector:
    """Connector for GCP IAM policies on projects, folders and organizations (see the module
    docstring). Clients (REST transport) are made on first use, one per resource kind.
    Keyword-only hooks for tests and embedding: `credentials` (google.auth credentials used
    instead of the configured ones) and `timeout` (seconds per request)."""

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
        self._endpoint: str | None = endpoint.rstrip("/") if endpoint else None
        self._credentials_env: str | None = credentials_env
        self._env = env  # read when credentials are loaded; the key is not kept as text
        self._credentials = credentials
        self._timeout = timeout
        self._clients: dict[str, Any] = {}

    # -- Connector protocol -----------------------------------------------------------------

    def observe(self, scope: Scope) -> frozenset[Assignment]:
        """Every member holding each privilege in scope.privileges, with the end IAM enforces and
        whether jitpol's marker is on it. Texts that are no GCP privilege have no holders.
        Read-only."""
        check_model(self.name, scope.model, _OPS)
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
        a = action.assignment
        check_apply(self.name, a.model, action.op, _OPS)
        try:
            priv = parse_privilege(a.privilege)
            if action.op == "grant":
                member = check_principal(a.principal)
            elif not _ANY_MEMBER.fullmatch(a.principal):
                raise InvalidInput(f"principal {shown(a.principal)} is not an IAM member")
            else:
                member = a.principal
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {self.name}: {exc}") from None
        until = action.until
        if action.op == "grant" and until is None:
            raise PermanentTargetError(
                f"target {self.name}: a grant needs an end for its IAM condition, and the action has none"
            )

        from google.api_core import exceptions as gexc

        operations: list[str] = []  # failed attempts stay listed: they were sent
        for attempt in range(MAX_ATTEMPTS):
            policy = self._get(priv.resource)
            standing = False
            if until is not None and action.op == "grant":
                planned = plan_grant(policy.bindings, priv.role, member, until)
                new_bindings, notes = planned if planned is not None else (None, [])
            else:
                # only drift on an exclusive resource takes standing access; a marker-driven revoke
                # takes jitpol's bindings alone, and a standing binding that appeared since observe
                # is not jitpol's to take nor an error
                new_bindings, notes, standing = plan_revoke(
                    policy.bindings, priv.role, member, drift=action.drift and not marker_driven(action)
                )
                standing = standing and not action.drift
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
                    time.sleep(BACKOFF_SECONDS * 2**attempt)
                continue
            operations.append(operation)
            if standing:
                self._refuse_standing(priv, member, removed_ours=True)
            return Outcome(changed=True, before=False, after=True, operations=tuple(operations))
        raise TargetUnavailable(
            f"target {self.name}: the IAM policy of {priv.resource} changed concurrently {MAX_ATTEMPTS} times in a "
            "row; the next run tries again"
        )

    def close(self) -> None:
        """Close the HTTP sessions. Safe to call twice."""
        clients, self._clients = self._clients, {}
        for client in clients.values():
            client.transport.close()

    # -- internals --------------------------------------------------------------------------

    def _refuse_standing(self, priv: GcpPrivilege, member: str, *, removed_ours: bool) -> NoReturn:
        done = "removed jitpol's conditional binding, but " if removed_ours else ""
        raise PermanentTargetError(
            f"target {self.name}: {done}{member} still holds {priv.role} on {priv.resource} through an "
            "unconditional binding that jitpol did not create; jitpol removes such bindings only as drift on "
            "resources marked exclusive"
        )

    def _get(self, resource: str) -> policy_pb2.Policy:
        client = self._client(resource)
        with self._calls(f"getIamPolicy {resource}"):
            policy: policy_pb2.Policy = client.get_iam_policy(
                request={"resource": resource, "options": {"requested_policy_version": 3}},
                retry=None,
                timeout=self._timeout,
            )
        return policy

    def _set(self, resource: str, current: policy_pb2.Policy, bindings: list[policy_pb2.Binding]) -> None:
        """Write `current` (etag, audit configs and all) with its bindings replaced, as version 3.
        Conflict (409) propagates untranslated: the caller retries."""
        from google.api_core import exceptions as gexc
        from google.iam.v1 import policy_pb2

        new = policy_pb2.Policy()
        new.CopyFrom(current)
        del new.bindings[:]
        new.bindings.extend(bindings)
        new.version = 3
        client = self._client(resource)
        with self._calls(f"setIamPolicy {resource}", passthrough=(gexc.Conflict,)):
            client.set_iam_policy(request={"resource": resource, "policy": new}, retry=None, timeout=self._timeout)

    def _client(self, resource: str) -> Any:
        kind = resource.split("/", 1)[0]
        if kind in self._clients:
            return self._clients[kind]
        from google.cloud import resourcemanager_v3

        factory: Any = {
            "projects": resourcemanager_v3.ProjectsClient,
            "folders": resourcemanager_v3.FoldersClient,
            "organizations": resourcemanager_v3.OrganizationsClient,
        }[kind]
        options = {"api_endpoint": self._endpoint} if self._endpoint else None
        client = factory(credentials=self._load_credentials(), transport="rest", client_options=options)
        self._clients[kind] = client
        return client

    def _load_credentials(self) -> Credentials:
        if self._credentials is not None:
            return self._credentials
        import google.auth
        from google.auth import exceptions as aexc

        env = self._credentials_env
        if env is None:
            try:
                creds, _ = google.auth.default(scopes=SCOPES)
            except aexc.DefaultCredentialsError as exc:
                raise PermanentTargetError(
                    f"target {self.name}: no Google credentials: set credentials_env, or configure Application "
                    f"Default Credentials (workload identity in CI): {self._redact(str(exc))}"
                ) from None
        else:
            text = self._env.get(env)
            if not text:
                raise PermanentTargetError(
                    f"target {self.name}: environment variable {env} (credentials_env) is not set"
                )
            if not text.lstrip().startswith("{"):  # a path to the JSON file
                try:
                    with open(text.strip(), encoding="utf-8") as f:
                        text = f.read()
                except OSError as exc:
                    raise PermanentTargetError(
                        f"target {self.name}: the credentials file named in {env} cannot be read "
                        f"({type(exc).__name__})"
                    ) from None
            try:
                info = json.loads(text)
            except ValueError:
                raise PermanentTargetError(
                    f"target {self.name}: {env} does not hold (or name a file of) valid JSON credentials"
                ) from None
            creds = self._credentials_from_info(info, env)
        self._credentials = creds
        return creds

    def _credentials_from_info(self, info: object, env: str) -> Credentials:
        """Credentials of the one kind the JSON says it is. Type-specific loaders on purpose: the
        generic loader would also run an executable named in an external account config."""
        from google.auth import exceptions as aexc

        kind = info.get("type") if isinstance(info, dict) else None
        source = info.get("credential_source") if isinstance(info, dict) else None
        try:
            if kind == "service_account":
                from google.oauth2 import service_account

                sa: Credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                    info, scopes=SCOPES
                )
                return sa
            if kind == "external_account" and isinstance(source, dict) and "executable" not in source:
                # workload identity federation: an OIDC token from a file or URL (CI), or AWS
                if "environment_id" in source:
                    from google.auth import aws

                    fed: Credentials = aws.Credentials.from_info(info, scopes=SCOPES)  # type: ignore[no-untyped-call]
                else:
                    from google.auth import identity_pool

                    fed = identity_pool.Credentials.from_info(info, scopes=SCOPES)  # type: ignore[no-untyped-call]
                return fed
            if kind == "authorized_user":
                from google.oauth2 import credentials as user_credentials

                user: Credentials = user_credentials.Credentials.from_authorized_user_info(  # type: ignore[no-untyped-call]
                    info, scopes=list(SCOPES)
                )
                return user
        except (aexc.GoogleAuthError, ValueError, TypeError, KeyError):
            # the library's message may quote the key material: say only what kind it was
            raise PermanentTargetError(
                f"target {self.name}: the credentials in {env} (type {kind!r}) could not be loaded"
            ) from None
        raise PermanentTargetError(
            f"target {self.name}: the credentials in {env} must be a service_account key, an external_account "
            "(workload identity federation, not executable-sourced) or an authorized_user JSON"
        )

    @contextmanager
    def _calls(self, what: str, passthrough: tuple[builtins.type[BaseException], ...] = ()) -> Iterator[None]:
        """Translate SDK, auth and transport errors raised inside the block."""
        import requests
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as aexc

        try:
            yield
        except passthrough:
            raise
        except gexc.RetryError as exc:
            raise TargetUnavailable(f"target {self.name}: {what}: {self._message(exc)}") from None
        except gexc.GoogleAPICallError as exc:  # 429, 5xx: temporary; 400, 401, 403, 404, 409, ...: not
            raise status_error(int(exc.code or 0), f"target {self.name}: {what}: {self._message(exc)}") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout, aexc.TransportError) as exc:
            where = self._endpoint or "Google Cloud"
            raise TargetUnavailable(
                f"target {self.name}: {what}: cannot reach {where} ({type(exc).__name__})"
            ) from None
        except aexc.GoogleAuthError as exc:  # refreshing the token failed: bad or revoked credentials
            raise PermanentTargetError(
                f"target {self.name}: {what}: authentication failed: {self._redact(str(exc))}"
            ) from None

    def _message(self, exc: Any) -> str:
        code = getattr(exc, "code", None)
        status = getattr(getattr(exc, "grpc_status_code", None), "name", None)
        message = str(getattr(exc, "message", "") or exc)
        message = re.sub(r"^[A-Z]+ \S+: ", "", message)  # the REST layer prefixes method and URL
        head = " ".join(p for p in (f"HTTP {code}" if code else "", status or "") if p)
        return self._redact(f"{head}: {message}" if head else message)

    def _redact(self, text: str) -> str:
        return redacted(text, pattern=_SECRETS, limit=500)
