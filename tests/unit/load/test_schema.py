"""The JSON Schemas in schemas/ and jitpol.load.schema.validate_document."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from jitpol.load import schema as schema_module
from jitpol.load.schema import (
    KINDS,
    PATTERN_HINTS,
    SchemaProblem,
    format_path,
    load_schema,
    schema_dir,
    validate_document,
)

ALICE_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOLUVkbrjktnWzaQrsHezSfZZ61o7m9mZipbfcCSYkXU alice@laptop"
FINGERPRINT = "SHA256:RJf5YfSM31R90EKsmSlpOHvWQa1YxpenZkCdlqPmdkg"
SIGNATURE = "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n"

# SPEC.md section 1, as the YAML loader hands them over
CONFIG: dict[str, Any] = {
    "apiVersion": "jitpol/v1",
    "kind": "Config",
    "metadata": {"name": "acme"},
    "spec": {
        "admins": ["team:security"],
        "timezone": "UTC",
        "targets": {
            "pg-prod": {"type": "postgres", "dsn_env": "PG_PROD_DSN"},
            "corp-ldap": {
                "type": "ldap",
                "url": "ldap://127.0.0.1:3890",
                "bind_dn": "cn=admin,dc=example,dc=org",
                "password_env": "LDAP_ADMIN_PASSWORD",
                "base_dn": "dc=example,dc=org",
            },
            "web-1": {
                "type": "ssh",
                "host": "127.0.0.1",
                "port": 2222,
                "user": "root",
                "key_env": "WEB1_SSH_KEY",
                "host_key": ALICE_KEY.removesuffix(" alice@laptop"),
            },
        },
    },
}
PERSON: dict[str, Any] = {
    "apiVersion": "jitpol/v1",
    "kind": "Person",
    "metadata": {"name": "alice"},
    "spec": {
        "email": "alice@example.com",
        "keys": [ALICE_KEY],
        "accounts": {"postgres": "alice", "ldap": "uid=alice,ou=people,dc=example,dc=org", "ssh": "alice"},
    },
}
TEAM: dict[str, Any] = {
    "apiVersion": "jitpol/v1",
    "kind": "Team",
    "metadata": {"name": "sre"},
    "spec": {"members": ["alice", "bob", "carol"]},
}
WORKFLOW: dict[str, Any] = {
    "apiVersion": "jitpol/v1",
    "kind": "Workflow",
    "metadata": {"name": "prod"},
    "spec": {
        "requesters": ["team:sre"],
        "approvals": {"required": 1, "approvers": ["team:sre-leads"]},
        "mfa": "none",
        "maxDuration": "4h",
        "schedule": {
            "timezone": "Europe/Berlin",
            "windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00"}],
        },
        "checkout": "shared",
        "justification": {"required": True, "pattern": "^(INC|CHG)-[0-9]+"},
    },
}
RESOURCE: dict[str, Any] = {
    "apiVersion": "jitpol/v1",
    "kind": "Resource",
    "metadata": {"name": "prod-db"},
    "spec": {
        "target": "pg-prod",
        "workflow": "prod",
        "model": "role-membership",
        "roles": {
            "read": {"grants": ["app_readonly"]},
            "write": {"grants": ["app_readonly", "app_writer"]},
        },
    },
}
GRANT: dict[str, Any] = {
    "apiVersion": "jitpol/v1",
    "kind": "Grant",
    "metadata": {"name": "alice-prod-db-inc-4711"},
    "spec": {
        "requester": "alice",
        "resource": "prod-db",
        "role": "read",
        "window": {"start": "1998-11-30T10:00:00Z", "duration": "2h"},
        "justification": "INC-4711 slow checkout queries",
        "approvals": [{"by": "bob", "key": FINGERPRINT, "signature": SIGNATURE}],
        "revoke": False,
    },
}
EXAMPLES = {
    "PolicyApproval": {
        "apiVersion": "jitpol/v1",
        "kind": "PolicyApproval",
        "metadata": {"name": "policy-3f9c0a1b2d4e-carol"},
        "spec": {"digest": "3f9c0a1b2d4e" + "0" * 52, "by": "carol", "key": "SHA256:" + "A" * 43,
                 "signature": "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n"},
    },
    "Config": CONFIG,
    "Person": PERSON,
    "Team": TEAM,
    "Workflow": WORKFLOW,
    "Resource": RESOURCE,
    "Grant": GRANT,
}


def doc(example: dict[str, Any], **spec: Any) -> dict[str, Any]:
    """A deep copy of `example` with spec keys replaced (a value of DROP removes the key)."""
    out = copy.deepcopy(example)
    for key, value in spec.items():
        if value is DROP:
            out["spec"].pop(key, None)
        else:
            out["spec"][key] = value
    return out


DROP = object()


def messages(data: Any) -> list[str]:
    return [p.message for p in validate_document(data)]


def paths(data: Any) -> list[tuple[str | int, ...]]:
    return [p.path for p in validate_document(data)]


def schema_files() -> list[Path]:
    return sorted(schema_dir().glob("*.schema.json"))


def walk(node: Any, trail: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield trail, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, (*trail, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, (*trail, index))


# ------------------------------------------------------------------------------- the schema files


def test_one_schema_file_per_kind() -> None:
    assert [p.name for p in schema_files()] == sorted(f"{k.lower()}.schema.json" for k in KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_schema_is_valid_draft_2020_12(kind: str) -> None:
    schema = load_schema(kind)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"https://jitpol.dev/schemas/{kind.lower()}.schema.json"
    assert schema["title"] and schema["description"]
    assert schema["properties"]["kind"]["const"] == kind
    assert schema["properties"]["apiVersion"]["const"] == "jitpol/v1"
    assert "$schema" not in schema["properties"]  # YAML files use the yaml-language-server comment


@pytest.mark.parametrize("kind", KINDS)
def test_every_property_has_a_description(kind: str) -> None:
    """The reference doc is generated from these descriptions."""
    missing = []
    for trail, node in walk(dict(load_schema(kind))):
        if trail and trail[-1] == "properties" and isinstance(node, dict) and "if" not in trail:
            missing += [(*trail, name) for name, sub in node.items() if not sub.get("description")]
    assert missing == []


@pytest.mark.parametrize("kind", KINDS)
def test_every_object_refuses_unknown_keys(kind: str) -> None:
    """additionalProperties wherever properties are listed; conditions (if/then/else) refine an
    object defined elsewhere, and targets close each type's branch instead (tested below)."""
    open_objects = []
    for trail, node in walk(dict(load_schema(kind))):
        if (
            isinstance(node, dict)
            and "properties" in node
            and trail[-1:] not in (("if",), ("then",), ("else",))
        ):
            if "additionalProperties" not in node and trail[-2:] != ("targets", "additionalProperties"):
                open_objects.append(trail)
    assert open_objects == []


