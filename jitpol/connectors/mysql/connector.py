"""MySQL / MariaDB connector: models `role-membership`, `ephemeral-account` and
`credential-checkout`.

Settings (the target's entry in jitpol.yaml):
    dsn_env                  required; NAME of the environment variable that holds the DSN,
                             `mysql://user:password@host:port/` (user and password
                             percent-encoded; port 3306 when absent)
    terminate_sessions       optional bool, default true: KILL the account's connections on a
                             role-membership revoke (ephemeral accounts and checkouts always do)
    connect_timeout          optional int seconds, default 10
    event_schema             optional schema name, default "jitpol": where jitpol's
                             end-of-window events live (created with the first one)
    account_host             optional, default "%": the host part of ephemeral accounts
    require_event_scheduler  optional bool, default true: refuse to create an ephemeral account
                             or check out a password while the server's event scheduler is not
                             ON (the server would not end them by itself)

A person's account is `user@host` (e.g. `alice@%`); role names are plain names. Every name is
checked against an allowlist (names.py) before any SQL is built, and sent as a string literal
quoted by PyMySQL's own escaping (`'alice'@'%'`); schema and event names are built by jitpol and
quoted as identifiers.

role-membership: `GRANT role TO user@host`, and the role made a default role (active at login):
MariaDB keeps one default role per account, so it becomes the default only when the account has
none; MySQL 8 keeps a set and the role joins it. A revoke clears the default role (if it is that
role), REVOKEs it and KILLs every connection of the user name (a connection that ran SET ROLE
keeps the role until it disconnects). A grant that finds the membership present changes nothing.
apply_batch (base.BatchApply, batch.py) sends a batch's memberships as one GRANT or REVOKE per
role on MariaDB, with the same checks and per-action outcomes.
The server records no grantor for a role membership, so there is no ownership marker for this
model (observe says owned=None; the ledger knows what jitpol granted), and a revoke that only a
marker would back changes nothing. The server enforces no end for a membership: runs revoke it.
Accounts of the connector's own user name (at any host: KILL works by user name) are never
reported or changed; accounts with SUPER and roles are never
given or stripped of a role.

ephemeral-account: principal is a user name jitpol chose (`^jit-[a-z0-9][a-z0-9-]{0,27}$`, at
most 32 characters), at `account_host`; privilege the canonical JSON of the sorted list of
roles it gets. create-account makes, in this order, the event
`<event_schema>.jitpol_end_<user>` (`ON SCHEDULE AT` the window's end, `ON COMPLETION PRESERVE`,
comment `jitpol: ephemeral-account <user>`, body `ALTER USER ... ACCOUNT LOCK`: the server locks
the account at the end even if no run happens; the event is also jitpol's ownership marker, since
MariaDB accounts carry no comment), the account with the password (on MariaDB its
mysql_native_password hash, computed here), its roles and a default role. The server's clock
decides: an end already past creates the account locked. An existing account with the marker is
brought exactly to that state (password set unless the stored hash already matches, the event
moved to the window's end earlier or later and enabled, the account unlocked or locked to match,
missing roles granted, extra ones revoked); an account without the marker is never adopted.
delete-account (marked accounts only) locks the account, KILLs its connections, drops it and then
its event. observe() reports every marked account that exists (owned=True), with its sorted
direct roles and the event's time as `expires`, whatever scope.privileges says.

credential-checkout: principal is an existing shared account `user@host`; rotate sets a new
password (required), and while the privilege names holders, moves the event
`jitpol_checkout_<hash of the account>` to the checkout's end (it locks the account then) and
unlocks the account; then it KILLs every connection of the user name. On MariaDB the stored hash
is read back: a rotation the server did not store fails instead of reporting a secret that does
not work. Roles, accounts with SUPER, accounts of jitpol's own user name and its ephemeral accounts
are refused.
observe() reports nothing (the ledger knows the holders).

Account statements commit on their own in MySQL/MariaDB (no transaction can hold them), so each
model orders its statements so that a run that dies half-way is finished by the next one: the
marker event before the account, the account dropped before its event.

Privileged roles: a role that holds or reaches (through roles granted to roles) SUPER is never
handed out; one that reaches FILE, CREATE USER, GRANT OPTION on *.*, SHUTDOWN, PROCESS, RELOAD,
REPLICATION SLAVE or any privilege on the `mysql` schema only with the resource's
`allowPrivileged: true`. Revocations and deletions are never refused for it.

PyMySQL is imported lazily, so the policy validator can import check_name on a machine without
it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from jitpol.connectors.kit import batch_runs, check_apply, check_model
from jitpol.connectors.mysql.accounts import Accounts
from jitpol.connectors.mysql.batch import MembershipBatch
from jitpol.connectors.mysql.checkout import Checkout
from jitpol.connectors.mysql.names import validate_user
from jitpol.errors import InvalidInput
from jitpol.model.assignment import Action, Assignment, Capabilities, Outcome, Scope

ROLE_MEMBERSHIP = "role-membership"
EPHEMERAL = "ephemeral-account"
CHECKOUT = "credential-checkout"
MODELS = (ROLE_MEMBERSHIP, EPHEMERAL, CHECKOUT)
_OPS = {ROLE_MEMBERSHIP: ("grant", "revoke"), EPHEMERAL: ("create-account", "delete-account"), CHECKOUT: ("rotate",)}


class MysqlConnector(MembershipBatch, Accounts, Checkout):
    """Connector for one MySQL or MariaDB server (see the module docstring for settings and
    models). One autocommit connection is opened on first use and reused. Errors:
    TargetUnavailable when the server cannot be reached (or the connection drops, or a connection
    will not end), PermanentTargetError for everything else."""

    type: ClassVar[str] = "mysql"
    capabilities: ClassVar[Capabilities] = Capabilities(
        models=frozenset(MODELS),
        # an event-scheduler event locks an ephemeral account, and a checked-out account, at the end
        native_expiry=frozenset({EPHEMERAL, CHECKOUT}),
        # an ephemeral account's event is its marker; a role membership can carry none
        marks=frozenset({EPHEMERAL}),
        ends_sessions=True,
    )

    def observe(self, scope: Scope) -> frozenset[Assignment]:
        """Read-only. role-membership: every direct member account of each role in
        scope.privileges (owned=None: no marker); ephemeral-account: every marked account;
        credential-checkout: nothing."""
        check_model(self.name, scope.model, _OPS)
        if scope.model == ROLE_MEMBERSHIP:
            roles = []
            for role in sorted(scope.privileges):
                try:
                    roles.append(validate_user(role, "role"))
                except InvalidInput:
                    continue  # no such role can exist: it has no members
            if not roles:
                return frozenset()
            return frozenset(
                Assignment(self.name, ROLE_MEMBERSHIP, account, role)
                for account, role in self._observe_members(roles)
            )
        if scope.model == EPHEMERAL:
            return self._observe_accounts()
        return frozenset()

    def apply(self, action: Action, *, check: bool = False) -> Outcome:
        """Make one action true (see the module docstring); check=True sends nothing but reads,
        and lists the statements it would send. Idempotent, except that a rotate is an event: it
        always changes the password (changed=True)."""
        check_apply(self.name, action.assignment.model, action.op, _OPS)
        if action.assignment.model == ROLE_MEMBERSHIP:
            return self._apply_membership(action, check)
        if action.op == "create-account":
            return self._create_account(action, check)
        if action.op == "delete-account":
            return self._delete_account(action, check)
        return self._rotate(action, check)

    def apply_batch(self, actions: Sequence[Action]) -> list[Outcome | Exception]:
        """BatchApply: one entry per action, in order, each exactly what `apply` would have done.
        Consecutive role-membership grants and revokes go together (batch.py: one GRANT or
        REVOKE per role, the connections of every revoked account KILLed together); any other
        action is applied alone, in its place."""
        return batch_runs(self.name, actions, _OPS, ROLE_MEMBERSHIP, self._membership_batch, self.apply)
