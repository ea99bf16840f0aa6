"""Validate one parsed policy document against the JSON Schema of its kind.

The schemas in `schemas/<kind>.schema.json` (draft 2020-12) are the single source of truth;
this module only loads them, compiles one validator per kind (with `format` checks switched
on: jsonschema ignores `format` otherwise) and turns jsonschema's errors into short messages
that name the field, e.g. `spec.window: needs exactly one of 'duration' or 'end'`.

`validate_document` never raises on bad input: it returns every problem, sorted by path. Each
problem carries the key path inside the document so the caller can map it to a line and
column. Values that may be secrets (anything under a target other than its type, `*_env`
fields, signatures) are never repeated in messages.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jitpol.load.fastcheck import compile_check

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator

# jsonschema is imported when a document is first checked, not with this module: a run whose
# files all come from the load cache never needs it (about 60 ms of every command's start).

KINDS: tuple[str, ...] = ("Config", "Person", "Team", "Workflow", "Resource", "Grant", "PolicyApproval")
API_VERSION = "jitpol/v1"
SCHEMA_DIR_ENV = "JITPOL_SCHEMA_DIR"

PathPart = str | int


@dataclass(frozen=True, slots=True)
class SchemaProblem:
    """One schema violation. `path` is the key path inside the document (dict keys and list
    indexes) of the value at fault; for a missing field it is the mapping that lacks it."""

    path: tuple[PathPart, ...]
    message: str  # starts with the dotted path, e.g. "spec.foo: unknown field 'foo' (allowed: ...)"
    at_key: bool = False  # the fault is the key at `path` itself (unknown field, bad name): point at the key


# ----------------------------------------------------------------------------------- schema files


def schema_dir() -> Path:
    """The directory holding `<kind>.schema.json`.

    Looked up in this order: the directory named by $JITPOL_SCHEMA_DIR (an error if it lacks
    the schemas, so a typo is not silently ignored); `schemas/` at the root of a source
    checkout or editable install; `jitpol/schemas` shipped inside an installed package.
    Raises FileNotFoundError when none has them.
    """
    marker = "config.schema.json"
    override = os.environ.get(SCHEMA_DIR_ENV)
    if override:
        path = Path(override)
        if not (path / marker).is_file():
            raise FileNotFoundError(f"${SCHEMA_DIR_ENV}={override}: no {marker} there")
        return path
    checkout = Path(__file__).resolve().parents[2] / "schemas"
    if (checkout / marker).is_file():
        return checkout
    import importlib.resources  # only for an installed package: a checkout never needs it (~5 ms)

    shipped = importlib.resources.files("jitpol") / "schemas"
    if shipped.joinpath(marker).is_file():
        return Path(str(shipped))
    raise FileNotFoundError(
        f"jitpol's JSON Schemas were not found (looked in {checkout} and the installed package); "
        f"set ${SCHEMA_DIR_ENV} to the directory holding {marker}"
    )


def schema_path(kind: str) -> Path:
    """The schema file of `kind` (one of KINDS)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; known kinds: {', '.join(KINDS)}")
    return schema_dir() / f"{kind.lower()}.schema.json"


@functools.cache
def load_schema(kind: str) -> Mapping[str, Any]:
    """The parsed schema of `kind`, read once per process. Callers must not modify it."""
    loaded: dict[str, Any] = json.loads(schema_path(kind).read_text(encoding="utf-8"))
    return loaded


