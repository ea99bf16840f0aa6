"""Active Directory fixtures: one throwaway Samba AD domain controller per pytest session (per
xdist worker, each on its own loopback address), a private OU per test. Import them with

    from tests.ad_fixtures import *  # noqa: F403 (the fixtures: ad_server, ad_sandbox)

    ad_server   session: a started tools.throwaway_samba.ThrowawaySamba (realm EXAMPLE.TEST)
    ad_sandbox  function: an AdSandbox, i.e. ou=t-<hex>,dc=example,dc=test with ou=people and
                ou=groups below it, an admin connection over LDAPS, helpers to make users and
                groups and to try binds, and connector(...) for an LdapConnector with flavor
                active-directory whose base_dn is the sandbox. The test CA is trusted through
                SSL_CERT_FILE for the test. The OU is deleted afterwards (tree delete).

Without Samba (or without root) the tests that need it are skipped on a laptop but FAIL when
the CI environment variable is set: in CI a test that needs a service must run.
"""

from __future__ import annotations

import ssl
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ldap3
import pytest
from ldap3.core.exceptions import LDAPNoSuchObjectResult

from jitpol.connectors.ldap import LdapConnector
from tests.services import serve

try:
    from tools.throwaway_samba import SambaNotFound, ThrowawaySamba, ThrowawaySambaError
except ModuleNotFoundError:
    # `tools` is a plain directory at the repository root, not an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.modules.pop("tools", None)
    from tools.throwaway_samba import SambaNotFound, ThrowawaySamba, ThrowawaySambaError

__all__ = ["ad_sandbox", "ad_server"]

PASSWORD_ENV = "AD_TEST_PASSWORD"
TARGET = "ad-test"
TREE_DELETE_CONTROL = "1.2.840.113556.1.4.805"
NORMAL_ACCOUNT = 512
WRONG_PASSWORD = "data 52e"  # why AD refused a bind, in its message (533 would be: disabled)
EXPIRED = "data 701"


@pytest.fixture(scope="session")
def ad_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawaySamba]:
    server = ThrowawaySamba(tmp_path_factory.mktemp("samba"))
    yield from serve(
        server,
        what="Samba AD DC",
        missing=SambaNotFound,
        failed=ThrowawaySambaError,
        name="the throwaway Samba AD domain controller",
    )


def ad_password(value: str) -> bytes:
    """unicodePwd's wire form (for arranging tests)."""
    return f'"{value}"'.encode("utf-16-le")


def bind_result(server: ThrowawaySamba, dn: str, password: str, *, url: str | None = None) -> tuple[bool, str]:
    """(bound, the DC's message) for a simple bind as `dn` on a new LDAPS connection. AD's
    message says why a bind failed: `data 52e` wrong password, `data 701` account expired,
    `data 533` account disabled."""
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(server.ca_file))
    conn = ldap3.Connection(ldap3.Server(url or server.ldaps_url, tls=tls, get_info=ldap3.NONE), dn, password,
                            raise_exceptions=False)  # fmt: skip
    try:
        bound = bool(conn.bind())
        return bound, str((conn.result or {}).get("message") or "")
    finally:
        conn.unbind()


def admin_connection(server: ThrowawaySamba) -> Any:
    """A bound Administrator ldap3.Connection over LDAPS that raises on any error (for arranging
    tests, not testing). Typed Any: the ldap3 stubs leave add/modify/delete untyped."""
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(server.ca_file))
    return ldap3.Connection(ldap3.Server(server.ldaps_url, tls=tls, get_info=ldap3.NONE), server.bind_dn,
                            server.password, auto_bind=True, raise_exceptions=True)  # fmt: skip


