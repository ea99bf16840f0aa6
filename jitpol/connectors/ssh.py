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
few `sh -c` scripts are constants of this module that receive names only as quoted positional
arguments); exit statuses are checked. Connection failures are TargetUnavailable; a wrong host
key, a refused login, not being root or a refused command are PermanentTargetError. The
private key and passwords never appear in messages or operations. paramiko is imported
lazily: check_name and LocalHostConnector work without it.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import socket
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, Protocol

from jitpol.connectors import sudoers
from jitpol.connectors.kit import check_apply, check_model, redacted, shown
from jitpol.errors import InvalidInput, PermanentTargetError, TargetUnavailable
from jitpol.model.assignment import Action, Assignment, Capabilities, Outcome, Scope
from jitpol.model.canonical import canonical_json
from jitpol.model.sshkey import fingerprint, split_key

if TYPE_CHECKING:
    import paramiko

ROLE = "role-membership"
EPHEMERAL = "ephemeral-account"
SUDO = "sudo-rule"
CHECKOUT = "credential-checkout"
MODELS = frozenset({ROLE, EPHEMERAL, SUDO, CHECKOUT})
_OPS = {ROLE: ("grant", "revoke"), EPHEMERAL: ("create-account", "delete-account"), SUDO: ("grant", "revoke"),
        CHECKOUT: ("rotate",)}

EPHEMERAL_NAME = re.compile(r"jit-[a-z0-9][a-z0-9-]{0,30}")
_MAX_LINUX_NAME = 32
GECOS_PREFIX = "jitpol grant "  # the marker on accounts jitpol created (':' is not allowed in GECOS)
MIN_UID = 1000  # below: system accounts, never a principal
_NOBODY_UID = 65534

# Never principals: root and the usual system accounts (the uid check at apply time catches
# the rest on the host itself).
RESERVED_USERS: frozenset[str] = frozenset({
    "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy",
    "www-data", "backup", "list", "irc", "gnats", "nobody", "nfsnobody", "_apt", "messagebus",
    "sshd", "syslog", "adm", "halt", "shutdown", "operator", "ftp", "polkitd", "postgres", "mysql",
})
# Never handed out as groups: each gives root (or the means to become root, or to read every
# secret) without going through a scoped sudo rule. Granting `sudo`/`wheel`/`admin` would make
# the person's sudo rights whatever /etc/sudoers gives those groups, bypassing sudo-rule.
REFUSED_GROUPS: frozenset[str] = frozenset({
    "root", "sudo", "wheel", "admin", "adm", "shadow", "disk", "kmem", "mem", "tty", "staff",
    "sys", "bin", "daemon", "utmp", "sudoers",
})
# Handed out only by a resource that opts in (`spec.allowPrivileged: true`, the action's
# "privileged" detail): membership in each is root on the host by nature, through a daemon that
# runs as root and obeys the group's members. So is any group that sudoers names (`%group`,
# `%#gid`), found on the host at grant time. Not here: `kvm`, `video`, `render`, `input`, `audio`
# (device access for VMs, graphics and input; no route to root or to the secrets of others by
# themselves), `systemd-journal` (reads logs; `adm`, which also reads auth logs, is refused above).
PRIVILEGED_GROUPS: dict[str, str] = {
    "docker": "the Docker daemon runs containers as root for its members (`docker run -v /:/host`)",
    "lxd": "LXD starts privileged containers with the host's / mounted for its members",
    "lxc": "LXC/LXD starts privileged containers with the host's / mounted for its members",
    "incus-admin": "Incus starts privileged containers with the host's / mounted for its members",
    "libvirt": "libvirt defines VMs and storage pools over host files and devices, as root, for its members",
    "libvirtd": "libvirt defines VMs and storage pools over host files and devices, as root, for its members",
    "microk8s": "MicroK8s members are cluster admins and can run privileged pods on the host",
}
KEY_TYPES: frozenset[str] = frozenset({
    "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
})
_HOST = re.compile(r"[A-Za-z0-9._:\[\]-]{1,253}")
_HOSTNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}")
_MAX_PASSWORD = 1024  # chpasswd reads lines into a fixed buffer; a secret is far shorter
# what LocalRunner's commands see: system programs first, output in the C locale
_LOCAL_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C",
              "HOME": "/root"}