def test_each_target_type_branch_is_closed() -> None:
    target = load_schema("Config")["properties"]["spec"]["properties"]["targets"]["additionalProperties"]
    types = target["properties"]["type"]["enum"]
    branches = {b["if"]["properties"]["type"]["const"]: b["then"] for b in target["allOf"]}
    assert sorted(branches) == sorted(types)
    for branch in branches.values():
        assert branch["additionalProperties"] is False
        assert {"type", "description"} <= set(branch["properties"])
        assert all(
            name.endswith("_env") for name in branch["properties"] if "secret" in name or "password" in name
        )


def test_shared_definitions_are_identical_across_files() -> None:
    seen: dict[str, Any] = {}
    for path in schema_files():
        for name, definition in json.loads(path.read_text())["$defs"].items():
            assert seen.setdefault(name, definition) == definition, f"$defs/{name} differs in {path.name}"


def test_every_pattern_has_a_friendly_hint() -> None:
    patterns = {
        node["pattern"]
        for path in schema_files()
        for _, node in walk(json.loads(path.read_text()))
        if isinstance(node, dict) and isinstance(node.get("pattern"), str)
    }
    assert patterns - set(PATTERN_HINTS) == set()


def test_format_checks_are_active() -> None:
    """jsonschema ignores `format` without a checker, and skips formats whose package is missing."""
    checker = Draft202012Validator.FORMAT_CHECKER
    assert {"date-time", "email", "uri"} <= set(checker.checkers)
    assert not checker.conforms("1998-11-30T10:00:00", "date-time")
    assert not checker.conforms("1998-02-30T10:00:00Z", "date-time")
    assert checker.conforms("1998-11-30T10:00:00Z", "date-time")
    assert not checker.conforms("alice.example.com", "email")
    assert checker.conforms("alice@example.com", "email")
    assert not checker.conforms("not a url", "uri")
    for kind in KINDS:
        assert getattr(schema_module._validator(kind), "format_checker", None) is checker


