"""Pure rules for Linux names and jitpol's sudoers drop-ins (no I/O, no paramiko).

A sudo-rule privilege is the canonical JSON `{"command":"/usr/bin/systemctl restart nginx",
"runAs":"root"}`. Each (principal, privilege) gets one drop-in file
`/etc/sudoers.d/jitpol-<first 16 hex of sha256(principal + privilege)>` whose text comes only
from render():

    # managed by jitpol: grant <grant>
    <user> ALL=(<runAs>) [NOTBEFORE=<yyyymmddHHMMSSZ> ]NOTAFTER=<yyyymmddHHMMSSZ> NOPASSWD: <command>

NOTBEFORE/NOTAFTER are sudo 1.9's per-command Date_Spec options; they always end in `Z` (without
it sudo reads local time). sudo accepts a rule through the whole second NOTAFTER names, so a
window ending at 12:00:00Z is written NOTAFTER=...115959Z (end_stamp). A command without
arguments is written `<path> ""`, because a bare path in sudoers allows ANY arguments.

What a rule may contain (validate_command): an absolute, canonical path (components of
`[A-Za-z0-9_+-][A-Za-z0-9_.+-]*`, no `..`, no trailing `/` — in sudoers a directory means every
program in it) followed by arguments of `[A-Za-z0-9_./@+-]` separated by single spaces. That
leaves out everything sudoers or a shell treats specially: wildcards `* ? [ ]`, regular
expressions `^ $`, `, : = \\ ( ) ! # % " '`, whitespace other than single spaces. `ALL`,
`sudoedit` and the programs in REFUSED_PROGRAMS (shells, interpreters, editors, pagers and
program launchers, each of which hands out a root shell whatever its fixed arguments) are
refused.

Root-equivalent by nature, refused unless the resource opts in (`spec.allowPrivileged: true`,
the action's "privileged" detail; privileged_command): programs that write files, change owners,
permissions or accounts, install software or mount, or have an interactive shell escape
(PRIVILEGED_PROGRAMS), and systemctl with any verb but the service-control ones
(SYSTEMCTL_VERBS). These are not refused by validate_command, so that rules already granted keep
parsing and can always be revoked.

The header line is jitpol's ownership marker (marked): the connector rewrites or removes a
drop-in only when it carries it, and reports every rule it reads as jitpol's (owned True).

group_mentions finds the lines of sudoers text that give a group rights (`%group`, `%#gid`): a
group sudoers names is sudo in disguise, and the connector hands it out only with opt-in.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from jitpol.errors import InvalidInput
from jitpol.model.canonical import canonical_json

SUDOERS_DIR = "/etc/sudoers.d"
FILE_PREFIX = "jitpol-"
MARKER = "# managed by jitpol"

# POSIX-portable user/group names as shadow-utils accepts them (at most 32 characters)
LINUX_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
GRANT_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_PATH_COMPONENT = r"[A-Za-z0-9_+-][A-Za-z0-9_.+-]*"
_COMMAND_PATH = re.compile(rf"(?:/{_PATH_COMPONENT})+")
_ARGUMENT = re.compile(r"[A-Za-z0-9_./@+-]+")
_TIMESTAMP = re.compile(r"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z")
FILE_NAME = re.compile(rf"{FILE_PREFIX}[0-9a-f]{{16}}")

# Programs that give their user a shell (or run arbitrary programs) whatever arguments the rule
# fixes: a rule for one of them is a rule for ALL. Matched on the base name, with version
# suffixes (python3.11, perl5.36, vim.basic) stripped. Not exhaustive (see GTFOBins); it stops
# the obvious mistakes, the approvers of a resource must still read its commands.
REFUSED_PROGRAMS: frozenset[str] = frozenset({
    # shells
    "sh", "bash", "dash", "zsh", "ksh", "ksh93", "mksh", "pdksh", "csh", "tcsh", "fish", "ash",
    "rbash", "yash", "posh", "elvish", "nu", "xonsh", "busybox", "toybox",
    # interpreters
    "python", "python2", "python3", "perl", "ruby", "irb", "lua", "luajit", "php", "node", "nodejs",
    "tclsh", "wish", "expect", "awk", "gawk", "mawk", "nawk", "jjs", "jrunscript", "guile", "sbcl",
    # editors (all can run `:!sh` or write /etc/shadow) and the tools that start one
    "vi", "vim", "nvim", "rvim", "view", "rview", "vimdiff", "ex", "ed", "red", "nano", "rnano",
    "pico", "emacs", "jed", "joe", "mg", "micro", "editor", "sensible-editor", "sudoedit",
    "visudo", "vipw", "vigr", "crontab", "sudoreplay",
    # pagers and programs that start one
    "less", "more", "most", "pg", "man", "pager", "sensible-pager", "journalctl", "git",
    # launchers: they run the program named in their arguments
    "env", "sudo", "su", "runuser", "doas", "pkexec", "nice", "ionice", "nohup", "timeout",
    "stdbuf", "setsid", "setpriv", "chroot", "nsenter", "unshare", "strace", "ltrace", "gdb",
    "script", "watch", "xargs", "find", "time", "taskset", "chrt", "flock", "systemd-run",
    "capsh", "socat", "nc", "ncat", "netcat", "ssh", "rlwrap", "dbus-run-session", "tmux", "screen",
})
# Programs a rule may name only for a resource that opts in (`spec.allowPrivileged: true`; the
# action carries the "privileged" detail): none hands out a shell by itself, but each is root for
# whoever runs it as root by nature, because its fixed arguments are a file or an account, and
# root-owned files and accounts (/etc/sudoers.d, /etc/shadow, a setuid copy of a shell, root's
# password) are root. By category, for the message; matched like REFUSED_PROGRAMS (base name, or
# without a version suffix).
_PRIVILEGED_CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("writes, copies, moves, links or fetches files where its arguments say (a rule for "
     "`tee /etc/sudoers.d/x` or `cp /tmp/x /usr/local/bin/y` is root)",
     ("tee", "dd", "cp", "mv", "install", "ln", "link", "rsync", "scp", "truncate", "shred", "sed", "tar",
      "cpio", "zip", "unzip", "patch", "curl", "wget")),
    ("changes owners, permissions, ACLs, attributes or capabilities of files (a setuid shell is root)",
     ("chmod", "chown", "chgrp", "setfacl", "chattr", "setcap")),
    ("changes accounts, groups or passwords (root's password, membership in sudo)",
     ("passwd", "chpasswd", "chgpasswd", "usermod", "useradd", "adduser", "groupmod", "groupadd", "addgroup",
      "gpasswd", "newusers", "chsh")),
    ("installs software, mounts filesystems or loads kernel code (package scripts and setuid files run as root)",
     ("apt", "apt-get", "aptitude", "dpkg", "rpm", "yum", "dnf", "zypper", "pacman", "apk", "pip", "snap", "mount",
      "insmod")),
    ("runs commands from its input or has an interactive shell escape (`!sh`, `.shell`, `\\!`)",
     ("at", "batch", "sqlite", "sqlite3", "psql", "mysql", "mariadb", "ftp", "sftp", "mail", "mailx", "telnet")),
)
PRIVILEGED_PROGRAMS: dict[str, str] = {name: why for why, names in _PRIVILEGED_CATEGORIES for name in names}
# systemctl does what its verb says: `edit` starts an editor, `link`/`enable` take unit files from
# any path, `set-environment` changes what every service starts with, `status` starts a pager with
# a shell escape. Without opt-in a rule may name it only with one of these verbs (and units).
SYSTEMCTL_VERBS: frozenset[str] = frozenset({
    "start", "stop", "restart", "reload", "try-restart", "reload-or-restart", "try-reload-or-restart",
    "is-active", "is-failed", "is-enabled", "reset-failed",
})
# python3.11 -> python, perl5.36 -> perl; vim.basic -> vim (Debian's alternatives flavours)
_VERSION_SUFFIX = re.compile(r"(?:[.-]?[0-9][0-9.]*|\.(?:basic|tiny|nox|gtk3?|athena|motif|static|real))$")


@dataclass(frozen=True, slots=True)
class SudoRule:
    """One drop-in's content. `command` is the normalised command text (path, then arguments
    separated by single spaces); times are timezone-aware UTC. `not_after` is the moment access
    ENDS (exclusive; see end_stamp for how it is written), `not_before` when it starts."""

    user: str
    command: str
    run_as: str
    not_after: datetime
    not_before: datetime | None = None
    grant: str = ""

    @property
    def privilege(self) -> str:
        return privilege_text(self.command, self.run_as)


def shown(value: object) -> str:
    """repr, cut so that a hostile value cannot flood a message: connectors.kit.shown, the same
    length, written here again only because this pure helper imports nothing of jitpol's
    connectors (tests/meta/test_layering.py)."""
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def check_linux_name(value: object, what: str) -> str:
    """`value` if it is a Linux user/group name (`^[a-z_][a-z0-9_-]{0,31}$`), else InvalidInput."""
    if not isinstance(value, str) or not LINUX_NAME.fullmatch(value):
        raise InvalidInput(
            f"{what} {shown(value)} is not an allowed Linux name (lowercase letters, digits, _ and -, "
            "starting with a letter or _, at most 32 characters)"
        )
    return value


def program_name(path: str) -> str:
    """The base name of `path` without a version suffix: /usr/bin/python3.11 -> python."""
    base = path.rstrip("/").rpartition("/")[2]
    stripped = _VERSION_SUFFIX.sub("", base)
    return stripped or base


def refused_program(path: str) -> bool:
    """True when the program at `path` (by base name) can hand out a shell: see REFUSED_PROGRAMS."""
    base = path.rstrip("/").rpartition("/")[2]
    return base in REFUSED_PROGRAMS or program_name(path) in REFUSED_PROGRAMS


def privileged_command(path: str, args: tuple[str, ...] = ()) -> str | None:
    """Why a rule for `path` with `args` is root-equivalent although validate_command allows it
    (see PRIVILEGED_PROGRAMS and SYSTEMCTL_VERBS), or None. The connector refuses such a rule
    unless the resource opts in; revocations never ask."""
    base = path.rstrip("/").rpartition("/")[2]
    for name in (base, program_name(path)):
        if name in PRIVILEGED_PROGRAMS:
            return f"{name} {PRIVILEGED_PROGRAMS[name]}"
    if "systemctl" in (base, program_name(path)):
        verbs = [a for a in args if not a.startswith("-")]
        options = [a for a in args if a.startswith("-")]
        if not verbs or verbs[0] not in SYSTEMCTL_VERBS or len(verbs) < 2 or options:
            return (
                "systemctl can edit and link unit files, change every service's environment and start a pager "
                f"with a shell escape; without opt-in only `systemctl <verb> UNIT...` with a verb of "
                f"{', '.join(sorted(SYSTEMCTL_VERBS))} (no options)"
            )
    return None


def validate_command(command: object) -> tuple[str, tuple[str, ...]]:
    """(path, arguments) of a sudo-rule command, or InvalidInput saying what is allowed."""
    if not isinstance(command, str) or not command:
        raise InvalidInput(f"sudo-rule command {shown(command)} must be a non-empty string")
    parts = command.split(" ")
    path, args = parts[0], tuple(parts[1:])
    if path in ("ALL", "sudoedit") or command.startswith("ALL"):
        raise InvalidInput(f"sudo-rule command {shown(command)}: ALL and sudoedit are never granted")
    if not _COMMAND_PATH.fullmatch(path) or "/../" in path + "/" or "/./" in path + "/":
        raise InvalidInput(
            f"sudo-rule command {shown(command)} must start with an absolute path to a program "
            "(letters, digits and _ . + - in each component; no .., no trailing /, no wildcards)"
        )
    for arg in args:
        if not _ARGUMENT.fullmatch(arg) or ".." in arg:
            raise InvalidInput(
                f"sudo-rule command {shown(command)}: arguments may hold only letters, digits and "
                "_ . / @ + -, separated by single spaces (no wildcards, quotes, .., or any of , : = \\ ( ) ! # $ ^)"
            )
    if refused_program(path):
        raise InvalidInput(
            f"sudo-rule command {shown(command)}: {program_name(path)} can start a shell or another "
            "program, so a rule for it would grant everything"
        )
    return path, args


def parse_privilege(privilege: object) -> tuple[str, str]:
    """(command, runAs) from a sudo-rule privilege: the canonical JSON of exactly
    {"command", "runAs"}, both valid. Raises InvalidInput."""
    if not isinstance(privilege, str):
        raise InvalidInput(f"sudo-rule {shown(privilege)} must be a mapping {{command, runAs}}")
    try:
        value = json.loads(privilege)
    except ValueError:
        raise InvalidInput(f"sudo-rule {shown(privilege)} is not a mapping {{command, runAs}}") from None
    if not isinstance(value, dict) or set(value) != {"command", "runAs"}:
        raise InvalidInput(
            f"sudo-rule {shown(privilege)} must have exactly the keys command and runAs, "
            'e.g. {command: "/usr/bin/systemctl restart nginx", runAs: root}'
        )
    command, run_as = value["command"], value["runAs"]
    validate_command(command)
    check_linux_name(run_as, "sudo-rule runAs")
    if canonical_json(value) != privilege:
        raise InvalidInput(f"sudo-rule {shown(privilege)} is not in canonical JSON form")
    return str(command), str(run_as)


def privilege_text(command: str, run_as: str) -> str:
    """The canonical privilege text for a rule."""
    return canonical_json({"command": command, "runAs": run_as})


def file_name(principal: str, privilege: str) -> str:
    """`jitpol-<16 hex>`: sudo reads it (no '.', no trailing '~'). The concatenation is
    unambiguous because a Linux name never contains `{`, which starts every privilege."""
    return FILE_PREFIX + hashlib.sha256((principal + privilege).encode()).hexdigest()[:16]


def _aware(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError("sudo times must be timezone-aware")
    return t.astimezone(UTC)


def end_stamp(end: datetime) -> str:
    """The `yyyymmddHHMMSSZ` stamp for access that ends at `end` (exclusive).

    sudo (NOTAFTER) and sshd (expiry-time) compare whole seconds and accept THROUGH the second
    they name (refused only once time() > stamp), so the stamp is the last whole second still
    inside the window: ceil(end) - 1 s. Access therefore ends at ceil(end): never early, and
    less than a second late when `end` has a fraction."""
    u = _aware(end)
    whole = u.replace(microsecond=0)
    last = whole - timedelta(seconds=1) if u == whole else whole
    return last.strftime("%Y%m%d%H%M%SZ")


def stamp_end(stamp: str) -> datetime:
    """Inverse of end_stamp: the moment access ends for a NOTAFTER/expiry-time stamp (the stamp
    plus one second). Only the full `yyyymmddHHMMSSZ` form; raises ValueError otherwise."""
    return parse_stamp(stamp) + timedelta(seconds=1)


def start_stamp(start: datetime) -> str:
    """The NOTBEFORE stamp for access that starts at `start`: rounded down, never late."""
    return _aware(start).replace(microsecond=0).strftime("%Y%m%d%H%M%SZ")


def parse_stamp(stamp: str) -> datetime:
    """`yyyymmddHHMMSSZ` -> aware UTC datetime. Raises ValueError for any other form."""
    if not _TIMESTAMP.fullmatch(stamp):
        raise ValueError(f"not a yyyymmddHHMMSSZ time: {stamp!r}")
    return datetime.strptime(stamp, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)


def render(rule: SudoRule) -> str:
    """The drop-in text for `rule`, from the one template. Every field is re-checked first
    (InvalidInput), so nothing unchecked reaches sudoers."""
    check_linux_name(rule.user, "sudo-rule user")
    check_linux_name(rule.run_as, "sudo-rule runAs")
    path, args = validate_command(rule.command)
    if rule.grant and not GRANT_NAME.fullmatch(rule.grant):
        raise InvalidInput(f"grant name {shown(rule.grant)} is not valid")
    header = f"{MARKER}: grant {rule.grant}" if rule.grant else MARKER
    dates = f"NOTAFTER={end_stamp(rule.not_after)}"
    if rule.not_before is not None:
        dates = f"NOTBEFORE={start_stamp(rule.not_before)} {dates}"
    cmnd = " ".join((path, *args)) if args else f'{path} ""'
    return f"{header}\n{rule.user} ALL=({rule.run_as}) {dates} NOPASSWD: {cmnd}\n"


_RULE = re.compile(
    rf"{re.escape(MARKER)}(?:: grant (?P<grant>[a-z0-9][a-z0-9-]{{0,62}}))?\n"
    r"(?P<user>[a-z_][a-z0-9_-]{0,31}) ALL=\((?P<run_as>[a-z_][a-z0-9_-]{0,31})\) "
    r"(?:NOTBEFORE=(?P<nb>\d{14}Z) )?NOTAFTER=(?P<na>\d{14}Z) NOPASSWD: "
    r"(?P<cmnd>/[A-Za-z0-9_./+-]+(?: \"\"|(?: [A-Za-z0-9_./@+-]+)*))\n"
)


_HEADER = re.compile(rf"{re.escape(MARKER)}(?:: grant [a-z0-9][a-z0-9-]{{0,62}})?")


def marked(text: str) -> bool:
    """True when a drop-in's first line is the header render() writes (jitpol's ownership
    marker: fixed text and an allow-listed grant name). What follows it may have been edited;
    the file is still jitpol's to rewrite or remove. A file without it is never touched."""
    return bool(_HEADER.fullmatch(text.split("\n", 1)[0]))