_COMMAND_TIMEOUT = 60.0  # seconds of silence before a remote command counts as hung
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RS = "\x1e"  # record separator in the output of the multi-file read scripts

# -- constant scripts: names reach them only as quoted positional parameters -------------------

# wait until every process of user $1 is gone (a zombie counts as gone), at most ~10 s
_WAIT_GONE = (
    'i=0; while ps -o stat= -u "$1" 2>/dev/null | grep -qv "^Z"; do '
    'i=$((i+1)); if [ "$i" -ge 200 ]; then echo "processes of $1 are still running" >&2; exit 1; fi; '
    "sleep 0.05; done"
)
# authorized_keys of each user "$@", read AS that user (a symlink there cannot make root read
# another file), each preceded by a record separator line naming the user
_READ_KEYS = (
    'for u do printf "\\036%s\\n" "$u"; h=$(getent passwd -- "$u" | cut -d: -f6) || continue; '
    '[ -n "$h" ] || continue; setpriv --reuid="$u" --regid="$(id -g -- "$u")" --clear-groups -- '
    'cat -- "$h/.ssh/authorized_keys" 2>/dev/null | tr -d "\\036"; done'
)
# replace ~$1/.ssh/authorized_keys with stdin atomically, writing AS user $1 (a symlink the user
# planted cannot make root write anywhere)
_WRITE_KEYS = (
    'set -eu; h=$(getent passwd -- "$1" | cut -d: -f6); '
    'if [ -z "$h" ] || [ ! -d "$h" ]; then echo "no home directory for $1" >&2; exit 3; fi; '
    'exec setpriv --reuid="$1" --regid="$(id -g -- "$1")" --clear-groups -- sh -c '
    "'umask 077 && mkdir -p -- \"$1/.ssh\" && cat > \"$1/.ssh/authorized_keys.jitpol-new\" && "
    "mv -f -- \"$1/.ssh/authorized_keys.jitpol-new\" \"$1/.ssh/authorized_keys\"' jitpol-keys \"$h\""
)
# every file sudo reads besides jitpol's drop-ins (which name users only): /etc/sudoers and the
# files of /etc/sudoers.d whose name sudo does not skip, each preceded by a record separator line
_READ_SUDOERS = (
    'for f in /etc/sudoers /etc/sudoers.d/*; do [ -f "$f" ] || continue; case "${f##*/}" in '
    '*.*|*~|jitpol-*) continue;; esac; printf "\\036%s\\n" "$f"; tr -d "\\036" < "$f"; done'
)
# every jitpol drop-in with its text, each preceded by a record separator line naming it
_READ_RULES = (
    'for f in /etc/sudoers.d/jitpol-*; do [ -f "$f" ] || continue; '
    'printf "\\036%s\\n" "${f##*/}"; tr -d "\\036" < "$f"; done'
)


# -- name checks (no paramiko) ----------------------------------------------------------------


def validate_principal(name: object) -> str:
    """A Linux user that may receive a group or a sudo rule: a valid name, not root or a known
    system account. Raises InvalidInput."""
    user = sudoers.check_linux_name(name, "principal")
    if user in RESERVED_USERS or user.startswith("systemd-"):
        raise InvalidInput(f"principal {shown(user)} is root or a system account; jitpol never grants to it")
    return user


def validate_group(name: object) -> str:
    """A supplementary group jitpol may hand out: a valid name not in REFUSED_GROUPS (groups that
    are root in disguise or bypass sudo-rule scoping). Raises InvalidInput."""
    group = sudoers.check_linux_name(name, "group")
    if group in REFUSED_GROUPS:
        raise InvalidInput(
            f"group {shown(group)} gives root or unscoped sudo; jitpol never hands it out "
            f"(refused: {', '.join(sorted(REFUSED_GROUPS))}); use a sudo-rule resource instead"
        )
    return group