# Python's `$` also matches before a trailing newline ("alice\n" would pass `^[a-z]+$`), while
# JSON Schema patterns are ECMA-262 regexes where it does not. Names reach targets, so patterns
# are compiled with a final `$` meaning the very end of the string.
@functools.cache
def _compile_pattern(pattern: str) -> re.Pattern[str]:
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern_keyword(
    validator: Validator, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    from jsonschema.exceptions import ValidationError

    if validator.is_type(instance, "string") and not _compile_pattern(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@functools.cache
def _strict_validator() -> Any:
    """Draft 2020-12 with the `pattern` keyword above."""
    from jsonschema import Draft202012Validator
    from jsonschema.validators import extend

    # jsonschema's stubs leave extend() untyped; it returns a validator class.
    return extend(Draft202012Validator, {"pattern": _pattern_keyword})  # type: ignore[no-untyped-call]


_ANNOTATIONS = frozenset({"title", "description", "default", "examples", "$comment"})
_FORMAT_PACKAGES = {"date-time": "rfc3339-validator", "uri": "rfc3986-validator"}


@functools.cache
def _compiled(kind: str) -> Mapping[str, Any]:
    """The schema of `kind` with its local `$ref`s inlined and annotations dropped.

    Same rules, checked about 40% faster: jsonschema resolves a `$ref` through `referencing` on
    every use. A `$ref` whose siblings repeat one of its keywords is wrapped in `allOf` instead
    of merged, so no rule is lost. Error paths are unchanged (jsonschema leaves `$ref` out).
    """
    root = load_schema(kind)
    defs: Mapping[str, Any] = root.get("$defs", {})

    def inline(node: Any, parent_key: str | None, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [inline(item, None, seen) for item in node]
        if not isinstance(node, Mapping):
            return node
        if parent_key in ("properties", "patternProperties", "$defs"):  # keys here are names
            return {key: inline(value, None, seen) for key, value in node.items()}
        out = {
            key: inline(value, key, seen)
            for key, value in node.items()
            if key not in _ANNOTATIONS and key not in ("$defs", "$ref")
        }
        ref = node.get("$ref")
        if ref is None:
            return out
        name = str(ref).removeprefix("#/$defs/")
        if name not in defs or name in seen:
            raise ValueError(f"{kind} schema: $ref {ref!r} is not a local, non-recursive #/$defs/ reference")
        target = inline(defs[name], None, (*seen, name))
        if set(target) & set(out):
            return {**out, "allOf": [target, *out.get("allOf", [])]}
        return {**target, **out}

    compiled: dict[str, Any] = inline(root, None, ())
    return compiled


def _formats(node: Any) -> Iterator[str]:
    if isinstance(node, Mapping):
        if isinstance(node.get("format"), str):
            yield node["format"]
        for value in node.values():
            yield from _formats(value)
    elif isinstance(node, list):
        for value in node:
            yield from _formats(value)


@functools.cache
def _validator(kind: str) -> Validator:
    from jsonschema import Draft202012Validator

    checker = Draft202012Validator.FORMAT_CHECKER
    schema = _compiled(kind)
    # jsonschema silently skips a format whose checker package is missing; refuse instead of
    # quietly accepting a date-time without calendar checks.
    missing = sorted(set(_formats(schema)) - set(checker.checkers))
    if missing:
        needs = ", ".join(_FORMAT_PACKAGES.get(f, f) for f in missing)
        raise RuntimeError(f"jitpol cannot check the formats {missing} of its schemas; install {needs}")
    validator: Validator = _strict_validator()(schema, format_checker=checker)
    return validator


# Formats the fast check tests itself, exactly as jsonschema's FORMAT_CHECKER does (jsonschema
# 4.x, _format.py: `is_datetime`, `is_email`, and `is_uri` where it uses rfc3986-validator, which
# it does when the rfc3987 package is absent); any other format is asked of that checker. A run
# whose files all pass the fast check then never imports jsonschema (~80 ms).
_NATIVE_PACKAGES = {"date-time": "rfc3339_validator", "email": None, "uri": "rfc3986_validator"}


@functools.cache
def _native_formats() -> frozenset[str]:
    import importlib.util

    if importlib.util.find_spec("rfc3987") is not None:
        return frozenset({"date-time", "email"})  # jsonschema checks uri with rfc3987 then
    return frozenset(_NATIVE_PACKAGES)


def _installed(packages: Iterable[str | None]) -> bool:
    import importlib

    try:
        for package in packages:
            if package is not None:
                importlib.import_module(package)
    except ImportError:
        return False
    return True


def _conforms(value: Any, fmt: str) -> bool:
    if fmt in _native_formats():
        if not isinstance(value, str):
            return True
        if fmt == "date-time":
            from rfc3339_validator import validate_rfc3339  # type: ignore[import-untyped]

            return bool(validate_rfc3339(value.upper()))
        if fmt == "uri":
            from rfc3986_validator import validate_rfc3986  # type: ignore[import-untyped]

            return bool(validate_rfc3986(value, rule="URI"))
        return "@" in value
    from jsonschema import Draft202012Validator

    return bool(Draft202012Validator.FORMAT_CHECKER.conforms(value, fmt))


@functools.cache
def _fast_check(kind: str) -> Callable[[Any], bool] | None:
    """The compiled yes/no check of `kind`'s schema (None: jsonschema does all the work)."""
    compiled = _compiled(kind)
    formats = set(_formats(compiled))
    if not (formats <= _native_formats() and _installed(_NATIVE_PACKAGES[f] for f in formats)):
        _validator(kind)  # refuses missing format checkers first, exactly as the slow path does
    return compile_check(compiled, format_conforms=_conforms,
                         pattern_search=lambda pattern, text: _compile_pattern(pattern).search(text) is not None)


def _has_non_string_key(node: Any) -> bool:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            for key, value in item.items():
                if not isinstance(key, str):
                    return True
                if isinstance(value, Mapping | list):
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, Mapping | list))
    return False


# ------------------------------------------------------------------------------------- validation


def validate_document(data: Any, *, string_keys: bool = False) -> list[SchemaProblem]:
    """Every schema problem of one parsed YAML document, sorted by path; [] when valid.

    `apiVersion` and `kind` are looked at first: without a known kind there is no schema to
    apply, so that yields a single problem naming the known kinds. `string_keys=True` is the
    caller's promise that every mapping key is a string (data from jitpol.load.yamlstrict).
    """
    if not isinstance(data, Mapping):
        return [
            SchemaProblem(
                (),
                "a jitpol file must be a mapping with apiVersion, kind, metadata and spec "
                f"(got {_type_name(data)})",
            )
        ]
    kind = data.get("kind")
    if kind not in KINDS:
        return _sorted(_kind_problems(data))
    if string_keys or not _has_non_string_key(data):  # yamlstrict's data: every key is a str
        fast = _fast_check(kind)
        try:
            if fast is not None and fast(data):
                return []  # jsonschema would say nothing either (jitpol.load.fastcheck)
        except Exception:  # noqa: BLE001, S110 - Unsure or anything odd: jsonschema decides
            pass
    problems = list(_non_string_keys(data, ()))
    root = _compiled(kind)
    for error in _validator(kind).iter_errors(data):
        problems.extend(_translate(error, root))
    return _sorted(problems)


def format_path(path: Sequence[PathPart]) -> str:
    """`("spec", "approvals", 0, "by")` -> `spec.approvals[0].by`; odd keys are quoted."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_$-]+")


def _sorted(problems: Iterable[SchemaProblem]) -> list[SchemaProblem]:
    def key(problem: SchemaProblem) -> tuple[tuple[tuple[int, int, str], ...], str]:
        parts = tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in problem.path)
        return parts, problem.message

    return sorted(set(problems), key=key)


def _problem(path: Sequence[PathPart], message: str, *, at_key: bool = False) -> SchemaProblem:
    where = format_path(path)
    return SchemaProblem(tuple(path), f"{where}: {message}" if where else message, at_key)


def _kind_problems(data: Mapping[str, Any]) -> Iterator[SchemaProblem]:
    known = ", ".join(KINDS)
    if "kind" not in data:
        yield _problem((), f"missing required field 'kind' (one of {known})")
    else:
        kind = data["kind"]
        hint = ""
        if isinstance(kind, str):
            close = [k for k in KINDS if k.lower() == kind.strip().lower()]
            hint = f"; did you mean {close[0]!r}?" if close else ""
        yield _problem(("kind",), f"unknown kind {_show(kind)}; known kinds: {known}{hint}")
    if data.get("apiVersion") != API_VERSION:
        if "apiVersion" not in data:
            yield _problem((), f"missing required field 'apiVersion' (must be {API_VERSION!r})")
        else:
            yield _problem(("apiVersion",), f"must be {API_VERSION!r} (got {_show(data['apiVersion'])})")


def _non_string_keys(node: Any, path: tuple[PathPart, ...]) -> Iterator[SchemaProblem]:
    # JSON Schema only knows string keys; YAML allows `1: x` or `true: x`. Refuse them here
    # rather than letting propertyNames silently skip them.
    if isinstance(node, Mapping):
        for key, value in node.items():
            if not isinstance(key, str):
                yield _problem(
                    (*path, str(key)),
                    f"key {key!r} must be a string (got {_type_name(key)}; quote it)",
                    at_key=True,
                )
                continue
            yield from _non_string_keys(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _non_string_keys(value, (*path, index))


# ----------------------------------------------------------------------------- friendly messages

NAME_HINT = "must be lowercase letters, digits and '-' (at most 63), starting with a letter or digit"
DURATION_HINT = "must be a duration like 90m, 4h, 1h30m or 7d (units d, h, m, s; largest first)"
DATETIME_HINT = (
    "must be a date and time with an offset, like 2026-11-30T10:00:00Z or 2026-11-30T11:00:00+01:00"
)
ENV_HINT = (
    "must be the NAME of an environment variable (A-Z, 0-9 and '_'), like PG_PROD_DSN; "
    "secret values are never written in the policy"
)

# Keyed by the exact pattern text in the schemas; a pattern without a hint gets a generic message.
PATTERN_HINTS: dict[str, str] = {
    "^[0-9a-f]{64}$": "must be a SHA-256 digest: 64 lowercase hex digits",
    "^[A-Za-z_][A-Za-z0-9_.@-]{0,62}$": "must be a PostgreSQL role name: letters, digits and _ . @ -, "
                                        "not starting with a digit, at most 63 characters",
    "^[a-z0-9][a-z0-9-]{0,62}$": NAME_HINT,
    "^(person|team):[a-z0-9][a-z0-9-]{0,62}$": "must be a reference like person:alice or team:sre",
    "^([0-9]{1,6}d)?([0-9]{1,6}h)?([0-9]{1,6}m)?([0-9]{1,6}s)?$": DURATION_HINT,
    "^([01][0-9]|2[0-3]):[0-5][0-9]$": 'must be a time of day HH:MM (24-hour), like "08:00" (quote it)',
    "^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$": (
        'must be a time of day HH:MM (24-hour) or 24:00, like "18:00" (quote it)'
    ),
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$": (
        DATETIME_HINT
    ),
    "^[A-Z_][A-Z0-9_]{0,127}$": ENV_HINT,
    (
        "^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\\.com"
        "|sk-ecdsa-sha2-nistp256@openssh\\.com) [A-Za-z0-9+/]+={0,3}( [^\\n]*)?$"
    ): (
        "must be one SSH public key line like 'ssh-ed25519 AAAA... alice@laptop' "
        "(types ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256/384/521, sk-ssh-ed25519@openssh.com, "
        "sk-ecdsa-sha2-nistp256@openssh.com)"
    ),
    "^[^\\u0000-\\u001f\\u007f]*$": "must not contain control characters (newlines, tabs, ...)",
    "^[A-Za-z][A-Za-z0-9_+-]{0,63}(/[A-Za-z0-9_+-]{1,64}){0,2}$": (
        "must be an IANA time zone name like UTC or Europe/Berlin"
    ),
    "^[A-Za-z][A-Za-z0-9_-]{0,63}$": (
        "must be a simple key: a letter, then letters, digits, '_' or '-' (at most 64)"
    ),
    "^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$": "must be an email address like alice@example.com",
    "^ldaps?://": "must start with ldap:// or ldaps://",
    "^[A-Za-z0-9._:\\[\\]-]{1,253}$": "must be a host name or IP address",
    "^[a-z0-9%_:][a-z0-9%_.:/-]{0,254}$": (
        "must be a MySQL/MariaDB account host in lower case: a name, an address, a netmask or a pattern with % "
        "and _, like '%'"
    ),
    "^[a-z_][a-z0-9_-]{0,31}$": "must be a Linux user name (lowercase, at most 32 characters)",
    "^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$": "must be an AWS region like eu-central-1",
    "^[A-Za-z0-9-]{1,64}$": "must be an identity store ID like d-1234567890",
    "^arn:[a-z-]+:sso:::instance/[A-Za-z0-9-]+$": (
        "must be an IAM Identity Center instance ARN like arn:aws:sso:::instance/ssoins-1234567890abcdef"
    ),
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$": (
        "must be a GUID like 00000000-0000-0000-0000-000000000000"
    ),
    (
        "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
        "|[A-Za-z0-9][A-Za-z0-9.-]{0,252})$"
    ): "must be a tenant GUID or domain like contoso.onmicrosoft.com",
    "^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$": "must be a host name like web-1",
    "^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$": "must be OWNER/REPOSITORY, like acme/access",
    "^[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$": (
        "must be a relative directory inside the repository, like audit (no leading '/', no '..')"
    ),
    "^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$": "must be a plain file name like ledger.jsonl",
    "^SHA256:[A-Za-z0-9+/]{43}$": (
        "must be a key fingerprint SHA256:<43 characters>, as printed by ssh-keygen -lf"
    ),
    "^-----BEGIN SSH SIGNATURE-----": (
        "must be an armored SSH signature starting with -----BEGIN SSH SIGNATURE-----"
    ),
}

FORMAT_HINTS: dict[str, str] = {
    "date-time": DATETIME_HINT,
    "email": "must be an email address like alice@example.com",
    "uri": "must be an absolute URL like https://example.com",
}

_JSON_TYPES: dict[str, str] = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}

_SECRETISH = re.compile(r"pass|secret|token|dsn|key|credential|private", re.IGNORECASE)


def _type_names(json_types: Any) -> list[str]:
    """`"string"` or `["string", "integer"]` in words."""
    listed = json_types if isinstance(json_types, list) else [json_types]
    return [_JSON_TYPES.get(str(t), str(t)) for t in listed]


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _may_echo(path: Sequence[PathPart]) -> bool:
    """Whether the value at `path` may be repeated in a message (it cannot be a secret)."""
    if any(isinstance(p, str) and (p.endswith("_env") or p == "signature") for p in path):
        return False
    if tuple(path[:2]) == ("spec", "targets") and len(path) > 3:
        # a target's settings: a value typed into the wrong field could be a password
        return path[3] in ("type", "flavor")
    return True


def _subject(error: ValidationError, path: Sequence[PathPart]) -> str:
    """The offending value, quoted, followed by a space, or '' when it must not be shown."""
    return f"{_show(error.instance)} " if _may_echo(path) else ""


def _got(value: Any, path: Sequence[PathPart]) -> str:
    return f" (got {_show(value)})" if _may_echo(path) else ""


def _condition(root: Mapping[str, Any], schema_path: Sequence[PathPart]) -> str:
    """ "when 'type' is 'postgres'" if the error comes from the innermost `then`/`else` of an
    if-schema simple enough to describe; '' otherwise. `root` is the compiled schema (no $ref)."""
    node: Any = root
    found: tuple[Mapping[str, Any], str] | None = None
    for key in schema_path:
        if key in ("then", "else") and isinstance(node, Mapping) and "if" in node:
            found = (node["if"], str(key))
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return ""
    if found is None:
        return ""
    if_schema, branch = found
    parts = []
    for name, sub in if_schema.get("properties", {}).items():
        if "const" in sub:
            parts.append(f"{name!r} is {sub['const']!r}")
        elif "minimum" in sub:
            parts.append(f"{name!r} is {sub['minimum']} or more")
        elif "enum" in sub:
            parts.append(f"{name!r} is one of {', '.join(map(repr, sub['enum']))}")
    if not parts:
        return ""
    return f"{'when' if branch == 'then' else 'unless'} {' and '.join(parts)}"


def _paren(condition: str) -> str:
    return f" ({condition})" if condition else ""


def _is_key_error(schema_path: Sequence[PathPart]) -> bool:
    """Whether the error is about a mapping key (from propertyNames) rather than a value."""
    if "propertyNames" not in schema_path:
        return False
    last = len(schema_path) - 1 - list(reversed(schema_path)).index("propertyNames")
    descends = {"properties", "additionalProperties", "items", "prefixItems", "patternProperties"}
    return not any(p in descends for p in list(schema_path)[last + 1 :])


def _translate(error: ValidationError, root: Mapping[str, Any]) -> Iterator[SchemaProblem]:
    """Friendly problems for one jsonschema error (several for additionalProperties)."""
    path: tuple[PathPart, ...] = tuple(error.absolute_path)
    schema_path = tuple(error.absolute_schema_path)
    keyword = error.validator
    value: Any = error.validator_value
    instance: Any = error.instance
    schema: Any = error.schema
    when = _paren(_condition(root, schema_path))

    if _is_key_error(schema_path):
        if not isinstance(instance, str):
            return  # reported once by _non_string_keys
        key_path = (*path, instance)
        hint = PATTERN_HINTS.get(value, "") if keyword == "pattern" else ""
        if keyword == "maxLength":
            hint = f"must be at most {value} characters"
        yield _problem(key_path, f"key {_show(instance)} {hint or 'is not allowed'}", at_key=True)
        return

    if keyword == "additionalProperties" and isinstance(schema, Mapping) and isinstance(instance, Mapping):
        import difflib  # only for messages about unknown fields

        allowed = sorted(schema.get("properties", {}))
        patterns = list(schema.get("patternProperties", {}))
        for key in instance:
            if key in allowed or any(re.search(p, str(key)) for p in patterns):
                continue
            scope = " ".join(filter(None, ("allowed", _condition(root, schema_path))))
            message = f"unknown field {_show(key)} ({scope}: {', '.join(allowed)})"
            env_fields = [a for a in allowed if a.endswith("_env")]
            if env_fields and _SECRETISH.search(str(key)):
                close = difflib.get_close_matches(str(key), env_fields, n=1, cutoff=0.5)
                message += (
                    "; secrets are never written in the policy: name the environment variable "
                    f"that holds it in {repr(close[0]) if close else 'a *_env field'}"
                )
            elif close := difflib.get_close_matches(str(key), allowed, n=1):
                message += f"; did you mean {close[0]!r}?"
            yield _problem((*path, str(key)), message, at_key=True)
        return

    if keyword == "required" and isinstance(value, list):
        # jsonschema reports each missing name as its own error: "'name' is a required property"
        name = next((n for n in value if error.message == f"{n!r} is a required property"), None)
        yield _problem(path, f"missing required field {name!r}{when}" if name else error.message)
        return

    if keyword in ("oneOf", "anyOf"):
        yield from _translate_alternatives(error, root, path, when)
        return

    # A field defined inside a `then` (a target type's fields) needs no condition to explain
    # a bad value; a missing or empty one does.
    conditional = keyword in ("minItems", "minProperties")
    yield _problem(path, _simple_message(error, path) + (when if conditional else ""))


def _simple_message(error: ValidationError, path: Sequence[PathPart]) -> str:
    keyword = error.validator
    value: Any = error.validator_value
    instance: Any = error.instance
    schema: Any = error.schema
    hint = PATTERN_HINTS.get(schema.get("pattern", "")) if isinstance(schema, Mapping) else None

    if keyword == "type":
        return f"must be {' or '.join(_type_names(value))} (got {_type_name(instance)})"
    if keyword == "enum":
        return f"must be one of {', '.join(str(v) for v in value)}{_got(instance, path)}"
    if keyword == "const":
        return f"must be {value!r}{_got(instance, path)}"
    if keyword == "pattern":
        return _subject(error, path) + PATTERN_HINTS.get(value, f"does not match the pattern {value}")
    if keyword == "format":
        return _subject(error, path) + FORMAT_HINTS.get(value, f"is not a valid {value}")
    if keyword == "minLength":
        if hint and value > 1:  # e.g. a duration: "" or "4" is refused for its form, not its length
            return _subject(error, path) + hint
        return "must not be empty" if value == 1 else f"must be at least {value} characters"
    if keyword == "maxLength":
        return f"is too long: at most {value} characters (got {len(instance)})"
    if keyword == "minItems":
        return "must list at least one entry" if value == 1 else f"must list at least {value} entries"
    if keyword == "maxItems":
        return f"must list at most {value} entries"
    if keyword == "uniqueItems":
        seen: list[Any] = []
        for item in instance:
            if item in seen:
                return f"lists {_show(item)} more than once" if _may_echo(path) else "lists a value twice"
            seen.append(item)
        return "must not list a value twice"
    if keyword == "minimum":
        return f"must be at least {value}{_got(instance, path)}"
    if keyword == "maximum":
        return f"must be at most {value}{_got(instance, path)}"
    if keyword == "minProperties":
        return "must not be empty" if value == 1 else f"must have at least {value} entries"
    if keyword == "maxProperties":
        return f"must have at most {value} entries"
    if keyword in ("not", None):  # None: a `false` schema
        return "is not allowed here"
    return error.message if _may_echo(path) else f"is not valid ({keyword})"


def _translate_alternatives(
    error: ValidationError, root: Mapping[str, Any], path: tuple[PathPart, ...], when: str
) -> Iterator[SchemaProblem]:
    """oneOf/anyOf: name the choice, or explain the alternative the value was meant to be."""
    branches: Any = error.validator_value
    instance: Any = error.instance
    # `oneOf: [{required: [a]}, {required: [b]}]`: exactly one of two fields
    if all(isinstance(b, Mapping) and set(b) <= {"required", "description"} for b in branches):
        names = [n for b in branches for n in b["required"]]
        choice = " or ".join(repr(n) for n in names)
        present = [n for n in names if isinstance(instance, Mapping) and n in instance]
        if len(present) > 1:
            both = " and ".join(repr(n) for n in present)
            yield _problem(path, f"has {both}; needs exactly one of {choice}{when}")
        else:
            yield _problem(path, f"needs exactly one of {choice}{when}")
        return
    if not error.context:  # oneOf matched more than one alternative
        yield _problem(path, f"matches more than one alternative ({error.validator}){when}")
        return
    by_branch: dict[int, list[ValidationError]] = {}
    for sub in error.context:
        by_branch.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
    # A branch whose type does not even fit is not what the author meant.
    fitting = {
        index: subs
        for index, subs in by_branch.items()
        if not any(s.validator == "type" and len(s.relative_schema_path) == 2 for s in subs)
    }
    if not fitting:
        wanted: list[str] = []
        for sub in error.context:
            if sub.validator == "type" and len(sub.relative_schema_path) == 2:
                wanted.extend(n for n in _type_names(sub.validator_value) if n not in wanted)
        yield _problem(path, f"must be {' or '.join(wanted)} (got {_type_name(instance)}){when}")
        return
    from jsonschema.exceptions import best_match

    chosen = best_match(sub for subs in fitting.values() for sub in subs)
    if chosen is None:  # pragma: no cover - context is non-empty
        yield _problem(path, f"is not valid{when}")
        return
    index = int(chosen.relative_schema_path[0])
    for sub in fitting[index]:
        yield from _translate(sub, root)
