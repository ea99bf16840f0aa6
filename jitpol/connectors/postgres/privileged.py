"""Privileged roles: the check, in the transaction that grants, that a role handed out neither is
nor reaches (through any chain of memberships) a superuser, jitpol's grantor role or, unless the
resource opts in, a root-equivalent role."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence

from jitpol.connectors.postgres.session import PostgresSession
from jitpol.errors import PermanentTargetError
from jitpol.model.assignment import Action

# Root-equivalent roles: handed out (directly or through any chain of memberships) only by a
# resource that opts in (`spec.allowPrivileged: true`, the action's "privileged" detail). A member
# can SET ROLE to every role it reaches, so reaching one is holding it.
PRIVILEGED_ATTRIBUTES: dict[str, str] = {
    "rolcreaterole": "has CREATEROLE (up to PostgreSQL 15 it can grant itself any role but superuser, "
                     "pg_execute_server_program included, and set other roles' passwords)",
    "rolreplication": "has REPLICATION (streams a copy of the whole cluster, password hashes included)",
    "rolbypassrls": "has BYPASSRLS (row-level security does not apply to it)",
}
PRIVILEGED_ROLES: dict[str, str] = {
    "pg_execute_server_program": "runs programs on the database server as its operating-system user",
    "pg_write_server_files": "writes files on the database server as its operating-system user",
    "pg_read_server_files": "reads any file the server's operating-system user can read (keys, configuration, "
                            "the data files of every database)",
    "pg_create_subscription": "creates subscriptions that connect to other servers and apply their changes "
                              "(PostgreSQL 16 and later)",
}
# Not privileged here: pg_signal_backend (cancels other non-superuser sessions: disruption, not
# escalation), pg_read_all_data / pg_write_all_data (data, without the catalogs or the server),
# pg_monitor and its parts. A superuser, directly or through memberships, is never handed out,
# opt-in or not.

# Every membership edge reachable upwards from the roles named, and the attributes of every role
# on the way (UNION: each edge once, however many paths lead to it; PostgreSQL 16 may record one
# membership once per grantor). The shortest path to a privileged role is found in Python.
_REACH_SQL = """
WITH RECURSIVE edge(member, roleid) AS (
    SELECT m.member, m.roleid
    FROM pg_catalog.pg_auth_members AS m
    JOIN pg_catalog.pg_roles AS r ON r.oid = m.member
    WHERE r.rolname = ANY(%(roles)s)
  UNION
    SELECT m.member, m.roleid
    FROM pg_catalog.pg_auth_members AS m
    JOIN edge ON m.member = edge.roleid
)
SELECT r.rolname::text, r.rolsuper, r.rolcreaterole, r.rolreplication, r.rolbypassrls,
       ARRAY(SELECT g.rolname::text
             FROM edge JOIN pg_catalog.pg_roles AS g ON g.oid = edge.roleid
             WHERE edge.member = r.oid)
FROM pg_catalog.pg_roles AS r
WHERE r.rolname = ANY(%(roles)s) OR r.oid IN (SELECT roleid FROM edge)
"""


class PrivilegeCheck(PostgresSession):
    """_refuse_privileged, for the models that hand out roles."""

    def _refuse_privileged(self, action: Action, roles: Sequence[str]) -> None:
        """Raise PermanentTargetError when one of `roles` is, or through memberships reaches, a
        superuser (never handed out) or, unless the action's resource opts in, a privileged role
        (PRIVILEGED_ATTRIBUTES, PRIVILEGED_ROLES). Read-only; names the shortest such path."""
        if not roles:
            return
        self._read_reach(roles)
        nodes: dict[str, tuple[dict[str, bool], tuple[str, ...]]] = {}
        for r in roles:
            nodes.update(self._reach[r])
        a = action.assignment
        for role in roles:
            path = _shortest_path(nodes, role, lambda n: nodes[n][0]["rolsuper"])
            if path is not None:
                raise PermanentTargetError(
                    f"target {self.name}: refusing to give {a.principal!r} the role {role!r}: it reaches the "
                    f"superuser {path[-1]!r} ({' -> '.join(path)}); jitpol never hands out superuser"
                )
            path = _shortest_path(nodes, role, lambda n: n == self._grantor)
            if path is not None:
                # a member of the grantor role may grant as it: every role jitpol manages, marked as jitpol's
                raise PermanentTargetError(
                    f"target {self.name}: refusing to give {a.principal!r} the role {role!r}: it reaches jitpol's "
                    f"grantor role {path[-1]!r} ({' -> '.join(path)}), which may hand out the roles jitpol manages; "
                    "jitpol never hands it out"
                )
            if action.privileged_allowed:
                continue
            path = _shortest_path(nodes, role, lambda n: n in PRIVILEGED_ROLES or any(
                nodes[n][0][attr] for attr in PRIVILEGED_ATTRIBUTES))
            if path is not None:
                last = path[-1]
                why = PRIVILEGED_ROLES.get(last) or next(
                    text for attr, text in PRIVILEGED_ATTRIBUTES.items() if nodes[last][0][attr])
                via = f"it is {last!r}, which" if len(path) == 1 else \
                    f"it reaches {last!r} ({' -> '.join(path)}), which"
                raise PermanentTargetError(
                    f"target {self.name}: refusing to give {a.principal!r} the role {role!r}: {via} {why}; "
                    f"that is root-equivalent. Resource {action.resource or '?'} must say `allowPrivileged: true` "
                    "in its spec to hand it out (and be approved like a superuser)"
                )


    def _read_reach(self, roles: Sequence[str]) -> None:
        """Read, in one query, the membership graph above those of `roles` not read yet this run
        (cached: a run grants the same few roles to many people). Raises TargetError."""
        missing = sorted({r for r in roles if r not in self._reach})
        if not missing:
            return
        found: dict[str, tuple[dict[str, bool], tuple[str, ...]]] = {}
        for name, su, createrole, replication, bypassrls, parents in self._fetch(_REACH_SQL, {"roles": missing}):
            attrs = {"rolsuper": bool(su), "rolcreaterole": bool(createrole), "rolreplication": bool(replication),
                     "rolbypassrls": bool(bypassrls)}
            found[str(name)] = (attrs, tuple(sorted(str(p) for p in parents or ())))
        for r in missing:
            self._reach[r] = found


def _shortest_path(
    parents: Mapping[str, tuple[Mapping[str, bool], tuple[str, ...]]], start: str, wanted: Callable[[str], bool]
) -> list[str] | None:
    """The shortest chain start -> ... -> role of memberships (breadth first over `parents`,
    role -> (attributes, the roles it is a direct member of)) ending in a role `wanted` accepts
    (start itself included), or None."""
    if start not in parents:
        return None
    seen = {start}
    queue: deque[list[str]] = deque([[start]])
    while queue:
        path = queue.popleft()
        if wanted(path[-1]):
            return path
        for parent in parents[path[-1]][1]:
            if parent in parents and parent not in seen:
                seen.add(parent)
                queue.append([*path, parent])
    return None
