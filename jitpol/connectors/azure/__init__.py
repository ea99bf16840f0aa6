"""Azure (type `azure`): the `idp-elevation` model as Azure RBAC role assignments, plain or
through PIM schedule requests. The settings, forms and marker are described in connector.py.

Where each concern lives:
    names.py             principal and privilege forms, parsing, check_name (the policy loader's
                         hook), role definition ids; pure, no SDK
    marker.py            jitpol's ownership marker: the text written, and recognising it
    session.py           credential, the one SDK client (API versions pinned), SDK errors mapped
                         to the run's errors with secrets cut out
    roles.py             role names resolved to role definition GUIDs, once per connector
    holders.py           who holds a role at a scope (role assignments or PIM schedule
                         instances) and whether jitpol's marker is on it
    role_assignments.py  plain mode: create / delete one role assignment
    pim.py               PIM mode: AdminAssign / AdminUpdate / AdminRemove schedule requests
    connector.py         AzureConnector: settings, observe, apply dispatch over the two modes, close

Nothing here imports the Azure SDK at import time: check_name works without it.
"""

from jitpol.connectors.azure.connector import AzureConnector
from jitpol.connectors.azure.names import check_name, parse_privilege
from jitpol.connectors.azure.role_assignments import ASSIGNMENT_NAMESPACE

__all__ = ["ASSIGNMENT_NAMESPACE", "AzureConnector", "check_name", "parse_privilege"]
