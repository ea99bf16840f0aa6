"""Explicit registry of target types. Modules import lazily: an LDAP-only repository never
imports boto3."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from jitpol.connectors.base import Connector
from jitpol.errors import PermanentTargetError

# type -> "module:Class"
CONNECTORS: dict[str, str] = {
    "postgres": "jitpol.connectors.postgres:PostgresConnector",
    "ldap": "jitpol.connectors.ldap:LdapConnector",
    "ssh": "jitpol.connectors.ssh:SshConnector",
    "local": "jitpol.connectors.ssh:LocalHostConnector",
    "aws": "jitpol.connectors.aws:AwsConnector",
    "azure": "jitpol.connectors.azure:AzureConnector",
    "gcp": "jitpol.connectors.gcp:GcpConnector",
    "okta": "jitpol.connectors.okta:OktaConnector",
    "fake": "jitpol.connectors.fake:FakeConnector",
}

# which models each target type supports (kept here so validation needs no SDK import)
MODELS_BY_TYPE: dict[str, frozenset[str]] = {
    "postgres": frozenset({"role-membership", "ephemeral-account", "credential-checkout"}),
    "ldap": frozenset({"role-membership", "ephemeral-account", "credential-checkout"}),
    "ssh": frozenset({"role-membership", "ephemeral-account", "sudo-rule", "credential-checkout"}),
    "local": frozenset({"role-membership", "ephemeral-account", "sudo-rule", "credential-checkout"}),
    "aws": frozenset({"idp-elevation"}),
    "azure": frozenset({"idp-elevation"}),
    "gcp": frozenset({"idp-elevation"}),
    "okta": frozenset({"idp-elevation"}),
    "fake": frozenset({"role-membership", "ephemeral-account", "credential-checkout"}),
}

# (type, model) pairs whose accounts log in with a password jitpol generates and delivers
NEEDS_SECRET: frozenset[tuple[str, str]] = frozenset({
    ("postgres", "ephemeral-account"), ("postgres", "credential-checkout"),
    ("ldap", "ephemeral-account"), ("ldap", "credential-checkout"),
    ("ssh", "credential-checkout"), ("local", "credential-checkout"),
    ("fake", "ephemeral-account"), ("fake", "credential-checkout"),
})

KNOWN_TYPES: frozenset[str] = frozenset(
    {"postgres", "ldap", "ssh", "local", "aws", "azure", "gcp", "okta", "fake"}
)


def _load(spec: str) -> Any:
    """The object a "module:attribute" spec names, importing the module only now."""
    module_name, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def create(name: str, type_: str, settings: Mapping[str, Any], env: Mapping[str, str]) -> Connector:
    """A connector for target `name`. Raises PermanentTargetError for an unsupported type."""
    spec = CONNECTORS.get(type_)
    if spec is None:
        raise PermanentTargetError(f"target {name}: type {type_!r} has no connector in this version")
    cls = _load(spec)
    connector: Connector = cls(name, settings, env)
    return connector


# type -> "module:function" checking a name that would reach the target; (value, what) -> None,
# raises InvalidInput. The modules must import without their SDK.
NAME_CHECKS: dict[str, str] = {
    "postgres": "jitpol.connectors.postgres:check_name",
    "ldap": "jitpol.connectors.ldap:check_name",
    "ssh": "jitpol.connectors.ssh:check_name",
    "local": "jitpol.connectors.ssh:check_name",
    "aws": "jitpol.connectors.aws:check_name",
    "azure": "jitpol.connectors.azure:check_name",
    "gcp": "jitpol.connectors.gcp:check_name",
    "okta": "jitpol.connectors.okta:check_name",
}


def name_check(type_: str) -> Callable[[Any, str], None] | None:
    spec = NAME_CHECKS.get(type_)
    if spec is None:
        return None
    fn: Callable[[Any, str], None] = _load(spec)
    return fn


# type -> "module:function" (principal, privilege) -> principal: the form observe reports, for
# targets where a person's account holds several identities (AWS: userId for Identity Center,
# iamUser for IAM groups). Must import without the SDK.
PRINCIPAL_FORMS: dict[str, str] = {
    "aws": "jitpol.connectors.aws:principal_for",
}


def principal_form(type_: str) -> Callable[[str, str], str] | None:
    spec = PRINCIPAL_FORMS.get(type_)
    if spec is None:
        return None
    fn: Callable[[str, str], str] = _load(spec)
    return fn


# type -> "module:function" (principal, target settings) -> the name an ephemeral account's holder
# logs in with, when it differs from the account's name (LDAP binds with a DN)
LOGIN_NAMES: dict[str, str] = {
    "ldap": "jitpol.connectors.ldap:login_name",
}


def login_name(type_: str, principal: str, settings: Mapping[str, Any]) -> str:
    spec = LOGIN_NAMES.get(type_)
    if spec is None:
        return principal
    fn: Callable[[str, Mapping[str, Any]], str] = _load(spec)
    return fn(principal, settings)
