"""Fixtures for the Entra connector tests: the real `msgraph-sdk` (and, where a test asks, the real
azure-identity ClientSecretCredential) against a local HTTPS double of Microsoft Graph and its
token endpoint (tests/doubles/graph.py). Import the fixtures into a test module with
`from tests.entra_fixtures import *  # noqa: F403` (`__all__` names only the fixtures; import
constants by name).

    graph_cert     session: (cert.pem, key.pem), self-signed for 127.0.0.1 (openssl)
    fake_graph     function: a started FakeGraph, stopped afterwards
    entra_connect  function: entra_connect(**settings, credential=..., client_options=..., clock=...)
                   -> EntraConnector on the double, trusting the certificate, with the SDK's
                   retries on (no added base delay); closed afterwards. Without `clock` the
                   run's clock is a FixedClock at the test's `now`

Without openssl or the Graph SDK the tests are skipped on a laptop but FAIL when the CI
environment variable is set.
"""

from __future__ import annotations

import shutil
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from jitpol.clock import Clock, FixedClock
from jitpol.connectors.entra import EntraConnector
from tests.doubles.arm import make_certificate
from tests.doubles.graph import FakeGraph
from tests.helpers.clock import Now
from tests.services import require_module, require_service

__all__ = ["entra_connect", "fake_graph", "graph_cert"]  # the fixtures: `from tests.entra_fixtures import *`

TARGET = "entra-test"
TENANT = "contoso.onmicrosoft.com"
TOKEN = "test-token"
GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"
USER_ADMIN = "fe930be7-5e62-47db-91af-98c3a49a38b1"
GROUPS_ADMIN = "fdd7a751-b60b-444a-984c-02652fe8fa1c"


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

    def close(self) -> None:
        pass


@pytest.fixture(scope="session")
def graph_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    require_service(shutil.which("openssl") is not None, "openssl (to make the Graph double's certificate)")
    require_module("msgraph", "the Microsoft Graph SDK (pip install msgraph-sdk azure-identity)")
    return make_certificate(tmp_path_factory.mktemp("graph-tls"))


@pytest.fixture
def fake_graph(graph_cert: tuple[Path, Path]) -> Iterator[FakeGraph]:
    with FakeGraph(*graph_cert) as graph:
        yield graph


def trust(cert: Path) -> ssl.SSLContext:
    """A client TLS context that trusts the double's certificate only."""
    return ssl.create_default_context(cafile=str(cert))


EntraConnect = Callable[..., EntraConnector]


@pytest.fixture
def entra_connect(fake_graph: FakeGraph, graph_cert: tuple[Path, Path], now: Now) -> Iterator[EntraConnect]:
    opened = ExitStack()  # closes every connector made

    def make(
        *,
        credential: Any = None,
        client_options: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        clock: Clock | None = None,
        **settings: Any,
    ) -> EntraConnector:
        full = {"tenant_id": TENANT, "graph_url": fake_graph.url, **settings}
        options = {"verify": trust(graph_cert[0]), "retry_delay": 0, **(client_options or {})}
        connector = EntraConnector(
            TARGET, full, env or {},
            credential=credential if credential is not None else StaticTokenCredential(),
            client_options=options,
            clock=clock if clock is not None else FixedClock(now.at),  # the run's time, as the registry hands it
        )
        opened.callback(connector.close)
        return connector

    with opened:
        yield make