def validate_account_name(name: object) -> str:
    """An ephemeral account's name: `^jit-[a-z0-9][a-z0-9-]{0,30}$` and at most 32 characters."""
    if not isinstance(name, str) or not EPHEMERAL_NAME.fullmatch(name) or len(name) > _MAX_LINUX_NAME:
        raise InvalidInput(
            f"ephemeral account {shown(name)} must match ^jit-[a-z0-9][a-z0-9-]*$ and be at most "
            f"{_MAX_LINUX_NAME} characters"
        )
    return name


def parse_groups(privilege: object) -> tuple[str, ...]:
    """The groups of an ephemeral-account privilege: canonical JSON of a sorted list of distinct
    group names, each allowed by validate_group. Raises InvalidInput."""
    try:
        value = json.loads(privilege) if isinstance(privilege, str) else None
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
        raise InvalidInput(f"ephemeral-account privilege {shown(privilege)} must be a JSON list of group names")
    groups = tuple(validate_group(g) for g in value)
    if list(groups) != sorted(set(groups)) or canonical_json(list(groups)) != privilege:
        raise InvalidInput(
            f"ephemeral-account privilege {shown(privilege)} must be the canonical JSON of a sorted list "
            "of distinct groups"
        )
    return groups


def check_name(value: object, what: str) -> None:
    """The policy loader's hook (the registry record's name_check). `what` is "principal" for a person's
    Linux user name, "account" for a credential-checkout resource's shared account (the same
    rules); otherwise `value` is a resource's grants entry: a group name, or (for sudo-rule
    resources) the canonical JSON of {command, runAs}. Raises InvalidInput saying what is
    allowed."""
    if what in ("principal", "account"):
        validate_principal(value)
    elif isinstance(value, str) and value.startswith("{"):
        sudoers.parse_privilege(value)
    else:
        validate_group(value)


def parse_holders(privilege: object) -> tuple[str, ...]:
    """The grants of a credential-checkout privilege: a JSON list of grant names ("[]" when the
    secret is rotated to nobody). Raises InvalidInput."""
    try:
        value = json.loads(privilege) if isinstance(privilege, str) else None
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(isinstance(g, str) and sudoers.GRANT_NAME.fullmatch(g) for g in value):
        raise InvalidInput(
            f"credential-checkout privilege {shown(privilege)} must be a JSON list of the grant names "
            "holding the secret"
        )
    return tuple(value)


def public_keys(text: str) -> tuple[str, ...]:
    """`type base64` of each key line in `text` (comments and blank lines dropped; a line's own
    comment dropped too). Refuses options and unknown types: a person's key file cannot smuggle
    `command=` or `from=` into authorized_keys. Raises InvalidInput."""
    keys: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            kind, _blob = split_key(line)
        except ValueError:
            raise InvalidInput("an SSH key of the person is not a public key line (type base64 [comment])") from None
        if kind not in KEY_TYPES:
            raise InvalidInput(
                f"SSH key type {shown(kind)} is not accepted (allowed: {', '.join(sorted(KEY_TYPES))})"
            )
        entry = f"{kind} {line.split()[1]}"
        if entry not in keys:
            keys.append(entry)
    return tuple(keys)


def key_end(t: datetime) -> str:
    """expiry-time value for a window ending at `t`: the last whole second inside it, UTC with
    Z (sshd refuses the key once time() is past the stamp; see sudoers.end_stamp)."""
    return sudoers.end_stamp(t)


def authorized_keys_text(keys: Iterable[str], end: datetime, grant: str) -> str:
    """The authorized_keys file jitpol writes: every key limited to `end` by expiry-time."""
    stamp = key_end(end)
    lines = [f"# managed by jitpol: grant {grant}; keys refused after {stamp}"]
    lines += [f'expiry-time="{stamp}" {key}' for key in keys]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class AuthorizedKey:
    key: str  # "type base64"
    end: datetime | None  # from expiry-time=..Z; None when the line has no end we can read