def test_schema_dir_honours_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = schema_dir()
    assert (real / "grant.schema.json").is_file()
    monkeypatch.setenv("JITPOL_SCHEMA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="JITPOL_SCHEMA_DIR"):
        schema_dir()
    (tmp_path / "config.schema.json").write_text("{}")
    assert schema_dir() == tmp_path


# -------------------------------------------------------------------------------- valid documents


@pytest.mark.parametrize("kind", KINDS)
def test_spec_examples_are_valid(kind: str) -> None:
    assert validate_document(EXAMPLES[kind]) == []


def test_every_target_type_with_all_its_fields_is_valid() -> None:
    targets = {
        "pg": {
            "type": "postgres",
            "dsn_env": "PG_DSN",
            "terminate_sessions": True,
            "connect_timeout": 5,
            "description": "orders database",
        },
        "ad": {
            "type": "ldap",
            "url": "ldaps://ad.example.org",
            "bind_dn": "cn=jitpol,dc=example,dc=org",
            "password_env": "AD_PASSWORD",
            "base_dn": "dc=example,dc=org",
            "flavor": "active-directory",
            "start_tls": False,
            "people_base": "ou=jitpol,dc=example,dc=org",
        },
        "web": {
            "type": "ssh",
            "host": "web-1.internal",
            "user": "root",
            "key_env": "WEB_KEY",
            "host_key": ALICE_KEY,
            "hostname": "web-1",
        },
        "aws": {
            "type": "aws",
            "region": "eu-central-1",
            "endpoint_url": "http://127.0.0.1:5000",
            "identity_store_id": "d-1234567890",
            "instance_arn": "arn:aws:sso:::instance/ssoins-1234567890abcdef",
        },
        "az": {
            "type": "azure",
            "subscription_id": "00000000-0000-0000-0000-000000000000",
            "tenant_id": "contoso.onmicrosoft.com",
            "base_url": "https://127.0.0.1:8443",
            "client_id_env": "AZURE_CLIENT_ID",
            "client_secret_env": "AZURE_CLIENT_SECRET",
        },
        "gcp": {"type": "gcp", "api_endpoint": "http://127.0.0.1:8085", "credentials_env": "GCP_SA_KEY"},
        "gcp-default": {"type": "gcp"},
        "okta": {"type": "okta", "org_url": "https://acme.okta.com", "token_env": "OKTA_API_TOKEN"},
        "fake": {"type": "fake", "state_file": "/tmp/fake.json"},
    }
    config = doc(
        CONFIG,
        targets=targets,
        git={
            "host": "github",
            "api_url": "https://api.github.com",
            "repository": "acme/access",
            "token_env": "GITHUB_TOKEN",
        },
        ledger={"dir": "audit", "file": "ledger.jsonl"},
    )
    config["metadata"].update(
        description="ACME policy", labels={"owner": "platform", "app.kubernetes.io/x": "y"}
    )
    assert validate_document(config) == []


def test_extended_documents_are_valid() -> None:
    person = doc(
        PERSON,
        accounts={
            "aws": {"userId": "9067-abc", "iamUser": "alice"},
            "github": "alice-gh",
            "pg-prod": "alice_admin",
        },
        disabled=False,
    )
    sk_key = "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t alice@yubikey"
    person["spec"]["keys"].append(sk_key)
    sudo = doc(
        RESOURCE,
        target="web-1",
        model="sudo-rule",
        exclusive=True,
        options={"anything": [1, 2]},
        roles={
            "nginx": {
                "grants": [{"command": "/usr/bin/systemctl restart nginx", "runAs": "root"}],
                "description": "restart nginx",
            }
        },
    )
    aws = doc(
        RESOURCE,
        model="idp-elevation",
        roles={"admin": {"grants": [{"account": 123456789012, "permissionSet": "arn:aws:sso:::ps/x"}]}},
    )
    checkout = doc(RESOURCE, model="credential-checkout", account="app_admin", roles=DROP)
    grant_end = doc(
        GRANT,
        window={"start": "1998-11-30T11:00:00+01:00", "end": "1998-11-30T13:00:00.5+01:00"},
        breakglass=True,
        role=DROP,
        approvals=[],
    )
    workflow = doc(
        WORKFLOW,
        approvals={"required": 0},
        mfa="security-key",
        checkout="exclusive",
        schedule={"windows": [{"days": ["sat"], "start": "22:00", "end": "24:00"}]},
    )
    team = doc(TEAM, members=[], description="nobody yet")
    for document in (person, sudo, aws, checkout, grant_end, workflow, team):
        assert validate_document(document) == [], document


# ------------------------------------------------------------------------------------ unknown keys


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda d: d.update(extra=1), ("extra",)),
        (lambda d: d.update({"$schema": "https://jitpol.dev/schemas/grant.schema.json"}), ("$schema",)),
        (lambda d: d["metadata"].update(namespace="x"), ("metadata", "namespace")),
        (lambda d: d["spec"].update(roles=["read"]), ("spec", "roles")),
        (lambda d: d["spec"]["window"].update(tz="UTC"), ("spec", "window", "tz")),
        (lambda d: d["spec"]["approvals"][0].update(at="now"), ("spec", "approvals", 0, "at")),
    ],
)
def test_unknown_keys_are_refused_at_every_level(mutate: Any, path: tuple[str | int, ...]) -> None:
    grant = copy.deepcopy(GRANT)
    mutate(grant)
    problems = validate_document(grant)
    assert [p.path for p in problems] == [path]
    assert f"unknown field {path[-1]!r} (allowed: " in problems[0].message


