"""AWS connector: the `idp-elevation` model in two forms.

Privileges (one entry of a resource role's `grants`, passed as canonical JSON):

    {"account": "123456789012", "permissionSet": "arn:aws:sso:::permissionSet/ssoins-…/ps-…"}
        an IAM Identity Center account assignment (sso-admin)
    {"iamGroup": "prod-admins"}
        membership of an IAM group

Principals (the person's `accounts.aws`, passed as canonical JSON):

    {"userId": "<identity store user id>"}    Identity Center user   (PrincipalType USER)
    {"groupId": "<identity store group id>"}  Identity Center group  (PrincipalType GROUP)
    {"iamUser": "alice"}                      IAM user

A person may carry several keys, e.g. {"iamUser": "alice", "userId": "9067…"}: each privilege
uses the key its kind needs (principal_for), and observe reports exactly that reduced form —
`{"userId": X}` / `{"groupId": X}` for account assignments, `{"iamUser": X}` for IAM groups.

Settings (the target's entry in jitpol.yaml):
    region             required; where the API calls go (Identity Center's home region)
    endpoint_url       optional; one endpoint for every AWS service used (local test servers)
    identity_store_id  optional; discovered with sso-admin ListInstances when absent
    instance_arn       optional; discovered with ListInstances when absent (exactly one instance)
    wait_seconds       optional number > 0, default 60: how long to wait for an asynchronous
                       account assignment request to finish before reporting TargetUnavailable
    revoke_sessions    optional bool, default false: on an IAM group revocation also put the
                       inline "revoke older sessions" deny policy (SESSION_POLICY_NAME) on the user
    page_size          optional int 1..100, default 100: page size for the list calls
    max_wait_s         optional seconds, default 300: the most one call waits for AWS's limits
                       (its turn, plus throttles that outlast botocore's retries); past it the
                       action fails as TargetUnavailable and the next run applies it

Pacing and batches: every request is paced to IAM Identity Center's documented limits
(session.py). apply_batch (base.BatchApply) reads once what its account assignment actions
need (each account and permission set's holders, whether permission sets and principals
exist), then sends the actions concurrently, at most MAX_IN_FLIGHT (10) assignment requests
outstanding; one entry per action, each its own result.

Credentials come from boto3's standard chain (environment, shared profile, web identity / OIDC
in CI, container or instance role). If the `env` mapping given to the connector holds
AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and maybe AWS_SESSION_TOKEN), or AWS_PROFILE, those
are used; no secret is ever part of the settings. boto3 is imported lazily: check_name and the
parsing functions work without it.

Neither form has an end AWS enforces by itself (NATIVE_EXPIRY is False): the reconciler removes
the assignment when the window ends. Sessions already minted inside the window can outlive it
(see docs/targets/aws.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from jitpol.connectors.aws.escrow import SecretsManagerEscrow
from jitpol.connectors.aws.iam_groups import IamGroups
from jitpol.connectors.aws.identity_center import IdentityCenterAssignments, Known, _Instance
from jitpol.connectors.aws.names import (
    _OPS,
    MODEL,
    AccountAssignmentPrivilege,
    IamGroupPrivilege,
    Privilege,
    parse_principal,
    parse_privilege,
)
from jitpol.connectors.aws.session import MAX_IN_FLIGHT, RATES
from jitpol.connectors.kit import check_apply, check_model
from jitpol.connectors.pacing import Pacing, max_wait_setting, run_batch
from jitpol.errors import InvalidInput, PermanentTargetError, TargetError
from jitpol.model.assignment import Action, Assignment, Capabilities, Outcome, Scope
from jitpol.model.canonical import canonical_json

Who = str | tuple[Literal["USER", "GROUP"], str]  # an IAM user name, or an Identity Center principal

DEFAULT_WAIT_SECONDS = 60.0
DEFAULT_PAGE_SIZE = 100  # ListAccountAssignments allows at most 100 per page


class AwsConnector(IdentityCenterAssignments, IamGroups, SecretsManagerEscrow):
    """Connector for one AWS organisation's identity layer (see the module docstring).

    observe() lists account assignments (sso-admin ListAccountAssignments) and IAM group members
    (iam GetGroup), paginated; apply() creates or deletes one assignment (waiting for the
    asynchronous request) or adds/removes one group member. Errors: TargetUnavailable when AWS
    cannot be reached, throttles, fails on its side or a request is still running after
    wait_seconds; PermanentTargetError for everything else (access denied, missing objects,
    a FAILED request with AWS's FailureReason).
    """

    type: ClassVar[str] = "aws"
    capabilities: ClassVar[Capabilities] = Capabilities(
        models=frozenset({MODEL}), native_expiry=frozenset(), ends_sessions=False
    )

    def __init__(
        self, name: str, settings: Mapping[str, Any], env: Mapping[str, str], *, pacing: Pacing | None = None
    ) -> None:
        """`pacing`: a hook for tests and benchmarks (other rates, clock or in-flight cap than
        AWS's documented limits)."""
        self.name = name
        region = settings.get("region")
        if not isinstance(region, str) or not region:
            raise PermanentTargetError(f"target {name}: setting region (e.g. eu-central-1) is required")
        self._region = region
        self._endpoint_url = self._optional_str(settings, "endpoint_url")
        self._instance_arn = self._optional_str(settings, "instance_arn")
        self._identity_store_id = self._optional_str(settings, "identity_store_id")
        wait = settings.get("wait_seconds", DEFAULT_WAIT_SECONDS)
        if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 < wait <= 3600:
            raise PermanentTargetError(f"target {name}: setting wait_seconds must be a number of seconds (0, 3600]")
        self._wait_seconds = float(wait)
        revoke_sessions = settings.get("revoke_sessions", False)
        if not isinstance(revoke_sessions, bool):
            raise PermanentTargetError(f"target {name}: setting revoke_sessions must be true or false")
        self._revoke_sessions = revoke_sessions
        page_size = settings.get("page_size", DEFAULT_PAGE_SIZE)
        if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= 100:
            raise PermanentTargetError(f"target {name}: setting page_size must be an integer from 1 to 100")
        self._page_size = page_size
        # only the standard chain's own variable names, read when the first client is made
        self._credentials = {
            key: env[key]
            for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")
            if env.get(key)
        }
        self._clients: dict[str, Any] = {}  # service name -> boto3 client, made on first use
        self._instance: _Instance | None = None
        self._pacer = (pacing or Pacing()).pacer(
            f"target {name}", RATES, max_in_flight=MAX_IN_FLIGHT, max_wait_s=max_wait_setting(name, settings),
            provider="AWS",
        )

    def _optional_str(self, settings: Mapping[str, Any], key: str) -> str | None:
        value = settings.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise PermanentTargetError(f"target {self.name}: setting {key} must be a non-empty string")
        return value

    # -- Connector protocol -----------------------------------------------------------------

    def observe(self, scope: Scope) -> frozenset[Assignment]:
        """Every holder of each privilege in scope.privileges: principals of the account
        assignment (USER as {"userId"}, GROUP as {"groupId"}) or members of the IAM group (as
        {"iamUser"}). A privilege that does not exist — or cannot, being no valid AWS grant —
        has no holders. expires is always None. Read-only."""
        check_model(self.name, scope.model, _OPS)
        found: set[Assignment] = set()
        for text in sorted(scope.privileges):
            try:
                privilege = parse_privilege(text)
            except InvalidInput:
                continue  # validate rejects such grants; nothing on AWS can hold one
            if isinstance(privilege, IamGroupPrivilege):
                members = self._iam_group_members(privilege.group) or set()
                principals = {canonical_json({"iamUser": user}) for user in members}
            else:
                holders = self._assignment_holders(privilege) or set()
                principals = {
                    canonical_json({"userId" if kind == "USER" else "groupId": ident}) for kind, ident in holders
                }
            found.update(Assignment(self.name, scope.model, p, text) for p in principals)
        return frozenset(found)

    def apply(self, action: Action, *, check: bool = False) -> Outcome:
        """Grant or revoke one assignment or group membership; idempotent. check=True only
        reads, and lists the requests it would send (service, operation, exact parameters)."""
        privilege, who = self._prepare(action)
        if isinstance(who, str):
            return self._apply_iam(action.op == "grant", _group(privilege), who, check)
        return self._apply_assignment(action.op == "grant", _assignment(privilege), *who, check)

    def apply_batch(self, actions: Sequence[Action]) -> list[Outcome | Exception]:
        """base.BatchApply: what the account assignment actions need read once, then every
        action concurrently (MAX_IN_FLIGHT at a time); one entry per action, in order."""
        results: list[Outcome | Exception | None] = [None] * len(actions)
        ready: list[tuple[int, Action, Privilege, Who]] = []
        for i, action in enumerate(actions):
            try:
                ready.append((i, action, *self._prepare(action)))
            except TargetError as exc:
                results[i] = exc
        wanted = [(a.op == "grant", _assignment(p), *who) for _, a, p, who in ready if not isinstance(who, str)]
        known: Known | TargetError | None = None
        if wanted:
            try:
                self._sso()
                self._identitystore()  # the clients made here, once, before the threads share them
                known = self._known(wanted)
            except TargetError as exc:  # every account assignment action of the batch meets it
                known = exc
        if any(isinstance(who, str) for _, _, _, who in ready):
            self._iam()

        def one(item: tuple[int, Action, Privilege, Who]) -> Outcome:
            _, action, privilege, who = item
            grant = action.op == "grant"
            if isinstance(who, str):
                return self._apply_iam(grant, _group(privilege), who, False)
            if isinstance(known, TargetError):
                raise known
            return self._apply_assignment(grant, _assignment(privilege), *who, False, known)

        for (i, *_), outcome in zip(ready, run_batch(one, ready, max_workers=self._pacer.max_in_flight),
                                    strict=True):
            results[i] = outcome
        return [r for r in results if r is not None]

    def _prepare(self, action: Action) -> tuple[Privilege, Who]:
        """(privilege, who: an IAM user name for an IAM group, (Identity Center principal type,
        id) for an account assignment) after the model/operation check; PermanentTargetError for
        what cannot be sent."""
        a = action.assignment
        check_apply(self.name, a.model, action.op, _OPS)
        try:
            privilege = parse_privilege(a.privilege)
            principal = parse_principal(a.principal)
            if isinstance(privilege, IamGroupPrivilege):
                return privilege, principal.iam()
            return privilege, principal.identity_center()
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {self.name}: {exc}") from None

    def close(self) -> None:
        """Drop the clients (boto3 pools connections per client). Safe to call twice."""
        clients, self._clients = self._clients, {}
        for client in clients.values():
            client.close()


def _group(privilege: Privilege) -> str:
    assert isinstance(privilege, IamGroupPrivilege)  # _prepare pairs an IAM user with an IAM group
    return privilege.group


def _assignment(privilege: Privilege) -> AccountAssignmentPrivilege:
    assert isinstance(privilege, AccountAssignmentPrivilege)  # and a principal id with an assignment
    return privilege