class AdSandbox:
    """A private OU on the shared DC, and helpers that write to it as the Administrator."""

    def __init__(self, server: ThrowawaySamba) -> None:
        self.server = server
        self.admin = admin_connection(server)
        self.tag = uuid.uuid4().hex[:10]
        self.base_dn = f"ou=t-{self.tag},{server.base_dn}"
        self.people = f"ou=people,{self.base_dn}"
        self.groups = f"ou=groups,{self.base_dn}"
        self.admin.add(self.base_dn, ["organizationalUnit"], {"ou": f"t-{self.tag}"})
        self.admin.add(self.people, ["organizationalUnit"], {"ou": "people"})
        self.admin.add(self.groups, ["organizationalUnit"], {"ou": "groups"})
        self._connectors: list[LdapConnector] = []
        self._accounts = 0

    # -- arranging --------------------------------------------------------------------------

    def user(self, cn: str, *, password: str | None = None, parent: str | None = None,
             description: str | None = None) -> str:  # fmt: skip
        """Create an AD user `cn=<cn>` (escaped) below `parent` (default ou=people), enabled
        with `password`, else disabled. Its sAMAccountName (unique in the domain) is made from
        the sandbox's tag."""
        from ldap3.utils.dn import escape_rdn

        self._accounts += 1
        dn = f"cn={escape_rdn(cn)},{parent or self.people}"
        attrs: dict[str, Any] = {"sAMAccountName": f"u{self.tag}{self._accounts}"}
        if password is not None:
            attrs["unicodePwd"] = ad_password(password)
            attrs["userAccountControl"] = str(NORMAL_ACCOUNT)
        if description is not None:
            attrs["description"] = description
        self.admin.add(dn, ["top", "person", "organizationalPerson", "user"], attrs)
        return dn.lower()

    def group(self, cn: str, members: list[str] | None = None) -> str:
        """Create a global security group `cn=<cn>` (escaped) in ou=groups with `members` (AD
        groups may be empty)."""
        from ldap3.utils.dn import escape_rdn

        self._accounts += 1
        dn = f"cn={escape_rdn(cn)},{self.groups}"
        attrs: dict[str, Any] = {"sAMAccountName": f"g{self.tag}{self._accounts}"}
        if members:
            attrs["member"] = members
        self.admin.add(dn, ["top", "group"], attrs)
        return dn.lower()

    def members(self, group: str) -> set[str]:
        """The `member` values of `group` (lower-cased)."""
        entry = self.entry(group, ["member"])
        assert entry is not None, f"{group} does not exist"
        return {v.decode().lower() for v in entry["raw_attributes"].get("member", [])}

    def entry(self, dn: str, attributes: list[str]) -> dict[str, Any] | None:
        conn = admin_connection(self.server)
        try:
            conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=attributes)
            entries = [r for r in conn.response or [] if r.get("type") == "searchResEntry"]
            return dict(entries[0]) if entries else None
        except LDAPNoSuchObjectResult:
            return None
        finally:
            conn.unbind()

    def attribute(self, dn: str, name: str) -> list[str]:
        entry = self.entry(dn, [name])
        assert entry is not None, f"{dn} does not exist"
        for key, values in entry["raw_attributes"].items():
            if key.lower() == name.lower():
                return [v.decode() for v in values]
        return []

    def bind(self, dn: str, password: str) -> tuple[bool, str]:
        return bind_result(self.server, dn, password)

    def can_bind(self, dn: str, password: str) -> bool:
        return self.bind(dn, password)[0]

    # -- the connector under test -----------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        return {PASSWORD_ENV: self.server.password}

    def settings(self, **overrides: Any) -> dict[str, Any]:
        return {
            "url": self.server.ldaps_url,
            "bind_dn": self.server.bind_dn,
            "password_env": PASSWORD_ENV,
            "base_dn": self.base_dn,
            "flavor": "active-directory",
            **overrides,
        }

    def connector(self, env: dict[str, str] | None = None, **overrides: Any) -> LdapConnector:
        """An LdapConnector (flavor active-directory, LDAPS) on the sandbox, closed when the test
        ends."""
        connector = LdapConnector(TARGET, self.settings(**overrides), self.env if env is None else env)
        self._connectors.append(connector)
        return connector

    # -- teardown ---------------------------------------------------------------------------

    def remove(self) -> None:
        for connector in self._connectors:
            connector.close()
        self.admin.delete(self.base_dn, controls=[(TREE_DELETE_CONTROL, True, None)])
        self.admin.unbind()


def password_settings(sb: AdSandbox, applies_to: str, min_length: int) -> str:
    """A fine-grained password policy (PSO) for one account: the way to make the DC refuse a
    password for that account only. History 24 as the domain's default: AD's previous-password
    slot is the history's first entry (with no history, no previous password binds)."""
    dn = f"cn=pso-{sb.tag},cn=password settings container,cn=system,{sb.server.base_dn}"
    sb.admin.add(dn, ["msDS-PasswordSettings"], {
        "msDS-PasswordSettingsPrecedence": "1", "msDS-PasswordReversibleEncryptionEnabled": "FALSE",
        "msDS-PasswordHistoryLength": "24", "msDS-PasswordComplexityEnabled": "FALSE",
        "msDS-MinimumPasswordLength": str(min_length), "msDS-MinimumPasswordAge": "0",
        "msDS-MaximumPasswordAge": "-36288000000000", "msDS-LockoutThreshold": "0",
        "msDS-LockoutObservationWindow": "-18000000000", "msDS-LockoutDuration": "-18000000000",
        "msDS-PSOAppliesTo": applies_to,
    })  # fmt: skip
    return dn


@pytest.fixture
def ad_sandbox(ad_server: ThrowawaySamba, monkeypatch: pytest.MonkeyPatch) -> Iterator[AdSandbox]:
    # the connector verifies certificates against the default trust store: trust the test CA
    monkeypatch.setenv("SSL_CERT_FILE", str(ad_server.ca_file))
    sandbox = AdSandbox(ad_server)
    try:
        yield sandbox
    finally:
        sandbox.remove()