@pytest.mark.parametrize(
    ("document", "path"),
    [
        (doc(CONFIG, ledger={"dir": "audit", "rotate": True}), ("spec", "ledger", "rotate")),
        (doc(CONFIG, git={"host": "github", "org": "acme"}), ("spec", "git", "org")),
        (doc(PERSON, email="a@example.com", phone="123"), ("spec", "phone")),
        (doc(TEAM, leads=["alice"]), ("spec", "leads")),
        (doc(WORKFLOW, approvals={"required": 0, "quorum": 2}), ("spec", "approvals", "quorum")),
        (
            doc(
                WORKFLOW,
                schedule={"windows": [{"days": ["mon"], "start": "08:00", "end": "09:00", "tz": "UTC"}]},
            ),
            ("spec", "schedule", "windows", 0, "tz"),
        ),
        (doc(WORKFLOW, justification={"required": True, "min": 3}), ("spec", "justification", "min")),
        (
            doc(RESOURCE, roles={"read": {"grants": ["x"], "members": ["alice"]}}),
            ("spec", "roles", "read", "members"),
        ),
    ],
)
def test_unknown_nested_keys_are_refused(document: dict[str, Any], path: tuple[str | int, ...]) -> None:
    assert paths(document) == [path]


def test_unknown_field_message_lists_allowed_fields() -> None:
    grant = doc(GRANT, requestor="alice")
    [problem] = validate_document(grant)
    assert problem == SchemaProblem(
        ("spec", "requestor"),
        "spec.requestor: unknown field 'requestor' (allowed: approvals, breakglass, justification, "
        "requester, resource, revoke, role, window); did you mean 'requester'?",
        at_key=True,
    )


# ------------------------------------------------------------------------------------ names, refs


@pytest.mark.parametrize("name", ["Bad_Name", "-lead", "", "a" * 64, "alice\n", "al ice", "ålice", 7])
def test_bad_names_are_refused(name: Any) -> None:
    person = copy.deepcopy(PERSON)
    person["metadata"]["name"] = name
    problems = validate_document(person)
    assert [p.path for p in problems] == [("metadata", "name")]


def test_bad_name_message_explains_the_rule() -> None:
    person = copy.deepcopy(PERSON)
    person["metadata"]["name"] = "Bad_Name"
    assert messages(person) == [
        "metadata.name: 'Bad_Name' must be lowercase letters, digits and '-' (at most 63), "
        "starting with a letter or digit"
    ]


@pytest.mark.parametrize("name", ["a", "0", "prod-db", "a" * 63, "x-1-y"])
def test_good_names_pass(name: str) -> None:
    team = doc(TEAM, members=[name])
    team["metadata"]["name"] = name
    assert validate_document(team) == []


@pytest.mark.parametrize(
    "ref", ["sre", "team:", "group:sre", "team:SRE", "person:alice ", "Team:sre", "team:sre\n"]
)
def test_bad_refs_are_refused(ref: str) -> None:
    workflow = doc(WORKFLOW, requesters=["team:sre", ref])
    problems = validate_document(workflow)
    assert [p.path for p in problems] == [("spec", "requesters", 1)]
    assert "must be a reference like person:alice or team:sre" in problems[0].message


def test_member_list_entries_must_be_names_and_unique() -> None:
    assert paths(doc(TEAM, members=["alice", "team:sre"])) == [("spec", "members", 1)]
    assert messages(doc(TEAM, members=["alice", "alice"])) == ["spec.members: lists 'alice' more than once"]


