"""LDAP connector for OpenLDAP and Active Directory: models `role-membership` (a person's entry is
made a direct `member` of a group), `ephemeral-account` (an entry created for one grant) and
`credential-checkout` (a shared entry's password handed out and rotated).

Settings (the target's entry in jitpol.yaml):
    url            required; ldap://host:port or ldaps://host:port
    bind_dn        required; the DN jitpol binds as
    password_env   required; NAME of the environment variable holding the bind password
    base_dn        required; every principal and group DN must lie below it
    flavor         openldap (default) | active-directory
    start_tls      bool, default false: StartTLS before binding (certificates are verified)
    people_base    where ephemeral accounts live; default "ou=people,<base_dn>"

Names. Principals and groups are DNs in canonical form: RFC 4514 escaping, attribute types and
values in lower case (NFC), no spaces around separators, the AVAs of a multi-valued RDN sorted.
check_name() refuses any other spelling and says which one to write, because jitpol compares
what it wants with what it observes as plain strings: "uid=Alice" and "uid=alice" are one entry
to the directory, so they must be one string to jitpol. Members the server returns are brought
into the same form. Filter values are escaped with ldap3's escape_filter_chars and RDNs built
from names with escape_rdn.

role-membership: MODIFY add/delete of one `member` value. The state is read first (so `changed`
is exact and check mode works); the server's answers 20 (attributeOrValueExists) to an add and
16 (noSuchAttribute) to a delete still count as "already true" when another writer got there in
between. OpenLDAP refuses to remove the last `member` of a groupOfNames (objectClassViolation),
so the last member is swapped for PLACEHOLDER_DN in one modify, and the placeholder is removed
again by the next add. It cannot be a person (no naming context holds it) and observe never
reports it. Active Directory (flavor active-directory): when the forest has the Privileged Access
Management feature enabled, members are added as `<TTL=seconds,DN>` so that the DCs remove them
at the end of the window themselves (TTL counted from the DC's rootDSE currentTime), and observe
reports the end (search control LDAP_SERVER_LINK_TTL). A grant of a TTL link whose end is not the
action's `until` (within TTL_SLACK) sets it to `until`, earlier or later; a member without a TTL
is a member for good and is left as it is. A `member` value cannot carry jitpol's ownership
marker (neither OpenLDAP nor AD keeps anything with one value), so observe reports owned None
for this model: only the ledger knows which memberships jitpol gave.

ephemeral-account: `uid=<principal>,<people_base>` (inetOrgPerson; AD: `cn=<principal>`, class
user, sAMAccountName shortened to 20 characters when needed) carrying jitpol's marker
`description: managed-by=jitpol; grant=<grant>; person=<person>`, a member of exactly the
groups in the privilege, with userPassword ({SSHA}) from action.detail("password") when given
(AD: unicodePwd, only over TLS). The end is enforced by the server where it can: OpenLDAP
`pwdEndTime` (ppolicy overlay; the server refuses binds after it when a password policy applies
to the entry), AD `accountExpires`, set to the action's `until` whether that is earlier or later
than the end in place (the end follows the grant's live end both ways). observe() finds accounts
by the marker only and reports them owned True; entries without it are never reported, changed
or deleted (create-account and delete-account refuse them). create-account on an existing
marked entry brings it to that state; when the action carries a password (the core re-delivers a
new secret after a run died before recording the first one, which is lost) userPassword is
replaced too, unless it already verifies that password (the same action applied again; AD's
unicodePwd cannot be read, so there it is always set).

credential-checkout: principal is the DN of an existing shared entry (the resource's
spec.account), checked like every DN and never the bind DN, an entry carrying jitpol's marker or
a name in jitpol's ephemeral namespace; the privilege is the canonical JSON of the holders'
grant names (opaque here; "[]" means nobody). rotate (the password detail is required) replaces
userPassword ({SSHA}; AD: unicodePwd, only over TLS) and, in the same modify, the end the
server enforces: with holders, OpenLDAP `pwdEndTime` (when ppolicy is loaded) / AD
`accountExpires` = action.until (replaced, so it follows the checkout both ways: earlier or
later than the end in place), so the checked-out password stops working at the end even if
no run happens; when rotating to nobody (or without an end) the end is removed (AD: never), so
the entry is usable again by whoever next gets a secret. jitpol therefore owns these two
attributes on a checkout entry. AD keeps a replaced password valid for an hour after an
administrative reset (the "old password allowed period"), so there a rotation is two modifies:
a discarded password with accountExpires in the past, then the new one with the end; no earlier
password binds afterwards, and a rotation refused half-way leaves the account expired
(requests.ad_flush_request). A rotation is an event: always changed=True. observe() reports
nothing for this model (the ledger knows the holders). LDAP cannot end another client's bound
connection: a connection bound with the old password keeps its bind until it closes.

Errors: TargetUnavailable when the server cannot be reached, times out or answers busy /
unavailable; PermanentTargetError for everything else (bad credentials, refused writes, missing
groups, names outside base_dn). Neither the bind password nor a password being set (nor its
hash) appears in messages or operations (shown as `***`).

ldap3 is imported lazily, so `jitpol validate` can run check_name() without it.
"""

