"""How the GCP connector talks to Google: one Resource Manager client per resource kind
(projects, folders, organizations; REST transport, made on first use), getIamPolicy and
setIamPolicy as version 3, and the SDK's, auth and transport errors mapped to TargetUnavailable /
PermanentTargetError with credentials cut out. Every HTTP request goes through `_client()`: the
place for anything that shapes them (endpoint, timeouts), and every call through the pacer
(`_pacer`, connectors.pacing) paced to Google's documented quotas:

    IAM v1 API (https://cloud.google.com/iam/quotas, "Default quotas"): read requests (getting an
    allow policy) 6,000 per project per minute, write requests (updating an allow policy) 600 per
    project per minute; Google enforces quotas per 60-second interval
    (https://cloud.google.com/docs/quotas/overview). The project is the caller's quota project, so
    one bucket per target, not per resource. The pacer refills at (limit - 2 x burst) per
    minute with that burst: no 60-second window sees more than the limit, even with calls that
    leave late and bunch up with the next ones.

A 429 (RESOURCE_EXHAUSTED) is a throttle the pacer waits out (Google sends no Retry-After as a
rule: backoff from 1 s) within the target's max_wait_s. The SDK is imported lazily."""

from __future__ import annotations

import builtins
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from jitpol.connectors.gcp.credentials import load_credentials, redact
from jitpol.connectors.kit import status_error
from jitpol.connectors.pacing import Pacer, Rate, Throttled, retry_after
from jitpol.errors import PermanentTargetError, TargetUnavailable

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.iam.v1 import policy_pb2  # type: ignore[import-untyped]  # .pyi stubs, no py.typed


READS_PER_MINUTE = 6000  # IAM v1 API read requests per project per minute
WRITES_PER_MINUTE = 600  # IAM v1 API write requests per project per minute
MAX_IN_FLIGHT = 8  # resources read-modify-written at once by apply_batch
RATES = {
    "read": Rate.per_minute(READS_PER_MINUTE - 200, burst=100),
    "write": Rate.per_minute(WRITES_PER_MINUTE - 20, burst=10),
}


class GcpSession:
    """The clients, policy reads and writes, and error mapping every part of GcpConnector uses."""

    # set by GcpConnector.__init__ from the target's settings and hooks
    name: str
    _endpoint: str | None
    _credentials_env: str | None
    _env: Mapping[str, str]  # read when credentials are loaded; the key is not kept as text
    _credentials: Credentials | None
    _timeout: float
    _clients: dict[str, Any]  # resource kind -> client
    _pacer: Pacer

    def _get(self, resource: str) -> policy_pb2.Policy:
        client = self._client(resource)
        what = f"getIamPolicy {resource}"

        def send() -> policy_pb2.Policy:
            with self._calls(what):
                policy: policy_pb2.Policy = client.get_iam_policy(
                    request={"resource": resource, "options": {"requested_policy_version": 3}},
                    retry=None,
                    timeout=self._timeout,
                )
            return policy

        return self._pacer.call("read", send, what=what)

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
        what = f"setIamPolicy {resource}"

        def send() -> None:
            with self._calls(what, passthrough=(gexc.Conflict,)):
                client.set_iam_policy(request={"resource": resource, "policy": new}, retry=None, timeout=self._timeout)

        self._pacer.call("write", send, what=what)

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
        if self._credentials is None:
            self._credentials = load_credentials(self.name, self._credentials_env, self._env)
        return self._credentials

    def _close_session(self) -> None:
        """Close the HTTP sessions. Safe to call twice."""
        clients, self._clients = self._clients, {}
        for client in clients.values():
            client.transport.close()

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
        except gexc.TooManyRequests as exc:  # 429 RESOURCE_EXHAUSTED: the quota; the pacer waits
            response = getattr(exc, "response", None)
            headers = getattr(response, "headers", None)
            wait = retry_after(headers) if headers is not None else None
            raise Throttled(wait, self._message(exc)) from None
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
                f"target {self.name}: {what}: authentication failed: {redact(str(exc))}"
            ) from None

    def _message(self, exc: Any) -> str:
        code = getattr(exc, "code", None)
        status = getattr(getattr(exc, "grpc_status_code", None), "name", None)
        message = str(getattr(exc, "message", "") or exc)
        message = re.sub(r"^[A-Z]+ \S+: ", "", message)  # the REST layer prefixes method and URL
        head = " ".join(p for p in (f"HTTP {code}" if code else "", status or "") if p)
        return redact(f"{head}: {message}" if head else message)
