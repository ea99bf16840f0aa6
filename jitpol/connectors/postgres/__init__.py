"""PostgreSQL connector (class PostgresConnector). Settings and the semantics of each model are
described in connector.py. Where each concern lives:

    names.py       the role-name allowlists (validate_identifier, validate_principal), ephemeral
                   account names, an account's list of roles, the marker comment, check_name
                   (the policy loader's hook)
    passwords.py   whether a stored SCRAM-SHA-256 / md5 verifier already verifies a password
    statements.py  statements as values (_Step: sent, and shown with secrets as '***'), session
                   terminations, the VALID UNTIL literal
    session.py     PostgresSession: settings, the connection, sending statements, errors, the
                   catalog reads every model shares, password verifiers hashed by libpq
    privileged.py  the refusal of superusers, the grantor role and root-equivalent roles, also
                   reached through chains of memberships
    membership.py  role-membership (GRANTED BY jitpol's grantor role)
    accounts.py    ephemeral-account
    checkout.py    credential-checkout
    connector.py   PostgresConnector: the Connector protocol, dispatching to the models

names and passwords import no psycopg, and the others import it lazily, so the policy validator
can import check_name on a machine without it.
"""

from jitpol.connectors.postgres.connector import (
    CHECKOUT,
    EPHEMERAL,
    PostgresConnector,
)
from jitpol.connectors.postgres.membership import GRANTOR_COMMENT
from jitpol.connectors.postgres.names import (
    GRANTOR_ROLE,
    MARKER_PREFIX,
    check_name,
    marker,
    parse_role_list,
    validate_account_name,
    validate_identifier,
    validate_principal,
)
from jitpol.connectors.postgres.passwords import password_matches

__all__ = [
    "CHECKOUT", "EPHEMERAL", "GRANTOR_COMMENT", "GRANTOR_ROLE", "MARKER_PREFIX", "PostgresConnector", "check_name",
    "marker", "parse_role_list", "password_matches", "validate_account_name", "validate_identifier",
    "validate_principal",
]
