"""LDAP names: DN parsing and canonical form (RFC 4514), escaping, the policy loader's
check_name hook, jitpol's allowlists (ephemeral account names, marker values), the ownership
marker and login_name. Needs no ldap3."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from jitpol.connectors.kit import shown
from jitpol.errors import InvalidInput

# Stands in for the members of a groupOfNames that would otherwise be empty. A single RDN outside
# any naming context: no entry (and so no person) can ever have this DN.
PLACEHOLDER_DN = "cn=jitpol-empty-group-placeholder"
MARKER_PREFIX = "managed-by=jitpol;"
MAX_DN_LENGTH = 1024

_EPHEMERAL_NAME = re.compile(r"jit-[a-z0-9][a-z0-9-]{0,30}")
_MARKER_VALUE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_DESCR = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_NUMERICOID = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_HEX = "0123456789abcdefABCDEF"
_ESCAPABLE = frozenset('"+,;<>\\=# ')  # RFC 4514 `special`: may follow a backslash
_NEVER_BARE = frozenset('"+,;<>\\\x00')  # may not appear unescaped inside a value

Rdn = tuple[tuple[str, str], ...]  # (attribute type, unescaped value) pairs
ParsedDn = tuple[Rdn, ...]


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
    if len(parse_dn(canonical)) < 2:
        # an entry jitpol manages lies below the target's base_dn: one RDN alone is a DN cut at its
        # commas, as a YAML flow list `[cn=x,dc=example]` does (it is a list of two strings)
        raise InvalidInput(
            f"{what} {shown(value)} is a single RDN, not a DN below the target's base_dn; in a YAML flow list "
            "`[...]` a DN's commas separate list items: quote the DN or write the list as a block (`- cn=...`)"
        )


def marker(grant: str, person: str) -> str:
    """jitpol's marker on an ephemeral account (the `description` value)."""
    return f"{MARKER_PREFIX} grant={grant}; person={person}"


def login_name(principal: str, settings: Mapping[str, Any]) -> str:
    """What the holder of an ephemeral account binds as: the account's full DN (the connector
    creates `uid=<principal>,<people_base>`, AD `cn=...`). Needs no ldap3."""
    base = str(settings.get("base_dn", ""))
    people = str(settings.get("people_base") or f"ou=people,{base}")
    attr = "cn" if settings.get("flavor") == "active-directory" else "uid"
    return f"{attr}={escape_value(principal)},{people}"
