"""Okta test fixtures: the real `okta` SDK against tests/doubles/okta.py.

Import into a test module with `from tests.okta_fixtures import *  # noqa: F403`:

    okta  function: OktaWorld — a fresh OktaDouble (its own port, state and random API token),
          the environment the SDK needs for a plain-HTTP org, and connector(pacing=..., **settings)
          making an OktaConnector for it (closed afterwards)

Without the okta SDK the tests are skipped on a laptop and FAIL when CI is set.
"""

from __future__ import annotations

import importlib.util
import secrets
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from typing import Any

import pytest

from jitpol.connectors.okta import OktaConnector
from jitpol.connectors.pacing import Pacing
from tests.doubles.okta import OktaDouble
from tests.services import require_service

__all__ = ["OKTA_TARGET", "TOKEN_ENV", "OktaWorld", "okta"]

OKTA_TARGET = "okta-test"
TOKEN_ENV = "OKTA_TEST_TOKEN"


class OktaWorld:
    def __init__(self, double: OktaDouble, token: str) -> None:
        self.double = double
        self.token = token
        self.env: dict[str, str] = {TOKEN_ENV: token}
        self._opened = ExitStack()  # closes every connector made

    def connector(
        self, env: Mapping[str, str] | None = None, pacing: Pacing | None = None, **settings: Any
    ) -> OktaConnector:
        merged: dict[str, Any] = {"org_url": self.double.url, "token_env": TOKEN_ENV, **settings}
        connector = OktaConnector(OKTA_TARGET, merged, self.env if env is None else env, pacing=pacing)
        self._opened.callback(connector.close)
        return connector

    def close(self) -> None:
        self._opened.close()


@pytest.fixture
def okta(monkeypatch: pytest.MonkeyPatch) -> Iterator[OktaWorld]:
    require_service(importlib.util.find_spec("okta") is not None, "the okta SDK (pip install okta)")
    # the SDK refuses http:// org URLs unless this is set; it reads the process environment
    monkeypatch.setenv("OKTA_TESTING_TESTINGDISABLEHTTPSCHECK", "true")
    token = "00" + secrets.token_urlsafe(30)
    with OktaDouble(token=token) as double:
        world = OktaWorld(double, token)
        try:
            yield world
        finally:
            world.close()
