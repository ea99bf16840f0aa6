"""The Graph session: one msgraph-sdk client per connector, its credential, its event loop, and
Graph's answers mapped to the run's errors.

The SDK is asynchronous (kiota over httpx). A connector is called synchronously (from one
thread at a time), so the session keeps a private event loop and runs each piece of work to
completion on it; the HTTP connection pool lives as long as the connector. Nothing here is
imported before the first call: the SDK is imported lazily.

Throttling: the SDK's retry middleware (kiota RetryHandler) retries 429, 503 and 504 for every
method, waiting as long as the answer's Retry-After says (below 180 seconds; otherwise with
exponential backoff), up to `max_retries` times (default 3). A throttle that waiting clears is
therefore never an error; one that outlasts the retries is TargetUnavailable (the next run tries
again). A POST Graph throttled was not carried out, so the retry sends it once.

Errors: Graph unreachable or a timeout -> TargetUnavailable (also HTTP 408/429/5xx after the
retries); 401, a credential that cannot get a token, 403 and everything else ->
PermanentTargetError with Graph's error code and message. Tokens and secrets never appear in
messages, and the exception chain is suppressed.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from jitpol.connectors.kit import redacted, status_error
from jitpol.errors import PermanentTargetError, TargetUnavailable

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

T = TypeVar("T")

DEFAULT_GRAPH_URL = "https://graph.microsoft.com"
API_VERSION = "v1.0"
DEFAULT_MAX_RETRIES = 3  # kiota's default; at most 10
DEFAULT_PAGE_SIZE = 100
# things that look like credentials, cut out of any text that reaches a message
_SECRETS = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_MAX_PAGES = 10_000  # a server repeating a cursor would loop for ever


def graph_error(exc: BaseException) -> tuple[int | None, str | None, str]:
    """(HTTP status, Graph error code, message) of an SDK API error (kiota APIError / the
    generated ODataError); (None, None, text) for anything else."""
    status = getattr(exc, "response_status_code", None)
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    message = getattr(error, "message", None) or getattr(exc, "message", None) or str(exc)
    return (status if isinstance(status, int) else None, str(code) if code else None, str(message))


class GraphSession:
    """The SDK client for one target. `credential` (an azure-core TokenCredential) replaces the
    configured one; `options` for tests and embedding: `verify` (a CA file path or an
    ssl.SSLContext for httpx), `max_retries` (0..10), `retry_delay` (seconds kiota adds to its
    backoff, default 3), `timeout` (seconds, default 60), `page_size`, and `credential_options`
    (extra keyword arguments for the azure-identity credential, such as connection_verify)."""

    def __init__(
        self,
        target: str,
        graph_url: str,
        *,
        tenant: str,
        authority: str | None,
        id_env: str | None,
        secret_env: str | None,
        env: Mapping[str, str],
        credential: TokenCredential | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.target = target
        self.graph_url = graph_url.rstrip("/")
        self.base_url = f"{self.graph_url}/{API_VERSION}"
        self.host = urllib.parse.urlsplit(self.graph_url).hostname or ""
        self._tenant = tenant
        self._authority = authority
        self._id_env, self._secret_env = id_env, secret_env
        self._env = env  # read when the credential is made; secrets are not kept on this object
        self._given_credential = credential
        self._options = dict(options or {})
        self.page_size = int(self._options.get("page_size", DEFAULT_PAGE_SIZE))
        self._own_credential: Any = None
        self._client: Any = None
        self._http: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()  # one piece of work on the loop at a time

    # -- running work -------------------------------------------------------------------------

    def run(self, what: str, work: Callable[[Any], Awaitable[T]]) -> T:
        """Run `work(client)` to completion on the session's loop; SDK errors become the run's
        errors, their message starting with `what`."""
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
            client = self.client()
            try:
                return self._loop.run_until_complete(work(client))
            except (TargetUnavailable, PermanentTargetError):
                raise
            except Exception as exc:  # noqa: BLE001 - every SDK failure becomes one of the run's errors
                raise self.translate(what, exc) from None

    def translate(self, what: str, exc: BaseException) -> Exception:
        """The run's error for an SDK failure while doing `what`."""
        import httpx
        from azure.core.exceptions import ClientAuthenticationError

        prefix = f"target {self.target}: {what}"
        if isinstance(exc, ClientAuthenticationError):  # the credential could not get a token
            return PermanentTargetError(f"{prefix}: authentication failed: {self.redact(str(exc.message or exc))}")
        if isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError):
            return TargetUnavailable(
                f"{prefix}: cannot reach Microsoft Graph at {self.graph_url} ({type(exc).__name__})")
        status, code, message = graph_error(exc)
        if status is not None:
            head = " ".join(p for p in (f"HTTP {status}", code or "") if p)
            text = self.redact(f"{head}: {message}")
            if status == 401:
                return PermanentTargetError(f"{prefix}: authentication failed: {text}")
            return status_error(status, f"{prefix}: {text}", also=(408,))
        return PermanentTargetError(f"{prefix}: {self.redact(f'{type(exc).__name__}: {exc}')}")

    def redact(self, text: str) -> str:
        secret = self._env.get(self._secret_env) if self._secret_env else None
        return redacted(text, [secret], pattern=_SECRETS, limit=500)

    async def pages(self, builder: Any, query: Any) -> AsyncIterator[dict[str, Any]]:
        """Every item of a collection as Graph sent it (a JSON object), following @odata.nextLink
        (an absolute URL carrying the query and a $skiptoken). The request goes through the SDK
        (request builder, authentication, retry middleware, error mapping to ODataError); the
        page is read as JSON instead of the SDK's models, whose deserialisation costs about
        20 ms per object (msgraph's Entity imports every derived type on each call)."""
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.models.o_data_errors.o_data_error import ODataError

        info = builder.to_get_request_information(RequestConfiguration(query_parameters=query))
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            raw = await builder.request_adapter.send_primitive_async(info, "bytes", {"XXX": ODataError})
            try:
                page = json.loads(raw or b"{}")
            except ValueError:
                raise PermanentTargetError(
                    f"target {self.target}: Microsoft Graph answered a list with no JSON") from None
            if not isinstance(page, dict):
                raise PermanentTargetError(f"target {self.target}: Microsoft Graph answered a list with no JSON object")
            for item in page.get("value") or ():
                if isinstance(item, dict):
                    yield item
            link = page.get("@odata.nextLink")
            if not link:
                return
            if not isinstance(link, str) or link in seen or urllib.parse.urlsplit(link).hostname != self.host:
                raise PermanentTargetError(
                    f"target {self.target}: Microsoft Graph sent a next page link that repeats or leaves {self.host}"
                )
            seen.add(link)
            info = builder.with_url(link).to_get_request_information()
        raise PermanentTargetError(f"target {self.target}: more than {_MAX_PAGES} pages in one list")


    # -- the client -----------------------------------------------------------------------------

    def client(self) -> Any:
        if self._client is not None:
            return self._client
        import httpx
        from kiota_authentication_azure.azure_identity_authentication_provider import (
            AzureIdentityAuthenticationProvider,
        )
        from kiota_http.middleware.options import RetryHandlerOption
        from msgraph import GraphRequestAdapter, GraphServiceClient
        from msgraph.graph_request_adapter import options as sdk_options
        from msgraph_core import GraphClientFactory

        retry = RetryHandlerOption(
            delay=float(self._options.get("retry_delay", RetryHandlerOption.DEFAULT_DELAY)),
            max_retries=int(self._options.get("max_retries", DEFAULT_MAX_RETRIES)),
        )
        timeout = float(self._options.get("timeout", 60))
        http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
            verify=self._options.get("verify", True),
            follow_redirects=False,  # the SDK's redirect middleware decides, and drops the token across hosts
        )
        http = GraphClientFactory.create_with_default_middleware(
            client=http, options={**sdk_options, RetryHandlerOption.get_key(): retry}
        )
        auth = AzureIdentityAuthenticationProvider(
            self.credential(),
            scopes=[f"https://{self.host}/.default"],  # Entra refuses ports in .default scopes
            allowed_hosts=[self.host],  # the token goes to this host only
        )
        adapter = GraphRequestAdapter(auth, client=http)
        adapter.base_url = self.base_url
        self._http = http
        self._client = GraphServiceClient(request_adapter=adapter)
        return self._client

    def credential(self) -> TokenCredential:
        if self._given_credential is not None:
            return self._given_credential
        if self._own_credential is not None:
            cred: TokenCredential = self._own_credential
            return cred
        extra: dict[str, Any] = dict(self._options.get("credential_options") or {})
        if self._authority is not None:
            # the authority is trusted as configured (approved policy): MSAL's instance discovery,
            # which only knows Microsoft's public clouds, would refuse a private or test authority
            extra.setdefault("authority", self._authority)
            extra.setdefault("disable_instance_discovery", True)
        if self._id_env is not None and self._secret_env is not None:
            from azure.identity import ClientSecretCredential

            client_id, secret = self._env.get(self._id_env), self._env.get(self._secret_env)
            if not client_id or not secret:
                missing = self._id_env if not client_id else self._secret_env
                raise PermanentTargetError(f"target {self.target}: environment variable {missing} is not set")
            self._own_credential = ClientSecretCredential(self._tenant, client_id, secret, **extra)
        else:
            from azure.identity import DefaultAzureCredential

            # environment variables, workload identity (OIDC federation in CI), managed identity, Azure CLI ...
            self._own_credential = DefaultAzureCredential(**extra)
        own: TokenCredential = self._own_credential
        return own

    def close(self) -> None:
        """Close the HTTP pool, the loop and any credential this session made. Safe to call twice."""
        with self._lock:
            http, self._http, self._client = self._http, None, None
            loop, self._loop = self._loop, None
            if loop is not None:
                if http is not None:
                    loop.run_until_complete(http.aclose())
                loop.close()
            cred, self._own_credential = self._own_credential, None
            if cred is not None:
                cred.close()


def str_of(item: Mapping[str, Any], key: str) -> str:
    """A string field of a Graph object; "" when absent or not a string."""
    value = item.get(key)
    return value if isinstance(value, str) else ""


def when(value: object) -> datetime | None:
    """A Graph DateTimeOffset (ISO 8601, up to seven fraction digits) in UTC; None when absent or
    not a time."""
    if not isinstance(value, str) or not value:
        return None
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?", value)
    if m is None:
        return None
    fraction = (m.group(2) or "")[:6].ljust(6, "0")
    try:
        t = datetime.fromisoformat(f"{m.group(1)}.{fraction}{m.group(3) or '+00:00'}".replace("Z", "+00:00"))
    except ValueError:
        return None
    return t.astimezone(UTC)