def test_target_names_are_checked_as_keys() -> None:
    config = copy.deepcopy(CONFIG)
    config["spec"]["targets"]["PG_Prod"] = {"type": "fake", "state_file": "x"}
    problems = validate_document(config)
    assert [p.path for p in problems] == [("spec", "targets", "PG_Prod")]
    assert problems[0].message.startswith("spec.targets.PG_Prod: key 'PG_Prod' must be lowercase")


def test_non_string_keys_are_refused() -> None:
    config = copy.deepcopy(CONFIG)
    config["spec"]["targets"][5] = {"type": "fake", "state_file": "x"}
    assert messages(config) == ["spec.targets.5: key 5 must be a string (got a whole number; quote it)"]


# ------------------------------------------------------------------------------- durations, times


@pytest.mark.parametrize("duration", ["90m", "4h", "1h30m", "7d", "45s", "1d2h3m4s", "999999d"])
def test_good_durations_pass(duration: str) -> None:
    assert validate_document(doc(WORKFLOW, maxDuration=duration)) == []


@pytest.mark.parametrize(
    "duration", ["", "4", "h", "4x", "1m1h", "4h4h", "-1h", "1.5h", " 4h", "4h\n", "4H", "1000000d", 4, None]
)
def test_bad_durations_are_refused(duration: Any) -> None:
    problems = validate_document(doc(WORKFLOW, maxDuration=duration))
    assert {p.path for p in problems} == {("spec", "maxDuration")}


def test_duration_message_gives_examples() -> None:
    assert messages(doc(GRANT, window={"start": "1998-11-30T10:00:00Z", "duration": "2 hours"})) == [
        "spec.window.duration: '2 hours' must be a duration like 90m, 4h, 1h30m or 7d "
        "(units d, h, m, s; largest first)"
    ]


@pytest.mark.parametrize(
    "start",
    [
        "1998-11-30T10:00:00",
        "1998-11-30",
        "1998-11-30 10:00:00Z",
        "1998-02-30T10:00:00Z",
        "1998-11-30T25:00:00Z",
        "1998-11-30T10:00:00+0100",
        "tomorrow",
    ],
)
def test_datetimes_need_an_offset_and_a_real_date(start: str) -> None:
    problems = validate_document(doc(GRANT, window={"start": start, "duration": "1h"}))
    assert {p.path for p in problems} == {("spec", "window", "start")}
    assert all("with an offset" in p.message for p in problems)


def test_datetime_check_is_the_format_checker_not_only_the_pattern() -> None:
    # February 30th has the right shape: only the date-time format check can refuse it
    [problem] = validate_document(doc(GRANT, window={"start": "1998-02-30T10:00:00Z", "duration": "1h"}))
    assert problem.path == ("spec", "window", "start")


@pytest.mark.parametrize(
    "start", ["1998-11-30T10:00:00Z", "1998-11-30T10:00:00+01:00", "1998-11-30T10:00:00.123-05:30"]
)
def test_datetimes_with_offsets_pass(start: str) -> None:
    assert validate_document(doc(GRANT, window={"start": start, "end": "1998-12-01T00:00:00Z"})) == []


@pytest.mark.parametrize(
    ("start", "end", "bad"),
    [
        ("08:00", "18:00", []),
        ("00:00", "24:00", []),
        ("23:59", "00:00", []),
        ("24:00", "18:00", ["start"]),
        ("8:00", "18:00", ["start"]),
        ("08:00", "24:01", ["end"]),
        ("08:60", "1800", ["end", "start"]),
    ],
)
def test_schedule_times(start: str, end: str, bad: list[str]) -> None:
    window = {"days": ["mon"], "start": start, "end": end}
    workflow = doc(WORKFLOW, schedule={"timezone": "UTC", "windows": [window]})
    assert paths(workflow) == [("spec", "schedule", "windows", 0, key) for key in bad]


def test_schedule_days_must_be_weekdays() -> None:
    workflow = doc(WORKFLOW, schedule={"windows": [{"days": ["monday"], "start": "08:00", "end": "18:00"}]})
    assert messages(workflow) == [
        "spec.schedule.windows[0].days[0]: must be one of mon, tue, wed, thu, fri, sat, sun (got 'monday')"
    ]


# ------------------------------------------------------------------------------------------ email