def parse_authorized_keys(text: str) -> tuple[AuthorizedKey, ...]:
    """Every key line of an authorized_keys file with its end. Lines whose key we cannot find
    count as keys without an end (they might still be accepted by sshd)."""
    out: list[AuthorizedKey] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = _split_unquoted(line)
        if fields and fields[0] in KEY_TYPES:
            options, rest = "", fields
        else:
            options, rest = (fields[0] if fields else ""), fields[1:]
        if len(rest) < 2 or rest[0] not in KEY_TYPES:
            out.append(AuthorizedKey(key=line, end=None))
            continue
        m = re.search(r'(?:^|,)expiry-time="(\d{14})Z"(?:,|$)', options)
        end = sudoers.stamp_end(m.group(1) + "Z") if m else None
        out.append(AuthorizedKey(key=f"{rest[0]} {rest[1]}", end=end))
    return tuple(out)


def _split_unquoted(line: str) -> list[str]:
    """Split on spaces outside double quotes (authorized_keys options may quote spaces)."""
    fields: list[str] = []
    cur: list[str] = []
    quoted = escaped = False
    for ch in line:
        if escaped:
            cur.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            cur.append(ch)
            escaped = True
        elif ch == '"':
            cur.append(ch)
            quoted = not quoted
        elif ch in " \t" and not quoted:
            if cur:
                fields.append("".join(cur))
                cur = []
        else:
            cur.append(ch)
    if cur:
        fields.append("".join(cur))
    return fields


def expire_day(t: datetime) -> int:
    """The shadow expiry day (days since 1970-01-01 UTC) for a window ending at `t`. An account
    is refused from the START of its expiry day, so round up: the account lives to the end."""
    seconds = (t.astimezone(UTC) - _EPOCH).total_seconds()
    return int(-(-seconds // 86400))


def day_start(day: int) -> datetime:
    return _EPOCH + timedelta(days=day)


# -- remote facts -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Result:
    status: int
    out: str
    err: str


@dataclass(frozen=True, slots=True)
class _User:
    name: str
    uid: int
    gid: int
    gecos: str
    home: str

    @property
    def marked(self) -> bool:
        """Created by jitpol as an ephemeral account."""
        return self.gecos.startswith(GECOS_PREFIX) and bool(EPHEMERAL_NAME.fullmatch(self.name))


@dataclass(frozen=True, slots=True)
class _Group:
    name: str
    gid: int
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Account:
    user: _User
    groups: tuple[str, ...]  # supplementary, sorted
    expire_day: int | None
    keys: tuple[AuthorizedKey, ...]

    @property
    def privilege(self) -> str:
        return canonical_json(list(self.groups))

    @property
    def expires(self) -> datetime | None:
        """The end the host enforces: the account's expiry day, or sooner the moment after which
        none of its keys is accepted (None when neither bounds it)."""
        ends: list[datetime] = []
        if self.expire_day is not None:
            ends.append(day_start(self.expire_day))
        if self.keys and all(k.end is not None for k in self.keys):
            ends.append(max(k.end for k in self.keys if k.end is not None))
        return min(ends) if ends else None


@dataclass(frozen=True, slots=True)
class _Step:
    """One remote command of an apply."""

    argv: tuple[str, ...]
    stdin: str | None = None
    ok: tuple[int, ...] = (0,)
    note: str = ""  # what stdin holds, for the operations record
    secret: str = field(default="", repr=False)  # in stdin; cut from any message about the step


def _parse_passwd(text: str) -> list[_User]:
    users = []
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) != 7 or not parts[2].isdigit() or not parts[3].isdigit():
            continue
        users.append(_User(parts[0], int(parts[2]), int(parts[3]), parts[4], parts[5]))
    return users


def _parse_groups(text: str) -> list[_Group]:
    groups = []
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) != 4 or not parts[2].isdigit():
            continue
        members = tuple(m for m in parts[3].split(",") if m)
        groups.append(_Group(parts[0], int(parts[2]), members))
    return groups


def _records(text: str) -> dict[str, str]:
    """Output of the _READ_* scripts: {name: text}. The scripts delete the separator from file
    contents, so a user cannot forge a record for another user."""
    out: dict[str, str] = {}
    for chunk in text.split(_RS)[1:]:
        name, _, body = chunk.partition("\n")
        out.setdefault(name, body)
    return out


