"""Entra ID (type `entra`): the `idp-elevation` model through Microsoft Graph, with the official
msgraph-sdk and an azure-identity credential. Settings and capabilities are described in
connector.py; docs/targets/entra.md is the user's page.

Where each concern lives:
    names.py            principals and privileges ({group} or {directoryRole, scope}), check_name
                        (the policy loader's hook), the ownership marker; pure, no SDK
    session.py          the Graph session: credential, httpx client with the SDK's middleware
                        (retries honouring Retry-After), a private event loop, paging through
                        @odata.nextLink, Graph errors mapped to the run's errors
    groups.py           which groups can be managed (dynamic, on-premises and mail-enabled groups
                        refused) and plain group membership (members/$ref)
    pim.py              the schedule-request life cycle PIM for Groups and directory roles share:
                        adminAssign/adminUpdate/adminRemove, the five-minute floor, the marker chain
    pim_groups.py       PIM for Groups (pim_groups: true)
    directory_roles.py  directory roles, tenant-wide or in an administrative unit
    users.py            revokeSignInSessions when access is taken away, and what it cannot reach
    connector.py        EntraConnector: settings, observe/apply dispatch, close

Nothing here imports the SDK at import time: check_name and the parsing functions work without it.
"""

from jitpol.connectors.entra.connector import EntraConnector
from jitpol.connectors.entra.names import MODEL, check_name, check_principal, parse_privilege

__all__ = ["MODEL", "EntraConnector", "check_name", "check_principal", "parse_privilege"]