@pytest.mark.parametrize("email", ["alice", "alice@", "@example.com", "alice example@x.org", "alice@example"])
def test_email_is_checked(email: str) -> None:
    problems = validate_document(doc(PERSON, email=email))
    assert {p.path for p in problems} == {("spec", "email")}
    assert all("email address" in p.message for p in problems)


# ------------------------------------------------------------------------------------------- window


def test_window_with_both_duration_and_end_is_refused() -> None:
    window = {"start": "1998-11-30T10:00:00Z", "duration": "2h", "end": "1998-11-30T12:00:00Z"}
    assert validate_document(doc(GRANT, window=window)) == [
        SchemaProblem(
            ("spec", "window"),
            "spec.window: has 'duration' and 'end'; needs exactly one of 'duration' or 'end'",
        )
    ]


def test_window_with_neither_duration_nor_end_is_refused() -> None:
    assert validate_document(doc(GRANT, window={"start": "1998-11-30T10:00:00Z"})) == [
        SchemaProblem(("spec", "window"), "spec.window: needs exactly one of 'duration' or 'end'")
    ]


def test_window_without_start_is_refused() -> None:
    assert messages(doc(GRANT, window={"duration": "1h"})) == ["spec.window: missing required field 'start'"]


# --------------------------------------------------------------------------------- conditional rules


def test_credential_checkout_needs_an_account() -> None:
    resource = doc(RESOURCE, model="credential-checkout")
    assert validate_document(resource) == [
        SchemaProblem(
            ("spec",), "spec: missing required field 'account' (when 'model' is 'credential-checkout')"
        )
    ]


def test_other_models_need_roles() -> None:
    resource = doc(RESOURCE, roles=DROP)
    assert messages(resource) == [
        "spec: missing required field 'roles' (unless 'model' is 'credential-checkout')"
    ]
    assert paths(doc(RESOURCE, roles={})) == [("spec", "roles")]


def test_approvals_required_needs_approvers() -> None:
    without = doc(WORKFLOW, approvals={"required": 1})
    assert validate_document(without) == [
        SchemaProblem(
            ("spec", "approvals"),
            "spec.approvals: missing required field 'approvers' (when 'required' is 1 or more)",
        )
    ]
    empty = doc(WORKFLOW, approvals={"required": 2, "approvers": []})
    assert paths(empty) == [("spec", "approvals", "approvers")]
    assert validate_document(doc(WORKFLOW, approvals={"required": 0})) == []


@pytest.mark.parametrize("required", [-1, 11, "1", 1.5, True])
def test_approvals_required_is_a_small_whole_number(required: Any) -> None:
    workflow = doc(WORKFLOW, approvals={"required": required, "approvers": ["team:sre-leads"]})
    assert paths(workflow) == [("spec", "approvals", "required")]


def test_grant_entries_are_names_or_mappings() -> None:
    resource = doc(RESOURCE, roles={"read": {"grants": ["ok", 5, "", {"a": [1]}, "x" * 513, {}]}})
    assert messages(resource) == [
        "spec.roles.read.grants[1]: must be a string or a mapping (got a whole number)",
        "spec.roles.read.grants[2]: must not be empty",
        "spec.roles.read.grants[3].a: must be a string or a whole number (got a list)",
        "spec.roles.read.grants[4]: is too long: at most 512 characters (got 513)",
        "spec.roles.read.grants[5]: must not be empty",
    ]


def test_person_accounts_are_strings_or_string_mappings() -> None:
    person = doc(
        PERSON, accounts={"postgres": "", "ssh": "al\nice", "aws": {"userId": 5}, "ldap": ["x"], "Okta": "x"}
    )
    assert validate_document(person) == [
        SchemaProblem(
            ("spec", "accounts", "Okta"),
            "spec.accounts.Okta: key 'Okta' must be lowercase letters, "
            "digits and '-' (at most 63), starting with a letter or digit",
            at_key=True,
        ),
        SchemaProblem(
            ("spec", "accounts", "aws", "userId"),
            "spec.accounts.aws.userId: must be a string (got a whole number)",
        ),
        SchemaProblem(
            ("spec", "accounts", "ldap"), "spec.accounts.ldap: must be a string or a mapping (got a list)"
        ),
        SchemaProblem(("spec", "accounts", "postgres"), "spec.accounts.postgres: must not be empty"),
        SchemaProblem(
            ("spec", "accounts", "ssh"),
            "spec.accounts.ssh: 'al\\nice' must not contain control characters (newlines, tabs, ...)",
        ),
    ]


