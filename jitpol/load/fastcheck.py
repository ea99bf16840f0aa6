"""A compiled yes/no JSON Schema check: the fast path of `validate_document`.

jsonschema spends most of its time evolving validators and building error objects, even for a
valid document. For the keywords jitpol's schemas use, `compile_check(schema)` turns a schema
(already `$ref`-inlined, see `schema._compiled`) into nested closures that answer one question:
is this document valid? It is only a shortcut in front of jsonschema, never a replacement:

- `True` means jsonschema would report no error. Every keyword is implemented with exactly
  jsonschema's semantics for Draft 2020-12 (its type checker, `equal`, `uniq`, format checker
  and jitpol's own `pattern`), so the answer is exact, also inside `if`, `oneOf`, `anyOf` where
  a wrong "no" would be as bad as a wrong "yes".
- Where exactness would need more code than it is worth (`uniqueItems` over values that are not
  all strings, `enum`/`const` against a list or mapping), the check raises `Unsure`, and the caller
  asks jsonschema. A keyword the compiler does not know makes `compile_check` return None: that
  kind is always checked by jsonschema.
- An invalid document is always handed to jsonschema, which produces the messages, so
  diagnostics never depend on this module.

tests/unit/load/test_fastcheck.py compares both on every schema with generated documents.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any], bool]

# Keywords that carry no rule (annotations, identifiers) or are read by a sibling keyword.
_IGNORED = frozenset({"$schema", "$id", "title", "description", "default", "examples", "$comment",
                      "then", "else"})


class Unsure(Exception):
    """The compiled check cannot decide this value exactly; ask jsonschema."""


class Unsupported(Exception):
    """The schema uses a keyword (or a form of one) the compiler does not implement."""


def _is_number(value: Any) -> bool:
    t = type(value)
    return t is int or t is float or (isinstance(value, numbers.Number) and not isinstance(value, bool))


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": _is_number,
    # Draft 6 and later: 1.0 is an integer; True is not
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float)
                                                                                and v.is_integer()),
}


def _scalar_equal(a: Any, b: Any) -> bool:
    """jsonschema's `equal` for a scalar schema value `b` (str, number, bool, None)."""
    if a is b:
        return True
    if isinstance(a, str) or isinstance(b, str):
        return bool(a == b)
    if isinstance(a, list | tuple | dict) or isinstance(a, Mapping):
        return False  # a container never equals a scalar
    if isinstance(a, bool) or isinstance(b, bool):
        return False  # jsonschema's unbool: True and False equal only themselves (checked by `is` above)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return bool(a == b)
    if a is None or b is None:
        return False
    raise Unsure


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float)


def compile_check(schema: Any, *, format_conforms: Callable[[Any, str], bool],
                  pattern_search: Callable[[str, str], bool]) -> Check | None:
    """A function data -> bool for `schema`, or None when the schema uses something unsupported.

    `format_conforms(value, format)` must be the format checker jsonschema is given;
    `pattern_search(pattern, text)` the `pattern` keyword's test."""
    try:
        return _compile(schema, format_conforms, pattern_search)
    except Unsupported:
        return None


def _compile(schema: Any, conforms: Callable[[Any, str], bool], search: Callable[[str, str], bool]) -> Check:
    if schema is True:
        return lambda v: True
    if schema is False:
        return lambda v: False
    if not isinstance(schema, Mapping):
        raise Unsupported(repr(schema))
    checks: list[Check] = []
    for keyword, value in schema.items():
        if keyword in _IGNORED:
            continue
        checks.append(_keyword(keyword, value, schema, conforms, search))
    if not checks:
        return lambda v: True
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda v: first(v) and second(v)
    all_checks = tuple(checks)

    def every(v: Any) -> bool:
        for check in all_checks:
            if not check(v):
                return False
        return True
    return every


