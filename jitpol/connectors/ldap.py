"""LDAP connector for OpenLDAP and Active Directory: models `role-membership` (a person's entry is
made a direct `member` of a group), `ephemeral-account` (an entry created for one grant) and
`credential-checkout` (a shared entry's password handed out and rotated).

Settings (the target's entry in jitpol.yaml):
    url            required; ldap://host:port or ldaps://host:port
    bind_dn        required; the DN jitpol binds as
    password_env   required; NAME of the environment variable holding the bind password
    base_dn        required; every principal and group DN must lie below it
    flavor         openldap (default) | active-directory
    start_tls      bool, default false: StartTLS before binding (certificates are verified)
    people_base    where ephemeral accounts live; default "ou=people,<base_dn>"

Names. Principals and groups are DNs in canonical form: RFC 4514 escaping, attribute types and
values in lower case (NFC), no spaces around separators, the AVAs of a multi-valued RDN sorted.
check_name() refuses any other spelling and says which one to write, because jitpol compares
what it wants with what it observes as plain strings: "uid=Alice" and "uid=alice" are one entry
to the directory, so they must be one string to jitpol. Members the server returns are brought
into the same form. Filter values are escaped with ldap3's escape_filter_chars and RDNs built
from names with escape_rdn.

role-membership: MODIFY add/delete of one `member` value. The state is read first (so `changed`
is exact and check mode works); the server's answers 20 (attributeOrValueExists) to an add and
16 (noSuchAttribute) to a delete still count as "already true" when another writer got there in
between. OpenLDAP refuses to remove the last `member` of a groupOfNames (objectClassViolation),
so the last member is swapped for PLACEHOLDER_DN in one modify, and the placeholder is removed
again by the next add. It cannot be a person (no naming context holds it) and observe never
reports it. Active Directory (flavor active-directory): when the forest has the Privileged Access
Management feature enabled, members are added as `<TTL=seconds,DN>` so that the DCs remove them
at the end of the window themselves (TTL counted from the DC's rootDSE currentTime), and observe
reports the end (search control LDAP_SERVER_LINK_TTL). A grant of a TTL link whose end is not the
action's `until` (within TTL_SLACK) sets it to `until`, earlier or later; a member without a TTL
is a member for good and is left as it is. A `member` value cannot carry jitpol's ownership
marker (neither OpenLDAP nor AD keeps anything with one value), so observe reports owned None
for this model: only the ledger knows which memberships jitpol gave.

ephemeral-account: `uid=<principal>,<people_base>` (inetOrgPerson; AD: `cn=<principal>`, class
user, sAMAccountName shortened to 20 characters when needed) carrying jitpol's marker
`description: managed-by=jitpol; grant=<grant>; person=<person>`, a member of exactly the
groups in the privilege, with userPassword ({SSHA}) from action.detail("password") when given
(AD: unicodePwd, only over TLS). The end is enforced by the server where it can: OpenLDAP
`pwdEndTime` (ppolicy overlay; the server refuses binds after it when a password policy applies
to the entry), AD `accountExpires`, set to the action's `until` whether that is earlier or later
than the end in place (the end follows the grant's live end both ways). observe() finds accounts
by the marker only and reports them owned True; entries without it are never reported, changed
or deleted (create-account and delete-account refuse them). create-account on an existing
marked entry brings it to that state; when the action carries a password (the core re-delivers a
new secret after a run died before recording the first one, which is lost) userPassword is
replaced too, unless it already verifies that password (the same action applied again; AD's
unicodePwd cannot be read, so there it is always set).

credential-checkout: principal is the DN of an existing shared entry (the resource's
spec.account), checked like every DN and never the bind DN, an entry carrying jitpol's marker or
a name in jitpol's ephemeral namespace; the privilege is the canonical JSON of the holders'
grant names (opaque here; "[]" means nobody). rotate (the password detail is required) replaces
userPassword ({SSHA}; AD: unicodePwd, only over TLS) and, in the same modify, the end the
server enforces: with holders, OpenLDAP `pwdEndTime` (when ppolicy is loaded) / AD
`accountExpires` = action.until (replaced, so it follows the checkout both ways: earlier or
later than the end in place), so the checked-out password stops working at the end even if
no run happens; when rotating to nobody (or without an end) the end is removed (AD: never), so
the entry is usable again by whoever next gets a secret. jitpol therefore owns these two
attributes on a checkout entry. A rotation is an event: always changed=True. observe() reports
nothing for this model (the ledger knows the holders). LDAP cannot end another client's bound
connection: a connection bound with the old password keeps its bind until it closes.

Errors: TargetUnavailable when the server cannot be reached, times out or answers busy /
unavailable; PermanentTargetError for everything else (bad credentials, refused writes, missing
groups, names outside base_dn). Neither the bind password nor a password being set (nor its
hash) appears in messages or operations (shown as `***`).

ldap3 is imported lazily, so `jitpol validate` can run check_name() without it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import ssl
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NoReturn
from urllib.parse import urlsplit

from jitpol.connectors.kit import ceil_second, check_apply, check_model, redacted, shown
from jitpol.errors import InvalidInput, PermanentTargetError, TargetUnavailable
from jitpol.model.assignment import Action, Assignment, Capabilities, Outcome, Scope
from jitpol.model.canonical import canonical_json

if TYPE_CHECKING:
    import ldap3

ROLE = "role-membership"
EPHEMERAL = "ephemeral-account"
CHECKOUT = "credential-checkout"
_OPS = {ROLE: ("grant", "revoke"), EPHEMERAL: ("create-account", "delete-account"), CHECKOUT: ("rotate",)}
FLAVORS = ("openldap", "active-directory")

# Stands in for the members of a groupOfNames that would otherwise be empty. A single RDN outside
# any naming context: no entry (and so no person) can ever have this DN.
PLACEHOLDER_DN = "cn=jitpol-empty-group-placeholder"
MARKER_PREFIX = "managed-by=jitpol;"
MAX_DN_LENGTH = 1024

PPOLICY_CONTROL = "1.3.6.1.4.1.42.2.27.8.5.1"  # advertised by OpenLDAP when ppolicy is loaded
LINK_TTL_CONTROL = "1.2.840.113556.1.4.2309"  # AD: return member values as <TTL=n>,DN
PAGED_RESULTS_CONTROL = "1.2.840.113556.1.4.319"
PAM_FEATURE_CN = "privileged access management feature"
AD_SAM_MAX = 20  # sAMAccountName of a user is at most 20 characters
AD_NEVER = (0, 0x7FFFFFFFFFFFFFFF)  # accountExpires values meaning "never"
# A TTL link counts down in whole seconds from the DC's clock, so the end read back drifts from
# the one written by a second or two: within this it is the end already in place. Well below the
# core's END_SLACK, so an end the core asks to move is always moved.
TTL_SLACK = timedelta(seconds=5)
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)

# result codes
_SUCCESS = 0
_NO_SUCH_ATTRIBUTE = 16
_VALUE_EXISTS = 20
_NO_SUCH_OBJECT = 32
_INVALID_CREDENTIALS = 49
_UNWILLING = 53
_OBJECT_CLASS_VIOLATION = 65
_ENTRY_EXISTS = 68
_TEMPORARY_CODES = frozenset({3, 51, 52})  # timeLimitExceeded, busy, unavailable

CONNECT_TIMEOUT = 10
RECEIVE_TIMEOUT = 30
PAGE_SIZE = 500

_EPHEMERAL_NAME = re.compile(r"jit-[a-z0-9][a-z0-9-]{0,30}")
_MARKER_VALUE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_DESCR = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_NUMERICOID = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_HEX = "0123456789abcdefABCDEF"
_ESCAPABLE = frozenset('"+,;<>\\=# ')  # RFC 4514 `special`: may follow a backslash
_NEVER_BARE = frozenset('"+,;<>\\\x00')  # may not appear unescaped inside a value
_TTL_READ = re.compile(r"<TTL=([0-9]+)>,(.*)", re.DOTALL)

Rdn = tuple[tuple[str, str], ...]  # (attribute type, unescaped value) pairs
ParsedDn = tuple[Rdn, ...]


# -- distinguished names (no ldap3 needed) ---------------------------------------------------


class DnError(ValueError):
    """A string is not an acceptable DN; the message says why."""


def parse_dn(text: str, *, lenient: bool = False) -> ParsedDn:
    """The RDNs of `text` (RFC 4514), values unescaped. Strict by default: no spaces around
    separators, no `#` hex values, no control or format characters, at most MAX_DN_LENGTH
    characters. `lenient` also accepts spaces around `,` `+` `=` (as some servers write them).
    Raises DnError."""
    if not isinstance(text, str):
        raise DnError("not a string")
    if not text:
        raise DnError("empty")
    if len(text) > MAX_DN_LENGTH:
        raise DnError(f"longer than {MAX_DN_LENGTH} characters")
    rdns: list[Rdn] = []
    avas: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while True:
        if lenient:
            while i < n and text[i] == " ":
                i += 1
        eq = text.find("=", i)
        if eq == -1:
            raise DnError(f"{text[i:]!r} has no '='")
        attr = text[i:eq].rstrip(" ") if lenient else text[i:eq]
        if not (_DESCR.fullmatch(attr) or _NUMERICOID.fullmatch(attr)):
            raise DnError(f"{attr!r} is not an attribute type")
        i = eq + 1
        if lenient:
            while i < n and text[i] == " ":
                i += 1
        value, i = _parse_value(text, i, lenient)
        avas.append((attr.lower(), value))
        if i >= n:
            rdns.append(tuple(avas))
            return tuple(rdns)
        if text[i] == ",":
            rdns.append(tuple(avas))
            avas = []
        i += 1  # "," or "+"


def _parse_value(text: str, i: int, lenient: bool) -> tuple[str, int]:
    """One attribute value starting at text[i]: (unescaped value, index of the separator or the
    end)."""
    n = len(text)
    if i < n and text[i] == "#":
        raise DnError("hex-encoded (#...) values are not accepted")
    buf = bytearray()
    bare_trailing_spaces = 0
    while i < n and text[i] not in ",+":
        ch = text[i]
        if ch == "\\":
            pair = text[i + 1 : i + 3]
            if len(pair) == 2 and all(c in _HEX for c in pair):
                buf.append(int(pair, 16))
                i += 3
            elif i + 1 < n and text[i + 1] in _ESCAPABLE:
                buf.extend(text[i + 1].encode())
                i += 2
            else:
                raise DnError("a backslash must be followed by a special character or two hex digits")
            bare_trailing_spaces = 0
            continue
        if ch in _NEVER_BARE:
            raise DnError(f"{ch!r} must be escaped in a value")
        if ch == " " and not buf and not lenient:
            raise DnError("a leading space must be escaped")
        bare_trailing_spaces = bare_trailing_spaces + 1 if ch == " " else 0
        try:
            buf.extend(ch.encode())
        except UnicodeEncodeError:  # a lone surrogate
            raise DnError("not valid Unicode") from None
        i += 1
    if bare_trailing_spaces:
        if not lenient:
            raise DnError("a trailing space must be escaped")
        del buf[-bare_trailing_spaces:]
    try:
        value = buf.decode("utf-8")
    except UnicodeDecodeError:
        raise DnError("escaped bytes are not UTF-8") from None
    if not value:
        raise DnError("an attribute value is empty")
    for c in value:
        if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            raise DnError(f"control or format character U+{ord(c):04X} in a value")
    return value, i


def escape_value(value: str) -> str:
    """RFC 4514 escaping of one attribute value, the same as ldap3.utils.dn.escape_rdn."""
    for char in ("\\", ",", "+", '"', "<", ">", ";", "=", "\x00"):
        value = value.replace(char, "\\" + char)
    if value[:1] in ("#", " "):
        value = "\\" + value
    if value.endswith(" ") and not value.endswith("\\ "):
        value = value[:-1] + "\\ "
    return value


def format_dn(dn: ParsedDn) -> str:
    """The canonical text of parsed RDNs: lower case (NFC), sorted AVAs, RFC 4514 escaping."""
    rdns = []
    for rdn in dn:
        avas = sorted((attr.lower(), unicodedata.normalize("NFC", value).lower()) for attr, value in rdn)
        rdns.append("+".join(f"{attr}={escape_value(value)}" for attr, value in avas))
    return ",".join(rdns)


def canonical_dn(text: str, *, lenient: bool = False) -> str:
    """format_dn(parse_dn(text)). Raises DnError."""
    return format_dn(parse_dn(text, lenient=lenient))


def is_below(dn: ParsedDn, base: ParsedDn, *, or_equal: bool = False) -> bool:
    """Is `dn` inside the subtree of `base` (both canonical)? The entry `base` itself only
    when `or_equal`."""
    if len(dn) < len(base) or (len(dn) == len(base) and not or_equal):
        return False
    return dn[len(dn) - len(base) :] == base


def check_name(value: object, what: str) -> None:
    """The policy loader's hook (the registry record's name_check): `value` is a person's DN (`what` is
    "principal") or a group DN named in a resource's grants. Allowed: a DN in canonical form
    (see the module docstring), at most 1024 characters, no control or format characters.
    Whether it lies below the target's base_dn is checked by the connector, which knows it.
    Raises InvalidInput. Needs no ldap3."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be an LDAP DN (a string), not {type(value).__name__}")
    try:
        canonical = canonical_dn(value)
    except DnError as exc:
        try:  # spaces around separators: say how to write it
            canonical = canonical_dn(value, lenient=True)
        except DnError:
            canonical = ""
        if not canonical:
            raise InvalidInput(
                f"{what} {shown(value)} is not an acceptable LDAP DN ({exc}); write a DN such as "
                "'uid=alice,ou=people,dc=example,dc=org' with RFC 4514 escaping"
            ) from None
    if canonical != value:
        raise InvalidInput(
            f"{what} {shown(value)} is not written in canonical form; write {shown(canonical)} "
            "(lower case, no spaces around ',' '+' '=', RFC 4514 escaping)"
        )
    if canonical == PLACEHOLDER_DN:
        raise InvalidInput(f"{what} {shown(value)} is reserved by jitpol (the empty-group placeholder)")