@pytest.mark.parametrize(
    "key",
    [
        "ssh-dss AAAAB3NzaC1kc3MAAACBAP alice",
        "ssh-ed25519",
        "ssh-ed25519 AAAA!bad",
        "ssh-ed25519 AAAAC3Nz\nssh-rsa AAAAB3Nz",
        "AAAAC3NzaC1lZDI1NTE5AAAAIOLUVkbrjktnWzaQrsHezSfZZ61o7m9mZipbfcCSYkXU",
    ],
)
def test_bad_ssh_keys_are_refused(key: str) -> None:
    assert paths(doc(PERSON, keys=[ALICE_KEY, key])) == [("spec", "keys", 1)]


def test_duplicate_keys_are_refused() -> None:
    assert paths(doc(PERSON, keys=[ALICE_KEY, ALICE_KEY])) == [("spec", "keys")]


def test_approval_entries_are_checked() -> None:
    approvals = [
        {"by": "bob", "key": "SHA256:short", "signature": "hello"},
        {"by": "Bob", "key": FINGERPRINT},
    ]
    assert paths(doc(GRANT, approvals=approvals)) == [
        ("spec", "approvals", 0, "key"),
        ("spec", "approvals", 0, "signature"),
        ("spec", "approvals", 1),
        ("spec", "approvals", 1, "by"),
    ]


# ------------------------------------------------------------------------------ per-type target fields


def config_with(target: dict[str, Any]) -> dict[str, Any]:
    return doc(CONFIG, targets={"t": target})


def test_postgres_target_refuses_ldap_fields() -> None:
    problems = validate_document(config_with({"type": "postgres", "dsn_env": "PG", "url": "ldap://x"}))
    assert problems == [
        SchemaProblem(
            ("spec", "targets", "t", "url"),
            "spec.targets.t.url: unknown field 'url' (allowed when 'type' is 'postgres': connect_timeout, "
            "description, dsn_env, grantor_role, reassign_to, terminate_sessions, type)",
            at_key=True,
        )
    ]


def test_ldap_target_needs_base_dn() -> None:
    target = {"type": "ldap", "url": "ldap://x", "bind_dn": "cn=a", "password_env": "LDAP_PW"}
    assert messages(config_with(target)) == [
        "spec.targets.t: missing required field 'base_dn' (when 'type' is 'ldap')"
    ]


def test_ldap_url_scheme_and_flavor_are_checked() -> None:
    target = {
        "type": "ldap",
        "url": "http://x",
        "bind_dn": "cn=a",
        "password_env": "LDAP_PW",
        "base_dn": "dc=x",
        "flavor": "389ds",
    }
    assert paths(config_with(target)) == [("spec", "targets", "t", "flavor"), ("spec", "targets", "t", "url")]


def test_literal_secrets_are_refused_without_repeating_them() -> None:
    secret = "hunter2-very-secret"
    target = {
        "type": "ldap",
        "url": "ldap://x",
        "bind_dn": "cn=a",
        "password_env": "LDAP_PW",
        "base_dn": "dc=x",
        "password": secret,
    }
    problems = validate_document(config_with(target))
    assert [p.path for p in problems] == [("spec", "targets", "t", "password")]
    assert "secrets are never written in the policy" in problems[0].message
    assert secret not in problems[0].message


def test_secret_in_an_env_field_is_not_repeated() -> None:
    dsn = "postgresql://jitpol:s3cr3t@db/postgres"
    problems = validate_document(config_with({"type": "postgres", "dsn_env": dsn}))
    assert [p.path for p in problems] == [("spec", "targets", "t", "dsn_env")]
    assert "environment variable" in problems[0].message
    assert "s3cr3t" not in problems[0].message
    git = validate_document(doc(CONFIG, git={"token_env": "ghp_abcdefSECRET"}))
    assert [p.path for p in git] == [("spec", "git", "token_env")] and "SECRET" not in git[0].message


def test_unknown_target_type_is_refused() -> None:
    assert messages(config_with({"type": "oracle", "dsn_env": "X"})) == [
        "spec.targets.t.type: must be one of postgres, mysql, ldap, ssh, local, aws, azure, entra, gcp, okta, fake "
        "(got 'oracle')"
    ]
    assert messages(config_with({"dsn_env": "X"})) == ["spec.targets.t: missing required field 'type'"]


