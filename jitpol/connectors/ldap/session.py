"""The LDAP session every model works through: the target's settings, the one connection
(ldap3 imported lazily; bind, StartTLS, verified certificates), searches and writes with the
server's result codes mapped to TargetUnavailable / PermanentTargetError (secrets redacted), the
server facts (rootDSE, ppolicy, AD's PAM feature and clock), and the checks of names against the
target's base_dn."""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, NoReturn
from urllib.parse import urlsplit

from jitpol.connectors.kit import password_detail, redacted
from jitpol.connectors.ldap.encodings import pam_enabled, parse_generalized_time
from jitpol.connectors.ldap.names import PLACEHOLDER_DN, DnError, canonical_dn, check_name, is_below, parse_dn
from jitpol.connectors.ldap.requests import Request, wire_value
from jitpol.errors import InvalidInput, PermanentTargetError, TargetUnavailable
from jitpol.model.assignment import Action

if TYPE_CHECKING:
    import ldap3

FLAVORS = ("openldap", "active-directory")

PPOLICY_CONTROL = "1.3.6.1.4.1.42.2.27.8.5.1"  # advertised by OpenLDAP when ppolicy is loaded
PAGED_RESULTS_CONTROL = "1.2.840.113556.1.4.319"

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


class LdapSession:
    """The settings, connection, reads and writes of one LDAP target (the base of LdapConnector;
    the model mixins build on it)."""

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

    def _checked_password(self, action: Action) -> str | None:
        return password_detail(self.name, action)

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
