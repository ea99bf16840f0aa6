"""Fixtures for the Azure connector tests: the real `azure-mgmt-authorization` SDK against a local
HTTPS double of ARM (tests/doubles/arm.py). Import the fixtures into a test module with
`from tests.azure_fixtures import *  # noqa: F403` (`__all__` names only the fixtures; import
constants by name).

    arm_cert       session: (cert.pem, key.pem), self-signed for 127.0.0.1 (openssl)
    fake_arm       function: a started FakeArm, stopped afterwards
    azure_connect  function: azure_connect(**settings, credential=..., client_options=..., clock=...,
                   pacing=...)
                   -> AzureConnector on the double, trusting the certificate, no SDK retries;
                   closed afterwards. Without `clock` the run's clock is a FixedClock at the
                   test's `now` (the registry always hands one)

Without openssl or the Azure SDK the tests are skipped on a laptop but FAIL when the CI
environment variable is set.
"""

from __future__ import annotations

import importlib.util
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from jitpol.clock import Clock, FixedClock
from jitpol.connectors.azure import AzureConnector
from jitpol.connectors.pacing import Pacing
from tests.doubles.arm import FakeArm, make_certificate
from tests.helpers.clock import Now
from tests.services import require_service

__all__ = ["arm_cert", "azure_connect", "fake_arm"]  # the fixtures: `from tests.azure_fixtures import *`

TARGET = "azure-test"
SUBSCRIPTION = "6b1f3c2a-9d4e-4f5a-8b7c-0d1e2f3a4b5c"
TENANT = "contoso.onmicrosoft.com"
TOKEN = "test-token"
RG_SCOPE = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-orders"
SUB_SCOPE = f"/subscriptions/{SUBSCRIPTION}"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"


class StaticTokenCredential:
    """An azure.core TokenCredential that hands out a fixed bearer token (a credential, not a
    stand-in for any server: the HTTP requests still go to the double)."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        self.scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)


@pytest.fixture(scope="session")
def arm_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    require_service(shutil.which("openssl") is not None, "openssl (to make the ARM double's certificate)")
    require_service(importlib.util.find_spec("azure.mgmt.authorization") is not None,
                    "the Azure SDK (pip install azure-mgmt-authorization azure-identity)")
    return make_certificate(tmp_path_factory.mktemp("arm-tls"))


@pytest.fixture
def fake_arm(arm_cert: tuple[Path, Path]) -> Iterator[FakeArm]:
    with FakeArm(*arm_cert) as arm:
        yield arm


AzureConnect = Callable[..., AzureConnector]


@pytest.fixture
def azure_connect(fake_arm: FakeArm, arm_cert: tuple[Path, Path], now: Now) -> Iterator[AzureConnect]:
    opened = ExitStack()  # closes every connector made

    def make(
        *,
        credential: Any = None,
        client_options: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        clock: Clock | None = None,
        pacing: Pacing | None = None,
        **settings: Any,
    ) -> AzureConnector:
        full = {"subscription_id": SUBSCRIPTION, "tenant_id": TENANT, "base_url": fake_arm.url, **settings}
        options = {"connection_verify": str(arm_cert[0]), "retry_total": 0, **(client_options or {})}
        connector = AzureConnector(
            TARGET, full, env or {},
            credential=credential if credential is not None else StaticTokenCredential(),
            client_options=options,
            clock=clock if clock is not None else FixedClock(now.at),  # the run's time, as the registry hands it
            pacing=pacing,
        )
        opened.callback(connector.close)
        return connector

    with opened:
        yield make
