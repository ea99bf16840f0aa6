"""Fixtures for the GCP connector tests: the real `google-cloud-resource-manager` SDK (REST
transport) against a local HTTP double of Cloud Resource Manager v3 (tests/doubles/gcp_crm.py).
Import the fixtures into a test module with `from tests.gcp_fixtures import *  # noqa: F403`
(`__all__` names only the fixtures; import constants by name).

    fake_crm     function: a started FakeCrm, stopped afterwards
    gcp_connect  function: gcp_connect(**settings, credentials=..., env=..., pacing=...) ->
                 GcpConnector on the double (AnonymousCredentials unless given); closed afterwards

Without the Google SDK the tests are skipped on a laptop but FAIL when the CI environment
variable is set.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from jitpol.connectors.gcp import GcpConnector
from jitpol.connectors.pacing import Pacing
from tests.doubles.gcp_crm import FakeCrm
from tests.services import require_service

__all__ = ["fake_crm", "gcp_connect"]  # the fixtures: `from tests.gcp_fixtures import *`

TARGET = "gcp-test"
PROJECT = "projects/orders-prod-4711"

# a policy full of bindings that are not jitpol's: unconditional, conditional (someone else's
# conditions, one of them on the very role jitpol grants), and several members per binding
UNRELATED_BINDINGS: list[dict[str, Any]] = [
    {"role": "roles/owner", "members": ["user:owner@example.org"]},
    {"role": "roles/cloudsql.admin", "members": ["group:dba@example.org", "user:standing@example.org"]},
    {"role": "roles/cloudsql.admin", "members": ["user:carol@example.org"],
     "condition": {"title": "business hours", "description": "someone else's condition",
                   "expression": "request.time.getHours('Europe/Berlin') >= 9"}},
    {"role": "roles/cloudsql.admin", "members": ["user:dave@example.org"],
     "condition": {"title": "until new year",
                   "expression": 'request.time < timestamp("2096-01-01T00:00:00Z")'}},
    {"role": "roles/viewer", "members": ["serviceAccount:ci@orders-prod-4711.iam.gserviceaccount.com",
                                         "domain:example.org"]},
    {"role": "roles/storage.objectViewer", "members": ["group:readers@example.org"],
     "condition": {"title": "prefix", "expression": 'resource.name.startsWith("projects/_/buckets/pub")'}},
]
AUDIT_CONFIGS: list[dict[str, Any]] = [
    {"service": "allServices", "auditLogConfigs": [{"logType": "DATA_READ"}, {"logType": "ADMIN_READ"}]},
]


def anonymous() -> Any:
    """google.auth AnonymousCredentials: requests go out without an Authorization header."""
    from google.auth.credentials import AnonymousCredentials

    make: Callable[[], Any] = AnonymousCredentials  # google-auth does not annotate its constructors
    return make()


@pytest.fixture
def fake_crm() -> Iterator[FakeCrm]:
    require_service(importlib.util.find_spec("google.cloud.resourcemanager_v3") is not None,
                    "google-cloud-resource-manager")
    with FakeCrm() as crm:
        crm.add_resource(PROJECT, UNRELATED_BINDINGS, audit_configs=AUDIT_CONFIGS)
        yield crm


GcpConnect = Callable[..., GcpConnector]


@pytest.fixture
def gcp_connect(fake_crm: FakeCrm) -> Iterator[GcpConnect]:
    opened = ExitStack()  # closes every connector made

    def make(*, credentials: Any = None, env: dict[str, str] | None = None, timeout: float = 5.0,
             pacing: Pacing | None = None, **settings: Any) -> GcpConnector:
        connector = GcpConnector(
            TARGET, {"api_endpoint": fake_crm.url, **settings}, env or {},
            credentials=credentials if credentials is not None else anonymous(),
            timeout=timeout,
            pacing=pacing,
        )
        opened.callback(connector.close)
        return connector

    with opened:
        yield make
