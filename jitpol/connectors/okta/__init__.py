"""Okta (type `okta`); see connector.py."""

from jitpol.connectors.okta.connector import NATIVE_EXPIRY, OktaConnector, check_name, send_push_and_wait

__all__ = ["NATIVE_EXPIRY", "OktaConnector", "check_name", "send_push_and_wait"]
