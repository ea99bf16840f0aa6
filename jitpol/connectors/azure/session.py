"""How the Azure connector talks to Azure Resource Manager: the credential (the one given, a
service principal's client secret, or DefaultAzureCredential), the one AuthorizationManagementClient
with its API versions pinned, and the SDK's errors mapped to TargetUnavailable /
PermanentTargetError with tokens and secrets cut out. Every HTTP request the connector sends goes
through `_client()`: the place for anything that shapes them (timeouts, retries), and through
its pipeline's pacing policy (`_pacing_policy`, after the SDK's retry policy, so every attempt is
paced) to Azure Resource Manager's documented limits:

    Request limits and throttling
    (https://learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling):
    a token bucket per subscription, service principal and operation type: reads bucket 250
    refilled at 25 per second, writes 200 at 10 per second, deletes 200 at 10 per second. The
    pacer keeps the same refill rates with buckets 10 tokens smaller (network jitter never
    meets ARM's bucket empty). A throttled request is answered 429 with Retry-After (seconds):
    the pacer waits that long and sends it again, within the target's max_wait_s.

The Azure SDK is imported lazily."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from jitpol.connectors.kit import redacted, status_error
from jitpol.connectors.pacing import Pacer, Rate, Throttled, retry_after
from jitpol.errors import PermanentTargetError, TargetUnavailable

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.mgmt.authorization import AuthorizationManagementClient

# API versions pinned to the model classes the connector imports (the SDK's defaults may move on)
RA_API_VERSION = "2022-04-01"
PIM_API_VERSION = "2020-10-01"
_PROFILE_TAG = "azure.mgmt.authorization.AuthorizationManagementClient"

# ARM's documented token buckets (module docstring), 10 tokens of margin
RATES = {"read": Rate(25, burst=240), "write": Rate(10, burst=190), "delete": Rate(10, burst=190)}
MAX_IN_FLIGHT = 10  # requests at once (ARM documents no concurrent limit: a modest share)

# things that look like credentials, cut out of any text that reaches a message
_SECRETS = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


class AzureSession:
    """The SDK client, the credential and the error mapping every part of AzureConnector uses."""

    # set by AzureConnector.__init__ from the target's settings and hooks
    name: str
    _subscription: str
    _tenant: str
    _base_url: str
    _id_env: str | None
    _secret_env: str | None
    _env: Mapping[str, str]  # read when the credential is made; secrets are not kept on the object
    _given_credential: TokenCredential | None
    _client_options: dict[str, Any]
    _sdk: AuthorizationManagementClient | None
    _own_credential: Any
    _pacer: Pacer

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
        options: dict[str, Any] = {
            "connection_timeout": 10, "read_timeout": 60, "per_retry_policies": [_pacing_policy(self._pacer)],
            **self._client_options,
        }
        self._sdk = AuthorizationManagementClient(
            self._credential(),
            self._subscription,
            base_url=self._base_url,
            profile=profile,
            credential_scopes=[f"{self._base_url}/.default"],
            **options,
        )
        return self._sdk

    def _close_session(self) -> None:
        """Close the SDK client and any credential this connector made. Safe to call twice."""
        sdk, self._sdk = self._sdk, None
        if sdk is not None:
            sdk.close()  # type: ignore[no-untyped-call]  # the multi-API client is not annotated
        cred, self._own_credential = self._own_credential, None
        if cred is not None:
            cred.close()

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
        code = error_code(exc)
        error = getattr(exc, "error", None)
        message = getattr(error, "message", None) or getattr(exc, "reason", None) or str(exc)
        head = " ".join(p for p in (f"HTTP {status}" if status else "", code or "") if p)
        return self._redact(f"{head}: {message}" if head else str(message))

    def _redact(self, text: str) -> str:
        secret = self._env.get(self._secret_env) if self._secret_env else None
        return redacted(text, [secret], pattern=_SECRETS, limit=500)


def _pacing_policy(pacer: Pacer) -> Any:
    """An azure-core pipeline policy sending each request through `pacer`: GET/HEAD as "read",
    DELETE as "delete", the rest as "write"; a 429 is a Throttled with its Retry-After."""
    from azure.core.pipeline.policies import HTTPPolicy

    class PacingPolicy(HTTPPolicy):  # type: ignore[type-arg]  # generic over request/response types
        def send(self, request: Any) -> Any:
            method = str(request.http_request.method).upper()
            kind = "read" if method in ("GET", "HEAD") else "delete" if method == "DELETE" else "write"
            path = urllib.parse.urlsplit(str(request.http_request.url)).path

            def once() -> Any:
                response = self.next.send(request)
                http = response.http_response
                if http.status_code == 429:
                    raise Throttled(retry_after(http.headers), "HTTP 429")
                return response

            return pacer.call(kind, once, what=f"{method} {path}")

    return PacingPolicy()


def error_code(exc: Any) -> str | None:
    """ARM's error code (e.g. RoleAssignmentExists) of an SDK error; None when it has none."""
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    return str(code) if code else None
