"""jitpol.connectors.sudoers: the one template for sudoers drop-ins, its parser, and the
allowlists for Linux names and sudo-rule commands (pure; no host needed)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from jitpol.connectors import sudoers
from jitpol.connectors.sudoers import SudoRule
from jitpol.errors import InvalidInput
from jitpol.model.canonical import canonical_json

REPO = Path(__file__).resolve().parents[3]
END = datetime(1998, 11, 30, 12, 0, tzinfo=UTC)
START = datetime(1998, 11, 30, 10, 0, tzinfo=UTC)


def rule(**changes: Any) -> SudoRule:
    base = SudoRule(user="alice", command="/usr/bin/systemctl restart nginx", run_as="root",
                    not_after=END, not_before=START, grant="alice-web-inc-1")
    return replace(base, **changes)


# -- rendering ---------------------------------------------------------------------------------


def test_render_is_the_template() -> None:
    assert sudoers.render(rule()) == (
        "# managed by jitpol: grant alice-web-inc-1\n"
        "alice ALL=(root) NOTBEFORE=19981130100000Z NOTAFTER=19981130115959Z NOPASSWD: "
        "/usr/bin/systemctl restart nginx\n"
    )


def test_a_command_without_arguments_allows_no_arguments() -> None:
    # a bare path in sudoers would allow ANY arguments
    text = sudoers.render(rule(command="/usr/bin/id", not_before=None, grant=""))
    assert text == '# managed by jitpol\nalice ALL=(root) NOTAFTER=19981130115959Z NOPASSWD: /usr/bin/id ""\n'


def test_times_are_utc_with_z_and_never_cut_the_window_short() -> None:
    berlin = timezone(timedelta(hours=1))
    text = sudoers.render(rule(
        not_after=datetime(1998, 11, 30, 13, 0, 0, 1, tzinfo=berlin),  # 12:00:00.000001Z
        not_before=datetime(1998, 11, 30, 11, 0, 0, 999999, tzinfo=berlin),
    ))
    # sudo accepts through the whole second NOTAFTER names: 12:00:00 covers 12:00:00.000001
    assert "NOTBEFORE=19981130100000Z NOTAFTER=19981130120000Z" in text


@pytest.mark.parametrize(
    ("end", "stamp"),
    [
        (datetime(1998, 11, 30, 12, 0, 0, tzinfo=UTC), "19981130115959Z"),  # last second inside
        (datetime(1998, 11, 30, 12, 0, 0, 500000, tzinfo=UTC), "19981130120000Z"),
        (datetime(1998, 12, 1, 0, 0, 0, tzinfo=timezone(timedelta(hours=2))), "19981130215959Z"),
    ],
)
def test_end_stamps(end: datetime, stamp: str) -> None:
    assert sudoers.end_stamp(end) == stamp
    ends_at = sudoers.stamp_end(stamp)
    assert end <= ends_at < end + timedelta(seconds=1)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        sudoers.end_stamp(datetime(1998, 1, 1))  # a naive time: the point of the test
    with pytest.raises(ValueError, match="timezone"):
        sudoers.start_stamp(datetime(1998, 1, 1))


@pytest.mark.parametrize(
    "changes",
    [
        {"user": "alice ALL=(ALL) ALL\n#"},
        {"user": "ALL"},
        {"user": "%sudo"},
        {"run_as": "ALL"},
        {"run_as": "#0"},
        {"run_as": "root,alice"},
        {"command": "ALL"},
        {"command": "/bin/sh"},
        {"command": "/usr/bin/id\nalice ALL=(ALL) NOPASSWD: ALL"},
        {"grant": "x\nalice ALL=(ALL) ALL"},
    ],
)
def test_render_rechecks_every_field(changes: dict[str, str]) -> None:
    with pytest.raises(InvalidInput):
        sudoers.render(rule(**changes))


# -- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "r",
    [
        rule(),
        rule(not_before=None),
        rule(grant=""),
        rule(command="/usr/bin/id"),
        rule(command="/usr/sbin/service nginx reload", run_as="www-data"),
        rule(command="/opt/tools/rotate-logs.sh --dry-run app@prod /var/log/app"),
    ],
)
def test_parse_reads_back_what_render_wrote(r: SudoRule) -> None:
    assert sudoers.parse(sudoers.render(r)) == r


@pytest.mark.parametrize(
    "text",
    [
        "",
        "alice ALL=(root) NOTAFTER=19981130120000Z NOPASSWD: /usr/bin/id\n",  # no marker
        '# managed by jitpol\nalice ALL=(root) NOTAFTER=19981130120000 NOPASSWD: /usr/bin/id ""\n',  # no Z
        '# managed by jitpol\nalice ALL=(root) NOTAFTER=19981130120000Z NOPASSWD: /usr/bin/id ""',  # no \n
        '# managed by jitpol\nalice ALL=(ALL) NOTAFTER=19981130120000Z NOPASSWD: /usr/bin/id ""\n',
        "# managed by jitpol\nalice ALL=(root) NOTAFTER=19981130120000Z NOPASSWD: ALL\n",
        "# managed by jitpol\nalice ALL=(root) NOTAFTER=19981130120000Z NOPASSWD: /bin/sh\n",
        "# managed by jitpol\nalice ALL=(root) NOTAFTER=19981130120000Z NOPASSWD: /usr/bin/id *\n",
        '# managed by jitpol\nalice ALL=(root) NOTAFTER=19981130120000Z NOPASSWD: /usr/bin/id ""\nbob ALL=(ALL) ALL\n',
        '# managed by jitpol\r\nalice ALL=(root) NOTAFTER=19981130120000Z NOPASSWD: /usr/bin/id ""\r\n',
    ],
)
def test_parse_refuses_anything_render_did_not_write(text: str) -> None:
    with pytest.raises(ValueError):
        sudoers.parse(text)


@pytest.mark.parametrize("r", [rule(), rule(grant=""), rule(not_before=None)])
def test_what_render_writes_carries_the_marker(r: SudoRule) -> None:
    assert sudoers.marked(sudoers.render(r))
    # the rule line edited (NOTAFTER removed): still jitpol's file, no longer the template
    edited = sudoers.render(r).replace(f"NOTAFTER={sudoers.end_stamp(END)} ", "")
    assert sudoers.marked(edited)
    with pytest.raises(ValueError):
        sudoers.parse(edited)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "alice ALL=(root) NOPASSWD: /usr/bin/id\n",
        "\n# managed by jitpol\nalice ALL=(root) NOPASSWD: /usr/bin/id\n",  # not the first line
        "# managed by jitpol, kind of\nalice ALL=(root) NOPASSWD: /usr/bin/id\n",
        "# managed by jitpol: grant Alice\nalice ALL=(root) NOPASSWD: /usr/bin/id\n",  # not a grant name
        "# managed by jitpol: grant a; b\n",
        "# managed by jitpol\r\nalice ALL=(root) NOPASSWD: /usr/bin/id\r\n",
        " # managed by jitpol\n",
    ],
)
def test_files_without_the_header_are_not_marked(text: str) -> None:
    assert not sudoers.marked(text)


def test_stamps_round_trip() -> None:
    assert sudoers.stamp_end(sudoers.end_stamp(END)) == END
    assert sudoers.parse_stamp(sudoers.start_stamp(START)) == START
    for bad in ("1998113012Z", "19981130120000", "19981130120000+0100", "1998113012000Z"):
        with pytest.raises(ValueError):
            sudoers.parse_stamp(bad)


# -- commands ----------------------------------------------------------------------------------

ALLOWED = [
    "/usr/bin/systemctl restart nginx",
    "/usr/bin/id",
    "/usr/sbin/service nginx reload",
    "/opt/tools/rotate-logs.sh --dry-run",
    "/usr/bin/docker ps",
    "/usr/local/bin/deploy app@prod v1.2.3",
    "/opt/tools/script.sh",  # a `.sh` is not the `script` program
]

HOSTILE = [
    "ALL",
    "ALL /bin/sh",
    "sudoedit /etc/shadow",
    "sudoedit",
    "",
    " /usr/bin/id",
    "/usr/bin/id ",
    "/usr/bin/id  -u",  # two spaces: not the normalised form
    "/usr/bin/id\t-u",
    "usr/bin/id",
    "./id",
    "/usr/bin/",  # a directory: every program in it
    "/usr/bin/../bin/sh",
    "/usr/./bin/id",
    "/usr//bin/id",
    "/usr/bin/id ../../etc/shadow",
    "/usr/bin/systemctl restart *",
    "/usr/bin/systemctl restart ngin?",
    "/usr/bin/systemctl restart [a]",
    "/usr/bin/id ^-u$",
    "/usr/bin/id $(id)",
    "/usr/bin/id `id`",
    "/usr/bin/id ;rm -rf /",
    "/usr/bin/id -u,/bin/sh",
    "/usr/bin/id -u:x",
    "/usr/bin/id a=b",
    "/usr/bin/id \\",
    "/usr/bin/id (x)",
    "/usr/bin/id !x",
    "/usr/bin/id #x",
    "/usr/bin/id %x",
    '/usr/bin/id ""',
    "/usr/bin/id 'x'",
    "/usr/bin/id\nalice ALL=(ALL) ALL",
    "/bin/sh",
    "/bin/bash -c id",
    "/usr/bin/dash",
    "/usr/bin/rbash",
    "/usr/bin/busybox sh",
    "/usr/bin/vi /etc/motd",
    "/usr/bin/vim.basic /etc/motd",
    "/usr/bin/nano /etc/motd",
    "/usr/bin/less /var/log/syslog",
    "/usr/bin/man ls",
    "/usr/bin/python3.11 /opt/x.py",
    "/usr/bin/perl5.36.0 -e1",
    "/usr/bin/env sh",
    "/usr/bin/find /tmp -name x",
    "/usr/bin/sudo -s",
    "/usr/sbin/visudo",
    "/usr/bin/crontab -e",
    "/usr/bin/journalctl -u nginx",
    "/usr/bin/git log",
]


@pytest.mark.parametrize("command", ALLOWED)
def test_allowed_commands(command: str) -> None:
    path, args = sudoers.validate_command(command)
    assert " ".join((path, *args)) == command


@pytest.mark.parametrize("command", HOSTILE)
def test_hostile_commands_are_refused(command: str) -> None:
    with pytest.raises(InvalidInput) as info:
        sudoers.validate_command(command)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400


@pytest.mark.parametrize(
    ("path", "name"),
    [("/usr/bin/python3.11", "python"), ("/usr/bin/vim.basic", "vim"), ("/usr/bin/perl5.36", "perl"),
     ("/usr/bin/systemctl", "systemctl"), ("/usr/sbin/ip6tables", "ip6tables"), ("/x/script.sh", "script.sh")],
)
def test_program_name_strips_versions_only(path: str, name: str) -> None:
    assert sudoers.program_name(path) == name


# -- root-equivalent by nature: allowed only with the resource's opt-in ---------------------------


@pytest.mark.parametrize(
    ("command", "category"),
    [
        ("/usr/bin/tee /etc/motd", "writes"),
        ("/bin/dd of=/dev/sda", "writes"),  # `=` is not even an allowed argument: the program decides
        ("/usr/bin/cp /tmp/x /usr/local/bin/y", "writes"),
        ("/usr/bin/mv /tmp/x /etc/y", "writes"),
        ("/usr/bin/install -m 4755 /tmp/x /usr/local/bin/y", "writes"),
        ("/usr/bin/rsync -a /tmp/x/ /etc/", "writes"),
        ("/usr/bin/sed -i s/a/b/ /etc/passwd", "writes"),
        ("/usr/bin/tar -xf /tmp/x.tar -C /", "writes"),
        ("/usr/bin/curl -o /etc/cron.d/x http://example.org/x", "fetches"),
        ("/usr/bin/chmod 4755 /usr/bin/find", "permissions"),
        ("/usr/bin/chown alice /etc/shadow", "owners"),
        ("/usr/bin/chgrp alice /etc/shadow", "owners"),
        ("/usr/sbin/setcap cap_setuid+ep /usr/bin/x", "capabilities"),
        ("/usr/bin/passwd root", "passwords"),
        ("/usr/sbin/chpasswd", "passwords"),
        ("/usr/sbin/usermod -aG sudo alice", "accounts"),
        ("/usr/bin/gpasswd -a alice sudo", "groups"),
        ("/usr/bin/apt-get install nginx", "installs software"),
        ("/usr/bin/dpkg -i /tmp/x.deb", "installs software"),
        ("/usr/bin/pip3 install x", "installs software"),
        ("/usr/bin/mount /dev/sdb1 /mnt", "mounts"),
        ("/usr/bin/at now", "shell escape"),
        ("/usr/bin/sqlite3 /var/lib/x.db", "shell escape"),
        ("/usr/bin/psql", "shell escape"),
        ("/usr/bin/mysql", "shell escape"),
        ("/usr/bin/systemctl edit nginx", "systemctl"),
        ("/usr/bin/systemctl status nginx", "systemctl"),  # a pager with `!sh`
        ("/usr/bin/systemctl link /tmp/x.service", "systemctl"),
        ("/usr/bin/systemctl set-environment LD_PRELOAD", "systemctl"),
        ("/usr/bin/systemctl --no-pager restart nginx", "systemctl"),  # no options without opt-in
        ("/usr/bin/systemctl restart", "systemctl"),  # no unit: nothing to restart
        ("/usr/bin/systemctl", "systemctl"),
    ],
)
def test_privileged_commands_are_named_by_category(command: str, category: str) -> None:
    path, *args = command.split(" ")
    why = sudoers.privileged_command(path, tuple(args))
    assert why is not None and category in why
    assert "\n" not in why


@pytest.mark.parametrize(
    "command",
    ["/usr/bin/systemctl restart nginx", "/usr/bin/systemctl reload nginx php8.2-fpm",
     "/usr/bin/systemctl is-active nginx", "/usr/sbin/service nginx reload", "/usr/bin/id -u", "/usr/bin/docker ps",
     "/opt/tools/rotate-logs.sh --dry-run", "/opt/tools/cpu-report", "/usr/bin/catalog"],
)
def test_ordinary_commands_are_not_privileged(command: str) -> None:
    path, *args = command.split(" ")
    assert sudoers.privileged_command(path, tuple(args)) is None


def test_privileged_programs_are_not_refused_outright() -> None:
    # a rule jitpol granted before a program became privileged still parses, so it can be revoked
    for name in sudoers.PRIVILEGED_PROGRAMS:
        assert not sudoers.refused_program(f"/usr/bin/{name}"), name
    sudoers.validate_command("/usr/bin/tee /etc/motd")
    text = sudoers.render(rule(command="/usr/bin/tee /etc/motd"))
    assert sudoers.parse(text).command == "/usr/bin/tee /etc/motd"


def test_privileged_programs_match_like_refused_ones() -> None:
    # version suffixes and Debian flavours are stripped; the base name counts as well
    assert sudoers.privileged_command("/usr/bin/pip3.11") is not None
    assert sudoers.privileged_command("/usr/local/sbin/sqlite3") is not None
    assert sudoers.privileged_command("/usr/bin/cp.real") is not None


SUDOERS = """\
# This file MUST be edited with the 'visudo' command as root.
Defaults	env_reset
# %ops ALL=(ALL) ALL was removed
root	ALL=(ALL:ALL) ALL
%sudo	ALL=(ALL:ALL) ALL
User_Alias WEB = bob, %webteam
WEB ALL=(root) /usr/bin/systemctl restart nginx
%#1042 ALL=(root) /usr/bin/id
%:#1043 ALL=(root) /usr/bin/id
%:adgroup ALL=(root) /usr/bin/id
alice ALL=(#0) /usr/bin/id # %commented
@includedir /etc/sudoers.d
#includedir /etc/sudoers.d
"""


@pytest.mark.parametrize(
    ("group", "gid", "found"),
    [
        ("sudo", 27, ["%sudo ALL=(ALL:ALL) ALL"]),
        ("webteam", 1001, ["User_Alias WEB = bob, %webteam"]),
        ("ops", 1002, []),  # only a comment names it
        ("commented", 1003, []),
        ("anything", 1042, ["%#1042 ALL=(root) /usr/bin/id"]),
        ("other", 1043, ["%:#1043 ALL=(root) /usr/bin/id"]),
        ("adgroup", 1044, ["%:adgroup ALL=(root) /usr/bin/id"]),
        ("web", 1045, []),  # a prefix of webteam is not webteam
        ("sud", 104, []),  # nor of sudo, nor %#1042 of gid 104
        ("alice", 1000, []),  # a user is not a group
    ],
)
def test_group_mentions_in_sudoers(group: str, gid: int, found: list[str]) -> None:
    assert sudoers.group_mentions(SUDOERS, group, gid) == found


def test_group_mentions_are_cut() -> None:
    lines = sudoers.group_mentions("%ops ALL=(root) /usr/bin/id " + "x" * 300 + "\n", "ops", 5)
    assert len(lines) == 1 and len(lines[0]) == 120 and lines[0].endswith("...")


# -- privileges and names ------------------------------------------------------------------------


def test_parse_privilege() -> None:
    text = canonical_json({"command": "/usr/bin/systemctl restart nginx", "runAs": "root"})
    assert sudoers.parse_privilege(text) == ("/usr/bin/systemctl restart nginx", "root")
    assert sudoers.privilege_text("/usr/bin/systemctl restart nginx", "root") == text


@pytest.mark.parametrize(
    "privilege",
    [
        '{"command": "/usr/bin/id", "runAs": "root"}',  # not canonical: observe could never match it
        '{"command":"/usr/bin/id"}',
        '{"command":"/usr/bin/id","runAs":"root","host":"x"}',
        '{"command":"/usr/bin/id","runAs":"ALL"}',
        '{"command":"/usr/bin/id","runAs":"#0"}',
        '{"command":"/usr/bin/id","runAs":"root,alice"}',
        '{"command":"ALL","runAs":"root"}',
        '{"command":["/usr/bin/id"],"runAs":"root"}',
        '["/usr/bin/id"]',
        "/usr/bin/id",
        "{",
        None,
    ],
)
def test_bad_privileges_are_refused(privilege: object) -> None:
    with pytest.raises(InvalidInput):
        sudoers.parse_privilege(privilege)


def test_file_name_is_read_by_sudo_and_unique_per_assignment() -> None:
    p = sudoers.privilege_text("/usr/bin/id", "root")
    name = sudoers.file_name("alice", p)
    assert sudoers.FILE_NAME.fullmatch(name)
    assert "." not in name and not name.endswith("~")  # sudo skips such names
    assert name == sudoers.file_name("alice", p)
    assert name != sudoers.file_name("bob", p)
    assert name != sudoers.file_name("alice", sudoers.privilege_text("/usr/bin/id", "www-data"))


@pytest.mark.parametrize("name", ["alice", "_svc", "a" * 32, "web-1", "a_b-c9"])
def test_linux_names(name: str) -> None:
    assert sudoers.check_linux_name(name, "user") == name


@pytest.mark.parametrize(
    "name", ["", "a" * 33, "Alice", "1abc", "-rf", "alice; rm -rf /", "$(id)", "a b", "a.b", "ALL", "#0", "é", None, 5]
)
def test_bad_linux_names(name: object) -> None:
    with pytest.raises(InvalidInput):
        sudoers.check_linux_name(name, "user")


def test_module_needs_no_paramiko() -> None:
    code = (
        "import sys; sys.modules['paramiko'] = None\n"
        "from jitpol.connectors import sudoers\n"
        "from jitpol.connectors.registry import name_check\n"
        "name_check('ssh')('alice', 'principal')\n"
        "print(sudoers.file_name('alice', '{}'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("jitpol-")