@pytest.mark.parametrize(
    ("target", "bad"),
    [
        ({"type": "ssh", "host": "h", "user": "root", "key_env": "K"}, "host_key"),
        (
            {"type": "ssh", "host": "h", "user": "root", "key_env": "K", "host_key": ALICE_KEY, "port": 0},
            "port",
        ),
        ({"type": "local"}, "hostname"),
        ({"type": "local", "hostname": "web-1", "host": "web-1"}, "host"),
        ({"type": "local", "hostname": "-bad"}, "hostname"),
        ({"type": "okta", "org_url": "acme.okta.com", "token_env": "T"}, "org_url"),
        ({"type": "aws", "region": "Frankfurt"}, "region"),
        ({"type": "azure", "subscription_id": "sub-1", "tenant_id": "t"}, "subscription_id"),
        ({"type": "fake"}, "state_file"),
        ({"type": "postgres", "dsn_env": "PG", "connect_timeout": 301}, "connect_timeout"),
    ],
)
def test_per_type_target_fields(target: dict[str, Any], bad: str) -> None:
    problems = validate_document(config_with(target))
    assert len(problems) == 1
    assert bad in problems[0].message or problems[0].path[-1] == bad


def test_config_needs_admins() -> None:
    assert messages(doc(CONFIG, admins=[])) == ["spec.admins: must list at least one entry"]
    assert messages(doc(CONFIG, admins=DROP)) == ["spec: missing required field 'admins'"]


# ------------------------------------------------------------------------------ documents as a whole


def test_unknown_kind_names_the_known_kinds() -> None:
    document = copy.deepcopy(GRANT)
    document["kind"] = "grant"
    assert validate_document(document) == [
        SchemaProblem(
            ("kind",),
            "kind: unknown kind 'grant'; known kinds: Config, Person, Team, Workflow, Resource, Grant, PolicyApproval; "
            "did you mean 'Grant'?",
        )
    ]


def test_missing_kind_and_wrong_api_version() -> None:
    assert messages({"apiVersion": "jitpol/v2", "metadata": {"name": "x"}, "spec": {}}) == [
        "missing required field 'kind' (one of Config, Person, Team, Workflow, Resource, Grant, PolicyApproval)",
        "apiVersion: must be 'jitpol/v1' (got 'jitpol/v2')",
    ]
    document = copy.deepcopy(TEAM)
    document["apiVersion"] = "v1"
    assert messages(document) == ["apiVersion: must be 'jitpol/v1' (got 'v1')"]


@pytest.mark.parametrize("data", [None, [], "Grant", 3])
def test_a_document_must_be_a_mapping(data: Any) -> None:
    [problem] = validate_document(data)
    assert problem.path == () and "must be a mapping" in problem.message


def test_missing_sections_and_wrong_types() -> None:
    assert messages({"apiVersion": "jitpol/v1", "kind": "Team"}) == [
        "missing required field 'metadata'",
        "missing required field 'spec'",
    ]
    assert messages({"apiVersion": "jitpol/v1", "kind": "Team", "metadata": {"name": "x"}, "spec": []}) == [
        "spec: must be a mapping (got a list)"
    ]


def test_all_problems_are_returned_sorted_by_path() -> None:
    grant = doc(GRANT, requester="Alice", zzz=1, window={"start": "now", "duration": "1h"}, revoke="yes")
    grant["metadata"]["name"] = "Bad"
    problems = validate_document(grant)
    assert [p.path for p in problems] == [
        ("metadata", "name"),
        ("spec", "requester"),
        ("spec", "revoke"),
        ("spec", "window", "start"),
        ("spec", "zzz"),
    ]
    assert problems == sorted(problems, key=lambda p: [(isinstance(x, str), x) for x in p.path])
    assert "spec.revoke: must be true or false (got a string)" in [p.message for p in problems]


def test_format_path() -> None:
    assert format_path(()) == ""
    assert format_path(("spec", "approvals", 0, "by")) == "spec.approvals[0].by"
    assert (
        format_path(("metadata", "labels", "app.kubernetes.io/name"))
        == 'metadata.labels["app.kubernetes.io/name"]'
    )


def test_validation_is_fast() -> None:
    """10,000 small grants validate in about a second on this machine; allow ample slack."""
    grants = []
    for i in range(2000):
        grant = copy.deepcopy(GRANT)
        grant["metadata"]["name"] = f"g-{i}"
        grants.append(grant)
    validate_document(GRANT)  # compile outside the timing
    began = time.process_time()  # CPU time: other processes on the machine do not count
    assert all(validate_document(g) == [] for g in grants)
    assert time.process_time() - began < 2.0
