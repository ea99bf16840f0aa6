"""role-membership: a person's login role made a direct member of a group role, GRANTED BY
jitpol's grantor role (its ownership marker), and revoked again with the principal's sessions
ended."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jitpol.connectors.kit import marker_driven
from jitpol.connectors.postgres.names import MARKER_PREFIX, validate_identifier, validate_principal
from jitpol.connectors.postgres.privileged import PrivilegeCheck
from jitpol.connectors.postgres.statements import _plain, _terminate
from jitpol.errors import InvalidInput, PermanentTargetError
from jitpol.model.assignment import Action, Assignment, Outcome

if TYPE_CHECKING:
    from psycopg import sql

# the comment a grantor role jitpol creates carries: fixed text, and NOT the account marker, so
# the grantor is never taken for an ephemeral account (observed, changed or dropped as one)
GRANTOR_COMMENT = (
    "Grantor of record of the role memberships jitpol grants (GRANTED BY): a membership it granted is "
    "jitpol's and ends with its grant. Keep it NOLOGIN, with no member but jitpol's own login."
)
# PostgreSQL 16 (server_version_num): a membership may have one row per grantor, and a grantor
# must hold ADMIN OPTION on the role; before 16, only a superuser may name a grantor
_PG16 = 160000

# Direct members of the roles named, and whether the grantor role granted the membership (one
# row per member and role: PostgreSQL 16 records a membership once per grantor). The grantor role
# counts as jitpol's marker only while it is a NOLOGIN non-superuser that is neither our own login
# nor an ephemeral account; it is itself never reported, as a member or as a role.
_OBSERVE_SQL = """
SELECT member.rolname::text, grp.rolname::text, coalesce(bool_or(m.grantor = g.oid), false)
FROM pg_catalog.pg_auth_members AS m
JOIN pg_catalog.pg_roles AS grp ON grp.oid = m.roleid
JOIN pg_catalog.pg_roles AS member ON member.oid = m.member
LEFT JOIN pg_catalog.pg_roles AS g
       ON g.rolname = %(grantor)s AND NOT g.rolsuper AND NOT g.rolcanlogin AND g.rolname <> current_user
      AND NOT coalesce(pg_catalog.starts_with(pg_catalog.shobj_description(g.oid, 'pg_authid'), %(marker)s), false)
WHERE grp.rolname = ANY(%(roles)s) AND grp.rolname <> %(grantor)s AND member.rolname <> %(grantor)s
GROUP BY member.rolname, grp.rolname
"""

# one round trip for everything apply() must know before it decides about a membership: our
# login, the superuser flags, the membership's rows (all, and those the grantor role granted),
# and the grantor role (whether it exists, what it is, whether our login has its privileges,
# whether it holds ADMIN OPTION on the role, as PostgreSQL 16 requires of a grantor)
_INSPECT_SQL = """
WITH grp AS (SELECT oid, rolsuper FROM pg_catalog.pg_roles WHERE rolname = %(role)s),
     usr AS (SELECT oid, rolsuper FROM pg_catalog.pg_roles WHERE rolname = %(principal)s),
     g AS (SELECT oid, rolsuper, rolcanlogin, pg_catalog.shobj_description(oid, 'pg_authid') AS comment
           FROM pg_catalog.pg_roles WHERE rolname = %(grantor)s),
     mem AS (SELECT m.grantor FROM pg_catalog.pg_auth_members AS m
             WHERE m.roleid = (SELECT oid FROM grp) AND m.member = (SELECT oid FROM usr))
SELECT current_user::text,
       coalesce((SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user), false),
       (SELECT rolsuper FROM grp),
       (SELECT rolsuper FROM usr),
       (SELECT count(*) FROM mem),
       (SELECT count(*) FROM mem WHERE mem.grantor = (SELECT oid FROM g)),
       EXISTS (SELECT 1 FROM g),
       coalesce((SELECT rolsuper FROM g), false),
       coalesce((SELECT rolcanlogin FROM g), false),
       (SELECT comment FROM g),
       coalesce((SELECT pg_catalog.pg_has_role(current_user, oid, 'USAGE') FROM g), false),
       EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members AS m
               WHERE m.roleid = (SELECT oid FROM grp) AND m.member = (SELECT oid FROM g) AND m.admin_option)
