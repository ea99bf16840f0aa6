"""ephemeral-account: an account jitpol creates for one grant (`'jit-...'@<account_host>`) with
a password, exactly its roles (a default role active at login) and an event-scheduler event that
locks it at the window's end (the server ends it even if no run happens; the event's comment is
jitpol's ownership marker); locked, its connections KILLed and dropped at the end."""

from __future__ import annotations

from datetime import UTC, datetime

from jitpol.connectors.mysql.names import (
    ACCOUNT_EVENT_PREFIX,
    account_comment,
    account_event,
    parse_role_list,
    validate_account_name,
)
from jitpol.connectors.mysql.privileged import PrivilegeCheck
from jitpol.connectors.mysql.session import _Account, _Event, _plain, _Step
from jitpol.errors import InvalidInput, PermanentTargetError
from jitpol.model.assignment import Action, Assignment, Outcome
from jitpol.model.canonical import canonical_json


class Accounts(PrivilegeCheck):
    """ephemeral-account."""

    def _observe_accounts(self) -> frozenset[Assignment]:
        """Every account that jitpol's marker event names and that exists, with its sorted direct
        roles and the event's time as `expires`."""
        found = []
        for event in self._events(ACCOUNT_EVENT_PREFIX).values():
            user = event.name[len(ACCOUNT_EVENT_PREFIX):]
            try:
                validate_account_name(user)
            except InvalidInput:
                continue  # not a name jitpol gives: not its event
            if event.comment != account_comment(user) or self._account(user, self._account_host) is None:
                continue
            roles = sorted(self._roles_of(user, self._account_host))
            found.append(Assignment(self.name, "ephemeral-account", user, canonical_json(roles),
                                    expires=event.execute_at, owned=True))
        return frozenset(found)

    def _marker(self, name: str) -> _Event | None:
        event = self._events(ACCOUNT_EVENT_PREFIX).get(account_event(name))
        return event if event is not None and event.comment == account_comment(name) else None

    def _server_now(self) -> datetime:
        at = self._fetch("SELECT UTC_TIMESTAMP(6)", None)[0][0]
        assert isinstance(at, datetime)
        return at.replace(tzinfo=UTC)

    def _create_account(self, action: Action, check: bool) -> Outcome:
        a = action.assignment
        try:
            name = validate_account_name(a.principal)
            wanted = parse_role_list(a.privilege)
            if action.until is None:
                raise InvalidInput("an ephemeral account needs the end of its window (action.until)")
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {self.name}: {exc}") from None
        until = action.until
        password = self._checked_password(action)
        host = self._account_host
        self._check_lengths(*wanted)
        self._require_event_scheduler()

        me = self._current_account()
        for role in wanted:
            if not self._role_exists(role):
                raise PermanentTargetError(f"target {self.name}: role {role!r} does not exist")
            if role in (name, me[0]) or role.startswith("jit-"):
                raise PermanentTargetError(
                    f"target {self.name}: refusing to give {name!r} the role {role!r}: it is the account itself, "
                    "jitpol's own login or another ephemeral account")
        existing = self._account(name, host)
        marker = self._marker(name)
        if existing is not None and marker is None:
            raise PermanentTargetError(
                f"target {self.name}: account {name!r}@{host!r} exists and no jitpol event marks it as jitpol's; "
                "jitpol never adopts an account it did not create")
        if existing is not None and (existing.superuser or existing.is_role):
            raise PermanentTargetError(
                f"target {self.name}: jitpol's account {name!r} has been given SUPER (or is a role); "
                "refusing to touch it")
        acct = self._account_sql(name, host)
        ended = self._server_now() >= until  # (--at in the past) the server would not lock it any more

        steps: list[_Step] = []
        if marker is None:
            steps.append(self._schema_step())
        # the marker first: a run that dies before the account exists leaves an event that the
        # next run finds, and an account is never without its end
        steps.extend(self._event_steps(account_event(name), account_comment(name), until,
                                       f"ALTER USER {acct} ACCOUNT LOCK", marker))
        if existing is None:
            if password is None:
                raise PermanentTargetError(
                    f"target {self.name}: creating account {name!r} needs a password detail (an account without "
                    "one would let anyone log in)")
            sent, shown, secrets = self._password_clause(password)
            lock = " ACCOUNT LOCK" if ended else ""
            steps.append(_Step(f"CREATE USER {acct} {sent}{lock}", f"CREATE USER {acct} {shown}{lock}", secrets))
            held: set[str] = set()
        else:
            if password is not None and not self._password_set(existing, password):
                sent, shown, secrets = self._password_clause(password)
                steps.append(_Step(f"ALTER USER {acct} {sent}", f"ALTER USER {acct} {shown}", secrets))
            if existing.locked != ended:
                steps.append(_plain(f"ALTER USER {acct} ACCOUNT {'LOCK' if ended else 'UNLOCK'}"))
            held = self._roles_of(name, host)
        for role in wanted:
            if role not in held:
                steps.append(_plain(f"GRANT {self._role_sql(role)} TO {acct}"))
        for role in sorted(held - set(wanted)):
            steps.append(_plain(f"REVOKE {self._role_sql(role)} FROM {acct}"))
        steps.extend(self._account_default_role(name, host, wanted, existing))
        if not steps:
            return Outcome(changed=False, before=True, after=True)
        operations = self._shown(steps)
        self._refuse_privileged(action, wanted)
        if check:
            return Outcome(changed=True, before=False, after=False, operations=operations)
        self._run(steps)
        self._verify_account(name, wanted, until)
        return Outcome(changed=True, before=False, after=True, operations=operations)

    def _account_default_role(self, name: str, host: str, wanted: list[str], existing: _Account | None) -> list[_Step]:
        """The account's default role(s): MariaDB activates one role at login (the first of the
        sorted list; the holder switches with SET ROLE), MySQL all of them."""
        current = self._default_roles(name, host) if existing is not None else set()
        acct = self._account_sql(name, host)
        if self.mariadb:
            target = {wanted[0]} if wanted else set()
            if current == target:
                return []
            return [_plain(f"SET DEFAULT ROLE {self._lit(wanted[0]) if wanted else 'NONE'} FOR {acct}")]
        if current == set(wanted):
            return []
        return [_plain(f"SET DEFAULT ROLE {'ALL' if wanted else 'NONE'} TO {acct}")]

    def _verify_account(self, name: str, wanted: list[str], until: datetime) -> None:
        account = self._account(name, self._account_host)
        marker = self._marker(name)
        if account is None or marker is None:
            raise PermanentTargetError(
                f"target {self.name}: account {name!r} or its event is missing after creating it")
        roles = self._roles_of(name, self._account_host)
        if roles != set(wanted):
            raise PermanentTargetError(
                f"target {self.name}: account {name!r} has roles {sorted(roles)} instead of {sorted(wanted)} "
                "after apply")
        if marker.execute_at is None or abs((marker.execute_at - until).total_seconds()) > 1:
            raise PermanentTargetError(f"target {self.name}: the event that ends account {name!r} is not at its end")

    def _delete_account(self, action: Action, check: bool) -> Outcome:
        try:
            name = validate_account_name(action.assignment.principal)
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {self.name}: {exc}") from None
        host = self._account_host
        existing = self._account(name, host)
        marker = self._marker(name)
        if existing is None and marker is None:
            return Outcome(changed=False, before=True, after=True)
        if existing is not None and marker is None:
            raise PermanentTargetError(
                f"target {self.name}: account {name!r}@{host!r} is not marked as jitpol's (no jitpol event names it); "
                "jitpol does not drop it")
        if existing is not None and (existing.superuser or existing.is_role):
            raise PermanentTargetError(
                f"target {self.name}: jitpol's account {name!r} has been given SUPER (or is a role); "
                "refusing to drop it")
        acct = self._account_sql(name, host)
        steps: list[_Step] = []
        if existing is not None:
            if not existing.locked:
                # no new connection may start between the KILL and the DROP
                steps.append(_plain(f"ALTER USER {acct} ACCOUNT LOCK"))
            steps.append(self._kill_step(name))
            steps.append(_plain(f"DROP USER {acct}"))
        # the marker last: a run that dies before it finds the event and finishes the delete
        steps.append(self._drop_event_step(account_event(name)))
        operations = self._shown(steps)
        if check:
            return Outcome(changed=True, before=False, after=False, operations=operations)
        self._run(steps)
        if self._account(name, host) is not None or self._sessions(name):
            raise PermanentTargetError(
                f"target {self.name}: account {name!r} or its connections remain after DROP USER")
        return Outcome(changed=True, before=False, after=True, operations=operations)
