"""role-membership on a Linux host: supplementary groups (`getent group`, `gpasswd`)."""

from __future__ import annotations

from jitpol.connectors import sudoers
from jitpol.connectors.ssh.facts import _parse_groups
from jitpol.connectors.ssh.host import HostBase, _Step
from jitpol.connectors.ssh.names import ROLE, validate_group, validate_principal
from jitpol.errors import InvalidInput, PermanentTargetError
from jitpol.model.assignment import Action, Assignment, Scope


class RoleMembershipModel(HostBase):
    """LinuxHost's role-membership: observe a group's direct members, plan gpasswd -a / -d."""

    def _observe_groups(self, scope: Scope) -> frozenset[Assignment]:
        names = sorted(scope.privileges)
        for group in names:
            self._checked(sudoers.check_linux_name, group, "group")
        if not names:
            return frozenset()
        found = _parse_groups(self._run(["getent", "group", "--", *names], ok=(0, 2)).out)
        return frozenset(
            Assignment(self.name, ROLE, member, g.name)
            for g in found
            if g.name in scope.privileges
            for member in g.members
        )

    def _plan_membership(self, action: Action) -> list[_Step]:
        a = action.assignment
        user = validate_principal(a.principal)
        group = validate_group(a.privilege)
        self._refuse_login_user(user)
        if action.op == "grant":
            self._refuse_privileged_groups(action, [group])  # before connecting
        found = {g.name: g for g in _parse_groups(self._run(["getent", "group", "--", group], ok=(0, 2)).out)}
        info = found.get(group)
        member = info is not None and user in info.members
        if action.op == "grant":
            if info is None:
                raise PermanentTargetError(f"target {self.name}: group {group!r} does not exist")
            if info.gid == 0:
                raise InvalidInput(f"group {group!r} has gid 0 (root's group)")
            self._refuse_sudoers_groups(action, [info])
            account = self._require_person(user)
            if account.gid == info.gid:
                raise PermanentTargetError(
                    f"target {self.name}: {group!r} is the primary group of {user!r}; it cannot be granted "
                    "or revoked as a supplementary group"
                )
            if member:
                return []
            return [_Step(("gpasswd", "-a", user, group))]
        if not member:
            return []
        steps = [_Step(("gpasswd", "-d", user, group))]
        if self._end_sessions:
            # a process keeps the supplementary groups it started with: end them all
            steps += self._kill_steps(user)
        return steps
