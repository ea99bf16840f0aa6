"""Linux hosts over SSH (type `ssh`, SshConnector) or on this machine (type `local`,
LocalHostConnector): `role-membership`, `ephemeral-account`, `sudo-rule` and
`credential-checkout`. The settings, models and safety rules are described in connector.py.

Where each concern lives:
    names.py            the model names, allowlists and name checks (check_name, the policy
                        loader's hook); pure
    authorized_keys.py  a person's public keys and the authorized_keys file with expiry-time; pure
    facts.py            passwd, group and shadow lines and the read scripts' records, parsed; pure
    scripts.py          the constant `sh -c` scripts (names only as positional parameters)
    runner.py           the Runner protocol: how LinuxHost reaches its host
    sshrunner.py        SshRunner: one pinned SSH connection (paramiko, imported lazily)
    localrunner.py      LocalRunner: subprocess on this machine, as root, on the named host only
    host.py             what every model shares: running commands, checks before a grant
    membership.py       role-membership (supplementary groups)
    accounts.py         ephemeral-account (jit-... accounts and their keys)
    sudo_rules.py       sudo-rule (jitpol's drop-ins in /etc/sudoers.d; the template is
                        jitpol.connectors.sudoers)
    checkout.py         credential-checkout (password rotation)
    connector.py        LinuxHost (observe/apply dispatch over the models), SshConnector,
                        LocalHostConnector and their settings

Nothing here imports paramiko at import time: check_name and LocalHostConnector work without it.
"""

from jitpol.connectors.ssh.authorized_keys import (
    AuthorizedKey,
    authorized_keys_text,
    key_end,
    parse_authorized_keys,
    public_keys,
)
from jitpol.connectors.ssh.connector import LinuxHost, LocalHostConnector, SshConnector
from jitpol.connectors.ssh.facts import day_start, expire_day
from jitpol.connectors.ssh.localrunner import LocalRunner, host_matches
from jitpol.connectors.ssh.names import (
    CHECKOUT,
    EPHEMERAL,
    PRIVILEGED_GROUPS,
    ROLE,
    SUDO,
    check_name,
)
from jitpol.connectors.ssh.runner import Runner
from jitpol.connectors.ssh.scripts import _WAIT_GONE
from jitpol.connectors.ssh.sshrunner import SshRunner

__all__ = [
    "CHECKOUT",
    "EPHEMERAL",
    "PRIVILEGED_GROUPS",
    "ROLE",
    "SUDO",
    "_WAIT_GONE",
    "AuthorizedKey",
    "LinuxHost",
    "LocalHostConnector",
    "LocalRunner",
    "Runner",
    "SshConnector",
    "SshRunner",
    "authorized_keys_text",
    "check_name",
    "day_start",
    "expire_day",
    "host_matches",
    "key_end",
    "parse_authorized_keys",
    "public_keys",
]
