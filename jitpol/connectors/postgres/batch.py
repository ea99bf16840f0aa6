"""role-membership in batches (BatchApply): many grants or revokes of one phase in a few round
trips, with the same checks and the same exact outcomes as one action at a time.

    grants    one read of every membership asked for (_INSPECT_MANY_SQL), then one transaction:
              the membership graph above the roles read once, the privileged-role refusal of
              each action, the grantor role's setup (each statement once), and one
              `GRANT role TO a, b, ... GRANTED BY <grantor>` per role (`GRANT role TO a, b, ...`
              for the memberships this login cannot mark)
    revokes   one read, one transaction with one REVOKE per role (GRANTED BY the grantor for
              jitpol's rows, plain for the unmarked ones the ledger names), then the sessions of
              every revoked principal ended by one pg_terminate_backend query and checked by one
              more, then one read that every membership is really gone

Exact: an action that fails its own checks (a name refused, a role that does not exist, a
superuser, a privileged role) gets its own error and is left out of the statements; when a
statement of the transaction fails all the same (a cycle of memberships, a role dropped since
the read), the transaction is rolled back, nothing of it happened, and each of its actions is
applied again alone (`apply`), so that each gets its own outcome. A connection that is lost
fails the actions it carried (as a single action's would), never retried one by one.

Outcome.operations: each statement sent appears once, in the outcome of the first action it
serves that succeeded (in the batch's order); the other actions a shared statement served do
not repeat it (a GRANT of 1,000 members is shown once, not 1,000 times).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from jitpol.connectors.postgres.membership import Membership, _Change
from jitpol.connectors.postgres.statements import SESSION_WAIT_MS, _terminate_many
from jitpol.errors import PermanentTargetError, TargetError, TargetUnavailable
from jitpol.model.assignment import Action, Outcome

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

_SESSIONS_LEFT_MANY_SQL = (
    "SELECT usename::text, count(*) FROM pg_catalog.pg_stat_activity "
    "WHERE usename = ANY(%s) AND pid <> pg_catalog.pg_backend_pid() GROUP BY usename"
)

Results = list[Outcome | Exception | None]


class MembershipBatch(Membership):
    """apply_batch's role-membership part."""

    def _membership_batch(self, actions: Sequence[Action]) -> list[Outcome | Exception]:
        """Grant and revoke role-membership actions (revocations first when both are given; a
        plan's phase never mixes them). One entry per action, in order."""
        out: Results = [None] * len(actions)
        todo: list[int] = []
        for i, action in enumerate(actions):
            try:
                self._check_names(action)
            except PermanentTargetError as exc:
                out[i] = exc
            else:
                todo.append(i)
        try:
            found = self._inspect_many([(actions[i].assignment.privilege, actions[i].principal) for i in todo])
        except TargetError as exc:  # nothing was sent but the read: every action fails with it
            for i in todo:
                out[i] = exc
            return _done(out)
        changes: dict[int, _Change] = {}
        for i, m in zip(todo, found, strict=True):
            try:
                change = self._decide(actions[i], m)
            except PermanentTargetError as exc:
                out[i] = exc
                continue
            if isinstance(change, Outcome):
                out[i] = change
            else:
                changes[i] = change
        revokes = [i for i in changes if actions[i].op == "revoke"]
        grants = [i for i in changes if actions[i].op == "grant"]
        if revokes:
            self._revoke_batch(actions, revokes, changes, out)
        if grants:
            self._grant_batch(actions, grants, changes, out)
        return _done(out)

    # -- grants -----------------------------------------------------------------------------

    def _grant_batch(self, actions: Sequence[Action], idxs: list[int], changes: dict[int, _Change],
                     out: Results) -> None:
        import psycopg

        conn = self._connection()
        roles = list(dict.fromkeys(actions[i].assignment.privilege for i in idxs))
        sent: list[tuple[sql.Composed, list[int]]] = []
        refused: dict[int, PermanentTargetError] = {}
        try:
            # what is checked is what is granted: the check, the grantor role's setup and the
            # GRANTs in one transaction (a failed GRANT leaves no grantor role behind)
            with conn.transaction():
                self._read_reach(roles)
                for i in idxs:
                    try:
                        self._refuse_privileged(actions[i], [actions[i].assignment.privilege])
                    except PermanentTargetError as exc:
                        refused[i] = exc
                sent = self._grant_statements(actions, [i for i in idxs if i not in refused], changes)
                for stmt, _ in sent:
                    conn.execute(stmt)
        except (psycopg.Error, TargetError) as exc:
            self._rolled_back(actions, idxs, exc, conn, out)
            return
        for i, refusal in refused.items():
            out[i] = refusal
        self._record_outcomes(sent, [i for i in idxs if i not in refused], out, conn)

    def _grant_statements(self, actions: Sequence[Action], idxs: list[int],
                          changes: dict[int, _Change]) -> list[tuple[sql.Composed, list[int]]]:
        """(statement, the indices of the actions it serves): the grantor role's setup, each
        statement once, then one GRANT per role and kind (marked, unmarked)."""
        conn = self._connection()
        setup: dict[str, tuple[sql.Composed, list[int]]] = {}
        groups: dict[tuple[str, bool], list[int]] = {}
        for i in idxs:
            change = changes[i]
            for stmt in change.setup:
                setup.setdefault(stmt.as_string(conn), (stmt, []))[1].append(i)
            groups.setdefault((actions[i].assignment.privilege, change.marked), []).append(i)
        # unmarked: this login cannot record the grantor, so granted unmarked, as before markers
        return [*setup.values(), *self._per_role("GRANT", groups, actions)]

    def _per_role(self, verb: Literal["GRANT", "REVOKE"], groups: dict[tuple[str, bool], list[int]],
                  actions: Sequence[Action]) -> list[tuple[sql.Composed, list[int]]]:
        """One `GRANT role TO principals` (or `REVOKE role FROM principals`) per (role, marked)
        group, `GRANTED BY` jitpol's grantor role when marked; each with the actions it serves."""
        from psycopg import sql

        word = "TO" if verb == "GRANT" else "FROM"
        grantor = sql.Identifier(self._grantor)
        out: list[tuple[sql.Composed, list[int]]] = []
        for (role, marked), members in groups.items():
            names = sql.SQL(", ").join(sql.Identifier(p) for p in dict.fromkeys(actions[i].principal for i in members))
            # verb and word are fixed keywords; role and principals are quoted identifiers
            stmt = sql.SQL(f"{verb} {{}} {word} {{}}").format(sql.Identifier(role), names)
            out.append((sql.SQL("{} GRANTED BY {}").format(stmt, grantor) if marked else stmt, members))
        return out

    # -- revokes ----------------------------------------------------------------------------

    def _revoke_batch(self, actions: Sequence[Action], idxs: list[int], changes: dict[int, _Change],
                      out: Results) -> None:
        import psycopg

        conn = self._connection()
        groups: dict[tuple[str, bool], list[int]] = {}
        for i in idxs:
            groups.setdefault((actions[i].assignment.privilege, changes[i].marked), []).append(i)
        # marked: jitpol's rows, and only them (on PostgreSQL 16 another grantor's standing row
        # survives); unmarked: the ledger says jitpol gave them (granted before markers existed)
        sent = self._per_role("REVOKE", groups, actions)
        try:
            with conn.transaction():
                for stmt, _ in sent:
                    conn.execute(stmt)
        except psycopg.Error as exc:
            self._rolled_back(actions, idxs, exc, conn, out)
            return
        # REVOKE does not reach into open sessions (one that ran SET ROLE keeps acting as the
        # group role until it disconnects): end every session of each principal whose membership
        # ended, all in one query that waits until they are gone
        ending = [i for i in idxs if changes[i].terminate]
        principals = list(dict.fromkeys(actions[i].principal for i in ending))
        if principals:
            stmt = _terminate_many(principals)
            sent.append((stmt, ending))
            try:
                self._execute(stmt)
                left = {str(name): int(n) for name, n in self._fetch(_SESSIONS_LEFT_MANY_SQL, (principals,))}
            except TargetError as exc:  # the memberships are gone; the sessions may not be
                for i in ending:
                    out[i] = exc
            else:
                for i in ending:
                    if left.get(actions[i].principal):
                        out[i] = TargetUnavailable(
                            f"target {self.name}: {left[actions[i].principal]} session(s) of "
                            f"{actions[i].principal!r} did not end within {SESSION_WAIT_MS // 1000} s; "
                            "the next run tries again")
        self._verify_revoked_many(actions, [i for i in idxs if out[i] is None], changes, out)
        self._record_outcomes(sent, [i for i in idxs if out[i] is None], out, conn)

    def _verify_revoked_many(self, actions: Sequence[Action], idxs: list[int], changes: dict[int, _Change],
                             out: Results) -> None:
        """_verify_revoked for many memberships in one read: an action whose membership (jitpol's
        row, when marked) is still there gets PermanentTargetError."""
        try:
            after = self._inspect_many([(actions[i].assignment.privilege, actions[i].principal) for i in idxs])
        except TargetError as exc:
            for i in idxs:
                out[i] = exc
            return
        for i, m in zip(idxs, after, strict=True):
            marked = changes[i].marked
            if m.ours if marked else m.rows:
                a = actions[i].assignment
                out[i] = PermanentTargetError(
                    f"target {self.name}: {a.principal!r} is still a member of {a.privilege!r} after REVOKE "
                    + (f"(still granted by {self._grantor!r})" if marked else "(granted by another role?)"))

    # -- shared -----------------------------------------------------------------------------

    def _rolled_back(self, actions: Sequence[Action], idxs: list[int], exc: Exception,
                     conn: psycopg.Connection[object], out: Results) -> None:
        """A statement of the transaction failed and it was rolled back: nothing of it happened.
        A lost connection (or a server going away) fails every action it carried; any other
        error is one action's, unknown which: each is applied again alone, for its own outcome."""
        import psycopg

        error = self._error(exc, conn) if isinstance(exc, psycopg.Error) else exc
        if not isinstance(error, TargetUnavailable) and (conn.closed or conn.broken):
            error = TargetUnavailable(f"target {self.name}: connection to PostgreSQL lost")
        if isinstance(error, TargetUnavailable):
            for i in idxs:
                out[i] = error
            return
        for i in idxs:
            try:
                out[i] = self._apply_membership(actions[i], False)
            except Exception as one:  # noqa: BLE001 - each action's own result, as the executor records it
                out[i] = one

    def _record_outcomes(self, sent: list[tuple[sql.Composed, list[int]]], idxs: list[int], out: Results,
                         conn: psycopg.Connection[object]) -> None:
        """Each action in idxs (those that succeeded): changed, with each statement sent whose
        first successful action it is."""
        ok = set(idxs)
        operations: dict[int, list[str]] = {}
        for stmt, served in sent:
            first = next((i for i in served if i in ok), None)
            if first is not None:
                operations.setdefault(first, []).append(stmt.as_string(conn))
        for i in idxs:
            out[i] = Outcome(changed=True, before=False, after=True, operations=tuple(operations.get(i, ())))


def _done(out: Results) -> list[Outcome | Exception]:
    missing = [i for i, r in enumerate(out) if r is None]
    if missing:  # a bug here, never a success by default
        raise RuntimeError(f"apply_batch: no result for actions {missing}")
    return [r for r in out if r is not None]
