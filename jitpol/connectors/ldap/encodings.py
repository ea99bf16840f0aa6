"""LDAP value encodings of OpenLDAP and Active Directory: GeneralizedTime, FILETIME
(accountExpires), AD TTL links, the PAM feature, {SSHA} password hashes, sAMAccountName and
unicodePwd. Pure; needs no ldap3."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from jitpol.connectors.kit import ceil_second
from jitpol.connectors.ldap.names import DnError, ParsedDn, parse_dn
from jitpol.errors import PermanentTargetError

PAM_FEATURE_CN = "privileged access management feature"
AD_SAM_MAX = 20  # sAMAccountName of a user is at most 20 characters
AD_NEVER = (0, 0x7FFFFFFFFFFFFFFF)  # accountExpires values meaning "never"
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
_TTL_READ = re.compile(r"<TTL=([0-9]+)>,(.*)", re.DOTALL)


def generalized_time(t: datetime) -> str:
    """LDAP GeneralizedTime in UTC, rounded UP to the second so that the enforced end is never
    before `t` (and re-reading it compares >= t)."""
    return ceil_second(t).strftime("%Y%m%d%H%M%SZ")


def parse_generalized_time(text: str) -> datetime:
    """`YYYYmmddHHMMSS[.fff]Z` (what OpenLDAP and AD write) as an aware UTC datetime. Raises
    ValueError for anything else."""
    m = re.fullmatch(r"([0-9]{14})(?:[.,]([0-9]{1,6})[0-9]*)?Z", text)
    if not m:
        raise ValueError(f"not a UTC GeneralizedTime: {text!r}")
    t = datetime.strptime(m.group(1), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    return t + timedelta(microseconds=int((m.group(2) or "0").ljust(6, "0")))


def enforced_end(flavor: str, end: datetime) -> datetime:
    """The end the server reports after jitpol writes `end` (end_request): OpenLDAP's
    pwdEndTime rounded up to the second, AD's accountExpires to the microsecond we read back."""
    if flavor == "active-directory":
        return _FILETIME_EPOCH + timedelta(microseconds=filetime(end) // 10)
    return ceil_second(end)


def filetime(t: datetime) -> int:
    """Windows FILETIME (100 ns ticks since 1601-01-01 UTC), as AD's accountExpires wants it."""
    delta = t.astimezone(UTC) - _FILETIME_EPOCH
    return delta.days * 864_000_000_000 + delta.seconds * 10_000_000 + delta.microseconds * 10


def from_filetime(ticks: int) -> datetime | None:
    """The time a FILETIME means; None for AD's "never" values (0 and 2**63-1)."""
    if ticks in AD_NEVER:
        return None
    return _FILETIME_EPOCH + timedelta(microseconds=ticks // 10)


def ttl_seconds(until: datetime, server_now: datetime) -> int:
    """Whole seconds from the DC's clock to `until`, rounded up (the link must not expire
    early). Raises PermanentTargetError when `until` is not in the future."""
    micros = (until - server_now) // timedelta(microseconds=1)
    seconds = -(-micros // 1_000_000)
    if seconds <= 0:
        raise PermanentTargetError(f"the end {until.isoformat()} is not after the server's time")
    return seconds


def ad_ttl_member(dn: str, seconds: int) -> str:
    """The `member` value that makes AD expire the link after `seconds` (TTL-DN, add form)."""
    return f"<TTL={seconds},{dn}>"


def parse_ttl_member(value: str) -> tuple[str, int | None]:
    """(DN, remaining seconds or None) of a `member` value read with LINK_TTL_CONTROL."""
    m = _TTL_READ.fullmatch(value)
    return (m.group(2), int(m.group(1))) if m else (value, None)


def pam_enabled(enabled_features: Iterable[str]) -> bool:
    """Does the forest's Partitions container list the Privileged Access Management feature in
    msDS-EnabledFeature?"""
    for value in enabled_features:
        try:
            first = parse_dn(value, lenient=True)[0]
        except DnError:
            continue
        if any(attr == "cn" and v.lower() == PAM_FEATURE_CN for attr, v in first):
            return True
    return False


def ad_domain(base: ParsedDn) -> str | None:
    """example.org for dc=example,dc=org (the UPN suffix of new AD accounts); None unless every
    RDN is a dc."""
    if not base or any(len(rdn) != 1 or rdn[0][0] != "dc" for rdn in base):
        return None
    return ".".join(rdn[0][1] for rdn in base)


def ssha(password: str, salt: bytes | None = None) -> str:
    """RFC 2307 {SSHA} hash of `password` for userPassword (what every OpenLDAP verifies without
    extra modules)."""
    salt = os.urandom(8) if salt is None else salt
    digest = hashlib.sha1(password.encode() + salt).digest()  # noqa: S324 - the scheme slapd checks
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def ssha_matches(stored: Sequence[str], password: str) -> bool:
    """Do the userPassword values `stored` consist of exactly one {SSHA} hash of `password`? False
    for anything else (another scheme, cleartext, several values, garbage): the caller then sets
    the password again, which is always safe."""
    if len(stored) != 1 or stored[0][:6].upper() != "{SSHA}":
        return False
    try:
        raw = base64.b64decode(stored[0][6:], validate=True)
    except (binascii.Error, ValueError):
        return False
    digest, salt = raw[:20], raw[20:]
    if len(digest) != 20 or not salt:
        return False
    expected = hashlib.sha1(password.encode() + salt).digest()  # noqa: S324 - the scheme slapd checks
    return hmac.compare_digest(digest, expected)


def ad_sam_account_name(name: str) -> str:
    """The sAMAccountName of an ephemeral AD account: the name itself when it fits AD's 20
    characters, else `jit-` and 16 hex digits of its SHA-256 (stable, so re-reads agree). The
    full name stays the account's cn and userPrincipalName."""
    if len(name) <= AD_SAM_MAX:
        return name
    return "jit-" + hashlib.sha256(name.encode()).hexdigest()[: AD_SAM_MAX - 4]


def ad_password_value(password: str) -> bytes:
    """unicodePwd wants the password in double quotes, UTF-16-LE."""
    return f'"{password}"'.encode("utf-16-le")
