"""GCP (type `gcp`); see connector.py."""

from jitpol.connectors.gcp.connector import MAX_ATTEMPTS, GcpConnector, check_name, condition_end, rfc3339

__all__ = ["MAX_ATTEMPTS", "GcpConnector", "check_name", "condition_end", "rfc3339"]
