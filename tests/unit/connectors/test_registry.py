"""connectors.registry: one record per target type, lazy imports, optional capabilities."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from jitpol.clock import FixedClock
from jitpol.connectors import registry
from jitpol.connectors.base import MfaPush, SecretEscrow
from jitpol.errors import PermanentTargetError
from jitpol.model.assignment import Capabilities
from tests.helpers.repo import RepoBuilder

# every package of a target extra (pyproject's optional dependencies) and what they pull in
SDKS = ("psycopg", "ldap3", "paramiko", "boto3", "botocore", "azure", "google", "okta", "aiohttp", "requests",
        "grpc", "msal", "pymysql", "msgraph", "msgraph_core", "kiota_abstractions", "kiota_http", "httpx")

GUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
# one target of every type, settings as the config schema wants them
TARGETS: dict[str, dict[str, Any]] = {
    "pg": {"type": "postgres", "dsn_env": "PG_DSN"},
    "my": {"type": "mysql", "dsn_env": "MYSQL_DSN"},
    "dir": {"type": "ldap", "url": "ldaps://ldap.example.com", "bind_dn": "cn=jitpol,dc=example,dc=com",
            "password_env": "LDAP_PW", "base_dn": "dc=example,dc=com"},
    "box": {"type": "ssh", "host": "box.example.com", "user": "jitpol", "key_env": "SSH_KEY",
            "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"},
    "here": {"type": "local", "hostname": "here"},
    "cloud-aws": {"type": "aws", "region": "eu-west-1"},
    "cloud-azure": {"type": "azure", "subscription_id": GUID, "tenant_id": GUID},
    "cloud-entra": {"type": "entra", "tenant_id": GUID, "pim_groups": True},
    "cloud-gcp": {"type": "gcp"},
    "idp": {"type": "okta", "org_url": "https://acme.okta.com", "token_env": "OKTA_TOKEN"},
    "db": {"type": "fake", "state_file": "/nonexistent/fake.json"},
}
GRANTS: dict[str, tuple[str, list[Any]]] = {  # target -> (model, a role's grants)
    "pg": ("role-membership", ["app_read"]),
    "my": ("role-membership", ["app_read"]),
    "dir": ("role-membership", ["cn=ops,ou=groups,dc=example,dc=com"]),
    "box": ("role-membership", ["ops"]),
    "here": ("role-membership", ["ops"]),
    "cloud-aws": ("idp-elevation", [{"iamGroup": "ops"}]),
    "cloud-azure": ("idp-elevation", [{"scope": f"/subscriptions/{GUID}", "role": "Reader"}]),
    "cloud-entra": ("idp-elevation", [{"group": GUID}, {"directoryRole": "User Administrator", "scope": "/"}]),
    "cloud-gcp": ("idp-elevation", [{"resource": "projects/acme-prod", "role": "roles/cloudsql.viewer"}]),
    "idp": ("idp-elevation", ["00g1abcdEFGH2345ijk7"]),
    "db": ("role-membership", ["app_read"]),
}


# -- the records -------------------------------------------------------------------------------


def test_the_views_answer_what_the_parallel_tables_did() -> None:
    assert registry.KNOWN_TYPES == {"postgres", "ldap", "ssh", "local", "aws", "azure", "entra", "gcp", "okta", "fake",
                                     "mysql"}
    assert registry.CONNECTORS["local"] == "jitpol.connectors.ssh:LocalHostConnector"
    assert registry.MODELS_BY_TYPE["ssh"] == {"role-membership", "ephemeral-account", "sudo-rule",
                                              "credential-checkout"}
    assert registry.MODELS_BY_TYPE["okta"] == {"idp-elevation"}
    assert registry.NEEDS_SECRET == {
        ("postgres", "ephemeral-account"), ("postgres", "credential-checkout"),
        ("mysql", "ephemeral-account"), ("mysql", "credential-checkout"),
        ("ldap", "ephemeral-account"), ("ldap", "credential-checkout"),
        ("ssh", "credential-checkout"), ("local", "credential-checkout"),
        ("fake", "ephemeral-account"), ("fake", "credential-checkout"),
    }
    assert registry.record("nope") is None and registry.name_check("nope") is None
    assert registry.name_check("fake") is None and registry.principal_form("ldap") is None
    assert registry.login_name("postgres", "jit-alice-g", {}) == "jit-alice-g"
    assert registry.login_name("ldap", "jit-alice-g", {"base_dn": "dc=x"}) == "uid=jit-alice-g,ou=people,dc=x"
    assert registry.mfa_types("okta-push") == {"okta"} and registry.mfa_types("other") == set()
    assert registry.escrow_types() == {"aws"}


@pytest.mark.parametrize("name", sorted(registry.TYPES))
def test_each_record_describes_its_connector(name: str) -> None:
    rec = registry.TYPES[name]
    assert rec.name == name
    cls: Any = registry._load(rec.factory)
    assert cls.type == name
    if isinstance(inspect.getattr_static(cls, "capabilities"), Capabilities):
        assert cls.capabilities.models == rec.models
    assert rec.secret_models <= rec.models
    assert issubclass(cls, MfaPush) is bool(rec.mfa_factors)
    assert issubclass(cls, SecretEscrow) is rec.escrow
    assert ("clock" in inspect.signature(cls).parameters) is rec.takes_clock
    for spec in (rec.name_check, rec.principal_form, rec.login_name):
        if spec is not None:
            assert callable(registry._load(spec))


def test_every_type_has_its_settings_in_the_config_schema_and_no_other() -> None:
    schema = json.loads((Path(registry.__file__).parents[1] / "schemas" / registry.SETTINGS_SCHEMA).read_text())
    branches = schema["properties"]["spec"]["properties"]["targets"]["additionalProperties"]["allOf"]
    assert {b["if"]["properties"]["type"]["const"] for b in branches} == set(registry.TYPES)
    for name in registry.TYPES:
        settings = registry.settings_schema(name)
        assert settings is not None and "properties" in settings, name
    assert registry.settings_schema("nope") is None
    azure = registry.settings_schema("azure")
    assert azure is not None  # narrowing: every type has a settings schema (above)
    assert set(azure["properties"]) >= {"subscription_id", "tenant_id", "pim"}


def test_create_passes_the_run_clock_to_the_types_that_take_one() -> None:
    clock = FixedClock(datetime(1998, 3, 1, tzinfo=UTC))
    azure: Any = registry.create("cloud-azure", "azure", TARGETS["cloud-azure"], {}, clock=clock)
    assert azure._clock is clock  # PIM schedules start, and the five-minute floor counts, at the run's time
    fake = registry.create("db", "fake", TARGETS["db"], {}, clock=clock)  # takes none: not passed
    assert fake.type == "fake"
    with pytest.raises(PermanentTargetError, match="has no connector"):
        registry.create("x", "nope", {}, {})
    # a type that reads a time of its own has no wall-clock fallback: without the run's clock, no connector
    with pytest.raises(TypeError, match="needs the run's clock"):
        registry.create("cloud-azure", "azure", TARGETS["cloud-azure"], {})


# -- no SDK for validation ---------------------------------------------------------------------


def _repository(tmp_path: Path) -> Path:
    rb = RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()
    rb.config(TARGETS, admins=["team:admins"])
    for target, (model, grants) in GRANTS.items():
        rb.resource(f"r-{target}", target=target, model=model, roles={"use": {"grants": grants}})
    rb.person("carol", accounts={"postgres": "carol", "okta": "00ub0oNGTSWTBKOLGLNR", "azure": GUID, "entra": GUID,
                                 "mysql": "carol@%", "gcp": "user:carol@example.com", "aws": {"iamUser": "carol"}})
    return rb.root


def test_registry_and_validation_import_no_target_sdk(tmp_path: Path) -> None:
    """Importing the registry, reading every record and validating a repository with one target of
    every type (which runs every type's name checks) imports none of the target SDKs."""
    root = _repository(tmp_path)
    code = (
        "import sys, json; from pathlib import Path\n"
        "from jitpol.connectors import registry\n"
        "before = sorted(m for m in sys.modules if m.split('.')[0] in SDKS)\n"
        "for t in registry.TYPES: registry.name_check(t); registry.principal_form(t); registry.settings_schema(t)\n"
        "from jitpol.load.repository import load_repository\n"
        "result = load_repository(Path(ROOT))\n"
        "print(json.dumps({'before': before, 'after': sorted(m for m in sys.modules if m.split('.')[0] in SDKS),\n"
        "  'checked': sorted(m for m in sys.modules if m.startswith('jitpol.connectors.')),\n"
        "  'errors': [str(d) for d in result.diagnostics]}))\n"
    ).replace("SDKS", repr(SDKS)).replace("ROOT", repr(str(root)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(registry.__file__).parents[2])
    seen = json.loads(out.stdout)
    assert seen["before"] == [] and seen["after"] == [], seen
    assert seen["errors"] == []
    # the checks of every type ran (their modules were imported, without their SDKs)
    assert {f"jitpol.connectors.{m}" for m in ("postgres", "ldap", "ssh", "aws", "azure", "entra", "gcp", "okta")} \
        <= set(seen["checked"])
