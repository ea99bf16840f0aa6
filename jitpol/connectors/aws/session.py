"""How the AWS connector talks to AWS: boto3 sessions and clients (credentials from the
standard chain or the target's env), one shared botocore model loader, and botocore's errors
mapped to TargetUnavailable / PermanentTargetError / _NotFound. boto3 is imported lazily.

Pacing: every HTTP request (each botocore attempt) takes a turn in the pacer (a `before-send`
hook on every client). Throttles are the pacer's too (a `needs-retry` hook ahead of botocore's
standard retry mode, which keeps retrying connection errors and 5xx): the bucket is shut for a
backoff from 1 s and the request sent again, until max_wait_s from the call's start is spent.
IAM Identity Center quotas (https://docs.aws.amazon.com/singlesignon/latest/userguide/limits.html,
"throttle limits"): its APIs have a collective throttle limit of 20 transactions per second, and
CreateAccountAssignment at most 10 outstanding asynchronous calls. So: one bucket for sso-admin
and identitystore at 20 per second (a burst of 10 below AWS's), and at most MAX_IN_FLIGHT (10)
account assignment requests from Create/Delete until their status is final (the pacer's
in-flight slots around each request and its polling). IAM publishes no rate for its API; its
calls are paced at IAM_RATE."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from jitpol.connectors.kit import temporary_status
from jitpol.connectors.pacing import Pacer, Rate
from jitpol.errors import PermanentTargetError, TargetUnavailable

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config
    from mypy_boto3_iam.client import IAMClient
    from mypy_boto3_identitystore.client import IdentityStoreClient
    from mypy_boto3_sso_admin.client import SSOAdminClient


C = TypeVar("C")

# temporary errors by code: throttling, AWS-side failures, a concurrent change to the same object
_TRANSIENT_CODES = frozenset({
    "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException",
    "InternalFailure", "InternalServerException", "InternalServerError", "ServiceFailure",
    "ServiceUnavailable", "ServiceUnavailableException", "ConflictException",
})
_NOT_FOUND_CODES = frozenset({"NoSuchEntity", "ResourceNotFoundException"})
THROTTLE_CODES = frozenset({"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"})

IDENTITY_CENTER_TPS = 20  # collective, sso-admin and identitystore
IAM_RATE = Rate(10, burst=10)  # IAM documents no API rate: a modest one; throttles are waited out
MAX_IN_FLIGHT = 10  # outstanding account assignment requests (AWS allows 10)
RATES = {
    "identity-center": Rate(IDENTITY_CENTER_TPS, burst=10),
    "iam": IAM_RATE,
    "assignment": Rate(1_000_000, burst=1_000_000),  # counted by the in-flight cap, not a rate
}
_BUCKET = {"sso-admin": "identity-center", "identitystore": "identity-center", "iam": "iam"}


class AwsSession:
    """The clients and error mapping every part of AwsConnector uses."""

    # set by AwsConnector.__init__ from the target's settings
    name: str
    _region: str
    _endpoint_url: str | None
    _credentials: dict[str, str]
    _clients: dict[str, Any]  # service name -> boto3 client, made on first use
    _pacer: Pacer

    def _sso(self) -> SSOAdminClient:
        client = self._clients.get("sso-admin")
        if client is None:
            with self._setup_errors():
                client = self._clients["sso-admin"] = self._paced(self._session().client(
                    "sso-admin", endpoint_url=self._endpoint_url, config=self._config()
                ), "sso-admin")
        return client

    def _iam(self) -> IAMClient:
        client = self._clients.get("iam")
        if client is None:
            with self._setup_errors():
                client = self._clients["iam"] = self._paced(self._session().client(
                    "iam", endpoint_url=self._endpoint_url, config=self._config()
                ), "iam")
        return client

    def _identitystore(self) -> IdentityStoreClient:
        client = self._clients.get("identitystore")
        if client is None:
            with self._setup_errors():
                client = self._clients["identitystore"] = self._paced(self._session().client(
                    "identitystore", endpoint_url=self._endpoint_url, config=self._config()
                ), "identitystore")
        return client

    def _paced(self, client: C, service: str) -> C:
        """`client` with every HTTP attempt taking its turn in the pacer first."""
        bucket = _BUCKET[service]

        def what(event_name: str) -> str:  # "before-send.sso-admin.CreateAccountAssignment" -> "sso-admin Create..."
            return " ".join(event_name.split(".")[1:3]) or service

        def before_call(context: dict[str, Any], **_: Any) -> None:
            context["jitpol_started"] = self._pacer.clock.monotonic()

        def before_send(event_name: str = "", **_: Any) -> None:
            self._pacer.take(bucket, what=what(event_name))

        def needs_retry(
            event_name: str = "", response: Any = None, attempts: int = 1, request_dict: Any = None, **_: Any
        ) -> float | None:
            error = response[1].get("Error", {}) if isinstance(response, tuple) and len(response) == 2 else {}
            code = error.get("Code") if isinstance(error, dict) else None
            if code not in THROTTLE_CODES:
                return None  # botocore's standard retry mode decides
            context = request_dict.get("context", {}) if isinstance(request_dict, dict) else {}
            started = context.get("jitpol_started", self._pacer.clock.monotonic())
            self._pacer.throttle(bucket, wait=None, attempt=attempts - 1, started=started, what=what(event_name),
                                 detail=f"{code}: {error.get('Message', '')}".strip(": "))
            return 0  # sent again at once: before_send waits for the bucket the throttle shut

        meta: Any = getattr(client, "meta")  # noqa: B009 - every boto3 client has meta; C does not say
        # botocore's retry handler sits on needs-retry.<service>: the most specific name goes
        # first, and register_first puts this hook ahead of it there
        meta.events.register("before-call", before_call)
        meta.events.register("before-send", before_send)
        meta.events.register_first(f"needs-retry.{meta.service_model.service_id.hyphenize()}", needs_retry)
        return client

    def _session(self) -> boto3.session.Session:
        import boto3
        import botocore.session

        core = botocore.session.get_session()
        core.register_component("data_loader", _shared_loader())
        creds = self._credentials
        if creds.get("AWS_ACCESS_KEY_ID") and creds.get("AWS_SECRET_ACCESS_KEY"):
            return boto3.session.Session(
                aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
                aws_session_token=creds.get("AWS_SESSION_TOKEN"),
                region_name=self._region,
                botocore_session=core,
            )
        # the standard chain: environment, shared profile, web identity (OIDC), container/instance role
        return boto3.session.Session(
            profile_name=creds.get("AWS_PROFILE"), region_name=self._region, botocore_session=core
        )

    @staticmethod
    def _config() -> Config:
        from botocore.config import Config

        # standard mode retries throttling, 5xx and connection errors with backoff (3 attempts)
        return Config(
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=10,
            read_timeout=30,
            user_agent_extra="jitpol",
        )

    @contextmanager
    def _setup_errors(self) -> Iterator[None]:
        from botocore import exceptions as bex

        try:
            yield
        except bex.ProfileNotFound as exc:
            raise PermanentTargetError(f"target {self.name}: AWS profile not found: {exc}") from None
        except bex.BotoCoreError as exc:  # bad endpoint_url, unknown region and the like
            raise PermanentTargetError(f"target {self.name}: cannot set up the AWS client: {exc}") from None

    @contextmanager
    def _aws_errors(self, operation: str) -> Iterator[None]:
        """Translate botocore's exceptions: unreachable/timeouts/throttling/AWS-side failures ->
        TargetUnavailable, a missing object -> _NotFound (for the caller to decide), anything
        else -> PermanentTargetError. Credentials never appear in botocore's messages."""
        from botocore import exceptions as bex

        try:
            yield
        except (bex.ConnectionError, bex.HTTPClientError) as exc:
            raise TargetUnavailable(f"target {self.name}: AWS {operation}: cannot reach AWS: {exc}") from None
        except bex.NoCredentialsError:
            raise PermanentTargetError(
                f"target {self.name}: no AWS credentials found (environment, profile, web identity/OIDC, "
                "instance or container role)"
            ) from None
        except bex.ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "")) or "Unknown"
            message = str(error.get("Message", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code in _NOT_FOUND_CODES:
                raise _NotFound(message) from None

            if code in _TRANSIENT_CODES or temporary_status(status):
                raise TargetUnavailable(f"target {self.name}: AWS {operation}: {code}: {message}") from None
            raise PermanentTargetError(f"target {self.name}: AWS {operation} refused: {code}: {message}") from None
        except bex.BotoCoreError as exc:  # parameter validation, credential provider failures, ...
            raise PermanentTargetError(f"target {self.name}: AWS {operation}: {exc}") from None


@functools.cache
def _shared_loader() -> Any:
    """botocore's loader of service models, shared by every session in this process: each model
    is parsed once (IAM's alone takes ~0.1 s), not once per target and client. It only caches
    read-only files, so sharing it shares no credentials or state."""
    from botocore.loaders import create_loader

    return create_loader()


class _NotFound(Exception):
    """AWS said NoSuchEntity / ResourceNotFoundException; the caller decides what that means."""
