"""GCP (type `gcp`): the `idp-elevation` model as IAM policy bindings with an end Google enforces
(an IAM condition). The forms, marker, settings and edits are described in connector.py.

Where each concern lives:
    names.py        principal and privilege forms, parsing, check_name (the policy loader's
                    hook); pure, no SDK
    conditions.py   jitpol's condition: the expression that ends access and the title that
                    marks it, written and read back; pure
    bindings.py     edits of a policy's bindings for a grant or a revoke, and who holds a role;
                    pure (protobuf values in, binding lists out)
    credentials.py  Google credentials from credentials_env or Application Default Credentials;
                    secrets cut out of messages
    session.py      Resource Manager clients, getIamPolicy / setIamPolicy (version 3), SDK errors
                    mapped to the run's errors
    connector.py    GcpConnector: settings, observe, apply as an etag-guarded read-modify-write
                    retried on conflicts, close

Nothing here imports the Google SDK at import time: check_name works without it.
"""

from jitpol.connectors.gcp.conditions import condition_end, rfc3339
from jitpol.connectors.gcp.connector import MAX_ATTEMPTS, GcpConnector
from jitpol.connectors.gcp.names import check_name

__all__ = ["MAX_ATTEMPTS", "GcpConnector", "check_name", "condition_end", "rfc3339"]
