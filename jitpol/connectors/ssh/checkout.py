"""credential-checkout on a Linux host: rotate a shared account's password (chpasswd), end
its processes, check the password is usable."""

from __future__ import annotations

from jitpol.connectors.kit import shown
from jitpol.connectors.ssh.host import HostBase, _Step
from jitpol.connectors.ssh.names import GECOS_PREFIX, parse_holders, validate_principal
from jitpol.errors import PermanentTargetError
from jitpol.model.assignment import Action, Outcome

_MAX_PASSWORD = 1024  # chpasswd reads lines into a fixed buffer; a secret is far shorter


class CredentialCheckoutModel(HostBase):
    """LinuxHost's credential-checkout: the rotation."""

    def _apply_rotate(self, action: Action, check: bool) -> Outcome:
        """Set the shared account's password to action.detail("password") (stdin of chpasswd
        only), end every process of the account, check the password field is usable. A
        rotation is an event: always changed=True."""
        a = action.assignment
        user = validate_principal(a.principal)
        parse_holders(a.privilege)
        password = self._checked_password(action, user)
        self._refuse_login_user(user)
        account = self._require_person(user)
        if account.gecos.startswith(GECOS_PREFIX):
            raise PermanentTargetError(
                f"target {self.name}: {user!r} is an ephemeral account jitpol created; it is never checked out"
            )
        # the new password first, then the processes: a holder who logs in again in between
        # can only use the new secret, which is not theirs
        steps = [
            _Step(("chpasswd",), stdin=f"{user}:{password}\n", note=f"{user}:***", secret=password),
            *self._kill_steps(user),
        ]
        operations = tuple(self._describe(s) for s in steps)
        if not check:
            for step in steps:
                self._run_step(step)
            self._require_usable_password(user)
        return Outcome(changed=True, before=False, after=not check, operations=operations)

    def _checked_password(self, action: Action, user: str) -> str:
        password = action.detail("password")
        if not password:
            # a rotation without a new secret would leave the previous holder's password working
            raise PermanentTargetError(f"target {self.name}: rotate of {user!r} needs a password detail")
        if any(c in password for c in "\n\r\x00"):
            # chpasswd reads `user:password` lines: a line break would start another account's line
            raise PermanentTargetError(
                f"target {self.name}: the password for {user!r} contains a line break or NUL character"
            )
        if len(password) > _MAX_PASSWORD:
            raise PermanentTargetError(
                f"target {self.name}: the password for {user!r} is longer than {_MAX_PASSWORD} characters"
            )
        return password

    def _require_usable_password(self, user: str) -> None:
        """`passwd -S` says P (a usable password), not L (locked) or NP (none)."""
        fields = self._run(["passwd", "-S", "--", user]).out.split()
        status = fields[1] if len(fields) > 1 and fields[0] == user else "unknown"
        if status != "P":
            raise PermanentTargetError(
                f"target {self.name}: after chpasswd the password of {user!r} is not usable (passwd -S says "
                f"{shown(status)})"
            )