# -- running commands -------------------------------------------------------------------------


class Runner(Protocol):
    """How LinuxHost reaches its host. Every privileged command of the connector goes through
    run(); a runner adds nothing of its own to the host."""

    def run(self, argv: Sequence[str], stdin: str | None = None) -> tuple[int, str, str]:
        """Run `argv` (an argument list, never a shell string) as root on the host, `stdin` as
        its standard input (None: empty). Returns (exit status, stdout, stderr), whatever the
        status. Raises TargetUnavailable when the host cannot be reached or the command hangs,
        PermanentTargetError when nothing can be run (login refused, wrong host key, not root,
        program missing). Messages never contain `stdin`."""
        ...

    def shown(self, argv: Sequence[str]) -> str:
        """The command as Outcome.operations records it: exactly what run() executes."""
        ...

    def close(self) -> None:
        """Release connections. Safe to call twice; a later run() reconnects."""
        ...


class SshRunner:
    """Runs commands over one SSH connection (paramiko), opened on first use and reused.

    The command string sent is the argument list joined with shlex.quote, prefixed with
    `sudo -n --` when the login user is not root. The host key is pinned; the private key is
    read from `env[key_env]` at connect time only and never kept or shown."""

    def __init__(self, target: str, *, host: str, port: int, user: str, key_env: str, host_key: str,
                 timeout: float, env: Mapping[str, str]) -> None:
        self.name = target
        self._host = host
        self._port = port
        self._user = user
        self._key_env = key_env
        self._host_key = " ".join(host_key.split()[:2])
        self._timeout = timeout
        self._env = env  # read at connect time only: the key is never kept on this object
        self._client: paramiko.SSHClient | None = None

    @property
    def user(self) -> str:
        return self._user

    def shown(self, argv: Sequence[str]) -> str:
        prefix = [] if self._user == "root" else ["sudo", "-n", "--"]
        return " ".join(shlex.quote(arg) for arg in (*prefix, *argv))

    def run(self, argv: Sequence[str], stdin: str | None = None) -> tuple[int, str, str]:
        import paramiko

        command = self.shown(argv)
        client = self._connection()
        try:
            transport = client.get_transport()
            if transport is None or not transport.is_active():
                raise paramiko.SSHException("connection closed")
            chan = transport.open_session(timeout=self._timeout)
            try:
                chan.settimeout(_COMMAND_TIMEOUT)
                chan.exec_command(command)
                if stdin is not None:
                    chan.sendall(stdin.encode())
                chan.shutdown_write()
                out, err = bytearray(), bytearray()
                while True:
                    if chan.recv_stderr_ready():
                        err += chan.recv_stderr(65536)
                    data = chan.recv(65536)
                    if not data:
                        break
                    out += data
                while data := chan.recv_stderr(65536):
                    err += data
                if not chan.status_event.wait(_COMMAND_TIMEOUT):
                    raise TimeoutError
                status = chan.exit_status
            finally:
                chan.close()
        except TimeoutError:  # socket.timeout is TimeoutError since 3.10
            self.close()
            raise TargetUnavailable(f"target {self.name}: timed out running {_short(argv)}") from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.close()
            raise TargetUnavailable(f"target {self.name}: connection lost running {_short(argv)}: "
                                    f"{type(exc).__name__}") from None
        return status, out.decode(errors="replace"), err.decode(errors="replace")

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _connection(self) -> paramiko.SSHClient:
        client = self._client
        if client is not None:
            transport = client.get_transport()
            if transport is not None and transport.is_active():
                return client
            self.close()
        import paramiko

        pkey = self._private_key()
        pinned = self._pinned_key()
        entry = self._host if self._port == 22 else f"[{self._host}]:{self._port}"
        client = paramiko.SSHClient()
        client.get_host_keys().add(entry, pinned.get_name(), pinned)
        client.set_missing_host_key_policy(_refuse_unknown_policy())
        try:
            client.connect(
                self._host, port=self._port, username=self._user, pkey=pkey,
                allow_agent=False, look_for_keys=False, timeout=self._timeout,
                banner_timeout=self._timeout, auth_timeout=self._timeout, channel_timeout=self._timeout,
            )
            transport = client.get_transport()
            if transport is None:
                raise paramiko.SSHException("no transport after connect")
            presented = transport.get_remote_server_key()
            if presented.asbytes() != pinned.asbytes():  # belt and braces over paramiko's check
                raise paramiko.BadHostKeyException(entry, presented, pinned)
        except paramiko.BadHostKeyException as exc:
            client.close()
            self._host_key_refused(exc.key)
        except _UnknownHostKey as exc:
            client.close()
            self._host_key_refused(exc.key)
        except paramiko.AuthenticationException:
            client.close()
            raise PermanentTargetError(
                f"target {self.name}: {self._host}:{self._port} refused the key in {self._key_env} for user "
                f"{self._user!r}"
            ) from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            client.close()
            raise TargetUnavailable(
                f"target {self.name}: cannot reach {self._host}:{self._port} over SSH: "
                f"{_first_line(str(exc)) or type(exc).__name__}"
            ) from None
        # every command is a small request/response: without this, Nagle's algorithm and delayed
        # ACKs add ~40 ms to each channel open
        transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[union-attr]
        self._client = client
        return client

    def _host_key_refused(self, presented: paramiko.PKey) -> NoReturn:
        got = "SHA256:" + _b64(presented.asbytes())
        raise PermanentTargetError(
            f"target {self.name}: host key of {self._host}:{self._port} is {presented.get_name()} {got}, "
            f"but host_key pins {fingerprint(self._host_key)}; refusing to connect"
        )

    def _pinned_key(self) -> paramiko.PKey:
        import paramiko

        kind, blob = split_key(self._host_key)
        try:
            return paramiko.PKey.from_type_string(kind, blob)
        except (paramiko.SSHException, ValueError, TypeError):
            raise PermanentTargetError(f"target {self.name}: setting host_key is not a usable {kind} key") from None

    def _private_key(self) -> paramiko.PKey:
        import paramiko

        text = self._env.get(self._key_env)
        if not text:
            raise PermanentTargetError(
                f"target {self.name}: environment variable {self._key_env} (key_env) is not set"
            )
        key_classes: tuple[type[paramiko.PKey], ...] = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)
        for cls in key_classes:
            try:
                return cls.from_private_key(io.StringIO(text))
            except paramiko.PasswordRequiredException:
                raise PermanentTargetError(
                    f"target {self.name}: the key in {self._key_env} is encrypted; jitpol needs it without a passphrase"
                ) from None
            except (paramiko.SSHException, ValueError, TypeError, IndexError):
                continue
        raise PermanentTargetError(
            f"target {self.name}: {self._key_env} does not hold an ed25519, ecdsa or rsa private key"
        )


