"""role-membership in batches (BatchApply) on MariaDB: many grants or revokes of one phase in a
few round trips, with the same checks and the same exact outcomes as one action at a time.

    every action  its names allow-listed (a name refused fails that action alone, before any
                  connection), then two reads for the whole batch: the accounts and roles named
                  (with each account's default role, SUPER and is-a-role) and the memberships
                  among them; each action decided as `apply` decides it (a role or account that
                  does not exist, a role, an account with SUPER, jitpol's own login's user name:
                  that action fails alone; present already: unchanged)
    grants        the privileged-role refusal of each action (SUPER reach, root-equivalent
                  privileges without `allowPrivileged`; the role graph read once), then one
                  `GRANT role TO 'a'@'h', 'b'@'h', ...` per role, then `SET DEFAULT ROLE role FOR
                  account` for each account that has no default role (MariaDB takes one account
                  per SET DEFAULT ROLE, and keeps one default role: the first role this batch
                  grants it, a default role someone chose left alone)
    revokes       `SET DEFAULT ROLE NONE FOR account` where the default role is the one revoked,
                  one `REVOKE role FROM 'a'@'h', ...` per role, then (terminate_sessions) one
                  process-list query for the connections of every revoked user name and a KILL
                  per connection found, repeated until none is left (at most SESSION_WAIT_S),
                  then one read that every membership is really gone

MariaDB's GRANT and REVOKE are not transactional, and one naming several accounts applies to
every account it can before it reports the first it could not (an account dropped since the
read, a membership revoked meanwhile): nothing to roll back. So when a shared statement fails,
the memberships it served are read back; those that are now as asked were done by it (they
report it), and each of the others is applied alone with its own one-account statement, which
gives it its own outcome or error. A lost connection fails the actions of that statement (the
next run plans them again); later statements reconnect.

Outcome.operations: each statement sent appears once, in the outcome of the first action it
serves that succeeded (in the batch's order); the KILLs are shown as one
`KILL CONNECTION <each connection of users ...>`.

MySQL 8 (no server to test it here): every action is applied alone, as by `apply`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from jitpol.connectors.kit import marker_driven
from jitpol.connectors.mysql.membership import Membership
from jitpol.connectors.mysql.names import parse_account, validate_user
from jitpol.connectors.mysql.session import SESSION_WAIT_S
from jitpol.errors import InvalidInput, PermanentTargetError, TargetError, TargetUnavailable
from jitpol.model.assignment import Action, Outcome

# the accounts and roles a batch names (with what the checks need), its memberships, and the
# connections of the user names it revoked from: placeholders only, filled in by the driver
_ACCOUNTS_SQL = ("SELECT User, Host, is_role = 'Y', Super_priv = 'Y', default_role FROM mysql.user "
                 "WHERE (User, Host) IN ({}) OR (is_role = 'Y' AND User IN ({}))")
_MEMBERS_SQL = "SELECT User, Host, Role FROM mysql.roles_mapping WHERE Host <> '' AND User IN ({}) AND Role IN ({})"
_SESSIONS_SQL = "SELECT ID, USER FROM information_schema.PROCESSLIST WHERE USER IN ({}) AND ID <> CONNECTION_ID()"

Results = list[Outcome | Exception | None]
Sent = list[tuple[str, list[int]]]  # (statement as shown, the actions it served), in the order sent


@dataclass(frozen=True, slots=True)
class _Item:
    role: str
    user: str
    host: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.user, self.host, self.role)


@dataclass(frozen=True, slots=True)
class _Found:
    is_role: bool
    superuser: bool
    default: str  # '' when none


class MembershipBatch(Membership):
    """apply_batch's role-membership part."""

    def _membership_batch(self, actions: Sequence[Action]) -> list[Outcome | Exception]:
        """Grant and revoke role-membership actions (revocations first when both are given; a
        plan's phase never mixes them). One entry per action, in order."""
        out: Results = [None] * len(actions)
        items: dict[int, _Item] = {}
        for i, action in enumerate(actions):
            try:
                role = validate_user(action.assignment.privilege, "role")
                user, host = parse_account(action.assignment.principal)
            except InvalidInput as exc:
                out[i] = PermanentTargetError(f"target {self.name}: {exc}")
            else:
                items[i] = _Item(role, user, host)
        if not items:
            return _done(out)
        try:
            mariadb = self.mariadb
            me = self._current_account()[0]
            accounts, roles = self._read_accounts(list(items.values())) if mariadb else ({}, set())
            members = self._read_members(list(items.values())) if mariadb else set()
        except TargetError as exc:  # nothing was sent but reads: every action fails with it
            for i in items:
                out[i] = exc
            return _done(out)
        if not mariadb:
            for i in items:
                out[i] = self._alone(actions[i])
            return _done(out)
        grants: list[int] = []
        revokes: list[int] = []
        for i, item in items.items():
            try:
                changes = self._decide(actions[i], item, accounts, roles, members, me)
            except PermanentTargetError as exc:
                out[i] = exc
                continue
            if not changes:
                out[i] = Outcome(changed=False, before=True, after=True)
            else:
                (grants if actions[i].op == "grant" else revokes).append(i)
        if revokes:
            self._revoke_batch(actions, revokes, items, accounts, out)
        if grants:
            self._grant_batch(actions, grants, items, accounts, out)
        return _done(out)

    def _alone(self, action: Action) -> Outcome | Exception:
        try:
            return self._apply_membership(action, False)
        except Exception as exc:  # noqa: BLE001 - each action's own result, as the executor records it
            return exc

    # -- reads ------------------------------------------------------------------------------

    def _read_accounts(self, items: list[_Item]) -> tuple[dict[tuple[str, str], _Found], set[str]]:
        """(the accounts named, by (user, host); the roles named that exist), in one query."""
        pairs = list(dict.fromkeys((it.user, it.host) for it in items))
        names = list(dict.fromkeys(it.role for it in items))
        rows = self._fetch(_ACCOUNTS_SQL.format(", ".join(["(%s, %s)"] * len(pairs)), _marks(names)),
                           tuple(x for pair in pairs for x in pair) + tuple(names))
        accounts: dict[tuple[str, str], _Found] = {}
        roles: set[str] = set()
        for user, host, is_role, superuser, default in rows:
            if is_role and str(user) in names:
                roles.add(str(user))
            accounts[(str(user), str(host))] = _Found(bool(is_role), bool(superuser), str(default or ""))
        return accounts, roles

    def _read_members(self, items: list[_Item]) -> set[tuple[str, str, str]]:
        """The (user, host, role) of `items` that are direct memberships now, in one query."""
        users = list(dict.fromkeys(it.user for it in items))
        names = list(dict.fromkeys(it.role for it in items))
        rows = self._fetch(_MEMBERS_SQL.format(_marks(users), _marks(names)), tuple(users) + tuple(names))
        wanted = {it.key for it in items}
        return {key for key in ((str(u), str(h), str(r)) for u, h, r in rows) if key in wanted}

    def _decide(self, action: Action, item: _Item, accounts: dict[tuple[str, str], _Found], roles: set[str],
                members: set[tuple[str, str, str]], me: str) -> bool:
        """Does the action change anything? The checks of `_apply_membership`, in its order;
        raises PermanentTargetError for an action that fails them."""
        self._check_lengths(item.role, item.user)
        if item.role not in roles:
            raise PermanentTargetError(f"target {self.name}: role {item.role!r} does not exist")
        account = accounts.get((item.user, item.host))
        if account is None:
            raise PermanentTargetError(f"target {self.name}: account {action.assignment.principal!r} does not exist")
        if account.is_role or account.superuser or item.user == me:
            raise PermanentTargetError(
                f"target {self.name}: refusing to {action.op} {item.role!r} for {action.assignment.principal!r}: "
                "jitpol never changes the roles of a role, of an account with SUPER or of its own login's user name")
        held = item.key in members
        if action.op == "grant":
            return not held  # present, whoever granted it: standing access stays as it is
        # nothing there; or a revoke only a marker backs, and memberships carry none here
        return held and not marker_driven(action)

    # -- grants -----------------------------------------------------------------------------

    def _grant_batch(self, actions: Sequence[Action], idxs: list[int], items: dict[int, _Item],
                     accounts: dict[tuple[str, str], _Found], out: Results) -> None:
        ok: list[int] = []
        for i in idxs:
            try:
                self._refuse_privileged(actions[i], [items[i].role])
            except TargetError as exc:
                out[i] = exc
            else:
                ok.append(i)
        sent: Sent = []
        granted = self._per_role("GRANT", ok, items, out, sent)
        # MariaDB: one default role per account, set one account at a time; the first role this
        # batch grants an account without one (in the batch's order), as one action at a time would
        chosen: set[tuple[str, str]] = set()
        for i in sorted(granted):
            item = items[i]
            found = accounts[(item.user, item.host)]
            if (item.user, item.host) in chosen or found.default:
                continue
            chosen.add((item.user, item.host))
            for step in self._default_role_steps(set(), item.user, item.host, add=item.role):
                try:
                    self._execute(step.sent)
                except TargetError as exc:  # the membership is there; its default role is not
                    out[i] = exc
                else:
                    sent.append((step.shown, [i]))
        self._record_outcomes(sent, [i for i in sorted(granted) if out[i] is None], out)

    # -- revokes ----------------------------------------------------------------------------

    def _revoke_batch(self, actions: Sequence[Action], idxs: list[int], items: dict[int, _Item],
                      accounts: dict[tuple[str, str], _Found], out: Results) -> None:
        sent: Sent = []
        ready: list[int] = []
        cleared: set[tuple[str, str, str]] = set()  # an action given twice clears the default role once
        for i in idxs:
            item = items[i]
            default = accounts[(item.user, item.host)].default
            if (item.user, item.host, default) in cleared:
                ready.append(i)
                continue
            try:
                for step in self._default_role_steps({default} if default else set(), item.user, item.host,
                                                      remove=item.role):
                    self._execute(step.sent)
                    sent.append((step.shown, [i]))
                    cleared.add((item.user, item.host, item.role))
            except TargetError as exc:  # as one action at a time: no REVOKE after a failed step
                out[i] = exc
            else:
                ready.append(i)
        revoked = self._per_role("REVOKE", ready, items, out, sent)
        revoked.sort()
        if self._terminate_sessions and revoked:
            # REVOKE does not reach into open connections: one that ran SET ROLE keeps acting as
            # the role until it disconnects. End them all (never our own).
            self._kill_many(revoked, items, out, sent)
        left = [i for i in revoked if out[i] is None]
        if left:
            try:
                still = self._read_members([items[i] for i in left])
            except TargetError as exc:
                for i in left:
                    out[i] = exc
            else:
                for i in left:
                    if items[i].key in still:
                        out[i] = PermanentTargetError(
                            f"target {self.name}: {actions[i].assignment.principal!r} still holds {items[i].role!r} "
                            "after REVOKE")
        self._record_outcomes(sent, [i for i in revoked if out[i] is None], out)

    def _kill_many(self, idxs: list[int], items: dict[int, _Item], out: Results, sent: Sent) -> None:
        """KILL every connection of the revoked accounts' user names (whatever host they came
        from) but our own: one process-list query, a KILL per connection, again until none is
        left or SESSION_WAIT_S passed (TargetUnavailable for the actions whose user still has
        connections)."""
        users = list(dict.fromkeys(items[i].user for i in idxs))
        sent.append((f"KILL CONNECTION <each connection of users {', '.join(self._lit(u) for u in users)}>", idxs))
        query = _SESSIONS_SQL.format(_marks(users))
        deadline = time.monotonic() + SESSION_WAIT_S
        try:
            while True:
                rows = self._fetch(query, tuple(users))
                if not rows:
                    return
                for pid, _ in rows:
                    self._kill(pid)
                if time.monotonic() > deadline:
                    remaining: dict[str, int] = {}
                    for _, user in rows:
                        remaining[str(user)] = remaining.get(str(user), 0) + 1
                    for i in idxs:
                        n = remaining.get(items[i].user)
                        if n:
                            out[i] = TargetUnavailable(
                                f"target {self.name}: {n} connection(s) of {items[i].user!r} did not end within "
                                f"{SESSION_WAIT_S:.0f} s; the next run tries again")
                    return
                time.sleep(0.05)
        except TargetError as exc:  # the memberships are gone; the connections may not be
            for i in idxs:
                out[i] = exc

    # -- shared -----------------------------------------------------------------------------

    def _accounts_sql(self, idxs: list[int], items: dict[int, _Item]) -> str:
        pairs = dict.fromkeys((items[i].user, items[i].host) for i in idxs)
        return ", ".join(self._account_sql(user, host) for user, host in pairs)

    def _per_role(self, verb: Literal["GRANT", "REVOKE"], idxs: list[int], items: dict[int, _Item], out: Results,
                  sent: Sent) -> list[int]:
        """`GRANT role TO accounts` (or `REVOKE role FROM accounts`) once per role for the actions
        `idxs`; the actions it served that succeeded (see _shared)."""
        word = "TO" if verb == "GRANT" else "FROM"
        done: list[int] = []
        for role, members in _by_role(idxs, items).items():
            stmt = f"{verb} {self._role_sql(role)} {word} {self._accounts_sql(members, items)}"
            done.extend(self._shared(stmt, members, items, verb == "GRANT", out, sent,
                                     lambda i: f"{verb} {self._role_sql(items[i].role)} {word} "
                                               f"{self._account_sql(items[i].user, items[i].host)}"))
        return done

    def _shared(self, stmt: str, idxs: list[int], items: dict[int, _Item], held: bool, out: Results, sent: Sent,
                alone: Callable[[int], str]) -> list[int]:
        """Send one statement that serves `idxs`; the actions it served that succeeded. When it
        fails, the memberships are read back: those now as asked (`held`) were done by it
        (MariaDB applies a multi-account GRANT/REVOKE to every account it can); each other
        action is applied alone with its own statement (`alone(i)`), for its own result."""
        try:
            self._execute(stmt)
        except TargetError as exc:
            failure: TargetError = exc
        else:
            sent.append((stmt, idxs))
            return idxs
        if isinstance(failure, TargetUnavailable):  # unknown what it did: the next run plans again
            for i in idxs:
                out[i] = failure
            return []
        try:
            now = self._read_members([items[i] for i in idxs])
        except TargetError as exc:
            for i in idxs:
                out[i] = exc
            return []
        done = [i for i in idxs if (items[i].key in now) == held]
        if done:
            sent.append((stmt, done))
        for i in idxs:
            if i in done:
                continue
            one = alone(i)
            try:
                self._execute(one)
            except TargetError as exc:
                out[i] = exc
            else:
                sent.append((one, [i]))
                done.append(i)
        return sorted(done)

    def _record_outcomes(self, sent: Sent, idxs: list[int], out: Results) -> None:
        """Each action in idxs (those that succeeded): changed, with each statement sent whose
        first successful action it is."""
        ok = set(idxs)
        operations: dict[int, list[str]] = {}
        for stmt, served in sent:
            first = next((i for i in sorted(served) if i in ok), None)
            if first is not None:
                operations.setdefault(first, []).append(stmt)
        for i in idxs:
            out[i] = Outcome(changed=True, before=False, after=True, operations=tuple(operations.get(i, ())))


def _marks(values: Sequence[str]) -> str:
    return ", ".join(["%s"] * len(values))


def _by_role(idxs: list[int], items: dict[int, _Item]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i in idxs:
        groups.setdefault(items[i].role, []).append(i)
    return groups


def _done(out: Results) -> list[Outcome | Exception]:
    missing = [i for i, r in enumerate(out) if r is None]
    if missing:  # a bug here, never a success by default
        raise RuntimeError(f"apply_batch: no result for actions {missing}")
    return [r for r in out if r is not None]
