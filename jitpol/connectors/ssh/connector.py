"""Linux hosts: `role-membership`, `ephemeral-account`, `sudo-rule` and `credential-checkout`,
over SSH (type `ssh`, SshConnector) or on the machine itself (type `local`, LocalHostConnector,
used by `jitpol agent` in pull mode).

Both types share one implementation, LinuxHost, which speaks to its host only through a
Runner: `run(argv, stdin) -> (status, stdout, stderr)` runs one argument list as root.
SshRunner sends it over one pinned SSH connection (paramiko; every argument shlex.quote'd,
`sudo -n --` in front for a non-root login user); LocalRunner runs it with subprocess
(argument list, no shell, fixed PATH and C locale) and refuses to run unless it is root on the
host named in its settings.

Settings of type `ssh` (the target's entry in jitpol.yaml):
    host            required; name or address of the host
    port            optional, default 22
    user            required; login user: root, or a user that may run the commands below
                    through `sudo -n` (no password)
    key_env         required; NAME of the environment variable holding the private key TEXT
                    (OpenSSH or PEM; ed25519, ecdsa or rsa; not encrypted)
    host_key        required; the host's public key line ("ssh-ed25519 AAAA..."), pinned: a
                    host presenting any other key is refused (PermanentTargetError naming both
                    fingerprints)
    end_sessions    optional bool, default true: on a role-membership revoke, kill the
                    principal's processes (they keep the supplementary groups they started with)
    connect_timeout optional int seconds, default 10 (TCP, banner, authentication)
    hostname        optional; used by `jitpol agent`, ignored here

Settings of type `local`:
    hostname        required; the host's own name. Commands run only on a machine whose name
                    (os.uname().nodename) is this name (case-insensitive; or both have the
                    same first label, so `web-1` matches `web-1.internal`)
    end_sessions    as above

Models (see docs/targets/ssh.md):
- role-membership: principal = a Linux user (uid >= 1000), privilege = a supplementary group.
  `gpasswd -a` / `gpasswd -d`; observe reads direct members with `getent group`.
- ephemeral-account: principal `jit-...`, privilege = canonical JSON of its sorted groups.
  `useradd -m -c 'jitpol grant <grant>' -p '*' -e <day after the end> -G ...`, then
  ~/.ssh/authorized_keys with `expiry-time="yyyymmddHHMMSSZ"` on each of the person's keys
  (sshd refuses the keys after that second). delete-account expires the account, kills its
  processes, waits for them and runs `userdel -r`.
- sudo-rule: principal = a Linux user, privilege = canonical JSON {"command", "runAs"}. One
  drop-in per assignment in /etc/sudoers.d written only from jitpol.connectors.sudoers.render,
  with NOTAFTER (and NOTBEFORE) in UTC; checked with `visudo -cf`, moved into place
  atomically and read back with `sudo -l -U`.
- credential-checkout: principal = a shared Linux account (uid >= 1000, not a jitpol
  ephemeral account, not the login user), privilege = the JSON list of the grants holding the
  secret ("[]": nobody). op `rotate` sets action.detail("password") with `chpasswd` (the
  password only on its stdin; operations show `chpasswd < account:***`), kills and waits for
  every process of the account (the previous holder keeps no shell) and checks that the
  password field is usable (`passwd -S` status P). Always changed=True. Linux has no per-minute
  end for a password (`chage -E` is day-granular and locks the whole account, so it is not
  used): the reconciler's rotation at the window's end is what ends a checkout. observe
  reports nothing for this model (the ledger knows the holders).

Ownership markers (Capabilities.marks): an ephemeral account's GECOS `jitpol grant <grant>`
and a sudo drop-in's header `# managed by jitpol: grant <grant>` (fixed text and an allow-listed
grant name): observe reports only what carries them, owned True. A line of /etc/group has no room
for a marker: role-membership is owned None (only the ledger knows). Native ends (the account's
expiry day and its keys' expiry-time, a rule's NOTAFTER) follow action.until both ways: any other
end is rewritten to it, earlier or later.

Root-equivalent privileges (docs/targets/ssh.md): groups in PRIVILEGED_GROUPS (docker, lxd,
libvirt, ...) or named in sudoers (`%group`, `%#gid`), and sudo rules for the programs
sudoers.privileged_command names (file writers, chmod/chown, account tools, package managers,
systemctl beyond service control, ...), are granted (role-membership, ephemeral-account groups,
sudo-rule) only when the action carries the "privileged" detail (the resource says
`allowPrivileged: true`); refused before anything is written otherwise. Revocations never ask.

Safety: every name is checked against an allowlist by check_name (at `jitpol validate`) and
again before use; every command is an argument list (over SSH joined with shlex.quote; the
few `sh -c` scripts are constants (scripts.py) that receive names only as quoted positional
arguments); exit statuses are checked. Connection failures are TargetUnavailable; a wrong host
key, a refused login, not being root or a refused command are PermanentTargetError. The
private key and passwords never appear in messages or operations. paramiko is imported
lazily: check_name and LocalHostConnector work without it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from jitpol.connectors import sudoers
from jitpol.connectors.kit import check_apply, check_model
from jitpol.connectors.ssh.accounts import EphemeralAccountModel
from jitpol.connectors.ssh.authorized_keys import KEY_TYPES
from jitpol.connectors.ssh.checkout import CredentialCheckoutModel
from jitpol.connectors.ssh.localrunner import LocalRunner
from jitpol.connectors.ssh.membership import RoleMembershipModel
from jitpol.connectors.ssh.names import _OPS, CHECKOUT, EPHEMERAL, MODELS, ROLE, SUDO
from jitpol.connectors.ssh.sshrunner import SshRunner
from jitpol.connectors.ssh.sudo_rules import SudoRuleModel
from jitpol.errors import InvalidInput, PermanentTargetError
from jitpol.model.assignment import Action, Assignment, Capabilities, Outcome, Scope
from jitpol.model.sshkey import split_key

_HOST = re.compile(r"[A-Za-z0-9._:\[\]-]{1,253}")
_HOSTNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}")


class LinuxHost(RoleMembershipModel, EphemeralAccountModel, SudoRuleModel, CredentialCheckoutModel):
    """One Linux host, whichever way its commands travel (see the module docstring for the
    models). SshConnector and LocalHostConnector are this with an SshRunner or a LocalRunner.

    `login_user` is the user the runner acts through: jitpol never changes its access."""

    type: ClassVar[str]
    # marks: ephemeral accounts carry the GECOS marker and sudo rules jitpol's header; a line of
    # /etc/group has no room for one, so role-membership is only known through the ledger
    capabilities: ClassVar[Capabilities] = Capabilities(
        models=MODELS, native_expiry=frozenset({EPHEMERAL, SUDO}), marks=frozenset({EPHEMERAL, SUDO}),
        ends_sessions=True,
    )

    # -- Connector protocol -----------------------------------------------------------------

    def observe(self, scope: Scope) -> frozenset[Assignment]:
        """role-membership: the direct members of every group in scope.privileges (groups that
        do not exist have none), owned None (a line of /etc/group cannot carry a marker).
        ephemeral-account: EVERY account carrying jitpol's GECOS marker, whatever
        scope.privileges says, with its groups and the end the host enforces, owned True
        (accounts without the marker are never reported: not jitpol's to change).
        sudo-rule: the jitpol drop-ins (jitpol's header, exactly the template) whose rule is in
        scope.privileges, with their NOTAFTER, owned True (rules jitpol did not write are never
        read). credential-checkout: nothing (the ledger knows who holds a secret). Read-only."""
        check_model(self.name, scope.model, _OPS)
        if scope.model == ROLE:
            return self._observe_groups(scope)
        if scope.model == EPHEMERAL:
            return frozenset(
                Assignment(self.name, EPHEMERAL, a.user.name, a.privilege, expires=a.expires, owned=True)
                for a in self._accounts(u for u in self._passwd() if u.marked).values()
            )
        if scope.model == CHECKOUT:
            return frozenset()
        return frozenset(
            Assignment(self.name, SUDO, rule.user, rule.privilege, expires=rule.not_after, owned=True)
            for rule in self._rules().values()
            if rule.privilege in scope.privileges
        )

    def apply(self, action: Action, *, check: bool = False) -> Outcome:
        """Make one action true; idempotent (already true -> changed=False, no operations),
        except `rotate`, which is an event and always changes the password. check=True only
        reads, and lists the commands it would send. Additions with a native end (sudo-rule,
        ephemeral-account) are already true only when the host enforces exactly action.until
        (to its granularity: the second for NOTAFTER and expiry-time, the day for the account's
        expiry); any other end is set to action.until, earlier or later alike (a schedule,
        break-glass deadline or restriction can cut a window short)."""
        a = action.assignment
        check_apply(self.name, a.model, action.op, _OPS)
        try:
            if a.model == ROLE:
                steps = self._plan_membership(action)
            elif a.model == EPHEMERAL:
                steps = self._plan_account(action)
            elif a.model == CHECKOUT:
                return self._apply_rotate(action, check)
            else:
                return self._apply_rule(action, check)
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {self.name}: {exc}") from None
        if not steps:
            return Outcome(changed=False, before=True, after=True)
        operations = tuple(self._describe(s) for s in steps)
        if not check:
            for step in steps:
                self._run_step(step)
        return Outcome(changed=True, before=False, after=not check, operations=operations)

    def close(self) -> None:
        """Release the runner's connection, if any. Safe to call twice; a later call reconnects."""
        self._runner.close()


class SshConnector(LinuxHost):
    """Connector for one Linux host over SSH (see the module docstring).

    One SSH connection is opened on first use and reused for every command; close() ends it.
    """

    type: ClassVar[str] = "ssh"

    def __init__(self, name: str, settings: Mapping[str, Any], env: Mapping[str, str]) -> None:
        host = settings.get("host")
        if not isinstance(host, str) or not _HOST.fullmatch(host):
            raise PermanentTargetError(f"target {name}: setting host (a host name or address) is required")
        port = settings.get("port", 22)
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise PermanentTargetError(f"target {name}: setting port must be an integer from 1 to 65535")
        user = settings.get("user")
        try:
            sudoers.check_linux_name(user, "setting user")
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {name}: {exc}") from None
        key_env = settings.get("key_env")
        if not isinstance(key_env, str) or not key_env:
            raise PermanentTargetError(f"target {name}: setting key_env (an environment variable name) is required")
        host_key = settings.get("host_key")
        try:
            kind, _blob = split_key(host_key) if isinstance(host_key, str) else ("", b"")
        except ValueError:
            kind = ""
        if kind not in KEY_TYPES or not isinstance(host_key, str):
            raise PermanentTargetError(
                f"target {name}: setting host_key must be the host's public key line, e.g. the output of "
                "`ssh-keyscan -t ed25519 HOST` without the host name"
            )
        end_sessions = _end_sessions(name, settings)
        timeout = settings.get("connect_timeout", 10)
        if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0:
            raise PermanentTargetError(f"target {name}: setting connect_timeout must be a positive integer")
        runner = SshRunner(name, host=host, port=port, user=str(user), key_env=key_env, host_key=host_key,
                           timeout=float(timeout), env=env)
        super().__init__(name, runner, end_sessions=end_sessions, login_user=str(user))


class LocalHostConnector(LinuxHost):
    """The same models on the machine this process runs on (`jitpol agent` in pull mode):
    commands run with subprocess as root (LocalRunner). Settings: `hostname` (required; the
    machine must be that host), `end_sessions`. No secrets: `env` is not read."""

    type: ClassVar[str] = "local"

    def __init__(self, name: str, settings: Mapping[str, Any], env: Mapping[str, str]) -> None:
        hostname = settings.get("hostname")
        if not isinstance(hostname, str) or not _HOSTNAME.fullmatch(hostname):
            raise PermanentTargetError(
                f"target {name}: setting hostname (this host's own name, as `hostname` prints it) is required"
            )
        end_sessions = _end_sessions(name, settings)
        super().__init__(name, LocalRunner(name, hostname=hostname), end_sessions=end_sessions)


def _end_sessions(name: str, settings: Mapping[str, Any]) -> bool:
    value = settings.get("end_sessions", True)
    if not isinstance(value, bool):
        raise PermanentTargetError(f"target {name}: setting end_sessions must be true or false")
    return value
