"""ephemeral-account: a LOGIN role jitpol creates for one grant, with its marker comment, a
password, VALID UNTIL the window's end and exactly its roles; dropped (with what it owns
reassigned) at the end."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from jitpol.connectors.postgres.names import marker, parse_role_list, validate_account_name, validate_identifier
from jitpol.connectors.postgres.passwords import password_matches
from jitpol.connectors.postgres.privileged import PrivilegeCheck
from jitpol.connectors.postgres.session import _Role
from jitpol.connectors.postgres.statements import _plain, _Step, _termination, valid_until_text
from jitpol.errors import InvalidInput, PermanentTargetError
from jitpol.model.assignment import Action, Outcome


class Accounts(PrivilegeCheck):
    """ephemeral-account."""

    def _create_account(self, action: Action, check: bool) -> Outcome:
        from psycopg import sql

        a = action.assignment
        try:
            name = validate_account_name(a.principal)
            wanted = parse_role_list(a.privilege)
            comment = marker(action.detail("grant"), action.detail("person"))
            if action.until is None:
                raise InvalidInput("an ephemeral account needs the end of its window (action.until)")
            until_text = valid_until_text(action.until)
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {self.name}: {exc}") from None
        until = action.until
        password = self._checked_password(action)

        current_user, can_read_passwords = self._session()
        roles = self._roles([name, *wanted])
        self._check_account_roles(name, wanted, roles, current_user)
        existing = roles.get(name)
        if existing is not None and not existing.marked:
            raise PermanentTargetError(
                f"target {self.name}: role {name!r} exists and does not carry jitpol's marker; "
                "jitpol never adopts a role it did not create"
            )
        if existing is not None and existing.superuser:
            raise PermanentTargetError(
                f"target {self.name}: jitpol's account {name!r} has been made a superuser; refusing to touch it"
            )

        ident = sql.Identifier(name)
        until_sql = sql.Literal(until_text)
        secret: sql.Composable | None = None
        already = (
            password is not None
            and existing is not None
            and can_read_passwords
            and password_matches(self._stored_verifier(name), password, name)
        )
        if password is not None and not already:
            secret = sql.SQL("'***'") if check else sql.Literal(self._verifier(name, password))
        steps: list[_Step] = []
        if existing is None:
            def create(password_sql: sql.Composable | None) -> sql.Composed:
                options: list[sql.Composable] = [sql.SQL("LOGIN")]
                if password_sql is not None:
                    options.append(sql.SQL("PASSWORD {}").format(password_sql))
                options.append(sql.SQL("VALID UNTIL {}").format(until_sql))
                if wanted:
                    options.append(sql.SQL("IN ROLE {}").format(sql.SQL(", ").join(map(sql.Identifier, wanted))))
                return sql.SQL("CREATE ROLE {} WITH {}").format(ident, sql.SQL(" ").join(options))

            steps.append(_Step(create(secret), create(None if secret is None else sql.SQL("'***'"))))
            steps.append(_plain(sql.SQL("COMMENT ON ROLE {} IS {}").format(ident, sql.Literal(comment))))
        else:
            if secret is not None:
                steps.append(_Step(
                    sql.SQL("ALTER ROLE {} WITH PASSWORD {}").format(ident, secret),
                    sql.SQL("ALTER ROLE {} WITH PASSWORD {}").format(ident, sql.SQL("'***'")),
                ))  # fmt: skip
            if existing.valid_until != until:
                # the window's end, earlier or later: a window cut short (a schedule, a
                # break-glass deadline, a restriction) ends the account sooner too
                steps.append(_plain(sql.SQL("ALTER ROLE {} VALID UNTIL {}").format(ident, until_sql)))
            for role in wanted:
                if role not in existing.member_of:
                    steps.append(_plain(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role), ident)))
            for role in sorted(existing.member_of - set(wanted)):
                steps.append(_plain(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(role), ident)))
        if not steps:
            return Outcome(changed=False, before=True, after=True)
        operations = self._shown(steps)
        if check:
            self._refuse_privileged(action, wanted)
        else:
            # one transaction: a run that dies half-way must not leave a role without the marker
            # (the next run would refuse to adopt it); the privileged-role check runs in it first
            self._send(self._connection(), steps, transaction=True, secret=secret is not None,
                       guard=lambda: self._refuse_privileged(action, wanted))
            self._verify_account(name, wanted, until)
        return Outcome(changed=True, before=False, after=not check, operations=operations)

    def _check_account_roles(
        self, name: str, wanted: Sequence[str], roles: Mapping[str, _Role], current_user: str
    ) -> None:
        for role in wanted:
            info = roles.get(role)
            if info is None:
                raise PermanentTargetError(f'target {self.name}: role "{role}" does not exist')
            # membership in a superuser role is superuser (SET ROLE); in our own login, our
            # powers; in another ephemeral account, access that account's end takes away
            why = (
                "it is a superuser role" if info.superuser
                else "it is jitpol's own login" if role == current_user
                else "it is the account itself" if role == name
                else "it is another ephemeral account" if info.marked
                else "it is jitpol's grantor role (setting grantor_role)" if role == self._grantor
                else None
            )  # fmt: skip
            if why is not None:
                raise PermanentTargetError(f"target {self.name}: refusing to give {name!r} the role {role!r}: {why}")

    def _verify_account(self, name: str, wanted: Sequence[str], until: datetime) -> None:
        role = self._roles([name]).get(name)
        if role is None or not role.marked:
            raise PermanentTargetError(f"target {self.name}: account {name!r} is missing after creating it")
        if role.member_of != frozenset(wanted):
            # PostgreSQL 16: a membership granted by another role survives a plain REVOKE
            raise PermanentTargetError(
                f"target {self.name}: account {name!r} has roles {sorted(role.member_of)} instead of "
                f"{sorted(wanted)} after apply (granted by another role?)"
            )
        if role.valid_until != until:
            raise PermanentTargetError(f"target {self.name}: account {name!r} did not get its VALID UNTIL")

    def _delete_account(self, action: Action, check: bool) -> Outcome:
        from psycopg import sql

        try:
            name = validate_account_name(action.assignment.principal)
            chosen = action.detail("reassign_to") or self._reassign_to
            if chosen is not None:
                validate_identifier(chosen, "reassign_to")
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {self.name}: {exc}") from None
        current_user, _ = self._session()
        reassign_to = chosen or current_user
        roles = self._roles([name, reassign_to])
        existing = roles.get(name)
        if existing is None:
            return Outcome(changed=False, before=True, after=True)
        if not existing.marked:
            raise PermanentTargetError(
                f"target {self.name}: role {name!r} does not carry jitpol's marker; jitpol does not drop it"
            )
        heir = roles.get(reassign_to)
        if heir is None:
            raise PermanentTargetError(f'target {self.name}: reassign_to role "{reassign_to}" does not exist')
        if heir.marked:
            raise PermanentTargetError(
                f"target {self.name}: reassign_to {reassign_to!r} is an ephemeral account; what it inherits "
                "would be dropped with it"
            )
        ident = sql.Identifier(name)
        steps: list[_Step] = []
        if existing.login:
            # no new session may start between the termination and the drop (it could create
            # objects after REASSIGN OWNED, and DROP ROLE would then fail)
            steps.append(_plain(sql.SQL("ALTER ROLE {} NOLOGIN").format(ident)))
        steps.append(_termination(name))
        for database in self._databases():
            for text in ("REASSIGN OWNED BY {} TO {}", "DROP OWNED BY {}"):
                stmt = sql.SQL(text).format(ident, sql.Identifier(reassign_to))
                steps.append(_Step(stmt, stmt, database))
        steps.append(_plain(sql.SQL("DROP ROLE {}").format(ident)))
        operations = self._shown(steps)
        if not check:
            self._run_steps(steps)
            if name in self._roles([name]):
                raise PermanentTargetError(f"target {self.name}: role {name!r} still exists after DROP ROLE")
        return Outcome(changed=True, before=False, after=not check, operations=operations)