"""

# _INSPECT_SQL for many (role, principal) pairs at once, one row per pair in their order (the
# first column is the pair's position): what a batch must know before it decides, in one round trip
_INSPECT_MANY_SQL = """
WITH pairs AS (SELECT * FROM unnest(%(roles)s::text[], %(principals)s::text[])
                WITH ORDINALITY AS p(role, principal, i)),
     g AS (SELECT oid, rolsuper, rolcanlogin, pg_catalog.shobj_description(oid, 'pg_authid') AS comment
           FROM pg_catalog.pg_roles WHERE rolname = %(grantor)s),
     me AS (SELECT current_user::text AS name,
                   coalesce((SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user), false) AS super,
                   coalesce((SELECT pg_catalog.pg_has_role(current_user, oid, 'USAGE') FROM g), false) AS usable),
     r AS (SELECT p.i, grp.oid AS roleid, grp.rolsuper AS role_super, usr.oid AS member, usr.rolsuper AS user_super
           FROM pairs AS p
           LEFT JOIN pg_catalog.pg_roles AS grp ON grp.rolname = p.role
           LEFT JOIN pg_catalog.pg_roles AS usr ON usr.rolname = p.principal),
     mem AS (SELECT r.i, count(*) AS n, count(*) FILTER (WHERE m.grantor = (SELECT oid FROM g)) AS ours
             FROM r JOIN pg_catalog.pg_auth_members AS m ON m.roleid = r.roleid AND m.member = r.member
             GROUP BY r.i),
     adm AS (SELECT m.roleid FROM pg_catalog.pg_auth_members AS m
             WHERE m.member = (SELECT oid FROM g) AND m.admin_option)
SELECT r.i, me.name, me.super, r.role_super, r.user_super, coalesce(mem.n, 0), coalesce(mem.ours, 0),
       EXISTS (SELECT 1 FROM g),
       coalesce((SELECT rolsuper FROM g), false),
       coalesce((SELECT rolcanlogin FROM g), false),
       (SELECT comment FROM g),
       me.usable,
       coalesce(r.roleid IN (SELECT roleid FROM adm), false)
