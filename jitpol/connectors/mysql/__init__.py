"""MySQL / MariaDB connector (class MysqlConnector). Settings and the semantics of each model are
described in connector.py. Where each concern lives:

    names.py       the allowlists (user, role, host, schema names; `user@host` accounts),
                   ephemeral account names, an account's list of roles, jitpol's event names and
                   marker comment, the client-side mysql_native_password hash, check_name (the
                   policy loader's hook)
    session.py     MysqlSession: settings, the DSN, the connection, statements as values
                   (_Step), errors, the server's flavour and limits, the reads the models share,
                   KILL of an account's connections, end-of-window events
    privileged.py  the refusal of roles that hold or reach SUPER or a root-equivalent privilege
    membership.py  role-membership (GRANT role TO user@host, default role)
    accounts.py    ephemeral-account (account + marker event that locks it at the end)
    checkout.py    credential-checkout
    connector.py   MysqlConnector: the Connector protocol, dispatching to the models

names imports no PyMySQL, and the others import it lazily, so the policy validator can import
check_name on a machine without it.
"""

from jitpol.connectors.mysql.connector import CHECKOUT, EPHEMERAL, ROLE_MEMBERSHIP, MysqlConnector
from jitpol.connectors.mysql.names import (
    check_name,
    native_password_hash,
    parse_account,
    parse_role_list,
    validate_account_name,
    validate_user,
)

__all__ = [
    "CHECKOUT", "EPHEMERAL", "ROLE_MEMBERSHIP", "MysqlConnector", "check_name", "native_password_hash",
    "parse_account", "parse_role_list", "validate_account_name", "validate_user",
]
