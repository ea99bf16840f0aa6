"""Explicit registry of target types: one record per type. Modules are named as strings and
imported lazily: an LDAP-only repository never imports boto3, and validation (type, models,
names) imports no SDK at all."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from jitpol.clock import Clock
from jitpol.connectors.base import Connector
from jitpol.errors import PermanentTargetError

ROLE = "role-membership"
EPHEMERAL = "ephemeral-account"
SUDO = "sudo-rule"
CHECKOUT = "credential-checkout"
ELEVATION = "idp-elevation"

SETTINGS_SCHEMA = "config.schema.json"  # the file in jitpol/schemas that holds each type's settings


@dataclass(frozen=True, slots=True)
class TargetType:
    """Everything the rest of jitpol knows about one target type. Callables are "module:name"
    specs, imported only when used; the modules of `name_check`, `principal_form` and
    `login_name` import without their SDK.

    factory         the connector class (a ConnectorFactory)
    models          the access models it offers (validation checks resources against them)
    secret_models   models whose accounts log in with a password jitpol generates and delivers
    name_check      (value, what) -> None, raises InvalidInput: a name that would reach the target
                    (`what` is "principal" for a person's account, else a role's grants entry)
    principal_form  (principal, privilege) -> the principal as observe reports it, for targets
                    where a person's account holds several identities (AWS)
    login_name      (principal, settings) -> what an ephemeral account's holder logs in with, when
                    it differs from the account's name (LDAP binds with a DN)
    settings_schema where the settings of this type are described: the branch of
                    jitpol/schemas/config.schema.json whose `if` names this type (settings_schema())
    mfa_factors     MFA factors (a workflow's `mfa:`) its connector answers as base.MfaPush
    escrow          its connector holds secrets for other targets (base.SecretEscrow)
    takes_clock     its factory takes `clock=` (the run's time reaches the connector)
    """

    name: str
    factory: str
    models: frozenset[str]
    secret_models: frozenset[str] = frozenset()
    name_check: str | None = None
    principal_form: str | None = None
    login_name: str | None = None
    settings_schema: str = SETTINGS_SCHEMA
    mfa_factors: frozenset[str] = frozenset()
    escrow: bool = False
    takes_clock: bool = False


def _type(name: str, module: str, cls: str, models: frozenset[str], **more: Any) -> TargetType:
    return TargetType(name, f"jitpol.connectors.{module}:{cls}", models, **more)


_LINUX = frozenset({ROLE, EPHEMERAL, SUDO, CHECKOUT})
_DIRECTORY = frozenset({ROLE, EPHEMERAL, CHECKOUT})
_CLOUD = frozenset({ELEVATION})

TYPES: Mapping[str, TargetType] = {t.name: t for t in (
    _type("postgres", "postgres", "PostgresConnector", _DIRECTORY, secret_models=frozenset({EPHEMERAL, CHECKOUT}),
          name_check="jitpol.connectors.postgres:check_name"),
    _type("mysql", "mysql", "MysqlConnector", _DIRECTORY, secret_models=frozenset({EPHEMERAL, CHECKOUT}),
          name_check="jitpol.connectors.mysql:check_name"),
    _type("ldap", "ldap", "LdapConnector", _DIRECTORY, secret_models=frozenset({EPHEMERAL, CHECKOUT}),
          name_check="jitpol.connectors.ldap:check_name", login_name="jitpol.connectors.ldap:login_name"),
    _type("ssh", "ssh", "SshConnector", _LINUX, secret_models=frozenset({CHECKOUT}),
          name_check="jitpol.connectors.ssh:check_name"),
    _type("local", "ssh", "LocalHostConnector", _LINUX, secret_models=frozenset({CHECKOUT}),
          name_check="jitpol.connectors.ssh:check_name"),
    _type("aws", "aws", "AwsConnector", _CLOUD, name_check="jitpol.connectors.aws:check_name",
          principal_form="jitpol.connectors.aws:principal_for", escrow=True),
    _type("azure", "azure", "AzureConnector", _CLOUD, name_check="jitpol.connectors.azure:check_name",
          takes_clock=True),
    _type("entra", "entra", "EntraConnector", _CLOUD, name_check="jitpol.connectors.entra:check_name",
          takes_clock=True),
    _type("gcp", "gcp", "GcpConnector", _CLOUD, name_check="jitpol.connectors.gcp:check_name"),
    _type("okta", "okta", "OktaConnector", _CLOUD, name_check="jitpol.connectors.okta:check_name",
          mfa_factors=frozenset({"okta-push"})),
    _type("fake", "fake", "FakeConnector", _DIRECTORY, secret_models=frozenset({EPHEMERAL, CHECKOUT})),
)}

# views of TYPES for callers that ask one question of every type
KNOWN_TYPES: frozenset[str] = frozenset(TYPES)
CONNECTORS: Mapping[str, str] = {t.name: t.factory for t in TYPES.values()}
MODELS_BY_TYPE: Mapping[str, frozenset[str]] = {t.name: t.models for t in TYPES.values()}
# (type, model) pairs whose accounts log in with a password jitpol generates and delivers
NEEDS_SECRET: frozenset[tuple[str, str]] = frozenset(
    (t.name, model) for t in TYPES.values() for model in t.secret_models
)


def record(type_: str) -> TargetType | None:
    """The record of a target type; None for a type this version does not know."""
    return TYPES.get(type_)


def _load(spec: str) -> Any:
    """The object a "module:attribute" spec names, importing the module only now."""
    module_name, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def create(
    name: str, type_: str, settings: Mapping[str, Any], env: Mapping[str, str], *, clock: Clock | None = None
) -> Connector:
    """A connector for target `name`; `clock` (the run's time, which `--at` sets) reaches the
    types that read a time of their own (takes_clock), which need it: none of them reads the
    wall clock. Raises PermanentTargetError for an unsupported type, TypeError when a type that
    takes the clock is created without one (a caller's bug: the run always has its time)."""
    rec = TYPES.get(type_)
    if rec is None:
        raise PermanentTargetError(f"target {name}: type {type_!r} has no connector in this version")
    if rec.takes_clock and clock is None:
        raise TypeError(f"target {name}: type {type_} needs the run's clock: pass registry.create(clock=...)")
    cls = _load(rec.factory)
    extra = {"clock": clock} if rec.takes_clock else {}
    connector: Connector = cls(name, settings, env, **extra)
    return connector


def _hook(type_: str, field: str) -> Any:
    """The callable a record's `field` names, imported now; None when the type has none."""
    rec = TYPES.get(type_)
    spec: str | None = getattr(rec, field) if rec is not None else None
    return None if spec is None else _load(spec)


def name_check(type_: str) -> Callable[[Any, str], None] | None:
    fn: Callable[[Any, str], None] | None = _hook(type_, "name_check")
    return fn


def principal_form(type_: str) -> Callable[[str, str], str] | None:
    fn: Callable[[str, str], str] | None = _hook(type_, "principal_form")
    return fn


def login_name(type_: str, principal: str, settings: Mapping[str, Any]) -> str:
    fn: Callable[[str, Mapping[str, Any]], str] | None = _hook(type_, "login_name")
    return principal if fn is None else fn(principal, settings)


def mfa_types(factor: str) -> frozenset[str]:
    """The target types whose connectors answer `factor` (e.g. "okta-push") as base.MfaPush."""
    return frozenset(t.name for t in TYPES.values() if factor in t.mfa_factors)


def escrow_types() -> frozenset[str]:
    """The target types whose connectors hold secrets for other targets (base.SecretEscrow)."""
    return frozenset(t.name for t in TYPES.values() if t.escrow)


@cache
def _config_schema() -> Mapping[str, Any]:
    from importlib import resources  # here: importing it costs every command ~5 ms, and few need this

    data: Mapping[str, Any] = json.loads((resources.files("jitpol") / "schemas" / SETTINGS_SCHEMA).read_text())
    return data


def settings_schema(type_: str) -> Mapping[str, Any] | None:
    """The JSON Schema of a type's settings: the `then` of the config schema's branch for it."""
    rec = TYPES.get(type_)
    if rec is None:
        return None
    targets = _config_schema()["properties"]["spec"]["properties"]["targets"]["additionalProperties"]
    for branch in targets.get("allOf", ()):
        if branch.get("if", {}).get("properties", {}).get("type", {}).get("const") == rec.name:
            then: Mapping[str, Any] = branch["then"]
            return then
    return None
