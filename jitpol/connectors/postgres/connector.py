"""PostgreSQL connector: models `role-membership`, `ephemeral-account` and `credential-checkout`.

Settings (the target's entry in jitpol.yaml):
    dsn_env             required; NAME of the environment variable that holds the libpq DSN
    terminate_sessions  optional bool, default true: end the principal's sessions on a
                        role-membership revoke (ephemeral accounts and checkouts always end them)
    connect_timeout     optional int seconds, default 10
    reassign_to         optional role name: who inherits what a deleted ephemeral account owned;
                        default the connector's own login role (an action's detail
                        "reassign_to", e.g. from a resource option, takes precedence)
    grantor_role        optional role name, default "jitpol_grantor": the grantor of record
                        (GRANTED BY) that marks a membership as jitpol's

role-membership: a person's login role is made a direct member of a group role
(GRANT ... GRANTED BY <grantor_role>) and removed again (REVOKE, then pg_terminate_backend of the
principal's sessions). The grantor is jitpol's ownership marker: observe() reports owned=True for
a membership the grantor role granted, owned=False for any other (standing access). The grantor
role is a NOLOGIN, NOINHERIT role with a comment (never jitpol's account marker) that nobody
logs in as; a superuser connector creates it in the transaction of the first GRANT that needs it.
PostgreSQL 16 and later accept a grantor only if it holds ADMIN OPTION on the role itself, so the
connector gives it that first (WITH ADMIN TRUE, INHERIT FALSE, SET FALSE: it may hand the role
out, never use it). A grant that finds the membership present, from any grantor, changes nothing
and never adds the marker. A revoke takes away jitpol's membership (REVOKE ... GRANTED BY the
grantor when marked: on PostgreSQL 16 another grantor's standing row survives it, and the
principal keeps the role and its sessions) and an unmarked one the ledger names with a plain
REVOKE, as before markers; a revoke only the marker backs (kit.marker_driven) leaves an unmarked
membership alone. PostgreSQL 15 and earlier let only a superuser name a grantor: a
non-superuser connector grants unmarked there (only the ledger knows those memberships); on 16
and later it marks once the grantor role exists and the login has its privileges (GRANT
jitpol_grantor TO <login>), and grants unmarked until then. The
grantor role is never granted, never given a membership, never handed to an ephemeral account
(not even through a chain of memberships), never rotated, and never observed.

ephemeral-account: principal is a role name jitpol chose (`^jit-[a-z0-9][a-z0-9-]{0,30}$`),
privilege the canonical JSON of the sorted list of roles it gets. create-account makes a LOGIN
role with the password from action.detail("password"), `VALID UNTIL` the window's end (the
server refuses password logins after it even if no run happens) and those roles, commented
`jitpol: grant=<grant>; person=<person>` (jitpol's marker) in the same transaction. An existing
role with the marker is brought exactly to that state (password set unless it already verifies,
VALID UNTIL set to the window's end whether that is earlier or later than the current one: a
window cut short ends the account sooner, missing roles granted, extra ones revoked); a role
without the marker is never adopted. delete-account (marked roles only) sets NOLOGIN,
terminates the role's sessions, runs REASSIGN OWNED / DROP OWNED in every database that allows
connections and drops the role. observe() reports every marked role (owned=True), whatever
scope.privileges says.

credential-checkout: principal is an existing shared login role; rotate sets a new password
(required), `VALID UNTIL` the checkout's end when the privilege names holders (not when it is
"[]", a rotation to nobody), and terminates every session of the account. Superusers, jitpol's
own login, its grantor role and ephemeral accounts are refused. observe() reports nothing (the
ledger knows the holders).

Secrets: passwords are hashed on the client (libpq's PQencryptPasswordConn, the server's
password_encryption), so the plain text never reaches the server, its logs or
pg_stat_activity; operations show `PASSWORD '***'`; errors of statements that carry a verifier
are raised without the driver's exception attached.

Safety: every role name is checked against an allowlist (validate_identifier) before any SQL
is built, statements are composed with psycopg.sql.Identifier/Literal only, and superusers are
never granted to, revoked from or handed out, not even through a chain of memberships. The DSN and
its password never appear in errors.

Privileged roles: a grant (role-membership) or an account (ephemeral-account) whose role is, or
through memberships (pg_auth_members, followed recursively) reaches, a role with CREATEROLE,
REPLICATION or BYPASSRLS or one of PRIVILEGED_ROLES (pg_execute_server_program,
pg_write_server_files, pg_read_server_files, pg_create_subscription) is refused with
PermanentTargetError naming the path, unless the action carries the "privileged" detail (its
resource says `allowPrivileged: true`). The check runs in the transaction that grants; check
mode runs it too. Revocations and deletions are never refused.

psycopg is imported lazily, so the policy validator can import validate_identifier on a machine
without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from jitpol.connectors.kit import batch_runs, check_apply, check_model
from jitpol.connectors.postgres.accounts import Accounts
from jitpol.connectors.postgres.batch import MembershipBatch
from jitpol.connectors.postgres.checkout import Checkout
from jitpol.connectors.postgres.membership import _OBSERVE_SQL
from jitpol.connectors.postgres.names import MARKER_PREFIX
from jitpol.model.assignment import Action, Assignment, Capabilities, Outcome, Scope
from jitpol.model.canonical import canonical_json

ROLE_MEMBERSHIP = "role-membership"
EPHEMERAL = "ephemeral-account"
CHECKOUT = "credential-checkout"
MODELS = (ROLE_MEMBERSHIP, EPHEMERAL, CHECKOUT)
_OPS = {ROLE_MEMBERSHIP: ("grant", "revoke"), EPHEMERAL: ("create-account", "delete-account"), CHECKOUT: ("rotate",)}


class PostgresConnector(MembershipBatch, Accounts, Checkout):
    """Connector for one PostgreSQL cluster (see the module docstring for settings and models).

    One autocommit connection is opened on first use and reused; delete-account opens one more,
    briefly, per other database. Errors: TargetUnavailable when the server cannot be reached (or
    the connection drops, or a session will not end), PermanentTargetError for everything else.
    """

    type: ClassVar[str] = "postgres"
    capabilities: ClassVar[Capabilities] = Capabilities(
        models=frozenset(MODELS),
        # VALID UNTIL: an ephemeral account's, and a checked-out password's, end is enforced by
        # the server for password logins even when no run happens
        native_expiry=frozenset({EPHEMERAL, CHECKOUT}),
        # a membership's grantor (the grantor role), an account's comment: observe says owned
        marks=frozenset({ROLE_MEMBERSHIP, EPHEMERAL}),
        ends_sessions=True,
    )

    # -- Connector protocol -----------------------------------------------------------------

    def observe(self, scope: Scope) -> frozenset[Assignment]:
        """Read-only.

        role-membership: every direct member of each role in scope.privileges (roles that do not
        exist have no members), owned=True when the grantor role granted the membership (on
        PostgreSQL 16, when one of its rows is the grantor role's), owned=False otherwise; the
        grantor role is never reported. ephemeral-account: every role carrying jitpol's marker
        (owned=True), whatever scope.privileges says, with its sorted direct memberships as the
        privilege and its VALID UNTIL as `expires`. credential-checkout: nothing (the ledger
        tracks holders)."""
        check_model(self.name, scope.model, _OPS)
        if scope.model == ROLE_MEMBERSHIP:
            if not scope.privileges:
                return frozenset()
            rows = self._fetch(_OBSERVE_SQL, {
                "roles": sorted(scope.privileges), "grantor": self._grantor, "marker": MARKER_PREFIX})
            return frozenset(
                Assignment(target=self.name, model=scope.model, principal=str(member), privilege=str(role),
                           owned=bool(owned))
                for member, role, owned in rows
            )
        if scope.model == EPHEMERAL:
            return frozenset(
                Assignment(self.name, EPHEMERAL, r.name, canonical_json(sorted(r.member_of)), expires=r.valid_until,
                           owned=True)
                for r in self._roles(()).values()
                if r.marked
            )
        return frozenset()  # credential-checkout

    def apply(self, action: Action, *, check: bool = False) -> Outcome:
        """Make one action true (see the module docstring); check=True sends nothing but reads,
        and lists the statements it would send. Idempotent, except that a rotate is an event:
        it always changes the password (changed=True)."""
        check_apply(self.name, action.assignment.model, action.op, _OPS)
        if action.assignment.model == ROLE_MEMBERSHIP:
            return self._apply_membership(action, check)
        if action.op == "create-account":
            return self._create_account(action, check)
        if action.op == "delete-account":
            return self._delete_account(action, check)
        return self._rotate(action, check)  # credential-checkout

    def apply_batch(self, actions: Sequence[Action]) -> list[Outcome | Exception]:
        """BatchApply: one entry per action, in order, each exactly what `apply` would have done.
        Consecutive role-membership grants and revokes go together (batch.py: one GRANT or
        REVOKE per role, the sessions of every revoked principal ended at once); any other
        action is applied alone, in its place."""
        return batch_runs(self.name, actions, _OPS, ROLE_MEMBERSHIP, self._membership_batch, self.apply)