class LocalRunner:
    """Runs commands on this machine with subprocess: an argument list (no shell), stdin
    through a pipe, a fixed environment (system PATH, C locale), working directory /.

    Refuses (PermanentTargetError, before running anything) unless the process is root, and,
    when `hostname` is given, unless this machine is that host (see host_matches): a repository
    copied to the wrong machine must not apply another host's grants there."""

    def __init__(self, target: str, *, hostname: str | None = None, timeout: float = _COMMAND_TIMEOUT) -> None:
        self.name = target
        self._hostname = hostname
        self._timeout = timeout
        self._ready = False

    def shown(self, argv: Sequence[str]) -> str:
        return " ".join(shlex.quote(arg) for arg in argv)

    def run(self, argv: Sequence[str], stdin: str | None = None) -> tuple[int, str, str]:
        self._check_ready()
        try:
            proc = subprocess.run(
                list(argv), input=(stdin or "").encode(), capture_output=True, env=_LOCAL_ENV, cwd="/",
                timeout=self._timeout, check=False,
            )
        except subprocess.TimeoutExpired:
            raise TargetUnavailable(f"target {self.name}: timed out running {_short(argv)}") from None
        except FileNotFoundError:
            raise PermanentTargetError(
                f"target {self.name}: {shown(argv[0])} is not installed on this host"
            ) from None
        except OSError as exc:
            raise PermanentTargetError(
                f"target {self.name}: cannot run {_short(argv)}: {type(exc).__name__}"
            ) from None
        return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")

    def close(self) -> None:
        """Nothing to release."""

    def _check_ready(self) -> None:
        if self._ready:
            return
        uid = os.geteuid()
        if uid != 0:
            raise PermanentTargetError(
                f"target {self.name}: type local changes users, groups and sudoers on this host and must run as "
                f"root (running as uid {uid}); run `jitpol agent` as root"
            )
        if self._hostname is not None:
            here = os.uname().nodename
            if not host_matches(self._hostname, here):
                raise PermanentTargetError(
                    f"target {self.name}: this machine is {shown(here)}, not {self._hostname!r} "
                    "(setting hostname); refusing to apply another host's grants here"
                )
        self._ready = True


