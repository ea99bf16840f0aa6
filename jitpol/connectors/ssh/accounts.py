"""ephemeral-account on a Linux host: `jit-...` accounts with jitpol's GECOS marker, their
groups, expiry day and authorized_keys."""

from __future__ import annotations

from collections.abc import Iterable

from jitpol.connectors.ssh.authorized_keys import authorized_keys_text, key_end, parse_authorized_keys, public_keys
from jitpol.connectors.ssh.facts import _Account, _parse_groups, _records, _User, day_start, expire_day
from jitpol.connectors.ssh.host import HostBase, _Step
from jitpol.connectors.ssh.names import GECOS_PREFIX, parse_groups, validate_account_name
from jitpol.connectors.ssh.scripts import _READ_KEYS, _WRITE_KEYS
from jitpol.errors import PermanentTargetError
from jitpol.model.assignment import Action


class EphemeralAccountModel(HostBase):
    """LinuxHost's ephemeral-account: plan useradd / usermod / userdel and the keys file; read accounts."""

    def _plan_account(self, action: Action) -> list[_Step]:
        a = action.assignment
        name = validate_account_name(a.principal)
        groups = parse_groups(a.privilege)
        found = self._passwd([name])
        user = found[0] if found else None
        if user is not None and not user.marked:
            raise PermanentTargetError(
                f"target {self.name}: account {name!r} exists but was not created by jitpol; leaving it alone"
            )
        if action.op == "delete-account":
            if user is None:
                return []
            # expire first so no new login starts, then end every process, then remove
            return [
                _Step(("usermod", "--expiredate", "1", "--", name)),
                *self._kill_steps(name),
                _Step(("userdel", "-r", "--", name)),
            ]

        if action.until is None:
            raise PermanentTargetError(f"target {self.name}: create-account for {name!r} needs the window's end")
        grant = self._grant_name(action)
        keys = public_keys(action.detail("ssh_keys"))
        if not keys:
            raise PermanentTargetError(
                f"target {self.name}: the person has no SSH public keys, so account {name!r} could not be used"
            )
        self._refuse_privileged_groups(action, groups)
        self._refuse_sudoers_groups(action, self._require_groups(groups))
        until = action.until
        day = expire_day(until)
        write_keys = _Step(
            ("sh", "-c", _WRITE_KEYS, "jitpol-keys", name),
            stdin=authorized_keys_text(keys, until, grant),
            note=f"[authorized_keys: {len(keys)} key(s), expiry-time={key_end(until)}]",
        )
        if user is None:
            create = ["useradd", "-m", "-c", f"{GECOS_PREFIX}{grant}", "-p", "*", "-s", "/bin/bash",
                      "-e", day_start(day).strftime("%Y-%m-%d")]
            if groups:
                create += ["-G", ",".join(groups)]
            return [_Step((*create, "--", name)), write_keys]

        account = self._accounts([user])[name]
        steps: list[_Step] = []
        if account.groups != groups:
            steps.append(_Step(("usermod", "-G", ",".join(groups), "--", name)))
        # both ends follow the grant's live end exactly, earlier or later alike
        if account.expire_day != day:
            steps.append(_Step(("usermod", "--expiredate", day_start(day).strftime("%Y-%m-%d"), "--", name)))
        ends = {k.end for k in account.keys}
        current_end = next(iter(ends)) if len(ends) == 1 else None
        if sorted(k.key for k in account.keys) != sorted(keys) or current_end is None \
                or key_end(current_end) != key_end(until):
            steps.append(write_keys)
        return steps

    def _accounts(self, users: Iterable[_User]) -> dict[str, _Account]:
        """Groups, expiry day and keys of each of `users`, in three commands."""
        wanted = {u.name: u for u in users}
        if not wanted:
            return {}
        names = sorted(wanted)
        memberships: dict[str, list[str]] = {n: [] for n in names}
        for g in _parse_groups(self._run(["getent", "group"]).out):
            for m in g.members:
                if m in memberships:
                    memberships[m].append(g.name)
        expiry: dict[str, int | None] = {}
        for line in self._run(["getent", "shadow", "--", *names], ok=(0, 2)).out.splitlines():
            parts = line.split(":")
            if len(parts) == 9 and parts[0] in wanted:
                expiry[parts[0]] = int(parts[7]) if parts[7].isdigit() else None
        keys = _records(self._run(["sh", "-c", _READ_KEYS, "jitpol-read-keys", *names]).out)
        return {
            n: _Account(
                user=wanted[n],
                groups=tuple(sorted(set(memberships[n]))),
                expire_day=expiry.get(n),
                keys=parse_authorized_keys(keys.get(n, "")),
            )
            for n in names
        }
