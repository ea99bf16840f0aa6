"""Okta (type `okta`): the `idp-elevation` model as Okta group membership, and the Okta Verify
push that `mfa: okta-push` workflows use. The settings and the SDK's use are described in
connector.py.

Where each concern lives:
    names.py      user, group and factor ids, check_name (the policy loader's hook); pure, no SDK
    session.py    HTTP through the SDK's request executor: one event loop per call, pagination
                  kept on the org, answers mapped to the run's errors, the token never shown
    push.py       the Okta Verify push and its polling (send_push_and_wait; base.MfaPush)
    connector.py  OktaConnector: settings, observe, apply (membership and ending sessions), push

Nothing here imports the Okta SDK at import time: check_name works without it.
"""

from jitpol.connectors.okta.connector import OktaConnector
from jitpol.connectors.okta.names import NATIVE_EXPIRY, check_name
from jitpol.connectors.okta.push import send_push_and_wait

__all__ = ["NATIVE_EXPIRY", "OktaConnector", "check_name", "send_push_and_wait"]
