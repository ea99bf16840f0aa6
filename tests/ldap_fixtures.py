"""LDAP fixtures: one throwaway slapd per pytest session (per xdist worker), a private subtree
per test. Import them into a test module with

    from tests.ldap_fixtures import *  # noqa: F403 (the fixtures: ldap_server, ldap_tls_server, ldap_sandbox)

    ldap_server   session: a started tools.throwaway_slapd.ThrowawaySlapd
    ldap_tls_server  session: another one with StartTLS and LDAPS (self-signed certificate)
    ldap_sandbox  function: an LdapSandbox, i.e. ou=t-<hex>,dc=example,dc=org with ou=people and
                  ou=groups below it, an admin connection, helpers to make people and groups, and
                  connector(...) for an LdapConnector whose base_dn is the sandbox. The subtree
                  is deleted afterwards, so tests on the shared server never see each other.

Without slapd the tests that need it are skipped on a laptop but FAIL when the CI environment
variable is set: in CI a test that needs a service must run.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ldap3
import pytest

from jitpol.connectors.ldap import LdapConnector, parse_dn
from tests.doubles.server import closed_port
from tests.services import serve

try:
    from tools.throwaway_slapd import SlapdNotFound, ThrowawaySlapd, ThrowawaySlapdError
except ModuleNotFoundError:
    # `tools` is a plain directory at the repository root, not an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.modules.pop("tools", None)
    from tools.throwaway_slapd import SlapdNotFound, ThrowawaySlapd, ThrowawaySlapdError

# `from tests.ldap_fixtures import *` brings exactly the fixtures (pytest finds them by name)
__all__ = ["ldap_sandbox", "ldap_server", "ldap_tls_server"]

PASSWORD_ENV = "LDAP_TEST_PASSWORD"
TARGET = "ldap-test"


def unreachable(**settings: object) -> LdapConnector:
    """A connector whose server does not exist: any I/O raises TargetUnavailable, so a
    PermanentTargetError proves the refusal came before the network."""
    base = {
        "url": f"ldap://127.0.0.1:{closed_port()}",
        "bind_dn": "cn=admin,dc=example,dc=org",
        "password_env": PASSWORD_ENV,
        "base_dn": "dc=example,dc=org",
    }
    return LdapConnector(TARGET, {**base, **settings}, {PASSWORD_ENV: "pw"})


@pytest.fixture(scope="session")
def ldap_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawaySlapd]:
    server = ThrowawaySlapd(tmp_path_factory.mktemp("slapd"))
    yield from serve(server, what="OpenLDAP", missing=SlapdNotFound, failed=ThrowawaySlapdError,
                     name="the throwaway slapd")


@pytest.fixture(scope="session")
def ldap_tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawaySlapd]:
    """A second session server that also speaks StartTLS and LDAPS (self-signed, `ca_file`)."""
    server = ThrowawaySlapd(tmp_path_factory.mktemp("slapd-tls"), tls=True)
    yield from serve(server, what="OpenLDAP", missing=SlapdNotFound, failed=ThrowawaySlapdError,
                     name="the throwaway slapd with TLS")


def admin_connection(server: ThrowawaySlapd) -> Any:
    """A bound rootdn ldap3.Connection that raises on any error (for arranging tests, not
    testing). Typed Any: the ldap3 stubs leave add/modify/delete untyped."""
    return ldap3.Connection(
        ldap3.Server(server.url, get_info=ldap3.NONE),
        server.bind_dn,
        server.password,
        auto_bind=True,
        raise_exceptions=True,
    )


def can_bind(server: ThrowawaySlapd, dn: str, password: str) -> bool:
    """Does a simple bind as `dn` with `password` succeed right now (a new connection)?"""
    conn = ldap3.Connection(ldap3.Server(server.url, get_info=ldap3.NONE), dn, password, raise_exceptions=False)
    try:
        return bool(conn.bind())
    finally:
        conn.unbind()


class LdapSandbox:
    """A private subtree on the shared server, and helpers that write to it as the rootdn."""

    def __init__(self, server: ThrowawaySlapd) -> None:
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

    # -- arranging --------------------------------------------------------------------------

    def person(self, uid: str, *, password: str | None = None, parent: str | None = None,
               description: str | None = None) -> str:  # fmt: skip
        """Create an inetOrgPerson `uid=<uid>` (escaped) below `parent` (default ou=people)."""
        from ldap3.utils.dn import escape_rdn

        dn = f"uid={escape_rdn(uid)},{parent or self.people}"
        attrs: dict[str, Any] = {"uid": uid, "cn": uid, "sn": uid}
        if password is not None:
            attrs["userPassword"] = password
        if description is not None:
            attrs["description"] = description
        self.admin.add(dn, ["inetOrgPerson"], attrs)
        return dn

    def group(self, cn: str, members: list[str]) -> str:
        """Create a groupOfNames `cn=<cn>` (escaped) in ou=groups with `members` (at least one:
        the schema demands it)."""
        from ldap3.utils.dn import escape_rdn

        dn = f"cn={escape_rdn(cn)},{self.groups}"
        self.admin.add(dn, ["groupOfNames"], {"cn": cn, "member": members})
        return dn

    def add_member(self, group: str, member: str) -> None:
        self.admin.modify(group, {"member": [(ldap3.MODIFY_ADD, [member])]})

    def members(self, group: str) -> set[str]:
        """The `member` values of `group` exactly as stored (lower-cased)."""
        entry = self.entry(group, ["member"])
        assert entry is not None, f"{group} does not exist"
        return {v.decode().lower() for v in entry["raw_attributes"].get("member", [])}

    def entry(self, dn: str, attributes: list[str]) -> dict[str, Any] | None:
        conn = ldap3.Connection(
            ldap3.Server(self.server.url, get_info=ldap3.NONE), self.server.bind_dn, self.server.password,
            auto_bind=True, raise_exceptions=False,
        )  # fmt: skip
        try:
            conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=attributes)
            entries = [r for r in conn.response or [] if r.get("type") == "searchResEntry"]
            return dict(entries[0]) if entries else None
        finally:
            conn.unbind()

    def can_bind(self, dn: str, password: str) -> bool:
        return can_bind(self.server, dn, password)

    # -- the connector under test -----------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        return {PASSWORD_ENV: self.server.password}

    def settings(self, **overrides: Any) -> dict[str, Any]:
        return {
            "url": self.server.url,
            "bind_dn": self.server.bind_dn,
            "password_env": PASSWORD_ENV,
            "base_dn": self.base_dn,
            **overrides,
        }

    def connector(self, env: dict[str, str] | None = None, **overrides: Any) -> LdapConnector:
        """An LdapConnector on the sandbox (closed when the test ends)."""
        connector = LdapConnector(TARGET, self.settings(**overrides), self.env if env is None else env)
        self._connectors.append(connector)
        return connector

    # -- teardown ---------------------------------------------------------------------------

    def remove(self) -> None:
        for connector in self._connectors:
            connector.close()
        self.admin.search(self.base_dn, "(objectClass=*)", search_scope=ldap3.SUBTREE, attributes=["1.1"])
        dns = [r["dn"] for r in self.admin.response or [] if r.get("type") == "searchResEntry"]
        # children first; a subtree delete control would need the tree-delete extension
        for dn in sorted(dns, key=lambda d: len(parse_dn(d, lenient=True)), reverse=True):
            self.admin.delete(dn)
        self.admin.unbind()


@pytest.fixture
def ldap_sandbox(ldap_server: ThrowawaySlapd) -> Iterator[LdapSandbox]:
    sandbox = LdapSandbox(ldap_server)
    try:
        yield sandbox
    finally:
        sandbox.remove()