FROM r
CROSS JOIN me
LEFT JOIN mem ON mem.i = r.i
ORDER BY r.i
"""


@dataclass(frozen=True, slots=True)
class _Membership:
    """What _INSPECT_SQL found about one membership and the grantor role."""

    current_user: str
    login_super: bool
    role_super: bool | None  # None: the role does not exist
    principal_super: bool | None
    rows: int  # pg_auth_members rows of the principal in the role (PostgreSQL 16: one per grantor)
    ours: int  # ... of them granted by the grantor role
    grantor_exists: bool
    grantor_super: bool
    grantor_login: bool
    grantor_comment: str | None
    grantor_usable: bool  # our login has the grantor role's privileges
    grantor_admin: bool  # the grantor role holds ADMIN OPTION on the role itself


@dataclass(frozen=True, slots=True)
class _Change:
    """What one membership action must send, decided from what _INSPECT_SQL found."""

    marked: bool  # GRANTED BY the grantor role (grant), jitpol's row only (revoke)
    setup: tuple[sql.Composed, ...] = ()  # grant: the grantor role's setup, before the GRANT
    terminate: bool = False  # revoke: end the principal's sessions afterwards


class Membership(PrivilegeCheck):
    """role-membership."""

    def _apply_membership(self, action: Action, check: bool) -> Outcome:
        """GRANT (GRANTED BY the grantor role) or REVOKE one direct membership; idempotent. A
        revoke also terminates the principal's sessions (unless terminate_sessions is false, or
        the principal keeps the role through another grantor's row)."""
        from psycopg import sql

        a = action.assignment
        self._check_names(action)
        m = self._inspect(a)
        change = self._decide(action, m)
        if isinstance(change, Outcome):
            return change
        role, principal, grantor = (sql.Identifier(x) for x in (a.privilege, a.principal, self._grantor))
        statements: list[sql.Composed]
        if action.op == "grant":
            statements = [
                *change.setup, sql.SQL("GRANT {} TO {} GRANTED BY {}").format(role, principal, grantor),
            ] if change.marked else [
                # this login cannot record the grantor: granted unmarked, as before markers (the
                # ledger alone knows it is jitpol's; docs/targets/postgres.md says how to mark)
                sql.SQL("GRANT {} TO {}").format(role, principal),
            ]
        else:
            statements = [
                # jitpol's row, and only it: on PostgreSQL 16 another grantor's standing row survives
                sql.SQL("REVOKE {} FROM {} GRANTED BY {}").format(role, principal, grantor) if change.marked
                # unmarked, but the ledger says jitpol gave it (granted before markers existed)
                else sql.SQL("REVOKE {} FROM {}").format(role, principal)
            ]
            if change.terminate:
                # REVOKE does not reach into open sessions: one that ran SET ROLE keeps acting as
                # the group role until it disconnects. We cannot see which sessions did, so end
                # all of the principal's (never our own). The timeout makes the call wait until
                # they are really gone, so `after` is true when we return.
                statements.append(_terminate(a.principal))
        conn = self._connection()
        operations = tuple(stmt.as_string(conn) for stmt in statements)
        if action.op == "grant":
            if check:
                self._refuse_privileged(action, [a.privilege])
            else:
                # what is checked is what is granted: the check, the grantor role's setup and the
                # GRANT in one transaction (a failed GRANT leaves no grantor role behind)
                self._send(conn, [_plain(s) for s in statements], transaction=True, secret=False,
                           guard=lambda: self._refuse_privileged(action, [a.privilege]))
        elif not check:
            for stmt in statements:
                self._execute(stmt)
            self._verify_revoked(a, marked=change.marked)
        return Outcome(changed=True, before=False, after=not check, operations=operations)

    def _check_names(self, action: Action) -> None:
        """Raise PermanentTargetError unless both names pass the allowlists and neither is the
        grantor role. Sends nothing."""
        a = action.assignment
        try:
            validate_identifier(a.privilege, "role")
            validate_principal(a.principal)
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {self.name}: {exc}") from None
        if self._grantor in (a.privilege, a.principal):
            raise PermanentTargetError(
                f"target {self.name}: refusing to {action.op} {a.privilege!r} for {a.principal!r}: "
                f"{self._grantor!r} is jitpol's grantor role (setting grantor_role); it is never granted and "
                "never given a membership"
            )

    def _decide(self, action: Action, m: _Membership) -> Outcome | _Change:
        """From what _INSPECT_SQL found: the Outcome when there is nothing to do, else what to
        send. Raises PermanentTargetError for a role that does not exist, a superuser on either
        side, our own login as the principal, and a grantor role unfit to mark (see
        _grantor_setup)."""
        a = action.assignment
        for name, is_super in ((a.privilege, m.role_super), (a.principal, m.principal_super)):
            if is_super is None:
                raise PermanentTargetError(f'target {self.name}: role "{name}" does not exist')
        if m.role_super or m.principal_super or a.principal == m.current_user:
            # a superuser role as the privilege would hand out superuser through SET ROLE; a
            # superuser (or our own login) as the principal is standing access we must not touch
            raise PermanentTargetError(
                f"target {self.name}: refusing to {action.op} {a.privilege!r} for {a.principal!r}: "
                "jitpol never changes memberships of or in superusers, or of its own login"
            )
        if action.op == "grant":
            if m.rows:
                # present, whoever granted it: standing access stays as it is, unmarked (jitpol's
                # grant ending must never take it away)
                return Outcome(changed=False, before=True, after=True)
            setup = self._grantor_setup(m, a.privilege)
            return _Change(marked=setup is not None, setup=tuple(setup or ()))
        if not m.rows or (not m.ours and marker_driven(action)):
            # nothing there, or nothing of jitpol's for a revoke that only its marker backs (a
            # standing row found now, e.g. granted since observe, is not jitpol's to take)
            return Outcome(changed=False, before=True, after=True)
        keeps_it = 0 < m.ours < m.rows  # another grantor's row: the principal stays a member
        return _Change(marked=m.ours > 0, terminate=self._terminate_sessions and not keeps_it)

    def _inspect(self, a: Assignment) -> _Membership:
        row = self._fetch(_INSPECT_SQL, {"role": a.privilege, "principal": a.principal, "grantor": self._grantor})[0]
        return _membership(row)

    def _inspect_many(self, pairs: Sequence[tuple[str, str]]) -> list[_Membership]:
        """_inspect for many (role, principal) pairs in one round trip, in their order."""
        if not pairs:
            return []
        rows = self._fetch(_INSPECT_MANY_SQL, {
            "roles": [r for r, _ in pairs], "principals": [p for _, p in pairs], "grantor": self._grantor})
        return [_membership(row[1:]) for row in rows]

    def _grantor_setup(self, m: _Membership, role: str) -> list[sql.Composed] | None:
        """The statements that must precede `GRANT role TO ... GRANTED BY <grantor>`: create the
        grantor role when a superuser connector finds none, and on PostgreSQL 16 and later give it
        ADMIN OPTION on `role` (without INHERIT or SET: it may hand the role out, never use it).
        None when our login cannot grant as it (not a superuser: before PostgreSQL 16 at all, from 16
        on without the grantor role's privileges): the grant then goes unmarked. Raises
        PermanentTargetError when the grantor role exists but is unfit to mark anything."""
        from psycopg import sql

        g = self._grantor
        why = (
            "it is jitpol's own login" if g == m.current_user
            else "it is a superuser" if m.grantor_super
            else "it can log in (a grantor of record must be NOLOGIN: what a person grants by hand is not jitpol's)"
            if m.grantor_login
            else "it carries jitpol's ephemeral-account marker" if (m.grantor_comment or "").startswith(MARKER_PREFIX)
            else None
        )  # fmt: skip
        if m.grantor_exists and why is not None:
            raise PermanentTargetError(
                f"target {self.name}: the grantor role {g!r} (setting grantor_role) cannot mark jitpol's memberships: "
                f"{why}; choose another name or make it a NOLOGIN role with no other use"
            )
        version = self._connection().info.server_version
        if not m.login_super and (version < _PG16 or not m.grantor_exists or not m.grantor_usable):
            # PostgreSQL 15 and earlier let only a superuser name a grantor; from 16 on the login
            # needs the grantor role's privileges: without them, the grant goes unmarked
            return None
        steps: list[sql.Composed] = []
        ident = sql.Identifier(g)
        if not m.grantor_exists:
            steps.append(sql.SQL("CREATE ROLE {} WITH NOLOGIN NOINHERIT").format(ident))
            steps.append(sql.SQL("COMMENT ON ROLE {} IS {}").format(ident, sql.Literal(GRANTOR_COMMENT)))
        if version >= _PG16 and not m.grantor_admin:
            steps.append(sql.SQL("GRANT {} TO {} WITH ADMIN TRUE, INHERIT FALSE, SET FALSE").format(
                sql.Identifier(role), ident))
        return steps

    def _verify_revoked(self, a: Assignment, *, marked: bool) -> None:
        # From PostgreSQL 16 a membership granted by another role survives a plain REVOKE (with
        # only a warning). Say so rather than report a revocation that did not happen. Of a
        # marked membership only jitpol's row must be gone: another grantor's is standing access.
        after = self._inspect(a)
        if after.ours if marked else after.rows:
            raise PermanentTargetError(
                f"target {self.name}: {a.principal!r} is still a member of {a.privilege!r} after REVOKE "
                + (f"(still granted by {self._grantor!r})" if marked else "(granted by another role?)")
            )


def _membership(row: Sequence[Any]) -> _Membership:
    """One row of _INSPECT_SQL (or of _INSPECT_MANY_SQL without its index)."""
    (current_user, login_super, role_super, principal_super, rows, ours, g_exists, g_super, g_login, g_comment,
     g_usable, g_admin) = row
    return _Membership(
        current_user=str(current_user), login_super=bool(login_super), role_super=role_super,
        principal_super=principal_super, rows=int(rows), ours=int(ours), grantor_exists=bool(g_exists),
        grantor_super=bool(g_super), grantor_login=bool(g_login), grantor_comment=g_comment,
        grantor_usable=bool(g_usable), grantor_admin=bool(g_admin),
    )
