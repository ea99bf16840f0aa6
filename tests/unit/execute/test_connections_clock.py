"""The run's time (`--at`) reaches the connectors that read a time of their own: Connections hands
its clock to registry.create (Azure's PIM schedules start at it)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

from jitpol.clock import FixedClock, SystemClock
from jitpol.execute.engine import Connections
from jitpol.model.documents import Source, Target

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


def test_without_a_run_clock_azure_reads_the_system_clock() -> None:
    conns = Connections({"az": AZURE}, {})
    try:
        assert isinstance(cast("AzureConnector", conns.get("az"))._clock, SystemClock)
    finally:
        conns.close()
