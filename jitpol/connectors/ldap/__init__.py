"""LDAP connector for OpenLDAP and Active Directory (class LdapConnector). Settings and the
semantics of each model are described in connector.py. Where each concern lives:

    names.py       DN parsing and canonical form, escaping, check_name (the policy loader's hook),
                   the allowlists of jitpol's names, the ownership marker, login_name
    encodings.py   value encodings: GeneralizedTime, AD FILETIME and TTL links, {SSHA}, unicodePwd
    requests.py    LDAP writes as values (Request, Change) and their builders
    session.py     LdapSession: settings, the connection (bind, TLS), searches, writes, errors,
                   server facts; the checks of names against base_dn
    membership.py  role-membership (and the group reads ephemeral accounts reuse)
    accounts.py    ephemeral-account
    checkout.py    credential-checkout
    connector.py   LdapConnector: the Connector protocol, dispatching to the models

names, encodings and requests import no ldap3; the session imports it lazily, so `jitpol
validate` can run check_name() without it.
"""

from jitpol.connectors.ldap.accounts import _Account
from jitpol.connectors.ldap.connector import CHECKOUT, EPHEMERAL, ROLE, LdapConnector
from jitpol.connectors.ldap.encodings import (
    ad_domain,
    ad_password_value,
    ad_sam_account_name,
    ad_ttl_member,
    filetime,
    from_filetime,
    generalized_time,
    pam_enabled,
    parse_generalized_time,
    parse_ttl_member,
    ssha,
    ssha_matches,
    ttl_seconds,
)
from jitpol.connectors.ldap.membership import TTL_SLACK, _Group, _Member
from jitpol.connectors.ldap.names import (
    MARKER_PREFIX,
    PLACEHOLDER_DN,
    canonical_dn,
    check_name,
    escape_value,
    login_name,
    marker,
    parse_dn,
)
from jitpol.connectors.ldap.requests import (
    Change,
    Request,
    ad_account_request,
    end_request,
    member_add_request,
    member_delete_request,
    member_extend_request,
    password_request,
    rotate_request,
    wire_value,
)

__all__ = [
    "CHECKOUT", "EPHEMERAL", "MARKER_PREFIX", "PLACEHOLDER_DN", "ROLE", "TTL_SLACK", "Change", "LdapConnector",
    "Request", "_Account", "_Group", "_Member", "ad_account_request", "ad_domain", "ad_password_value",
    "ad_sam_account_name", "ad_ttl_member", "canonical_dn", "check_name", "end_request", "escape_value", "filetime",
    "from_filetime", "generalized_time", "login_name", "marker", "member_add_request", "member_delete_request",
    "member_extend_request", "pam_enabled", "parse_dn", "parse_generalized_time", "parse_ttl_member",
    "password_request", "rotate_request", "ssha", "ssha_matches", "ttl_seconds", "wire_value",
]
