"""The run's time (`--at`) reaches the connectors that read a time of their own: Connections hands
its clock to registry.create (Azure's PIM schedules start at it)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

import pytest

from jitpol.clock import FixedClock
from jitpol.connectors import registry
from jitpol.model.documents import Source, Target
from jitpol.observe.targets import Connections

if TYPE_CHECKING:
    from jitpol.connectors.azure import AzureConnector

AZURE = Target("az", "azure", {"subscription_id": "00000000-0000-0000-0000-000000000001",
                               "tenant_id": "00000000-0000-0000-0000-000000000002"}, Source("jitpol.yaml"))
AT = datetime(1999, 6, 1, 12, 0, tzinfo=UTC)


def test_the_run_clock_reaches_azure() -> None:
    conns = Connections({"az": AZURE}, {}, clock=FixedClock(AT))
    try:
        assert cast("AzureConnector", conns.get("az"))._clock.now() == AT
    finally:
        conns.close()


def test_a_connector_that_reads_a_time_is_never_made_without_the_run_clock() -> None:
    with pytest.raises(TypeError, match="needs the run's clock"):
        registry.create("az", "azure", AZURE.settings, {})
