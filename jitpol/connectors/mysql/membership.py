"""role-membership: a role granted to a person's account (`GRANT role TO user@host`) and made a
default role, so that it is active at login; revoked again with the default role cleared and the
account's connections KILLed."""

from __future__ import annotations

from jitpol.connectors.kit import marker_driven
from jitpol.connectors.mysql.names import account_text, parse_account, validate_user
from jitpol.connectors.mysql.privileged import PrivilegeCheck
from jitpol.connectors.mysql.session import _plain, _Step
from jitpol.errors import InvalidInput, PermanentTargetError
from jitpol.model.assignment import Action, Outcome

# MariaDB: direct members of the roles named (a role granted to a role has Host ''); MySQL 8:
# the same from role_edges (roles are accounts at host '%')
_OBSERVE_MARIADB = "SELECT User, Host, Role FROM mysql.roles_mapping WHERE Host <> '' AND Role IN ({})"
_OBSERVE_MYSQL = ("SELECT TO_USER, TO_HOST, FROM_USER FROM mysql.role_edges "
                  "WHERE FROM_HOST = '%%' AND FROM_USER IN ({})")


class Membership(PrivilegeCheck):
    """role-membership."""

    def _observe_members(self, roles: list[str]) -> frozenset[tuple[str, str]]:
        """(account `user@host`, role) for every direct member of `roles` that is an account (not
        a role), but accounts of this connector's own user name."""
        placeholders = ", ".join(["%s"] * len(roles))
        query = (_OBSERVE_MARIADB if self.mariadb else _OBSERVE_MYSQL).format(placeholders)
        me = self._current_account()
        return frozenset(
            (account_text(str(user), str(host)), str(role))
            for user, host, role in self._fetch(query, tuple(roles))
            if str(user) != me[0]
        )

    def _apply_membership(self, action: Action, check: bool) -> Outcome:
        """GRANT the role and make it a default role, or clear the default role and REVOKE it (then
        KILL the account's connections, unless terminate_sessions is false); idempotent."""
        a = action.assignment
        try:
            role = validate_user(a.privilege, "role")
            user, host = parse_account(a.principal)
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {self.name}: {exc}") from None
        self._check_lengths(role, user)
        role_exists, account, held, defaults = self._membership_state(user, host, role)
        if not role_exists:
            raise PermanentTargetError(f"target {self.name}: role {role!r} does not exist")
        if account is None:
            raise PermanentTargetError(f"target {self.name}: account {a.principal!r} does not exist")
        if account.is_role or account.superuser or user == self._current_account()[0]:
            # its own user name at any host: KILL works by user name, and would end jitpol's own runs
            raise PermanentTargetError(
                f"target {self.name}: refusing to {action.op} {role!r} for {a.principal!r}: jitpol never changes "
                "the roles of a role, of an account with SUPER or of its own login's user name")
        acct, role_sql = self._account_sql(user, host), self._role_sql(role)
        steps: list[_Step] = []
        if action.op == "grant":
            if held:
                # present, whoever granted it: standing access stays as it is
                return Outcome(changed=False, before=True, after=True)
            steps.append(_plain(f"GRANT {role_sql} TO {acct}"))
            steps.extend(self._default_role_steps(defaults, user, host, add=role))
        else:
            if not held or marker_driven(action):
                # nothing there; or a revoke only a marker backs, and memberships carry none here
                return Outcome(changed=False, before=True, after=True)
            steps.extend(self._default_role_steps(defaults, user, host, remove=role))
            steps.append(_plain(f"REVOKE {role_sql} FROM {acct}"))
            if self._terminate_sessions:
                # REVOKE does not reach into open connections: one that ran SET ROLE keeps acting as
                # the role until it disconnects. End them all (never our own).
                steps.append(self._kill_step(user))
        operations = self._shown(steps)
        if action.op == "grant":
            self._refuse_privileged(action, [role])
        if check:
            return Outcome(changed=True, before=False, after=False, operations=operations)
        self._run(steps)
        if action.op == "revoke" and role in self._roles_of(user, host):
            # a GRANT that returns succeeded; a REVOKE is read back, as the PostgreSQL connector does
            raise PermanentTargetError(f"target {self.name}: {a.principal!r} still holds {role!r} after REVOKE")
        return Outcome(changed=True, before=False, after=True, operations=operations)

    def _default_role_steps(self, current: set[str], user: str, host: str, *, add: str | None = None,
                            remove: str | None = None) -> list[_Step]:
        """Make `add` a default role of the account, or stop `remove` being one. MariaDB keeps
        one default role per account: `add` becomes it only when the account has none (a default
        role someone chose is left alone), and `remove` clears it only when it is that role.
        MySQL 8 keeps a set: the statement names the set with `add` in it or `remove` out of it."""
        acct = self._account_sql(user, host)
        if self.mariadb:
            if add is not None and not current:
                return [_plain(f"SET DEFAULT ROLE {self._lit(add)} FOR {acct}")]
            if remove is not None and remove in current:
                return [_plain(f"SET DEFAULT ROLE NONE FOR {acct}")]
            return []
        wanted = (current | {add}) if add is not None else (current - {remove})
        if wanted == current:
            return []
        roles = ", ".join(self._role_sql(r) for r in sorted(wanted)) if wanted else "NONE"
        return [_plain(f"SET DEFAULT ROLE {roles} TO {acct}")]
