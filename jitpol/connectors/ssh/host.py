"""The part of LinuxHost every model shares: running commands through the Runner (_Step,
_Result) and the checks made before anything is granted."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from jitpol.connectors import sudoers
from jitpol.connectors.kit import redacted, shown
from jitpol.connectors.ssh.facts import _Group, _parse_groups, _parse_passwd, _records, _User
from jitpol.connectors.ssh.names import _NOBODY_UID, MIN_UID, PRIVILEGED_GROUPS, SUDO
from jitpol.connectors.ssh.runner import Runner, _first_line, _short
from jitpol.connectors.ssh.scripts import _READ_SUDOERS, _WAIT_GONE
from jitpol.errors import InvalidInput, PermanentTargetError
from jitpol.model.assignment import Action


@dataclass(frozen=True, slots=True)
class _Result:
    status: int
    out: str
    err: str


@dataclass(frozen=True, slots=True)
class _Step:
    """One remote command of an apply."""

    argv: tuple[str, ...]
    stdin: str | None = None
    ok: tuple[int, ...] = (0,)
    note: str = ""  # what stdin holds, for the operations record
    secret: str = field(default="", repr=False)  # in stdin; cut from any message about the step


class HostBase:
    """What every model of LinuxHost uses: the runner, the shared checks (a person, groups,
    root-equivalent privileges, the login user, the grant name) and running commands with their
    exit statuses checked and secrets cut from messages."""

    def __init__(self, name: str, runner: Runner, *, end_sessions: bool = True, login_user: str = "root") -> None:
        self.name = name
        self._runner = runner
        self._end_sessions = end_sessions
        self._user = login_user

    # -- shared checks ----------------------------------------------------------------------

    def _require_person(self, name: str) -> _User:
        found = self._passwd([name])
        if not found:
            raise PermanentTargetError(f"target {self.name}: user {name!r} does not exist on the host")
        user = found[0]
        if user.uid < MIN_UID or user.uid == _NOBODY_UID:
            raise PermanentTargetError(
                f"target {self.name}: user {name!r} is a system account (uid {user.uid}); jitpol never grants to it"
            )
        return user

    def _require_groups(self, groups: Sequence[str]) -> list[_Group]:
        if not groups:
            return []
        found = {g.name: g for g in _parse_groups(self._run(["getent", "group", "--", *groups], ok=(0, 2)).out)}
        missing = [g for g in groups if g not in found]
        if missing:
            raise PermanentTargetError(f"target {self.name}: group(s) {', '.join(missing)} do not exist")
        if any(found[g].gid == 0 for g in groups):
            raise PermanentTargetError(f"target {self.name}: a group with gid 0 is never handed out")
        return [found[g] for g in groups]

    def _refuse_privileged_groups(self, action: Action, groups: Sequence[str]) -> None:
        """Refuse groups that are root-equivalent by nature (PRIVILEGED_GROUPS) unless the
        action's resource opts in. Needs no host: called before anything is read or written."""
        if action.privileged_allowed:
            return
        why = [f"{g!r} ({PRIVILEGED_GROUPS[g]})" for g in groups if g in PRIVILEGED_GROUPS]
        if why:
            self._privileged_refusal(action, why)

    def _refuse_sudoers_groups(self, action: Action, groups: Sequence[_Group]) -> None:
        """Refuse groups that sudoers on the host gives rights to (`%group`, `%#gid` in
        /etc/sudoers or a file of /etc/sudoers.d) unless the action's resource opts in: such a
        group is sudo in disguise and would bypass the scoping of sudo-rule. Read-only."""
        if action.privileged_allowed or not groups:
            return
        read = _records(self._run(["sh", "-c", _READ_SUDOERS, "jitpol-read-sudoers"]).out)
        # jitpol's own drop-ins name users only; a file at such a name it did not write is read
        files = {fname: text for fname, text in read.items() if not _jitpol_rule(fname, text)}
        why = []
        for g in groups:
            for fname, text in sorted(files.items()):
                lines = sudoers.group_mentions(text, g.name, g.gid)
                if lines:
                    where = f"{shown(fname)}: {shown(lines[0])}"
                    why.append(f"{g.name!r} (sudoers gives it rights: {where})")
                    break
        if why:
            self._privileged_refusal(action, why)

    def _privileged_refusal(self, action: Action, why: Sequence[str]) -> NoReturn:
        raise PermanentTargetError(
            f"target {self.name}: refusing to give {action.assignment.principal!r} root-equivalent "
            f"{'privileges' if action.assignment.model == SUDO else 'group(s)'}: {'; '.join(why)}. "
            f"Resource {action.resource or '?'} must say `allowPrivileged: true` in its spec to hand this out "
            "(and be approved like root)"
        )

    def _refuse_login_user(self, user: str) -> None:
        if user == self._user:
            raise PermanentTargetError(
                f"target {self.name}: {user!r} is the user jitpol logs in as; jitpol never changes its access"
            )

    def _grant_name(self, action: Action) -> str:
        grant = action.detail("grant") or (action.grants[0] if action.grants else "")
        if not sudoers.GRANT_NAME.fullmatch(grant):
            raise PermanentTargetError(f"target {self.name}: the action names no valid grant ({shown(grant)})")
        return grant

    def _kill_steps(self, user: str) -> list[_Step]:
        return [
            _Step(("pkill", "-KILL", "-u", user), ok=(0, 1)),  # 1: no process matched
            _Step(("sh", "-c", _WAIT_GONE, "jitpol-wait", user)),
        ]

    def _passwd(self, names: Sequence[str] = ()) -> list[_User]:
        argv = ["getent", "passwd", "--", *names] if names else ["getent", "passwd"]
        return _parse_passwd(self._run(argv, ok=(0, 2)).out)

    def _checked(self, fn: Callable[[object, str], object], value: object, what: str) -> None:
        try:
            fn(value, what)
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {self.name}: {exc}") from None

    # -- commands ---------------------------------------------------------------------------

    def _describe(self, step: _Step) -> str:
        text = self._runner.shown(step.argv)
        return f"{text} < {step.note}" if step.stdin is not None else text

    def _run_step(self, step: _Step) -> _Result:
        return self._run(step.argv, stdin=step.stdin, ok=step.ok, secret=step.secret)

    def _run(self, argv: Sequence[str], *, stdin: str | None = None, ok: tuple[int, ...] = (0,),
             secret: str = "") -> _Result:
        """Run one command through the runner; a status outside `ok` is PermanentTargetError
        (without `secret` in its message), a lost connection or timeout TargetUnavailable."""
        status, out, err = self._runner.run(argv, stdin)
        result = _Result(status, out, err)
        if status not in ok:
            self._refused(argv, result, secret)
        return result

    def _refused(self, argv: Sequence[str], result: _Result, secret: str = "") -> NoReturn:
        detail = _first_line(result.err) or _first_line(result.out) or "no output"
        if self._user != "root" and "sudo:" in result.err and "password" in result.err:
            detail = f"user {self._user!r} may not run it through `sudo -n` ({detail})"
        detail = redacted(detail, [secret])
        raise PermanentTargetError(
            f"target {self.name}: {_short(argv)} failed with status {result.status}: {detail}"
        )


def _jitpol_rule(path: str, text: str) -> bool:
    """A drop-in jitpol wrote: at a jitpol file name, exactly the template (a file at such a name
    that someone else wrote, or edited, may give a group rights like any other)."""
    if not sudoers.FILE_NAME.fullmatch(path.rsplit("/", 1)[-1]):
        return False
    try:
        sudoers.parse(text)
    except ValueError:
        return False
    return True
