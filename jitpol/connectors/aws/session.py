"""How the AWS connector talks to AWS: boto3 sessions and clients (credentials from the
standard chain or the target's env), one shared botocore model loader, and botocore's errors
mapped to TargetUnavailable / PermanentTargetError / _NotFound. boto3 is imported lazily."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from jitpol.connectors.kit import temporary_status
from jitpol.errors import PermanentTargetError, TargetUnavailable

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config
    from mypy_boto3_iam.client import IAMClient
    from mypy_boto3_identitystore.client import IdentityStoreClient
    from mypy_boto3_sso_admin.client import SSOAdminClient


# temporary errors by code: throttling, AWS-side failures, a concurrent change to the same object
_TRANSIENT_CODES = frozenset({
    "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException",
    "InternalFailure", "InternalServerException", "InternalServerError", "ServiceFailure",
    "ServiceUnavailable", "ServiceUnavailableException", "ConflictException",
})
_NOT_FOUND_CODES = frozenset({"NoSuchEntity", "ResourceNotFoundException"})


class AwsSession:
    """The clients and error mapping every part of AwsConnector uses."""

    # set by AwsConnector.__init__ from the target's settings
    name: str
    _region: str
    _endpoint_url: str | None
    _credentials: dict[str, str]
    _clients: dict[str, Any]  # service name -> boto3 client, made on first use

    def _sso(self) -> SSOAdminClient:
        client = self._clients.get("sso-admin")
        if client is None:
            with self._setup_errors():
                client = self._clients["sso-admin"] = self._session().client(
                    "sso-admin", endpoint_url=self._endpoint_url, config=self._config()
                )
        return client

    def _iam(self) -> IAMClient:
        client = self._clients.get("iam")
        if client is None:
            with self._setup_errors():
                client = self._clients["iam"] = self._session().client(
                    "iam", endpoint_url=self._endpoint_url, config=self._config()
                )
        return client

    def _identitystore(self) -> IdentityStoreClient:
        client = self._clients.get("identitystore")
        if client is None:
            with self._setup_errors():
                client = self._clients["identitystore"] = self._session().client(
                    "identitystore", endpoint_url=self._endpoint_url, config=self._config()
                )
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