from __future__ import annotations

from typing import ClassVar

from jitpol.connectors.kit import check_apply, check_model
from jitpol.connectors.ldap.accounts import Accounts
from jitpol.connectors.ldap.checkout import Checkout
from jitpol.model.assignment import Action, Assignment, Capabilities, Outcome, Scope

ROLE = "role-membership"
EPHEMERAL = "ephemeral-account"
CHECKOUT = "credential-checkout"
_OPS = {ROLE: ("grant", "revoke"), EPHEMERAL: ("create-account", "delete-account"), CHECKOUT: ("rotate",)}


class LdapConnector(Accounts, Checkout):
    """Connector for one LDAP directory (see the module docstring for settings and semantics).

    One connection is opened and bound on first use and reused; close() drops it."""

    type: ClassVar[str] = "ldap"
    capabilities: ClassVar[Capabilities] = Capabilities(
        models=frozenset({ROLE, EPHEMERAL, CHECKOUT}),
        # OpenLDAP (ppolicy pwdEndTime) and AD (accountExpires) end ephemeral accounts and
        # checked-out passwords themselves, at the grant's live end (earlier or later). AD with PAM
        # also ends role memberships (TTL links), reported through Assignment.expires; that is a
        # fact of the forest, learnt only by reading it, so role-membership is not declared here.
        # LDAP cannot end another client's bound connection.
        native_expiry=frozenset({EPHEMERAL, CHECKOUT}),
        # an ephemeral account carries jitpol's marker (its description); a `member` value cannot
        # carry one, so role-membership reports owned None (only the ledger knows)
        marks=frozenset({EPHEMERAL}),
        ends_sessions=False,
    )

    # -- Connector protocol -----------------------------------------------------------------

    def observe(self, scope: Scope) -> frozenset[Assignment]:
        """role-membership: the direct members of every group in scope.privileges (groups that
        do not exist, and names that are not DNs, have none; the placeholder is never shown).
        ephemeral-account: every account below people_base carrying jitpol's marker, whatever
        scope.privileges says, with its groups and the end the server enforces, owned True
        (entries without the marker are not jitpol's accounts and are not reported).
        credential-checkout: nothing (the ledger knows the holders; no request is sent).
        Read-only."""
        check_model(self.name, scope.model, _OPS)
        if scope.model == ROLE:
            return self._observe_members(scope)
        if scope.model == EPHEMERAL:
            return frozenset(self._observe_accounts(scope.model))
        return frozenset()  # credential-checkout

    def apply(self, action: Action, *, check: bool = False) -> Outcome:
        """Make one action true (see the module docstring). Idempotent, except that a rotate is
        an event (always changed=True); a create-account carrying a password the account does not
        already verify sets it. check=True only reads and lists the requests it would send."""
        a = action.assignment
        check_apply(self.name, a.model, action.op, _OPS)
        if a.model == ROLE:
            steps = self._plan_membership(action)
        elif action.op == "create-account":
            steps = self._plan_create(action)
        elif action.op == "delete-account":
            steps = self._plan_delete(action)
        else:  # credential-checkout: rotate
            steps = self._plan_rotate(action)
        if not steps:
            return Outcome(changed=False, before=True, after=True)
        if check:
            return Outcome(changed=True, before=False, after=False, operations=tuple(r.describe() for r, _ in steps))
        sent: list[str] = []
        changed = False
        for request, fallback in steps:
            wrote, done = self._send(request, fallback)
            sent.extend(r.describe() for r in done)
            changed = changed or wrote
        return Outcome(changed=changed, before=not changed, after=True, operations=tuple(sent))

    def close(self) -> None:
        """Unbind and drop the connection, if any. Safe to call twice; a later call reconnects."""
        conn, self._conn = self._conn, None
        self._root = None
        self._pam = None
        if conn is not None and not conn.closed:
            from ldap3.core.exceptions import LDAPException

            try:
                conn.unbind()
            except LDAPException:
                pass  # the socket is gone already; nothing more to release
