"""jitpol.load.fastcheck against jsonschema: on valid documents of every kind and on thousands of
mutations of them (wrong types, removed and added keys, edge values), the compiled check says
"valid" exactly when jsonschema reports no error (or admits it cannot decide)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jitpol.load import schema
from jitpol.load.fastcheck import Unsure, compile_check
from jitpol.load.yamlstrict import load_yaml_file
from tests.unit.load.test_schema import EXAMPLES

ROOT = Path(__file__).resolve().parents[3]


def seeds() -> list[dict[str, Any]]:
    found = [copy.deepcopy(d) for d in EXAMPLES.values()]
    found += [load_yaml_file(p).data for p in sorted((ROOT / "policies").rglob("*.yaml"))]
    return found


SEEDS = seeds()


def _keys_and_values() -> tuple[list[str], list[Any]]:
    keys: set[str] = set()
    values: list[Any] = []
    stack: list[Any] = list(SEEDS)
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            keys.update(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif node not in values:
            values.append(node)
    return sorted(keys), values


SEED_KEYS, SEED_VALUES = _keys_and_values()

EDGE_VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 1.0, 2.5, 10**20, "", "x", "a" * 300, "alice", "team:sre", "person:x",
    "postgres", "fake", "4h", "0s", "99999999d", "mon", "08:00", "24:00", "2099-01-01T10:00:00Z",
    "2099-02-30T10:00:00Z", "2099-01-01T10:00:00", "UTC", "Europe/Berlin", "signature", "none", "exclusive",
    "line\nbreak", "ALICE", "alice@example.com", "not an email", [], ["a"], ["a", "a"], [1, 2], [None],
    {}, {"a": 1}, {"type": "postgres"}, {"grants": []},
]


def nodes(data: Any, trail: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield trail, data
    if isinstance(data, dict):
        for key, value in data.items():
            yield from nodes(value, (*trail, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from nodes(value, (*trail, index))


def at(data: Any, trail: tuple[Any, ...]) -> Any:
    for part in trail:
        data = data[part]
    return data


def _get(data: Any, trail: tuple[Any, ...]) -> Any:
    try:
        return at(data, trail)
    except (KeyError, IndexError, TypeError):
        return None


def _near(value: Any) -> list[Any]:
    """Values of the same type close to `value`: where limits and patterns bite."""
    if isinstance(value, bool):
        return [not value, int(value)]
    if isinstance(value, int | float):
        return [value - 1, value + 1, float(value), -value, 0, str(value), value * 1000 + 1000]
    if isinstance(value, str):
        return ["", value[:-1], value + "\n", value.upper(), " " + value, value * 40, value + "Z"]
    if isinstance(value, list):
        return [[], value[:1], value + value[:1], [*value, None], list(reversed(value))]
    if isinstance(value, dict):
        return [{}, dict(list(value.items())[:1]), {**value, "extra": 1}]
    return [None, ""]


def jsonschema_says_valid(data: Any) -> bool:
    kind = data.get("kind") if isinstance(data, dict) else None
    assert kind in schema.KINDS
    return not any(True for _ in schema._validator(kind).iter_errors(data))


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    data = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [t for t, _ in nodes(data) if len(t) >= 1 and t[0] not in ("kind",)]
        trail = draw(st.sampled_from(paths))
        parent = at(data, trail[:-1])
        action = draw(st.sampled_from(["replace", "near", "drop", "add", "graft", "graft", "tweak"]))
        if action == "graft":  # a key that the same mapping has in another document of this kind
            here = parent[trail[-1]]
            donors = [d for d in SEEDS if d["kind"] == data["kind"] and isinstance(_get(d, trail), dict)]
            if isinstance(here, dict) and donors:
                donor = _get(draw(st.sampled_from(donors)), trail)
                if donor:
                    key = draw(st.sampled_from(sorted(donor)))
                    here[key] = copy.deepcopy(donor[key])
            continue
        if action == "near":
            parent[trail[-1]] = draw(st.sampled_from(_near(parent[trail[-1]])))
            continue
        if action == "replace":
            pool = draw(st.sampled_from([EDGE_VALUES, SEED_VALUES]))
            parent[trail[-1]] = copy.deepcopy(draw(st.sampled_from(pool)))
        elif action == "drop":
            del parent[trail[-1]]
        elif action == "add":
            target = parent[trail[-1]]
            if isinstance(target, dict):
                key = draw(st.sampled_from(["extra", "x_env", *SEED_KEYS]))
                target[key] = copy.deepcopy(draw(st.sampled_from(draw(st.sampled_from([EDGE_VALUES, SEED_VALUES])))))
            elif isinstance(target, list):
                again = bool(target) and draw(st.booleans())
                target.append(copy.deepcopy(target[0] if again else draw(st.sampled_from(EDGE_VALUES))))
        else:
            value = parent[trail[-1]]
            if isinstance(value, str):
                parent[trail[-1]] = draw(st.sampled_from([value[:-1], value + "\n", value.upper(), " " + value,
                                                          value + "Z", value.replace("-", "_")]))
            elif isinstance(value, bool):
                parent[trail[-1]] = not value
            elif isinstance(value, int | float):
                parent[trail[-1]] = draw(st.sampled_from([value - 1, value + 1, float(value), -value, 0]))
    result: dict[str, Any] = data
    return result


@pytest.mark.parametrize("kind", schema.KINDS)
def test_every_schema_compiles(kind: str) -> None:
    assert schema._fast_check(kind) is not None  # otherwise that kind silently loses the fast path


@pytest.mark.parametrize("data", SEEDS, ids=lambda d: f"{d['kind']}-{d['metadata']['name']}")
def test_seeds_are_valid_for_both(data: dict[str, Any]) -> None:
    fast = schema._fast_check(data["kind"])
    assert fast is not None
    assert jsonschema_says_valid(data)
    assert fast(data) is True


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_fast_check_agrees_with_jsonschema(data: dict[str, Any]) -> None:
    fast = schema._fast_check(data["kind"])
    assert fast is not None
    try:
        verdict = fast(data)
    except Unsure:
        return  # validate_document asks jsonschema: nothing to compare
    assert verdict == jsonschema_says_valid(data), data
    # and validate_document, which uses it, still reports exactly jsonschema's problems
    assert (schema.validate_document(data) == []) == verdict


def test_unknown_keyword_is_not_compiled() -> None:
    def search(pattern: str, text: str) -> bool:
        return True

    def conforms(value: Any, fmt: str) -> bool:
        return True

    assert compile_check({"type": "object", "dependentRequired": {"a": ["b"]}}, format_conforms=conforms,
                         pattern_search=search) is None
    assert compile_check({"type": "object", "properties": {"a": {"not": {"const": 1}}}}, format_conforms=conforms,
                         pattern_search=search) is not None


@pytest.mark.parametrize(("value", "expected"), [
    (1, True), (1.0, True), (True, False), (0, False), (False, False), ("1", False), (None, False),
])
def test_const_follows_jsonschema_equality(value: Any, expected: bool) -> None:
    def never(*_: Any) -> bool:
        raise AssertionError

    check = compile_check({"const": 1}, format_conforms=never, pattern_search=never)
    assert check is not None
    assert check(value) is expected


def test_unique_items_of_mixed_values_is_left_to_jsonschema() -> None:
    def never(*_: Any) -> bool:
        raise AssertionError

    check = compile_check({"uniqueItems": True}, format_conforms=never, pattern_search=never)
    assert check is not None
    assert check(["a", "b"]) is True
    assert check(["a", "a"]) is False
    with pytest.raises(Unsure):
        check([1, True])


def single_mutations() -> Iterator[dict[str, Any]]:
    """Every seed with one value replaced by each of its near values, and with each key another
    document of its kind has at the same place grafted in."""
    for seed in SEEDS:
        for trail, value in list(nodes(seed)):
            if not trail or trail[0] == "kind":
                continue
            for near in _near(value):
                data = copy.deepcopy(seed)
                at(data, trail[:-1])[trail[-1]] = near
                yield data
            if isinstance(value, dict):
                for donor in SEEDS:
                    there = _get(donor, trail) if donor["kind"] == seed["kind"] else None
                    if not isinstance(there, dict):
                        continue
                    for key in sorted(there):
                        if key not in value or value[key] != there[key]:
                            data = copy.deepcopy(seed)
                            at(data, trail)[key] = copy.deepcopy(there[key])
                            yield data


def test_every_single_mutation_agrees() -> None:
    checked = invalid = 0
    for data in single_mutations():
        fast = schema._fast_check(data["kind"])
        assert fast is not None
        try:
            verdict = fast(data)
        except Unsure:
            continue
        assert verdict == jsonschema_says_valid(data), data
        checked += 1
        invalid += not verdict
    assert checked > 1000 and 0.2 < invalid / checked < 0.95  # both answers were exercised


@pytest.mark.parametrize("value", [
    "1999-01-01T00:00:00Z", "2100-02-29T00:00:00Z", "2000-02-29T23:59:60+01:00", "1999-01-01t00:00:00z",
    "1999-01-01 00:00:00Z", "1999-01-01T00:00:00", "1999-13-01T00:00:00Z", "1999-01-01T24:00:00Z",
    "1999-01-01T00:00:00.123456789-23:59", "1999-01-01T00:00:00+24:00", "", "x@y", "@", "nobody", 5, None,
    "\uff11\uff19\uff19\uff19-01-01T00:00:00Z", "1999-01-01T00:00:00Z\n", "https://example.com/x", "not a uri",
])
@pytest.mark.parametrize("fmt", ["date-time", "email", "uri"])
def test_the_fast_format_check_is_jsonschemas(value: Any, fmt: str) -> None:
    from jsonschema import Draft202012Validator

    assert schema._conforms(value, fmt) == Draft202012Validator.FORMAT_CHECKER.conforms(value, fmt)
