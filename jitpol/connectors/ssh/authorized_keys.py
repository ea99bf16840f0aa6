"""SSH public keys of a person and the authorized_keys file jitpol writes for an ephemeral
account: accepted key types, key lines (no options), expiry-time stamps, and parsing the file
back. Pure."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from jitpol.connectors import sudoers
from jitpol.connectors.kit import shown
from jitpol.errors import InvalidInput
from jitpol.model.sshkey import split_key

KEY_TYPES: frozenset[str] = frozenset({
    "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
})


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