def host_matches(configured: str, actual: str) -> bool:
    """True when `actual` (this machine's name) is the host `configured` names: equal ignoring
    case, or with the same first label when either is a dotted name (`web-1` is
    `web-1.internal`)."""
    a, b = configured.lower().rstrip("."), actual.lower().rstrip(".")
    if a == b:
        return True
    return ("." in a or "." in b) and a.split(".", 1)[0] == b.split(".", 1)[0]


# -- the connectors -----------------------------------------------------------------------------


class LinuxHost:
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

    def __init__(self, name: str, runner: Runner, *, end_sessions: bool = True, login_user: str = "root") -> None:
        self.name = name
        self._runner = runner
        self._end_sessions = end_sessions
        self._user = login_user

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

    # -- role-membership --------------------------------------------------------------------

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

    # -- ephemeral-account ------------------------------------------------------------------

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

    # -- sudo-rule --------------------------------------------------------------------------

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
        start = action.detail("start")
        try:
            not_before = datetime.fromisoformat(start) if start else None
        except ValueError:
            raise PermanentTargetError(
                f"target {self.name}: detail start {shown(start)} is not an ISO time"
            ) from None
        rule = sudoers.SudoRule(
            user=user, command=command, run_as=run_as, not_after=action.until,
            not_before=not_before if not_before is not None and not_before.tzinfo is not None else None,
            grant=self._grant_name(action),
        )
        try:
            text = sudoers.render(rule)
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {self.name}: {exc}") from None
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

    # -- credential-checkout ----------------------------------------------------------------

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
        files = _records(self._run(["sh", "-c", _READ_SUDOERS, "jitpol-read-sudoers"]).out)
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


class _UnknownHostKey(Exception):
    """Raised by the host key policy; turned into PermanentTargetError in _connection."""

    def __init__(self, key: paramiko.PKey) -> None:
        super().__init__("unknown host key")
        self.key = key


_POLICY: Any = None


def _refuse_unknown_policy() -> paramiko.MissingHostKeyPolicy:
    """A policy refusing every host key not already in the client's HostKeys (only the pinned
    key is). Built lazily: the class derives from paramiko's."""
    global _POLICY  # one class, made on first use
    if _POLICY is None:
        import paramiko

        class RefuseUnknown(paramiko.MissingHostKeyPolicy):
            def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
                raise _UnknownHostKey(key)

        _POLICY = RefuseUnknown
    policy: paramiko.MissingHostKeyPolicy = _POLICY()
    return policy


def _b64(blob: bytes) -> str:
    import base64
    import hashlib

    return base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _first_line(text: str) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= 200 else line[:197] + "..."


def _short(argv: Sequence[str]) -> str:
    """The command for a message: scripts by their $0 name, everything else quoted and cut."""
    if len(argv) > 3 and argv[0] == "sh" and argv[1] == "-c":
        return " ".join(shlex.quote(a) for a in argv[3:])[:160]
    return " ".join(shlex.quote(a) for a in argv)[:160]
