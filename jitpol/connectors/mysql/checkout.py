"""credential-checkout: a shared account's password rotated, the account unlocked until the
checkout's end and locked then by an event-scheduler event (while it has holders), and every
connection of the account KILLed. The rotation is verified on the server: a delivered secret is
only ever one the server stores."""

from __future__ import annotations

import json

from jitpol.connectors.mysql.names import (
    ACCOUNT_EVENT_PREFIX,
    CHECKOUT_EVENT_PREFIX,
    checkout_comment,
    checkout_event,
    parse_account,
)
from jitpol.connectors.mysql.session import MysqlSession, _plain, _Step
from jitpol.errors import InvalidInput, PermanentTargetError
from jitpol.model.assignment import Action, Outcome


class Checkout(MysqlSession):
    """credential-checkout."""

    def _rotate(self, action: Action, check: bool) -> Outcome:
        a = action.assignment
        try:
            user, host = parse_account(a.principal, "account")
            holders = json.loads(a.privilege)
            if not isinstance(holders, list):
                raise ValueError
        except ValueError:  # InvalidInput is not a ValueError: both are caught apart
            raise PermanentTargetError(
                f"target {self.name}: the privilege of a credential checkout must be a JSON list of holders") from None
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {self.name}: {exc}") from None
        password = self._checked_password(action)
        if password is None:
            # a rotation without a new secret would leave the old holder's password working
            raise PermanentTargetError(f"target {self.name}: rotate of {a.principal!r} needs a password detail")
        self._check_lengths(user)
        account = self._account(user, host)
        if account is None:
            raise PermanentTargetError(f"target {self.name}: account {a.principal!r} does not exist")
        ephemeral = (ACCOUNT_EVENT_PREFIX + user) in self._events(ACCOUNT_EVENT_PREFIX)
        if account.superuser or account.is_role or ephemeral or user == self._current_account()[0]:
            raise PermanentTargetError(
                f"target {self.name}: refusing to rotate {a.principal!r}: jitpol never checks out roles, accounts "
                "with SUPER, its own login or its ephemeral accounts")
        acct = self._account_sql(user, host)
        sent, shown, secrets = self._password_clause(password)
        # the password first, then the end, then the connections: a holder who reconnects in
        # between has the old password only
        steps: list[_Step] = [_Step(f"ALTER USER {acct} {sent}", f"ALTER USER {acct} {shown}", secrets)]
        event = checkout_event(user, host)
        if holders and action.until is not None:
            # the checked-out password stops working at the checkout's end even if no run happens
            self._require_event_scheduler()
            existing = self._events(CHECKOUT_EVENT_PREFIX).get(event)
            if existing is None:
                steps.append(self._schema_step())
            steps.extend(self._event_steps(event, checkout_comment(user), action.until,
                                           f"ALTER USER {acct} ACCOUNT LOCK", existing))
            if account.locked:
                steps.append(_plain(f"ALTER USER {acct} ACCOUNT UNLOCK"))
        # a rotation to nobody leaves the lock and the event alone (nobody knows the secret)
        steps.append(self._kill_step(user))
        operations = self._shown(steps)
        if not check:
            self._run(steps)
            after = self._account(user, host)
            if self.mariadb and (after is None or not self._password_set(after, password)):
                raise PermanentTargetError(
                    f"target {self.name}: the server does not hold the new password of {a.principal!r} after "
                    "ALTER USER; the secret is not delivered as valid")
        # a rotation is an event, never "already true"
        return Outcome(changed=True, before=False, after=not check, operations=operations)
