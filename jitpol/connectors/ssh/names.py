"""The ssh package's names: the four models, the allowlists (reserved users, refused and
root-equivalent groups, ephemeral account names) and the name checks the policy loader calls
(check_name) and every model calls again before use. Pure: no host, no paramiko."""

from __future__ import annotations

import json
import re

from jitpol.connectors import sudoers
from jitpol.connectors.kit import shown
from jitpol.errors import InvalidInput
from jitpol.model.canonical import canonical_json

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