def parse(text: str) -> SudoRule:
    """The rule in a drop-in that render() wrote. Raises ValueError for any other text (a
    hand-edited file is not silently reinterpreted)."""
    m = _RULE.fullmatch(text)
    if not m:
        raise ValueError("not a jitpol sudoers drop-in")
    cmnd = m["cmnd"]
    command = cmnd[: -len(' ""')] if cmnd.endswith(' ""') else cmnd
    try:
        validate_command(command)
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None
    return SudoRule(
        user=m["user"],
        command=command,
        run_as=m["run_as"],
        not_after=stamp_end(m["na"]),
        not_before=parse_stamp(m["nb"]) if m["nb"] else None,
        grant=m["grant"] or "",
    )


_COMMENT = re.compile(r"#(?![0-9])")  # `#123` is a uid or gid in sudoers, any other `#` starts a comment


def group_mentions(text: str, group: str, gid: int) -> list[str]:
    """The lines of sudoers `text` that name `group` as `%group`, `%:group`, `%#gid` or `%:#gid`
    (comments and `#include` lines ignored), stripped and cut: where sudo gives its members
    rights. Errs on the side of finding a mention (a `Defaults:%group` line counts too)."""
    name = re.compile(rf"%:?(?:{re.escape(group)}|#{gid})(?![A-Za-z0-9_.$-])")
    found = []
    for line in text.splitlines():
        code = _COMMENT.split(line, maxsplit=1)[0]
        if name.search(code):
            stripped = " ".join(code.split())
            found.append(stripped if len(stripped) <= 120 else stripped[:117] + "...")
    return found