# -- time values -------------------------------------------------------------------------------


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


def marker(grant: str, person: str) -> str:
    """jitpol's marker on an ephemeral account (the `description` value)."""
    return f"{MARKER_PREFIX} grant={grant}; person={person}"


# -- requests ----------------------------------------------------------------------------------

SECRET_ATTRIBUTES = frozenset({"userpassword", "unicodepwd"})


@dataclass(frozen=True, slots=True)
class Change:
    op: Literal["add", "delete", "replace"]
    attribute: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Request:
    """One LDAP write. For "add" the changes are the new entry's attributes (op "add")."""

    kind: Literal["add", "modify", "delete"]
    dn: str
    changes: tuple[Change, ...] = ()

    def describe(self) -> str:
        """The request as text for Outcome.operations, with password values replaced by ***."""
        if self.kind == "delete":
            return f"delete {self.dn}"
        parts = []
        for c in self.changes:
            shown = ["***"] * len(c.values) if c.attribute.lower() in SECRET_ATTRIBUTES else list(c.values)
            values = " | ".join(shown) or "(none)"  # a replace without values removes the attribute
            if self.kind == "add":
                parts.append(f"{c.attribute}: {values}")
            else:
                parts.append(f"{c.op} {c.attribute}: {values}")
        return f"{self.kind} {self.dn}: " + "; ".join(parts)

    def secrets(self) -> tuple[str, ...]:
        """The values never to be shown: passwords (AD) and password hashes (OpenLDAP)."""
        return tuple(v for c in self.changes if c.attribute.lower() in SECRET_ATTRIBUTES for v in c.values)


