"""What the host says, parsed: passwd, group and shadow lines (days since the epoch), an
ephemeral account's groups, expiry and keys, and the records of the multi-file read scripts.
Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from jitpol.connectors.ssh.authorized_keys import AuthorizedKey
from jitpol.connectors.ssh.names import EPHEMERAL_NAME, GECOS_PREFIX
from jitpol.model.canonical import canonical_json

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RS = "\x1e"  # record separator in the output of the multi-file read scripts


def expire_day(t: datetime) -> int:
    """The shadow expiry day (days since 1970-01-01 UTC) for a window ending at `t`. An account
    is refused from the START of its expiry day, so round up: the account lives to the end."""
    seconds = (t.astimezone(UTC) - _EPOCH).total_seconds()
    return int(-(-seconds // 86400))


def day_start(day: int) -> datetime:
    return _EPOCH + timedelta(days=day)


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