def _keyword(keyword: str, value: Any, schema: Mapping[str, Any], conforms: Callable[[Any, str], bool],
             search: Callable[[str, str], bool]) -> Check:
    def sub(s: Any) -> Check:
        return _compile(s, conforms, search)

    if keyword == "type":
        names: list[Any] = value if isinstance(value, list) else [value]
        try:
            tests = tuple(_TYPES[n] for n in names)
        except KeyError as exc:
            raise Unsupported(f"type {exc}") from None
        if len(tests) == 1:
            return tests[0]
        return lambda v: any(t(v) for t in tests)
    if keyword == "properties":
        pairs = tuple((name, sub(s)) for name, s in value.items())

        def properties(v: Any) -> bool:
            if not isinstance(v, dict):
                return True
            for name, check in pairs:
                if name in v and not check(v[name]):
                    return False
            return True
        return properties
    if keyword == "additionalProperties":
        if "patternProperties" in schema:
            raise Unsupported("patternProperties")
        known = frozenset(schema.get("properties", {}))
        if value is False:
            return lambda v: not isinstance(v, dict) or known.issuperset(v)
        extra = sub(value)

        def additional(v: Any) -> bool:
            if isinstance(v, dict):
                for k in v:
                    if k not in known and not extra(v[k]):
                        return False
            return True
        return additional
    if keyword == "required":
        required = frozenset(value)
        return lambda v: not isinstance(v, dict) or v.keys() >= required
    if keyword == "propertyNames":
        key_check = sub(value)

        def property_names(v: Any) -> bool:
            if isinstance(v, dict):
                for k in v:
                    if not key_check(k):
                        return False
            return True
        return property_names
    if keyword == "minProperties":
        return lambda v: not isinstance(v, dict) or len(v) >= value
    if keyword == "maxProperties":
        return lambda v: not isinstance(v, dict) or len(v) <= value
    if keyword == "items":
        if "prefixItems" in schema:
            raise Unsupported("prefixItems")
        item = sub(value)

        def items(v: Any) -> bool:
            if isinstance(v, list):
                for x in v:
                    if not item(x):
                        return False
            return True
        return items
    if keyword == "minItems":
        return lambda v: not isinstance(v, list) or len(v) >= value
    if keyword == "maxItems":
        return lambda v: not isinstance(v, list) or len(v) <= value
    if keyword == "uniqueItems":
        if not value:
            return lambda v: True

        def unique(v: Any) -> bool:
            if not isinstance(v, list):
                return True
            if all(isinstance(x, str) for x in v):
                return len(set(v)) == len(v)
            raise Unsure
        return unique
    if keyword == "pattern":
        return lambda v: not isinstance(v, str) or search(value, v)
    if keyword == "minLength":
        return lambda v: not isinstance(v, str) or len(v) >= value
    if keyword == "maxLength":
        return lambda v: not isinstance(v, str) or len(v) <= value
    if keyword == "format":
        return lambda v: conforms(v, value)
    if keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        if not _is_number(value):
            raise Unsupported(keyword)
        if keyword == "minimum":
            return lambda v: not _is_number(v) or v >= value
        if keyword == "maximum":
            return lambda v: not _is_number(v) or v <= value
        if keyword == "exclusiveMinimum":
            return lambda v: not _is_number(v) or v > value
        return lambda v: not _is_number(v) or v < value
    if keyword == "const":
        if not _scalar(value):
            raise Unsupported("const of a container")
        return lambda v: _scalar_equal(v, value)
    if keyword == "enum":
        if not all(_scalar(e) for e in value):
            raise Unsupported("enum of containers")
        options = tuple(value)
        if all(isinstance(e, str) for e in options):
            strings = frozenset(options)
            return lambda v: isinstance(v, str) and v in strings
        return lambda v: any(_scalar_equal(v, e) for e in options)
    if keyword == "allOf":
        parts = tuple(sub(s) for s in value)
        return lambda v: all(p(v) for p in parts)
    if keyword == "anyOf":
        alternatives = tuple(sub(s) for s in value)
        return lambda v: any(p(v) for p in alternatives)
    if keyword == "oneOf":
        branches = tuple(sub(s) for s in value)
        return lambda v: sum(1 for p in branches if p(v)) == 1
    if keyword == "not":
        inner = sub(value)
        return lambda v: not inner(v)
    if keyword == "if":
        condition = sub(value)
        then = sub(schema["then"]) if "then" in schema else None
        otherwise = sub(schema["else"]) if "else" in schema else None

        def if_(v: Any) -> bool:
            if condition(v):
                return then is None or then(v)
            return otherwise is None or otherwise(v)
        return if_
    raise Unsupported(keyword)