Step = tuple[Request, Request | None]  # a write, and what to send instead on a conflict


def member_add_request(group: str, member: str, *, ttl: int | None = None, drop_placeholder: bool = False) -> Request:
    """Add one member (AD: with a TTL); drop the empty-group placeholder in the same modify."""
    changes = [Change("add", "member", (ad_ttl_member(member, ttl) if ttl is not None else member,))]
    if drop_placeholder:
        changes.append(Change("delete", "member", (PLACEHOLDER_DN,)))
    return Request("modify", group, tuple(changes))


def member_delete_request(group: str, member: str, *, last: bool = False) -> Request:
    """Remove one member; when it is the last one of a groupOfNames, put the placeholder in."""
    if last:
        changes = (Change("add", "member", (PLACEHOLDER_DN,)), Change("delete", "member", (member,)))
        return Request("modify", group, changes)
    return Request("modify", group, (Change("delete", "member", (member,)),))


def member_extend_request(group: str, member: str, ttl: int) -> Request:
    """AD: replace a member's link by one with another TTL (a later or an earlier end),
    atomically."""
    return Request(
        "modify", group, (Change("delete", "member", (member,)), Change("add", "member", (ad_ttl_member(member, ttl),)))
    )


def openldap_account_request(
    dn: str, uid: str, description: str, *, end: datetime | None, password: str | None
) -> Request:
    """The add request of an ephemeral OpenLDAP account (inetOrgPerson: it can bind with a
    password; pwdEndTime when the server enforces it)."""
    changes = [
        Change("add", "objectClass", ("inetOrgPerson",)),
        Change("add", "uid", (uid,)),
        Change("add", "cn", (uid,)),
        Change("add", "sn", (uid,)),
        Change("add", "description", (description,)),
    ]
    if end is not None:
        changes.append(Change("add", "pwdEndTime", (generalized_time(end),)))
    if password:
        changes.append(Change("add", "userPassword", (ssha(password),)))
    return Request("add", dn, tuple(changes))


def ad_account_request(
    dn: str, name: str, description: str, *, end: datetime | None, password: str | None, domain: str | None
) -> Request:
    """The add request of an ephemeral AD user. With a password it is enabled (userAccountControl
    512 NORMAL_ACCOUNT); without one it stays disabled (514), since it could not log on anyway."""
    changes = [
        Change("add", "objectClass", ("top", "person", "organizationalPerson", "user")),
        Change("add", "cn", (name,)),
        Change("add", "sAMAccountName", (ad_sam_account_name(name),)),
        Change("add", "description", (description,)),
        Change("add", "accountExpires", (str(filetime(end)) if end is not None else "0",)),
        Change("add", "userAccountControl", ("512" if password else "514",)),
    ]
    if domain:
        changes.append(Change("add", "userPrincipalName", (f"{name}@{domain}",)))
    if password:
        changes.append(Change("add", "unicodePwd", (password,)))
    return Request("add", dn, tuple(changes))


def end_request(dn: str, flavor: str, end: datetime) -> Request:
    """Move an ephemeral account's enforced end to `end`, earlier or later."""
    if flavor == "active-directory":
        return Request("modify", dn, (Change("replace", "accountExpires", (str(filetime(end)),)),))
    return Request("modify", dn, (Change("replace", "pwdEndTime", (generalized_time(end),)),))


def password_request(dn: str, flavor: str, password: str) -> Request:
    """Replace an ephemeral account's password (a new secret re-delivered): userPassword
    ({SSHA}); AD: unicodePwd (an administrative reset) and userAccountControl 512, because an
    account created without a password was created disabled (514)."""
    if flavor == "active-directory":
        changes = (Change("replace", "unicodePwd", (password,)), Change("replace", "userAccountControl", ("512",)))
        return Request("modify", dn, changes)
    return Request("modify", dn, (Change("replace", "userPassword", (ssha(password),)),))


def rotate_request(dn: str, flavor: str, password: str, *, end: datetime | None, set_end: bool) -> Request:
    """The one modify that rotates a shared entry's password: userPassword ({SSHA}); AD:
    unicodePwd (an administrative reset). When `set_end` (the server enforces an end: OpenLDAP
    with ppolicy, AD always) the end is replaced in the same modify, so password and end never
    disagree: `end` when given, else removed (pwdEndTime without values; accountExpires 0, never)."""
    if flavor == "active-directory":
        changes = [Change("replace", "unicodePwd", (password,))]
        if set_end:
            changes.append(Change("replace", "accountExpires", (str(filetime(end)) if end is not None else "0",)))
    else:
        changes = [Change("replace", "userPassword", (ssha(password),))]
        if set_end:
            changes.append(Change("replace", "pwdEndTime", (generalized_time(end),) if end is not None else ()))
    return Request("modify", dn, tuple(changes))


