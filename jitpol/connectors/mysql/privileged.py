"""Privileged roles: the check that a role handed out neither holds nor reaches (through roles
granted to roles) SUPER, which is never handed out, or, unless the resource opts in, a global
privilege that is root-equivalent or write access to the grant tables."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence

from jitpol.connectors.mysql.session import MysqlSession
from jitpol.errors import PermanentTargetError
from jitpol.model.assignment import Action

# global privileges (columns of mysql.user) that make a role root-equivalent: handed out (directly
# or through roles granted to it) only by a resource that says `allowPrivileged: true`
PRIVILEGED_COLUMNS: dict[str, str] = {
    "File_priv": "FILE (reads and writes files on the server as its operating-system user)",
    "Create_user_priv": "CREATE USER (creates, renames and drops any account, and sets its password)",
    "Grant_priv": "GRANT OPTION on *.* (hands its privileges to anyone)",
    "Shutdown_priv": "SHUTDOWN (stops the server)",
    "Process_priv": "PROCESS (sees every session's statements, passwords in them included)",
    "Reload_priv": "RELOAD (flushes privileges, logs and caches)",
    "Repl_slave_priv": "REPLICATION SLAVE (streams the binary log: every change to every table)",
}
# privileges on the `mysql` schema: its tables are the grant tables
GRANT_TABLES = "any privilege on the `mysql` schema (its tables are the grant tables: editing them is root)"

# one flag per PRIVILEGED_COLUMNS entry, in its order, then privileges on the `mysql` schema
_FLAGS = (
    "Super_priv = 'Y', File_priv = 'Y', Create_user_priv = 'Y', Grant_priv = 'Y', Shutdown_priv = 'Y', "
    "Process_priv = 'Y', Reload_priv = 'Y', Repl_slave_priv = 'Y', "
    "EXISTS (SELECT 1 FROM mysql.db AS d WHERE d.User = u.User AND d.Host = u.Host AND d.Db = 'mysql')"
)
_MARIADB_ROLES = "SELECT User, " + _FLAGS + " FROM mysql.user AS u WHERE is_role = 'Y'"  # noqa: S608 (constants)
_MARIADB_EDGES = "SELECT User, Role FROM mysql.roles_mapping WHERE Host = ''"
_MYSQL_ROLES = "SELECT User, " + _FLAGS + " FROM mysql.user AS u WHERE Host = '%'"  # noqa: S608 (constants)
_MYSQL_EDGES = "SELECT TO_USER, FROM_USER FROM mysql.role_edges WHERE TO_HOST = '%'"


class PrivilegeCheck(MysqlSession):
    """_refuse_privileged, for the models that hand out roles."""

    def _refuse_privileged(self, action: Action, roles: Sequence[str]) -> None:
        """Raise PermanentTargetError when one of `roles` holds or reaches SUPER (never handed
        out) or, unless the action's resource opts in, one of PRIVILEGED_COLUMNS or privileges on
        the grant tables. Read-only; names the shortest such path."""
        if not roles:
            return
        attrs, parents = self._role_graph(roles)
        a = action.assignment
        for role in roles:
            path = _shortest_path(parents, role, lambda n: attrs.get(n, (False, []))[0])
            if path is not None:
                raise PermanentTargetError(
                    f"target {self.name}: refusing to give {a.principal!r} the role {role!r}: it holds SUPER "
                    f"({' -> '.join(path)}); jitpol never hands out SUPER")
            if action.privileged_allowed:
                continue
            path = _shortest_path(parents, role, lambda n: bool(attrs.get(n, (False, []))[1]))
            if path is not None:
                last = path[-1]
                via = f"it holds {attrs[last][1][0]}" if len(path) == 1 else \
                    f"it reaches {last!r} ({' -> '.join(path)}), which holds {attrs[last][1][0]}"
                raise PermanentTargetError(
                    f"target {self.name}: refusing to give {a.principal!r} the role {role!r}: {via}; that is "
                    f"root-equivalent. Resource {action.resource or '?'} must say `allowPrivileged: true` in its "
                    "spec to hand it out (and be approved like a superuser)")


    def _role_graph(
        self, roles: Sequence[str]
    ) -> tuple[dict[str, tuple[bool, list[str]]], dict[str, list[str]]]:
        """Every role's (SUPER, root-equivalent reasons) and the roles granted to each role, read
        once per connector (a run hands the same few roles to many people) and again when a role
        asked about is not in it yet."""
        if self._graph is not None and all(r in self._graph[0] for r in roles):
            return self._graph
        attrs: dict[str, tuple[bool, list[str]]] = {}  # role -> (super, reasons)
        for row in self._fetch(_MARIADB_ROLES if self.mariadb else _MYSQL_ROLES, None):
            name, is_super, *flags, on_mysql = row
            reasons = [text for (_, text), flag in zip(PRIVILEGED_COLUMNS.items(), flags, strict=True) if flag]
            if on_mysql:
                reasons.append(GRANT_TABLES)
            attrs[str(name)] = (bool(is_super), reasons)
        parents: dict[str, list[str]] = {}
        for member, role in self._fetch(_MARIADB_EDGES if self.mariadb else _MYSQL_EDGES, None):
            parents.setdefault(str(member), []).append(str(role))
        self._graph = (attrs, parents)
        return attrs, parents


def _shortest_path(
    parents: Mapping[str, Sequence[str]], start: str, wanted: Callable[[str], bool]
) -> list[str] | None:
    """The shortest chain start -> ... of roles granted to roles ending in one `wanted` accepts
    (start itself included), or None."""
    seen = {start}
    queue: deque[list[str]] = deque([[start]])
    while queue:
        path = queue.popleft()
        if wanted(path[-1]):
            return path
        for parent in parents.get(path[-1], ()):
            if parent not in seen:
                seen.add(parent)
                queue.append([*path, parent])
    return None
