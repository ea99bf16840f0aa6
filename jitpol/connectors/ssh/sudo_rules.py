"""sudo-rule on a Linux host: one drop-in per assignment in /etc/sudoers.d, rendered only by
jitpol.connectors.sudoers, checked by visudo, moved into place and read back with `sudo -l`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from jitpol.connectors import sudoers
from jitpol.connectors.kit import shown
from jitpol.connectors.ssh.facts import _records
from jitpol.connectors.ssh.host import HostBase, _Step
from jitpol.connectors.ssh.names import validate_principal
from jitpol.connectors.ssh.runner import _first_line
from jitpol.connectors.ssh.scripts import _READ_RULES
from jitpol.errors import InvalidInput, PermanentTargetError
from jitpol.model.assignment import Action, Outcome


class SudoRuleModel(HostBase):
    """LinuxHost's sudo-rule: read jitpol's drop-ins, write or remove one, check the program."""

    def _rule_files(self) -> dict[str, str]:
        """file name -> text of every regular file /etc/sudoers.d/jitpol-<16 hex>, whoever wrote it."""
        records = _records(self._run(["sh", "-c", _READ_RULES, "jitpol-read-rules"]).out)
        return {f: text for f, text in records.items() if sudoers.FILE_NAME.fullmatch(f)}

    def _rules(self, files: Mapping[str, str] | None = None) -> dict[str, sudoers.SudoRule]:
        """file name -> rule for every jitpol drop-in that parses: jitpol's header and exactly
        the template (others are not ours to read)."""
        out = {}
        for fname, text in (self._rule_files() if files is None else files).items():
            try:
                out[fname] = sudoers.parse(text)
            except ValueError:
                continue
        return out

    def _apply_rule(self, action: Action, check: bool) -> Outcome:
        a = action.assignment
        try:
            user = validate_principal(a.principal)
            command, run_as = sudoers.parse_privilege(a.privilege)
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {self.name}: {exc}") from None
        self._refuse_login_user(user)
        program, *args = command.split(" ")
        if action.op == "grant" and not action.privileged_allowed:
            # before connecting; the program the path resolves to is checked again on the host
            why = sudoers.privileged_command(program, tuple(args))
            if why is not None:
                self._privileged_refusal(action, [f"sudo-rule command {command!r}: {why}"])
        fname = sudoers.file_name(user, a.privilege)
        path = f"{sudoers.SUDOERS_DIR}/{fname}"
        files = self._rule_files()
        rules = self._rules(files)
        mine = {f for f, r in rules.items() if r.user == user and r.privilege == a.privilege}
        # the file at our name is ours only with jitpol's header: a rule someone else wrote there
        # is never replaced or removed (one whose rule line was edited under our header is ours)
        foreign = fname in files and not sudoers.marked(files[fname])

        if action.op == "revoke":
            # our file by name, and any other drop-in of ours that holds the same rule
            ours = fname in files and not foreign
            targets = sorted(({path} if ours else set()) | {f"{sudoers.SUDOERS_DIR}/{f}" for f in mine})
            if not targets:
                return Outcome(changed=False, before=True, after=True)
            step = _Step(("rm", "-f", "--", *targets))
            if not check:
                self._run_step(step)
            return Outcome(changed=True, before=False, after=not check, operations=(self._describe(step),))

        if action.until is None:
            raise PermanentTargetError(f"target {self.name}: a sudo-rule grant needs the window's end")
        if foreign:
            raise PermanentTargetError(
                f"target {self.name}: {path} exists but was not written by jitpol (no `{sudoers.MARKER}` "
                "header); leaving it alone"
            )
        current = rules.get(fname)
        # already true only with exactly the grant's end (to the second NOTAFTER names): any other
        # end, earlier or later, is rewritten to it
        if current is not None and current.user == user and current.privilege == a.privilege \
                and sudoers.end_stamp(current.not_after) == sudoers.end_stamp(action.until):
            return Outcome(changed=False, before=True, after=True)
        self._require_person(user)
        self._check_program(program, tuple(args), action)
        self._checked(sudoers.check_linux_name, run_as, "runAs")
        return self._install_rule(path, self._rule_text(action, user, command, run_as, action.until), user, check)

    def _rule_text(self, action: Action, user: str, command: str, run_as: str, until: datetime) -> str:
        """The drop-in's text: the rule from the window's start (when given) to its end."""
        start = action.detail("start")
        try:
            not_before = datetime.fromisoformat(start) if start else None
        except ValueError:
            raise PermanentTargetError(
                f"target {self.name}: detail start {shown(start)} is not an ISO time"
            ) from None
        rule = sudoers.SudoRule(
            user=user, command=command, run_as=run_as, not_after=until,
            not_before=not_before if not_before is not None and not_before.tzinfo is not None else None,
            grant=self._grant_name(action),
        )
        try:
            return sudoers.render(rule)
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {self.name}: {exc}") from None

    def _install_rule(self, path: str, text: str, user: str, check: bool) -> Outcome:
        """Write the drop-in next to its place, have visudo check it, then move it in; sudo -l
        proves sudo read it."""
        tmp = f"{path}.jitpol-new"  # contains '.', so sudo ignores it until it is moved
        steps = [
            _Step(("install", "-m", "0440", "-o", "root", "-g", "root", "/dev/stdin", tmp),
                  stdin=text, note=repr(text.splitlines()[1])),
            _Step(("visudo", "-c", "-q", "-f", tmp)),
            _Step(("mv", "-f", "-T", "--", tmp, path)),
        ]
        operations = tuple(self._describe(s) for s in steps)
        if not check:
            self._run_step(steps[0])
            checked = self._run(steps[1].argv, ok=(0, 1))
            if checked.status != 0:
                self._run(["rm", "-f", "--", tmp])
                raise PermanentTargetError(f"target {self.name}: visudo refused the rule for {user!r}: "
                                           f"{_first_line(checked.err or checked.out)}")
            self._run_step(steps[2])
            self._verify_rule(user, text)
        return Outcome(changed=True, before=False, after=not check, operations=operations)

    def _verify_rule(self, user: str, text: str) -> None:
        # sudo -l lists the rule even outside its dates: proof that sudo read the file
        listing = " ".join(self._run(["sudo", "-n", "-l", "-U", user]).out.split())
        spec = text.splitlines()[1].split(") ", 1)[1]  # "NOTBEFORE=.. NOTAFTER=.. NOPASSWD: /cmd args"
        if spec not in listing:
            raise PermanentTargetError(
                f"target {self.name}: the sudo rule for {user!r} was written but `sudo -l -U` does not list it "
                f"(does /etc/sudoers have `@includedir {sudoers.SUDOERS_DIR}`?)"
            )

    def _check_program(self, path: str, args: tuple[str, ...], action: Action) -> None:
        """The program exists, is not a refused program under another name (symlinks such as
        /usr/bin/editor), nor a privileged one unless the resource opts in, and only root can
        change it."""
        resolved = self._run(["readlink", "-e", "--", path], ok=(0, 1))
        target = resolved.out.strip()
        if resolved.status != 0 or not target:
            raise PermanentTargetError(f"target {self.name}: sudo-rule program {path!r} does not exist on the host")
        if sudoers.refused_program(target):
            raise PermanentTargetError(
                f"target {self.name}: sudo-rule program {path!r} is {target!r}, which can start a shell"
            )
        why = None if action.privileged_allowed else sudoers.privileged_command(target, args)
        if why is not None:
            self._privileged_refusal(action, [f"sudo-rule program {path!r} is {target!r}: {why}"])
        # whoever can write the program or any directory above it can swap in a shell
        parts = target.split("/")
        paths = [target, *("/".join(parts[:i]) or "/" for i in range(len(parts) - 1, 0, -1))]
        lines = self._run(["stat", "-c", "%u %a %F", "--", *paths]).out.split("\n")
        for i, path in enumerate(paths):
            uid, mode, kind = [*lines[i].split(" ", 2), "", ""][:3] if i < len(lines) else ("", "", "")
            if uid != "0" or not mode.isdigit() or int(mode, 8) & 0o022 \
                    or kind != ("regular file" if i == 0 else "directory"):
                raise PermanentTargetError(
                    f"target {self.name}: sudo-rule program {target!r} must be a regular file that only root can "
                    f"change, in directories only root can change ({path!r} is not)"
                )
