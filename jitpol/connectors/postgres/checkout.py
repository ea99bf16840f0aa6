"""credential-checkout: a shared login role's password rotated (VALID UNTIL the checkout's end
while it has holders) and every session of the account ended."""

from __future__ import annotations

import json

from jitpol.connectors.postgres.names import validate_principal
from jitpol.connectors.postgres.session import PostgresSession
from jitpol.connectors.postgres.statements import _Step, _termination, valid_until_text
from jitpol.errors import InvalidInput, PermanentTargetError
from jitpol.model.assignment import Action, Outcome


class Checkout(PostgresSession):
    """credential-checkout."""

    def _rotate(self, action: Action, check: bool) -> Outcome:
        from psycopg import sql

        a = action.assignment
        try:
            validate_principal(a.principal)
            holders = json.loads(a.privilege)
            if not isinstance(holders, list):
                raise ValueError
        except ValueError:  # InvalidInput is not a ValueError: both are caught apart
            raise PermanentTargetError(
                f"target {self.name}: the privilege of a credential checkout must be a JSON list of holders"
            ) from None
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {self.name}: {exc}") from None
        name = a.principal
        password = self._checked_password(action)
        if password is None:
            # a rotation without a new secret would leave the old holder's password working
            raise PermanentTargetError(f"target {self.name}: rotate of {name!r} needs a password detail")
        until_text: str | None = None
        if holders and action.until is not None:
            # the checked-out password stops working at the end of the checkout even if no run
            # happens; a rotation to nobody leaves VALID UNTIL alone (nobody knows the secret)
            try:
                until_text = valid_until_text(action.until)
            except InvalidInput as exc:
                raise PermanentTargetError(f"target {self.name}: {exc}") from None

        current_user, _ = self._session()
        role = self._roles([name]).get(name)
        if role is None:
            raise PermanentTargetError(f'target {self.name}: role "{name}" does not exist')
        if role.superuser or role.marked or name in (current_user, self._grantor):
            raise PermanentTargetError(
                f"target {self.name}: refusing to rotate {name!r}: jitpol never checks out superusers, "
                "its own login, its grantor role or its ephemeral accounts"
            )
        ident = sql.Identifier(name)

        def alter(password_sql: sql.Composable) -> sql.Composed:
            stmt = sql.SQL("ALTER ROLE {} WITH PASSWORD {}").format(ident, password_sql)
            if until_text is not None:
                stmt = sql.SQL("{} VALID UNTIL {}").format(stmt, sql.Literal(until_text))
            return stmt

        shown = alter(sql.SQL("'***'"))
        # ALTER first, then terminate: a holder who reconnects in between has the old password only
        steps = [
            _Step(shown if check else alter(sql.Literal(self._verifier(name, password))), shown),
            _termination(name),
        ]
        operations = self._shown(steps)
        if not check:
            self._send(self._connection(), steps[:1], transaction=False, secret=True)
            self._run_steps(steps[1:])
        # a rotation is an event, never "already true"
        return Outcome(changed=True, before=False, after=not check, operations=operations)
