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
    AD_NEVER,
    AD_SAM_MAX,
    PAM_FEATURE_CN,
    ad_domain,
    ad_password_value,
    ad_sam_account_name,
    ad_ttl_member,
    enforced_end,
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
from jitpol.connectors.ldap.membership import LINK_TTL_CONTROL, TTL_SLACK, _Group, _Member
from jitpol.connectors.ldap.names import (
    MARKER_PREFIX,
    MAX_DN_LENGTH,
    PLACEHOLDER_DN,
    DnError,
    ParsedDn,
    Rdn,
    canonical_dn,
    check_name,
    escape_value,
    format_dn,
    is_below,
    login_name,
    marker,
    parse_dn,
)
from jitpol.connectors.ldap.requests import (
    SECRET_ATTRIBUTES,
    Change,
    Request,
    Step,
    ad_account_request,
    end_request,
    member_add_request,
    member_delete_request,
    member_extend_request,
    openldap_account_request,
    password_request,
    rotate_request,
    wire_value,
)
from jitpol.connectors.ldap.session import (
    CONNECT_TIMEOUT,
    FLAVORS,
    PAGE_SIZE,
    PAGED_RESULTS_CONTROL,
    PPOLICY_CONTROL,
    RECEIVE_TIMEOUT,
    LdapSession,
)

__all__ = [
    "AD_NEVER", "AD_SAM_MAX", "CHECKOUT", "CONNECT_TIMEOUT", "EPHEMERAL", "FLAVORS", "LINK_TTL_CONTROL",
    "MARKER_PREFIX", "MAX_DN_LENGTH", "PAGED_RESULTS_CONTROL", "PAGE_SIZE", "PAM_FEATURE_CN", "PLACEHOLDER_DN",
    "PPOLICY_CONTROL", "RECEIVE_TIMEOUT", "ROLE", "SECRET_ATTRIBUTES", "TTL_SLACK", "Change", "DnError",
    "LdapConnector", "LdapSession", "ParsedDn", "Rdn", "Request", "Step", "_Account", "_Group", "_Member",
    "ad_account_request", "ad_domain", "ad_password_value", "ad_sam_account_name", "ad_ttl_member",
    "canonical_dn", "check_name", "end_request", "enforced_end", "escape_value", "filetime", "format_dn",
    "from_filetime", "generalized_time", "is_below", "login_name", "marker", "member_add_request",
    "member_delete_request", "member_extend_request", "openldap_account_request", "pam_enabled", "parse_dn",
    "parse_generalized_time", "parse_ttl_member", "password_request", "rotate_request", "ssha",
    "ssha_matches", "ttl_seconds", "wire_value",
]
