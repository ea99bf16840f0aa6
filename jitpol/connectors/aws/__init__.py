"""AWS (type `aws`): the `idp-elevation` model in two forms, IAM Identity Center account
assignments and IAM group membership, plus Secrets Manager escrow. The settings, forms and
credentials are described in connector.py.

Where each concern lives:
    names.py            principals and privileges: JSON forms, parsing, check_name (the policy
                        loader's hook), principal_for; pure, no boto3
    session.py          boto3 sessions and clients, botocore errors mapped to the run's errors
    identity_center.py  account assignments (sso-admin), waiting for asynchronous requests
    iam_groups.py       IAM group membership and the "revoke older sessions" deny policy
    escrow.py           Secrets Manager escrow (the SecretEscrow capability), not a model
    connector.py        AwsConnector: settings, observe/apply dispatch over the two forms, close

Nothing here imports boto3 at import time: check_name and the parsing functions work without it.
"""

from jitpol.connectors.aws.connector import DEFAULT_PAGE_SIZE, DEFAULT_WAIT_SECONDS, AwsConnector
from jitpol.connectors.aws.iam_groups import SESSION_POLICY_NAME, revoke_sessions_policy
from jitpol.connectors.aws.identity_center import wait_for_request
from jitpol.connectors.aws.names import (
    MODEL,
    NATIVE_EXPIRY,
    AccountAssignmentPrivilege,
    AwsPrincipal,
    IamGroupPrivilege,
    Privilege,
    check_name,
    parse_principal,
    parse_privilege,
    principal_for,
)

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_WAIT_SECONDS",
    "MODEL",
    "NATIVE_EXPIRY",
    "SESSION_POLICY_NAME",
    "AccountAssignmentPrivilege",
    "AwsConnector",
    "AwsPrincipal",
    "IamGroupPrivilege",
    "Privilege",
    "check_name",
    "parse_principal",
    "parse_privilege",
    "principal_for",
    "revoke_sessions_policy",
    "wait_for_request",
]