def wire_value(attribute: str, value: str) -> str | bytes:
    """What goes on the wire for one value (unicodePwd is quoted UTF-16-LE)."""
    return ad_password_value(value) if attribute.lower() == "unicodepwd" else value


# -- the connector -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Member:
    value: str  # as the server returned it (TTL prefix removed)
    canonical: str  # canonical DN, or the raw value when it does not parse
    ttl: int | None = None


@dataclass(frozen=True, slots=True)
class _Group:
    object_classes: frozenset[str]
    members: tuple[_Member, ...]

    @property
    def is_group(self) -> bool:
        return bool(self.object_classes & {"groupofnames", "group"})

    @property
    def has_placeholder(self) -> bool:
        return any(m.canonical == PLACEHOLDER_DN for m in self.members)

    def find(self, dn: str) -> _Member | None:
        return next((m for m in self.members if m.canonical == dn), None)

    def others(self, dn: str) -> list[_Member]:
        return [m for m in self.members if m.canonical not in (dn, PLACEHOLDER_DN)]


@dataclass(frozen=True, slots=True)
class _Account:
    dn: str
    principal: str
    marked: bool
    end: datetime | None


class LdapConnector:
    """Connector for one LDAP directory (see the module docstring for settings and semantics).

    One connection is opened and bound on first use and reused; close() drops it."""

    type: ClassVar[str] = "ldap"
    capabilities: ClassVar[Capabilities] = Capabilities(
        models=frozenset({ROLE, EPHEMERAL, CHECKOUT}),
        # OpenLDAP (ppolicy pwdEndTime) and AD (accountExpires) end ephemeral accounts and
        # checked-out passwords themselves, at the grant's live end (earlier or later). AD with PAM
        # also ends role memberships (TTL links), reported through Assignment.expires; that is a
        # fact of the forest, learnt only by reading it, so role-membership is not declared here.
        # LDAP cannot end another client's bound connection.
        native_expiry=frozenset({EPHEMERAL, CHECKOUT}),
        # an ephemeral account carries jitpol's marker (its description); a `member` value cannot
        # carry one, so role-membership reports owned None (only the ledger knows)
        marks=frozenset({EPHEMERAL}),
        ends_sessions=False,
    )

    def __init__(self, name: str, settings: Mapping[str, Any], env: Mapping[str, str]) -> None:
        self.name = name
        url = settings.get("url")
        if not isinstance(url, str) or not re.match(r"ldaps?://[^\s/]+/?$", url, re.IGNORECASE):
            raise PermanentTargetError(f"target {name}: setting url must be ldap://host[:port] or ldaps://host[:port]")
        password_env = settings.get("password_env")
        if not isinstance(password_env, str) or not password_env:
            raise PermanentTargetError(
                f"target {name}: setting password_env (an environment variable name) is required"
            )
        flavor = settings.get("flavor", "openldap")
        if flavor not in FLAVORS:
            raise PermanentTargetError(f"target {name}: setting flavor must be one of {', '.join(FLAVORS)}")
        start_tls = settings.get("start_tls", False)
        if not isinstance(start_tls, bool):
            raise PermanentTargetError(f"target {name}: setting start_tls must be true or false")
        self._url = url
        self._password_env = password_env
        self._env = env  # read at connect time only: the password is never kept on this object
        self.flavor: str = flavor
        self._start_tls = start_tls
        self._encrypted = start_tls or url.lower().startswith("ldaps://")
        self.bind_dn = self._setting_dn(settings, "bind_dn")
        self.base_dn = self._setting_dn(settings, "base_dn")
        self._base = parse_dn(self.base_dn)
        people = settings.get("people_base")
        self.people_base = (
            self._setting_dn(settings, "people_base") if people is not None else f"ou=people,{self.base_dn}"
        )
        self._people = parse_dn(self.people_base)
        if not is_below(self._people, self._base, or_equal=True):
            raise PermanentTargetError(f"target {name}: people_base must lie within base_dn")
        self._rdn_attr = "cn" if flavor == "active-directory" else "uid"
        self._conn: ldap3.Connection | None = None
        self._root: dict[str, list[str]] | None = None
        self._pam: bool | None = None

    def _setting_dn(self, settings: Mapping[str, Any], key: str) -> str:
        value = settings.get(key)
        if not isinstance(value, str) or not value:
            raise PermanentTargetError(f"target {self.name}: setting {key} (a DN) is required")
        try:
            return canonical_dn(value, lenient=True)
        except DnError as exc:
            raise PermanentTargetError(f"target {self.name}: setting {key} is not a DN ({exc})") from None

    # -- Connector protocol -----------------------------------------------------------------

    def observe(self, scope: Scope) -> frozenset[Assignment]:
        """role-membership: the direct members of every group in scope.privileges (groups that
        do not exist, and names that are not DNs, have none; the placeholder is never shown).
        ephemeral-account: every account below people_base carrying jitpol's marker, whatever
        scope.privileges says, with its groups and the end the server enforces, owned True
        (entries without the marker are not jitpol's accounts and are not reported).
        credential-checkout: nothing (the ledger knows the holders; no request is sent).
        Read-only."""
        check_model(self.name, scope.model, _OPS)
        if scope.model == ROLE:
            return self._observe_members(scope)
        if scope.model == EPHEMERAL:
            return frozenset(self._observe_accounts(scope.model))
        return frozenset()  # credential-checkout

    def apply(self, action: Action, *, check: bool = False) -> Outcome:
        """Make one action true (see the module docstring). Idempotent, except that a rotate is
        an event (always changed=True); a create-account carrying a password the account does not
        already verify sets it. check=True only reads and lists the requests it would send."""
        a = action.assignment
        check_apply(self.name, a.model, action.op, _OPS)
        if a.model == ROLE:
            steps = self._plan_membership(action)
        elif action.op == "create-account":
            steps = self._plan_create(action)
        elif action.op == "delete-account":
            steps = self._plan_delete(action)
        else:  # credential-checkout: rotate
            steps = self._plan_rotate(action)
        if not steps:
            return Outcome(changed=False, before=True, after=True)
        if check:
            return Outcome(changed=True, before=False, after=False, operations=tuple(r.describe() for r, _ in steps))
        sent: list[str] = []
        changed = False
        for request, fallback in steps:
            wrote, done = self._send(request, fallback)
            sent.extend(r.describe() for r in done)
            changed = changed or wrote
        return Outcome(changed=changed, before=not changed, after=True, operations=tuple(sent))

    def close(self) -> None:
        """Unbind and drop the connection, if any. Safe to call twice; a later call reconnects."""
        conn, self._conn = self._conn, None
        self._root = None
        self._pam = None
        if conn is not None and not conn.closed:
            from ldap3.core.exceptions import LDAPException

            try:
                conn.unbind()
            except LDAPException:
                pass  # the socket is gone already; nothing more to release

    # -- role-membership --------------------------------------------------------------------

    def _observe_members(self, scope: Scope) -> frozenset[Assignment]:
        if not scope.privileges:
            return frozenset()
        ttl = self._pam_enabled()
        now = self._server_time() if ttl else None
        out: set[Assignment] = set()
        for privilege in sorted(scope.privileges):
            try:
                group_dn = canonical_dn(privilege)
            except DnError:
                continue  # not a DN: no such group can exist
            group = self._read_group(group_dn, ttl=ttl)
            if group is None:
                continue
            for m in group.members:
                if m.canonical == PLACEHOLDER_DN:
                    continue
                expires = now + timedelta(seconds=m.ttl) if now is not None and m.ttl is not None else None
                out.add(Assignment(self.name, scope.model, m.canonical, privilege, expires=expires))
        return frozenset(out)

    def _plan_membership(self, action: Action) -> list[Step]:
        a = action.assignment
        principal = self._checked_dn(a.principal, "principal")
        group_dn = self._checked_group(a.privilege)
        if principal == self.bind_dn:
            raise PermanentTargetError(
                f"target {self.name}: refusing to {action.op} {group_dn!r} for {principal!r}: "
                "it is jitpol's own bind DN"
            )
        ttl_links = self._pam_enabled()
        group = self._read_group(group_dn, ttl=ttl_links)
        if group is None:
            raise PermanentTargetError(f"target {self.name}: group {group_dn!r} does not exist")
        if not group.is_group:
            raise PermanentTargetError(
                f"target {self.name}: {group_dn!r} is not a groupOfNames (or AD group); "
                "jitpol manages `member` only there"
            )
        current = group.find(principal)
        if action.op == "grant":
            if self._read_entry(principal, ["objectClass"]) is None:
                raise PermanentTargetError(f"target {self.name}: principal {principal!r} does not exist")
            if current is not None:
                if not (ttl_links and current.ttl is not None and action.until is not None):
                    return []  # a member without TTL stays a member for good
                # the link's end follows the grant's live end both ways (a later or an earlier end)
                now = self._server_time()
                if abs(now + timedelta(seconds=current.ttl) - action.until) <= TTL_SLACK:
                    return []
                return [(member_extend_request(group_dn, principal, ttl_seconds(action.until, now)), None)]
            ttl = ttl_seconds(action.until, self._server_time()) if ttl_links and action.until is not None else None
            return [self._join(group_dn, principal, group, ttl=ttl)]
        if current is None:
            return []
        return [self._part(group_dn, principal, group)]

    def _join(self, group_dn: str, member: str, group: _Group, *, ttl: int | None = None) -> Step:
        """Add `member`. OpenLDAP: drop the placeholder in the same modify, or, should it be gone
        by the time we write (16), add plainly."""
        if self.flavor == "openldap" and group.has_placeholder:
            return member_add_request(group_dn, member, drop_placeholder=True), member_add_request(group_dn, member)
        return member_add_request(group_dn, member, ttl=ttl), None

    def _part(self, group_dn: str, member: str, group: _Group) -> Step:
        """Remove `member`. OpenLDAP: swap the last member for the placeholder; the other form is
        the fallback when other writers changed the group since we read it (65, or 20 when the
        placeholder is there already)."""
        if self.flavor != "openldap":
            return member_delete_request(group_dn, member), None
        last = not group.others(member)
        return (
            member_delete_request(group_dn, member, last=last),
            member_delete_request(group_dn, member, last=not last),
        )

    def _read_group(self, dn: str, *, ttl: bool = False) -> _Group | None:
        controls = [(LINK_TTL_CONTROL, False, None)] if ttl else None
        entries = self._search(dn, "(objectClass=*)", "BASE", ["objectClass", "member"], controls=controls)
        if not entries:
            return None
        attrs = entries[0]["raw_attributes"]
        members = []
        for raw in _texts(attrs, "member"):
            value, seconds = parse_ttl_member(raw) if ttl else (raw, None)
            try:
                canonical = canonical_dn(value, lenient=True)
            except DnError:
                canonical = value
            members.append(_Member(value, canonical, seconds))
        return _Group(frozenset(v.lower() for v in _texts(attrs, "objectClass")), tuple(members))

    # -- ephemeral-account ------------------------------------------------------------------

    def _observe_accounts(self, model: str) -> list[Assignment]:
        out = []
        for account in self._accounts():
            if not account.marked:
                continue
            groups = sorted(self._groups_of(account.dn))
            out.append(Assignment(self.name, model, account.principal, canonical_json(groups), expires=account.end,
                                  owned=True))
        return out

    def _accounts(self) -> list[_Account]:
        from ldap3.utils.conv import escape_filter_chars

        object_class = "user" if self.flavor == "active-directory" else "inetOrgPerson"
        search_filter = f"(&(objectClass={object_class})(description={escape_filter_chars(MARKER_PREFIX)}*))"
        entries = self._search(self.people_base, search_filter, "LEVEL", self._account_attributes(), paged=True)
        accounts = (self._account(e) for e in entries)
        return [a for a in accounts if a is not None]

    def _account_attributes(self) -> list[str]:
        end = "accountExpires" if self.flavor == "active-directory" else "pwdEndTime"
        return [self._rdn_attr, "description", end, "objectClass"]

    def _account(self, entry: Mapping[str, Any]) -> _Account | None:
        """An entry below people_base as an account; None when its RDN is not `uid=`/`cn=`."""
        try:
            dn = canonical_dn(entry["dn"], lenient=True)
            first = parse_dn(dn)[0]
        except DnError:
            return None
        if len(first) != 1 or first[0][0] != self._rdn_attr:
            return None
        attrs = entry["raw_attributes"]
        marked = any(d.startswith(MARKER_PREFIX) for d in _texts(attrs, "description"))
        end: datetime | None = None
        try:
            if self.flavor == "active-directory":
                values = _texts(attrs, "accountExpires")
                end = from_filetime(int(values[0])) if values else None
            else:
                values = _texts(attrs, "pwdEndTime")
                end = parse_generalized_time(values[0]) if values else None
        except ValueError:
            end = None  # unreadable: report no enforced end, so an addition sets it again
        return _Account(dn=dn, principal=first[0][1], marked=marked, end=end)

    def _read_account(self, principal: str) -> _Account | None:
        entries = self._search(self._account_dn(principal), "(objectClass=*)", "BASE", self._account_attributes())
        return self._account(entries[0]) if entries else None

    def _groups_of(self, member_dn: str) -> set[str]:
        """Canonical DNs of the groups below base_dn that list `member_dn` in `member`."""
        from ldap3.utils.conv import escape_filter_chars

        search_filter = f"(member={escape_filter_chars(member_dn)})"
        entries = self._search(self.base_dn, search_filter, "SUBTREE", ["1.1"], paged=True)
        groups = set()
        for e in entries:
            try:
                groups.add(canonical_dn(e["dn"], lenient=True))
            except DnError:
                continue  # a DN we could not name in a privilege anyway
        return groups

    def _account_dn(self, principal: str) -> str:
        from ldap3.utils.dn import escape_rdn

        # the principal matched _EPHEMERAL_NAME already; escaping is defence in depth
        return f"{self._rdn_attr}={escape_rdn(principal)},{self.people_base}"

    def _checked_account_name(self, principal: str) -> str:
        if not isinstance(principal, str) or not _EPHEMERAL_NAME.fullmatch(principal):
            raise PermanentTargetError(
                f"target {self.name}: ephemeral account name {shown(principal)} is not allowed "
                "(jit- followed by 1 to 31 lower-case letters, digits or -)"
            )
        return principal

    def _checked_groups(self, privilege: str) -> list[str]:
        try:
            groups = json.loads(privilege)
        except ValueError:
            groups = None
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise PermanentTargetError(
                f"target {self.name}: the privilege of an ephemeral account must be a JSON list of group DNs"
            )
        if canonical_json(sorted(set(groups))) != privilege:
            raise PermanentTargetError(
                f"target {self.name}: the privilege {shown(privilege)} is not the canonical JSON of a sorted "
                "list of distinct group DNs"
            )
        return [self._checked_group(g) for g in groups]

    def _marker(self, action: Action) -> str:
        fields = {"grant": action.detail("grant"), "person": action.detail("person")}
        for key, value in fields.items():
            if not _MARKER_VALUE.fullmatch(value):
                raise PermanentTargetError(
                    f"target {self.name}: detail {key} {shown(value)} is missing or not a jitpol name"
                )
        return marker(fields["grant"], fields["person"])

    def _plan_create(self, action: Action) -> list[Step]:
        a = action.assignment
        principal = self._checked_account_name(a.principal)
        wanted = self._checked_groups(a.privilege)
        description = self._marker(action)
        password = self._checked_password(action)
        ad = self.flavor == "active-directory"
        if ad and password and not self._encrypted:
            raise PermanentTargetError(
                f"target {self.name}: Active Directory takes passwords only over an encrypted connection "
                "(use ldaps:// or start_tls: true)"
            )
        dn = self._account_dn(principal)
        existing = self._read_account(principal)
        if existing is not None and not existing.marked:
            raise PermanentTargetError(
                f"target {self.name}: {dn!r} exists and does not carry jitpol's marker; jitpol does not touch it"
            )
        groups: dict[str, _Group] = {}
        for g in wanted:
            group = self._read_group(g)
            if group is None:
                raise PermanentTargetError(f"target {self.name}: group {g!r} does not exist")
            if not group.is_group:
                raise PermanentTargetError(f"target {self.name}: {g!r} is not a groupOfNames (or AD group)")
            groups[g] = group
        enforce = ad or self._ppolicy()
        end = action.until if enforce else None
        steps: list[Step] = []
        current: set[str] = set()
        if existing is None:
            if ad:
                steps.append((ad_account_request(dn, principal, description, end=end, password=password,
                                                 domain=ad_domain(self._base)), None))  # fmt: skip
            else:
                steps.append((openldap_account_request(dn, principal, description, end=end, password=password), None))
        else:
            current = self._groups_of(dn)
            if password and not self._password_verifies(dn, password):
                # a new secret re-delivered (the first one was lost with a run that died before
                # recording it): the account must take it, or its holder could not log in
                steps.append((password_request(dn, self.flavor, password), None))
            # the end follows the grant's live end both ways: a schedule, a restriction or a
            # break-glass deadline that cuts the window moves it earlier, an extension later
            if end is not None and existing.end != enforced_end(self.flavor, end):
                steps.append((end_request(dn, self.flavor, end), None))
        for g in wanted:
            if g not in current:
                steps.append(self._join(g, dn, groups[g]))
        for g in sorted(current - set(wanted)):
            steps.extend(self._leave(g, dn))
        return steps

    def _password_verifies(self, dn: str, password: str) -> bool:
        """Does the entry's userPassword already verify `password` (the same action applied
        again)? Always False on AD, whose unicodePwd cannot be read: the password is set again."""
        if self.flavor == "active-directory":
            return False
        entry = self._read_entry(dn, ["userPassword"])
        return entry is not None and ssha_matches(_texts(entry["raw_attributes"], "userPassword"), password)

    def _leave(self, group_dn: str, member_dn: str) -> list[Step]:
        group = self._read_group(group_dn)
        if group is None or group.find(member_dn) is None:
            return []
        return [self._part(group_dn, member_dn, group)]

    def _plan_delete(self, action: Action) -> list[Step]:
        principal = self._checked_account_name(action.assignment.principal)
        existing = self._read_account(principal)
        if existing is None:
            return []
        if not existing.marked:
            raise PermanentTargetError(
                f"target {self.name}: {existing.dn!r} does not carry jitpol's marker; jitpol does not delete it"
            )
        steps: list[Step] = []
        if self.flavor == "openldap":
            # AD drops the links of a deleted object itself; OpenLDAP's refint may not be loaded,
            # and would fail on a group's last member without refint_nothing
            for g in sorted(self._groups_of(existing.dn)):
                steps.extend(self._leave(g, existing.dn))
        steps.append((Request("delete", existing.dn), None))
        return steps

    # -- credential-checkout ----------------------------------------------------------------

    def _plan_rotate(self, action: Action) -> list[Step]:
        """One modify: the new password, and the end the server enforces (see rotate_request).
        Reads the entry first: it must exist and must not be jitpol's ephemeral account."""
        a = action.assignment
        dn = self._checked_shared_account(a.principal)
        try:
            holders = json.loads(a.privilege)
        except ValueError:
            holders = None
        if not isinstance(holders, list) or not all(isinstance(h, str) for h in holders):
            raise PermanentTargetError(
                f"target {self.name}: the privilege of a credential checkout must be a JSON list of holders"
            )
        password = self._checked_password(action)
        if password is None:
            # a rotation without a new secret would leave the previous holder's password working
            raise PermanentTargetError(f"target {self.name}: rotate of {dn!r} needs a password detail")
        ad = self.flavor == "active-directory"
        if ad and not self._encrypted:
            raise PermanentTargetError(
                f"target {self.name}: Active Directory takes passwords only over an encrypted connection "
                "(use ldaps:// or start_tls: true)"
            )
        entry = self._read_entry(dn, ["objectClass", "description"])
        if entry is None:
            raise PermanentTargetError(f"target {self.name}: shared account {dn!r} does not exist")
        if any(d.startswith(MARKER_PREFIX) for d in _texts(entry["raw_attributes"], "description")):
            raise PermanentTargetError(
                f"target {self.name}: refusing to rotate {dn!r}: it carries jitpol's marker (an ephemeral "
                "account), not a shared account"
            )
        # with holders the checked-out password ends at the checkout's end even if no run happens;
        # rotating to nobody (or without an end) removes it, so a stale end never locks out the
        # next holder
        end = action.until if holders else None
        request = rotate_request(dn, self.flavor, password, end=end, set_end=ad or self._ppolicy())
        return [(request, None)]

    def _checked_shared_account(self, value: str) -> str:
        """The DN of a shared account jitpol may rotate: canonical, strictly below base_dn, not
        the placeholder (check_name), not the bind DN, not in jitpol's ephemeral namespace."""
        dn = self._checked_dn(value, "shared account")
        if dn == self.bind_dn:
            raise PermanentTargetError(f"target {self.name}: refusing to rotate {dn!r}: it is jitpol's own bind DN")
        parsed = parse_dn(dn)
        first, parent = parsed[0], parsed[1:]
        if (parent == self._people and len(first) == 1 and first[0][0] == self._rdn_attr
                and _EPHEMERAL_NAME.fullmatch(first[0][1])):  # fmt: skip
            raise PermanentTargetError(
                f"target {self.name}: refusing to rotate {dn!r}: the name belongs to jitpol's ephemeral accounts"
            )
        return dn

    def _checked_password(self, action: Action) -> str | None:
        """The password detail; None when there is none. Raises PermanentTargetError for one that
        clients would cut short (a NUL), without showing it."""
        password = action.detail("password")
        if not password:
            return None
        if "\x00" in password:
            raise PermanentTargetError(f"target {self.name}: the password detail contains a NUL character")
        return password

    # -- names ------------------------------------------------------------------------------

    def _checked_dn(self, value: str, what: str) -> str:
        try:
            check_name(value, what)
        except InvalidInput as exc:
            raise PermanentTargetError(f"target {self.name}: {exc}") from None
        if not is_below(parse_dn(value), self._base):
            raise PermanentTargetError(f"target {self.name}: {what} {value!r} is not below base_dn {self.base_dn!r}")
        return value

    def _checked_group(self, value: str) -> str:
        dn = self._checked_dn(value, "group")
        if dn in (self.people_base, self.bind_dn):
            raise PermanentTargetError(f"target {self.name}: {dn!r} cannot be a managed group")
        return dn

    # -- server facts -----------------------------------------------------------------------

    def _root_dse(self) -> dict[str, list[str]]:
        if self._root is None:
            attributes = ["supportedControl", "configurationNamingContext", "namingContexts"]
            entries = self._search("", "(objectClass=*)", "BASE", attributes)
            raw = entries[0]["raw_attributes"] if entries else {}
            self._root = {k: _texts(raw, k) for k in attributes}
        return self._root

    def _ppolicy(self) -> bool:
        """OpenLDAP: is the ppolicy overlay loaded (so pwdEndTime exists and can be enforced)?"""
        return PPOLICY_CONTROL in self._root_dse()["supportedControl"]

    def _pam_enabled(self) -> bool:
        """AD only: is the Privileged Access Management feature on in this forest (TTL links)?"""
        if self.flavor != "active-directory":
            return False
        if self._pam is None:
            config = self._root_dse()["configurationNamingContext"]
            features: list[str] = []
            if config:
                entries = self._search(f"cn=Partitions,{config[0]}", "(objectClass=*)", "BASE", ["msDS-EnabledFeature"])
                features = _texts(entries[0]["raw_attributes"], "msDS-EnabledFeature") if entries else []
            self._pam = pam_enabled(features)
        return self._pam

    def _server_time(self) -> datetime:
        """The DC's clock (rootDSE currentTime): TTLs count from it, not from ours."""
        entries = self._search("", "(objectClass=*)", "BASE", ["currentTime"])
        values = _texts(entries[0]["raw_attributes"], "currentTime") if entries else []
        try:
            return parse_generalized_time(values[0])
        except (IndexError, ValueError):
            raise PermanentTargetError(
                f"target {self.name}: the server reports no currentTime in its rootDSE"
            ) from None

    # -- wire -------------------------------------------------------------------------------

    def _connection(self) -> ldap3.Connection:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        import ldap3
        from ldap3.core.exceptions import LDAPException

        password = self._env.get(self._password_env)
        if not password:
            raise PermanentTargetError(
                f"target {self.name}: environment variable {self._password_env} (password_env) is not set"
            )
        try:
            server = ldap3.Server(
                self._url,
                get_info=ldap3.NONE,
                connect_timeout=CONNECT_TIMEOUT,
                # ldap3's default Tls() does not verify certificates; we always do
                tls=ldap3.Tls(validate=ssl.CERT_REQUIRED, sni=urlsplit(self._url).hostname),
            )
            conn = ldap3.Connection(
                server,
                user=self.bind_dn,
                password=password,
                auto_bind=ldap3.AUTO_BIND_NONE,
                raise_exceptions=False,
                receive_timeout=RECEIVE_TIMEOUT,
                auto_range=True,
                return_empty_attributes=False,
            )
            conn.open()
            if self._start_tls and not conn.start_tls():
                result = conn.result or {}
                conn.unbind()
                raise PermanentTargetError(
                    f"target {self.name}: StartTLS refused: {self._describe_result(result, password)}"
                )
            if not conn.bind():
                result = conn.result or {}
                conn.unbind()
                self._fail(f"bind as {self.bind_dn!r}", result, password)
        except LDAPException as exc:
            self._transport_error(exc, password)
        self._conn = conn
        return conn

    def _transport_error(self, exc: Exception, *secrets: str | None) -> NoReturn:
        from ldap3.core.exceptions import (
            LDAPCommunicationError,
            LDAPResponseTimeoutError,
            LDAPSocketOpenError,
            LDAPStartTLSError,
        )

        self._drop()
        text = redacted(str(exc), secrets)
        if "doesn't match any name" in text:  # ldap3 quotes the whole certificate here
            text = f"the server's certificate does not name {urlsplit(self._url).hostname} (certificate mismatch)"
        text = text[:300]
        # a certificate that does not verify is a configuration problem, not a passing one
        tls_problem = isinstance(exc, LDAPStartTLSError) or any(
            w in text.lower() for w in ("certificate", "wrong version number", "unknown protocol")
        )
        temporary = isinstance(exc, LDAPSocketOpenError | LDAPCommunicationError | LDAPResponseTimeoutError)
        if temporary and not tls_problem:
            raise TargetUnavailable(
                f"target {self.name}: cannot reach the LDAP server at {self._url}: {text}"
            ) from None
        raise PermanentTargetError(f"target {self.name}: LDAP: {type(exc).__name__}: {text}") from None

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._root = None
        self._pam = None
        if conn is not None:
            from ldap3.core.exceptions import LDAPException

            try:
                conn.unbind()
            except LDAPException:
                pass  # already broken; we only release it

    @staticmethod
    def _describe_result(result: Mapping[str, Any], *secrets: str | None) -> str:
        code = result.get("result")
        text = f"{result.get('description') or 'error'} ({code})"
        message = redacted(str(result.get("message") or ""), secrets)
        return f"{text}: {message[:200]}" if message else text

    def _fail(self, what: str, result: Mapping[str, Any], *secrets: str | None) -> NoReturn:
        code = result.get("result")
        detail = self._describe_result(result, *secrets)
        if code in _TEMPORARY_CODES:
            raise TargetUnavailable(f"target {self.name}: {what}: {detail}")
        if code == _INVALID_CREDENTIALS:
            raise PermanentTargetError(f"target {self.name}: {what}: invalid credentials (check {self._password_env})")
        raise PermanentTargetError(f"target {self.name}: {what}: {detail}")

    def _search(
        self,
        base: str,
        search_filter: str,
        scope: Literal["BASE", "LEVEL", "SUBTREE"],
        attributes: Sequence[str],
        *,
        controls: list[tuple[str, bool, Any]] | None = None,
        paged: bool = False,
    ) -> list[dict[str, Any]]:
        """Entries found; [] when `base` does not exist. Pages through large results."""
        from ldap3.core.exceptions import LDAPException

        conn = self._connection()
        out: list[dict[str, Any]] = []
        cookie: bytes | str | None = None
        while True:
            try:
                conn.search(
                    base, search_filter, search_scope=scope, attributes=list(attributes), controls=controls,
                    paged_size=PAGE_SIZE if paged else None, paged_cookie=cookie,
                )  # fmt: skip
            except LDAPException as exc:
                self._transport_error(exc)
            result = conn.result or {}
            if result.get("result") == _NO_SUCH_OBJECT:
                return []
            if result.get("result") != _SUCCESS:
                self._fail(f"search {base!r}", result)
            out.extend(r for r in conn.response or [] if r.get("type") == "searchResEntry")
            cookie = (
                ((result.get("controls") or {}).get(PAGED_RESULTS_CONTROL) or {}).get("value", {}).get("cookie")
                if paged
                else None
            )
            if not cookie:
                return out

    def _read_entry(self, dn: str, attributes: Sequence[str]) -> dict[str, Any] | None:
        entries = self._search(dn, "(objectClass=*)", "BASE", attributes)
        return entries[0] if entries else None

    def _send(self, request: Request, fallback: Request | None) -> tuple[bool, list[Request]]:
        """Send one write: (wrote something, requests sent). Answers that mean "already so"
        (20 on adding a member, 16 on deleting one, 32 on deleting an entry) are not errors.
        When another writer changed the group since we read it (16, 20 or 65 about the
        placeholder or the last member), `fallback` is sent instead."""
        code, result = self._write(request)
        if code == _SUCCESS:
            return True, [request]
        if self._already(request, code, result):
            return False, [request]
        if fallback is not None and code in (_NO_SUCH_ATTRIBUTE, _VALUE_EXISTS, _OBJECT_CLASS_VIOLATION):
            wrote, done = self._send(fallback, None)
            return wrote, [request, *done]
        self._fail(request.describe(), result, *request.secrets())

    def _already(self, request: Request, code: int | None, result: Mapping[str, Any]) -> bool:
        if request.kind == "delete":
            return code == _NO_SUCH_OBJECT
        if request.kind != "modify" or not all(c.attribute == "member" for c in request.changes):
            return False
        ops = {c.op for c in request.changes if PLACEHOLDER_DN not in c.values}
        if ops == {"add"}:
            # AD answers entryAlreadyExists (ERROR_MEMBER_IN_ALIAS) where OpenLDAP says 20
            return code == _VALUE_EXISTS or (self.flavor == "active-directory" and code == _ENTRY_EXISTS)
        if ops == {"delete"}:
            # AD answers unwillingToPerform with 00000561 (ERROR_MEMBER_NOT_IN_GROUP)
            message = str(result.get("message") or "")
            return code == _NO_SUCH_ATTRIBUTE or (
                self.flavor == "active-directory" and code == _UNWILLING and message.startswith("00000561")
            )
        return False

    def _write(self, request: Request) -> tuple[int | None, Mapping[str, Any]]:
        import ldap3
        from ldap3.core.exceptions import LDAPException

        conn: Any = self._connection()  # the ldap3 stubs leave add/modify/delete untyped
        ops = {"add": ldap3.MODIFY_ADD, "delete": ldap3.MODIFY_DELETE, "replace": ldap3.MODIFY_REPLACE}
        try:
            if request.kind == "delete":
                conn.delete(request.dn)
            elif request.kind == "add":
                attributes = {c.attribute: [wire_value(c.attribute, v) for v in c.values] for c in request.changes}
                conn.add(request.dn, attributes=attributes)
            else:
                changes: dict[str, list[tuple[str, list[str | bytes]]]] = {}
                for c in request.changes:
                    changes.setdefault(c.attribute, []).append(
                        (ops[c.op], [wire_value(c.attribute, v) for v in c.values])
                    )
                conn.modify(request.dn, changes)
        except LDAPException as exc:
            self._transport_error(exc, *request.secrets())
        result = conn.result or {}
        return result.get("result"), result



def _texts(attributes: Mapping[str, Any], name: str) -> list[str]:
    """The values of attribute `name` (matched case-insensitively) as text."""
    for key, values in attributes.items():
        if key.lower() == name.lower():
            return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]
    return []


def login_name(principal: str, settings: Mapping[str, Any]) -> str:
    """What the holder of an ephemeral account binds as: the account's full DN (the connector
    creates `uid=<principal>,<people_base>`, AD `cn=...`). Needs no ldap3."""
    base = str(settings.get("base_dn", ""))
    people = str(settings.get("people_base") or f"ou=people,{base}")
    attr = "cn" if settings.get("flavor") == "active-directory" else "uid"
    return f"{attr}={escape_value(principal)},{people}"
