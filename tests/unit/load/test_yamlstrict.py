"""Strict YAML reader: what it accepts, what it refuses, and where it says the problem is.

Every test runs on both parsers (libyaml through CSafeLoader, and pure-Python SafeLoader),
because a machine without libyaml must read files exactly the same way.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jitpol.errors import InvalidInput
from jitpol.load import yamlstrict
from jitpol.load.yamlstrict import MAX_SCALAR_CHARS, YamlDocument, YamlError, load_yaml, load_yaml_file

_BACKENDS: list[type[yaml.SafeLoader] | type[yaml.CSafeLoader]] = [yaml.SafeLoader]
if hasattr(yaml, "CSafeLoader"):
    _BACKENDS.insert(0, yaml.CSafeLoader)


@pytest.fixture(autouse=True, params=_BACKENDS, ids=lambda loader: loader.__name__)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> type:
    monkeypatch.setattr(yamlstrict, "_LOADER", request.param)
    loader: type = request.param
    return loader


def refused(text: str | bytes, **limits: int) -> YamlError:
    with pytest.raises(YamlError) as info:
        load_yaml(text, "f.yaml", **limits)
    return info.value


def assert_refused(text: str | bytes, line: int, col: int, fragment: str, **limits: int) -> YamlError:
    error = refused(text, **limits)
    assert (error.line, error.col) == (line, col), str(error)
    assert fragment in error.message, str(error)
    assert str(error) == f"f.yaml:{line}:{col}: {error.message}"
    return error


# ---------------------------------------------------------------------------------------------
# Good documents

GOOD = """\
apiVersion: jitpol/v1
kind: Grant
metadata: {name: alice-prod-db}
spec:
  requester: alice
  window:
    start: "1998-11-30T10:00:00Z"
    duration: 2h
  approvals:
    - by: bob
      key: "SHA256:x"
    - {by: carol, key: 'SHA256:y'}
  revoke: false
  active: true
  count: 3
  zero: 0
  negative: -7
  minus_zero: -0
  ratio: 0.5
  negative_ratio: -12.25
  nothing:
  tilde: ~
  explicit_null: null
  quoted_no: "no"
  single_quoted_on: 'on'
  quoted_time: "18:00"
  quoted_date: '1998-11-30'
  quoted_octal: "0755"
  version: 1.2.3
  address: 10.0.0.1
  words: not a number 1:30
  url: https://example.com:8443/x
  dashed: -foo
  note: |
    no
    yes
  folded: >
    a
    b
  list_of_lists: [[1, 2], []]
  empty_map: {}
  "quoted key": 1
  "1": one
  'on': quoted on key
"""


def test_good_document_has_plain_python_values() -> None:
    data = load_yaml(GOOD, "g.yaml").data
    assert type(data) is dict
    assert list(data) == ["apiVersion", "kind", "metadata", "spec"]  # insertion order kept
    spec = data["spec"]
    assert spec["window"] == {"start": "1998-11-30T10:00:00Z", "duration": "2h"}
    assert spec["approvals"] == [{"by": "bob", "key": "SHA256:x"}, {"by": "carol", "key": "SHA256:y"}]
    expected: dict[str, Any] = {
        "revoke": False,
        "active": True,
        "count": 3,
        "zero": 0,
        "negative": -7,
        "minus_zero": 0,
        "ratio": 0.5,
        "negative_ratio": -12.25,
        "nothing": None,
        "tilde": None,
        "explicit_null": None,
        "quoted_no": "no",
        "single_quoted_on": "on",
        "quoted_time": "18:00",
        "quoted_date": "1998-11-30",
        "quoted_octal": "0755",
        "version": "1.2.3",
        "address": "10.0.0.1",
        "words": "not a number 1:30",
        "url": "https://example.com:8443/x",
        "dashed": "-foo",
        "note": "no\nyes\n",
        "folded": "a b\n",
        "list_of_lists": [[1, 2], []],
        "empty_map": {},
        "quoted key": 1,
        "1": "one",
        "on": "quoted on key",
    }
    for key, value in expected.items():
        assert spec[key] == value, key
        assert type(spec[key]) is type(value), key


def test_marks_point_at_values_and_keys() -> None:
    doc = load_yaml(GOOD, "g.yaml")
    assert doc.mark() == (1, 1)
    assert doc.mark("kind") == (2, 7)
    assert doc.key_mark("kind") == (2, 1)
    assert doc.mark("metadata") == (3, 11)  # the "{"
    assert doc.mark("metadata", "name") == (3, 18)
    assert doc.key_mark("metadata", "name") == (3, 12)
    assert doc.mark("spec", "window", "start") == (7, 12)
    assert doc.key_mark("spec", "window", "start") == (7, 5)
    # list items: the item's first token; key_mark of an index is the item itself
    assert doc.mark("spec", "approvals") == (10, 5)
    assert doc.mark("spec", "approvals", 0) == (10, 7)
    assert doc.key_mark("spec", "approvals", 0) == (10, 7)
    assert doc.mark("spec", "approvals", 0, "key") == (11, 12)
    assert doc.key_mark("spec", "approvals", 0, "key") == (11, 7)
    assert doc.mark("spec", "approvals", 1) == (12, 7)
    assert doc.mark("spec", "approvals", 1, "key") == (12, 24)
    assert doc.key_mark("spec", "approvals", 1, "key") == (12, 19)
    assert doc.mark("spec", "list_of_lists", 0, 1) == (40, 23)
    assert doc.mark("spec", "note") == (34, 9)  # the "|"


def test_mark_of_missing_path_is_deepest_existing_ancestor() -> None:
    doc = load_yaml(GOOD, "g.yaml")
    assert doc.mark("spec", "window", "end") == doc.mark("spec", "window") == (7, 5)
    assert doc.key_mark("spec", "window", "end") == (7, 5)
    assert doc.mark("spec", "approvals", 5, "by") == doc.mark("spec", "approvals") == (10, 5)
    assert doc.mark("spec", "approvals", "0") == (10, 5)  # "0" is not the index 0
    assert doc.mark("nope", "deeper") == (1, 1)
    # a path through a scalar stops at the scalar
    assert doc.mark("kind", "x") == (2, 7)


def test_empty_value_mark_is_where_the_value_would_be() -> None:
    doc = load_yaml("a:\n  b:\n  c: 1\n", "f.yaml")
    assert doc.data == {"a": {"b": None, "c": 1}}
    assert doc.key_mark("a", "b") == (2, 3)
    assert doc.mark("a", "b")[0] == 2


def test_marks_count_characters_and_crlf_line_breaks() -> None:
    doc = load_yaml("a: ü\r\nbé: [x, ü, z]\r\nc: 'ä'\r\n", "f.yaml")
    assert doc.data == {"a": "ü", "bé": ["x", "ü", "z"], "c": "ä"}
    assert doc.mark("bé", 2) == (2, 12)
    assert doc.mark("c") == (3, 4)


def test_bytes_are_utf8_and_a_bom_is_dropped() -> None:
    text = "name: Zoë\n"
    assert load_yaml(text.encode(), "f.yaml").data == {"name": "Zoë"}
    doc = load_yaml(b"\xef\xbb\xbf" + text.encode(), "f.yaml")
    assert doc.data == {"name": "Zoë"}
    assert doc.mark("name") == (1, 7)
    assert load_yaml("\ufeff" + text, "f.yaml").data == {"name": "Zoë"}


def test_explicit_document_markers_are_fine() -> None:
    assert load_yaml("---\na: 1\n...\n", "f.yaml").data == {"a": 1}
    assert load_yaml("# comment\n--- # start\na: 1 # trailing\n", "f.yaml").data == {"a": 1}


def test_same_key_in_different_mappings_is_not_a_duplicate() -> None:
    data = load_yaml("a: {x: 1}\nb: {x: 2}\nl: [{x: 1}, {x: 2}]\n", "f.yaml").data
    assert data == {"a": {"x": 1}, "b": {"x": 2}, "l": [{"x": 1}, {"x": 2}]}


def test_document_value_and_path() -> None:
    doc = load_yaml("a: 1\n", "grants/x.yaml")
    assert doc.path == "grants/x.yaml"
    assert doc == YamlDocument("grants/x.yaml", {"a": 1})  # marks do not take part in equality
    assert YamlDocument("p", {}).mark("a") == (1, 1)


# ---------------------------------------------------------------------------------------------
# YAML 1.1 implicit types and other ambiguous plain scalars


def test_brief_example_message_exactly() -> None:
    error = assert_refused("apiVersion: jitpol/v1\nspec:\n  revoke: no\n", 3, 11, "")
    assert error.message == (
        "unquoted value 'no' would be read as a boolean by some YAML tools; write \"no\" (a string) or false"
    )


BOOL_WORDS = ["y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO"]
BOOL_WORDS += ["on", "On", "ON", "off", "Off", "OFF", "True", "TRUE", "False", "FALSE"]


@pytest.mark.parametrize("word", BOOL_WORDS)
def test_yaml11_and_capitalised_booleans_are_refused(word: str) -> None:
    error = assert_refused(f"a: x\nb: {word}\n", 2, 4, f"unquoted value {word!r} would be read as a boolean")
    assert f'write "{word}" (a string)' in error.message
    truth = word.lower() in ("y", "yes", "on", "true")
    assert error.message.endswith(" or true" if truth else " or false")


@pytest.mark.parametrize("word", ["Null", "NULL"])
def test_capitalised_null_is_refused(word: str) -> None:
    assert_refused(f"a: {word}\n", 1, 4, f"unquoted value {word!r} would be read as null")


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("1:30", "base-60 number 90 "),
        ("18:00", "base-60 number 1080 "),
        ("08:00", "base-60 number 480 "),
        ("-1:30", "base-60 number -90 "),
        ("1:30:15", "base-60 number 5415 "),
        ("190:20:30.15", "base-60 number 685230.15 "),
        ("1998-11-30", "read as a date"),
        ("1998-1-5", "read as a date"),
        ("1998-11-30T10:00:00Z", "read as a timestamp"),
        ("1998-11-30t10:00:00.5+02:00", "read as a timestamp"),
        ("1998-11-30 10:00:00", "read as a timestamp"),
        ("1998-11-30T10:00", "read as a timestamp"),
        ("0755", "the number 493 by some YAML tools and 755 by others"),
        ("-0755", "the number -493 by some YAML tools and -755 by others"),
        ("00", "the number 0 "),
        ("09", "the number 9 "),
        ("012345678901", "the number 12345678901 "),
        ("0o17", "the number 15 "),
        ("0x1F", "the number 31 "),
        ("0b101", "the number 5 "),
        ("1_000", "the number 1000 "),
        ("+5", "the number 5 "),
        ("1e3", "the number 1000.0 "),
        ("1.0e3", "the number 1000.0 "),
        ("1.5e-3", "the number 0.0015 "),
        ("1.", "the number 1.0 "),
        (".5", "the number 0.5 "),
        ("+1.5", "the number 1.5 "),
        ("1_0.5", "the number 10.5 "),
        (".inf", "read as infinity"),
        (".Inf", "read as infinity"),
        ("+.INF", "read as infinity"),
        ("-.inf", "read as minus infinity"),
        (".nan", "read as not-a-number"),
        (".NaN", "read as not-a-number"),
        (".NAN", "read as not-a-number"),
        ("=", "special meaning in YAML 1.1"),
        ("<<", "merge-key marker"),
    ],
)
def test_ambiguous_plain_scalars_are_refused(raw: str, fragment: str) -> None:
    error = assert_refused(f"spec:\n  list: [ok, {raw}]\n", 2, 14, fragment)
    assert f"unquoted value {raw!r}" in error.message
    assert f'write "{raw}" (a string)' in error.message
    # quoted, the same text is just a string
    assert load_yaml(f'spec:\n  list: [ok, "{raw}"]\n', "f.yaml").data == {"spec": {"list": ["ok", raw]}}
    assert load_yaml(f"spec:\n  list: [ok, '{raw}']\n", "f.yaml").data == {"spec": {"list": ["ok", raw]}}


def test_number_suggestions_name_the_number() -> None:
    assert refused("a: 0x1F\n").message.endswith('write "0x1F" (a string) or 31')
    assert refused("a: 1_000\n").message.endswith('write "1_000" (a string) or 1000')
    assert refused("a: 0755\n").message.endswith("or the number you mean in plain decimal")


@pytest.mark.parametrize("raw", ["1" * 65, "-" + "9" * 65])
def test_very_long_integers_are_refused(raw: str) -> None:
    assert_refused(f"a: {raw}\n", 1, 4, "longer than 64 digits")
    assert load_yaml(f"a: {raw[:64]}\n", "f.yaml").data == {"a": int(raw[:64])}


def test_float_that_overflows_is_refused() -> None:
    assert_refused(f"a: {'9' * 400}.5\n", 1, 4, "too large")


def test_ambiguous_scalar_inside_a_block_list_points_at_it() -> None:
    text = "spec:\n  days:\n    - mon\n    - on\n"
    assert_refused(text, 4, 7, "unquoted value 'on'")


# ---------------------------------------------------------------------------------------------
# Keys


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ("1", "mapping key '1' would be read as a number; keys must be strings"),
        ("-3", "would be read as a number"),
        ("1.5", "would be read as a number"),
        ("true", "mapping key 'true' would be read as a boolean; keys must be strings"),
        ("false", "would be read as a boolean"),
        ("null", "mapping key 'null' would be read as null"),
        ("~", "mapping key '~' would be read as null"),
        ("on", "unquoted key 'on' would be read as a boolean"),
        ("NO", "unquoted key 'NO' would be read as a boolean"),
        ("1998-01-01", "unquoted key '1998-01-01' would be read as a date"),
        ("0x10", "unquoted key '0x10' would be read as the number 16"),
        ("10:30", "unquoted key '10:30' could be read as the base-60 number 630"),
    ],
)
def test_keys_must_be_strings(key: str, fragment: str) -> None:
    error = assert_refused(f"a: 1\nb:\n  {key}: x\n", 3, 3, fragment)
    assert f'"{key}"' in error.message
    assert " or " not in error.message.split(";")[-1]  # no "or true": a key cannot be a boolean
    assert load_yaml(f'a: 1\nb:\n  "{key}": x\n', "f.yaml").data == {"a": 1, "b": {key: "x"}}


def test_empty_key_is_refused() -> None:
    # libyaml refuses ": x" as a syntax error; PyYAML reads an empty key: both are refused.
    error = refused("a: 1\n? \n: x\n")
    assert error.line == 2
    assert "empty" in error.message or "invalid YAML" in error.message


@pytest.mark.parametrize(
    "text", ["? [a, b]\n: x\n", "? {a: 1}\n: x\n", "? - a\n: x\n", "{[a]: x}\n", "{{a: 1}: x}\n"]
)
def test_collection_keys_are_refused(text: str) -> None:
    error = refused(text)
    assert error.line == 1
    assert "mapping keys must be strings" in error.message


@pytest.mark.parametrize(
    ("text", "line", "col", "first"),
    [
        ("a: 1\nb: 2\na: 3\n", 3, 1, "(first at line 1, column 1)"),
        ("a: 1\n'a': 2\n", 2, 1, "(first at line 1, column 1)"),
        ('a: 1\n"a": 2\n', 2, 1, "(first at line 1, column 1)"),
        ("spec:\n  x:\n    k: 1\n    j: 2\n    k: 3\n", 5, 5, "(first at line 3, column 5)"),
        ("spec: {k: 1, j: 2, k: 3}\n", 1, 20, "(first at line 1, column 8)"),
        ("l:\n  - a: 1\n    a: 2\n", 3, 5, "(first at line 2, column 5)"),
        ("l: [{a: 1, b: 2}, {b: 1, b: 2}]\n", 1, 26, "(first at line 1, column 20)"),
        ("a:\n  b: {}\na: x\n", 3, 1, "(first at line 1, column 1)"),
    ],
)
def test_duplicate_keys_name_both_places(text: str, line: int, col: int, first: str) -> None:
    error = assert_refused(text, line, col, "duplicate key")
    assert first in error.message
    assert "remove one of them" in error.message


@pytest.mark.parametrize(
    ("text", "line", "col"),
    [
        ("<<: {a: 1}\n", 1, 1),
        ("base: {a: 1}\nderived:\n  <<: {b: 2}\n  c: 3\n", 3, 3),
        ("x: [{<<: {a: 1}}]\n", 1, 6),
    ],
)
def test_merge_keys_are_refused(text: str, line: int, col: int) -> None:
    assert_refused(text, line, col, "merge keys (<<) are not allowed")


def test_quoted_merge_key_is_just_a_string() -> None:
    assert load_yaml('"<<": 1\n', "f.yaml").data == {"<<": 1}


# ---------------------------------------------------------------------------------------------
# Anchors, aliases, tags, directives, documents


@pytest.mark.parametrize(
    ("text", "line", "col", "fragment"),
    [
        ("a: &x 1\n", 1, 4, "anchors (&x) are not allowed"),
        ("a: &m {b: 1}\n", 1, 4, "anchors (&m)"),
        ("a: &s [1]\n", 1, 4, "anchors (&s)"),
        ("a:\n  - &i item\n", 2, 5, "anchors (&i)"),
        ("&top\na: 1\n", 1, 1, "anchors (&top)"),
        ("a: 1\nb: *x\n", 2, 4, "aliases (*x) are not allowed"),
        ("a: [1, *undefined]\n", 1, 8, "aliases (*undefined)"),
    ],
)
def test_anchors_and_aliases_are_refused(text: str, line: int, col: int, fragment: str) -> None:
    assert_refused(text, line, col, fragment)


def test_alias_bomb_is_refused_at_once() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for name, prev in zip("bcdefghijklmnopq", "abcdefghijklmnop", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    bomb = "\n".join(lines) + "\n"  # 9**17 strings if expanded
    started = time.perf_counter()
    assert_refused(bomb, 1, 4, "anchors (&a)")
    # same bomb with the first anchor on a later line: still refused before any expansion
    assert_refused("ok: 1\n" + bomb, 2, 4, "anchors (&a)")
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("a: !!str 5\n", "!!str"),
        ("a: !!int '5'\n", "!!int"),
        ("a: !!binary aGVsbG8=\n", "!!binary"),
        ("a: !!python/object/apply:os.system ['true']\n", "!!python/object/apply:os.system"),
        ("a: !custom x\n", "!custom"),
        ("a: ! x\n", "(!)"),
        ("a: !<tag:yaml.org,2002:str> x\n", "!!str"),
        ("a: !!map {b: 1}\n", "!!map"),
        ("a: !!seq [1]\n", "!!seq"),
        ("a: !!set {x}\n", "!!set"),
        ("a: !!timestamp 1998-01-01\n", "!!timestamp"),
    ],
)
def test_explicit_tags_are_refused(text: str, shown: str) -> None:
    error = assert_refused(text, 1, 4, "explicit tags")
    assert shown in error.message


def test_tag_on_the_top_level_and_on_keys_is_refused() -> None:
    assert_refused("!!map\na: 1\n", 1, 1, "explicit tags (!!map)")
    assert_refused("!!str a: 1\n", 1, 1, "explicit tags (!!str)")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("%YAML 1.1\n---\na: 1\n", "%YAML directives are not allowed"),
        ("%YAML 1.2\n---\na: 1\n", "%YAML directives are not allowed"),
        ("%TAG !e! tag:example.com,2000:\n---\na: 1\n", "%TAG directives are not allowed"),
    ],
)
def test_directives_are_refused(text: str, fragment: str) -> None:
    assert_refused(text, 1, 1, fragment)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a: 1\n---\nb: 2\n", 2),
        ("---\na: 1\n---\nb: 2\n", 3),
        ("a: 1\n...\n---\nb: 2\n", 3),
        ("a: 1\n---\n", 2),
    ],
)
def test_more_than_one_document_is_refused(text: str, line: int) -> None:
    assert_refused(text, line, 1, "more than one YAML document")


def test_content_after_document_end_is_refused() -> None:
    # both parsers want "---" before a second document; either way it is refused at line 3
    assert refused("a: 1\n...\nb: 2\n").line == 3


@pytest.mark.parametrize("text", ["", "\n\n", "   \n", "# only a comment\n", "\ufeff", b"", b"\xef\xbb\xbf"])
def test_empty_file_is_refused(text: str | bytes) -> None:
    error = refused(text)
    assert error.message.startswith("empty file")
    assert (error.line, error.col) == (1, 1)


@pytest.mark.parametrize("text", ["---\n", "--- # nothing\n", "---\n...\n"])
def test_empty_document_is_refused(text: str) -> None:
    assert "the document is empty" in refused(text).message


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("- a\n- b\n", "not a list"),
        ("[a, b]\n", "not a list"),
        ("just text\n", "not a single value"),
        ("'quoted'\n", "not a single value"),
        ("42\n", "not a single value"),
        ("null\n", "not a single value"),
        ("|\n  block\n", "not a single value"),
    ],
)
def test_top_level_must_be_a_mapping(text: str, what: str) -> None:
    error = assert_refused(text, 1, 1, "the top level must be a mapping")
    assert what in error.message


# ---------------------------------------------------------------------------------------------
# Limits


def test_size_limit_is_checked_before_parsing() -> None:
    # invalid YAML and invalid UTF-8 beyond the limit: the size is what gets reported
    assert_refused(b"[" * 101, 1, 1, "larger than the limit of 100 bytes", max_bytes=100)
    assert_refused(b"\xff" * 101, 1, 1, "larger than the limit of 100 bytes", max_bytes=100)
    assert_refused("[" * 101, 1, 1, "larger than the limit of 100 bytes", max_bytes=100)
    text = "a: " + "x" * 96 + "\n"  # exactly 100 bytes
    assert load_yaml(text, "f.yaml", max_bytes=100).data == {"a": "x" * 96}
    assert load_yaml(text.encode(), "f.yaml", max_bytes=100).data == {"a": "x" * 96}


def test_size_limit_counts_utf8_bytes_not_characters() -> None:
    text = "a: " + "é" * 49 + "\n"  # 53 characters, 102 bytes
    assert_refused(text, 1, 1, "larger than the limit of 100 bytes", max_bytes=100)
    assert_refused(text.encode(), 1, 1, "larger than the limit of 100 bytes", max_bytes=100)


def test_default_size_limit_is_one_megabyte() -> None:
    big = "a: '" + "x" * 1_000_000 + "'\n"
    assert_refused(big, 1, 1, "larger than the limit of 1000000 bytes")


def nested_block(depth: int) -> str:
    """`depth` nested mappings: k0: {k1: {... : leaf}} in block style."""
    return (
        "".join(f"{'  ' * level}k{level}:\n" for level in range(depth - 1)) + f"{'  ' * (depth - 1)}leaf: 1\n"
    )


def test_nesting_limit_block_style() -> None:
    assert load_yaml(nested_block(32), "f.yaml").mark(*[f"k{i}" for i in range(31)], "leaf") == (32, 69)
    # the 33rd mapping starts on line 33 at its first key
    assert_refused(nested_block(33), 33, 65, "nesting is deeper than 32 levels")
    assert_refused(nested_block(5), 5, 9, "nesting is deeper than 4 levels", max_depth=4)


def test_nesting_limit_flow_style_is_cheap() -> None:
    assert load_yaml("a: " + "[" * 31 + "]" * 31, "f.yaml").data is not None
    assert_refused("a: " + "[" * 32 + "]" * 32, 1, 35, "nesting is deeper than 32 levels")
    started = time.perf_counter()
    error = refused("a: " + "[" * 999_990)
    assert time.perf_counter() - started < 2.0
    # libyaml's scanner looks ahead and stops at its own limit of 1000 flow levels
    assert error.message in (
        "nesting is deeper than 32 levels",
        "invalid YAML: exceeded maximum nesting depth (while increasing flow level at line 1)",
    ), str(error)


def test_node_limit() -> None:
    # nodes: the top mapping, key "a", the list, and each item
    text = "a: [" + ", ".join(["1"] * 7) + "]\n"
    assert load_yaml(text, "f.yaml", max_nodes=10).data == {"a": [1] * 7}
    error = assert_refused("a: [" + ", ".join(["1"] * 8) + "]\n", 1, 26, "more than 10 values", max_nodes=10)
    assert "split it" in error.message


def test_node_limit_counts_keys() -> None:
    assert_refused("a: 1\nb: 2\nc: 3\n", 3, 1, "more than 5 values", max_nodes=5)


def test_scalar_length_limit() -> None:
    ok = "x" * MAX_SCALAR_CHARS
    assert load_yaml(f"a: {ok}\n", "f.yaml").data == {"a": ok}
    assert_refused(f"a: b\nc: {ok}x\n", 2, 4, f"longer than {MAX_SCALAR_CHARS} characters")
    assert_refused(f"a: b\nc: '{ok}x'\n", 2, 4, f"longer than {MAX_SCALAR_CHARS} characters")
    # a key longer than 1024 characters can only be written as an explicit key ("? ")
    assert_refused(f"a: b\n? {ok}x\n: c\n", 2, 3, f"longer than {MAX_SCALAR_CHARS} characters")


# ---------------------------------------------------------------------------------------------
# Encoding and characters


def test_invalid_utf8_is_refused_with_its_position() -> None:
    assert_refused(b"a: 1\nb: caf\xe9\n", 2, 7, "not valid UTF-8 (byte 0xe9)")
    assert_refused(b"a: \xc3\xa9\xff\n", 1, 5, "not valid UTF-8 (byte 0xff)")
    # UTF-16 is not UTF-8
    assert_refused("a: 1\n".encode("utf-16"), 1, 1, "not valid UTF-8")


def test_lone_surrogate_in_str_input_is_refused() -> None:
    assert_refused("a: 1\nb: x\ud800\n", 2, 5, "lone surrogate U+D800")


def test_escaped_surrogates_are_refused() -> None:
    # JSON writes non-BMP characters as surrogate-pair escapes; YAML parsers disagree on them.
    error = refused('a: "\\ud83d\\ude00"\n')
    assert error.line == 1
    assert load_yaml('a: "\\U0001F600 \\u00e9"\n', "f.yaml").data == {"a": "\U0001f600 é"}


@pytest.mark.parametrize(
    ("char", "fragment"),
    [
        ("\x00", "character U+0000 is not allowed"),
        ("\x07", "character U+0007 is not allowed"),
        ("\x1b", "character U+001B is not allowed"),
        ("\x7f", "character U+007F is not allowed"),
        ("\x9b", "character U+009B is not allowed"),
        ("\ufffe", "character U+FFFE is not allowed"),
        ("\x85", "line separator U+0085"),
        ("\u2028", "line separator U+2028"),
        ("\u2029", "line separator U+2029"),
    ],
)
def test_forbidden_characters_are_refused_where_they_are(char: str, fragment: str) -> None:
    assert_refused(f"a: 1\r\nb: 'x{char}'\n", 2, 6, fragment)
    assert_refused(f"a: 1\nb: 'x{char}'\n".encode(), 2, 6, fragment)


def test_tab_indentation_is_a_syntax_error_with_a_hint() -> None:
    error = refused("a:\n\tb: 1\n")
    assert isinstance(error, InvalidInput)
    assert error.line == 2
    assert error.message.startswith("invalid YAML:")
    assert "indent with spaces, not tabs" in error.message


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a: [1, 2\n", 2),
        ("a: 1\n b: 2\n", 2),
        ("a: 'unterminated\n", 2),
        ("a: b: c\n", 1),
        ("a:\n  - x\n  y: 1\n", 3),
        ("a: {b: 1\n", 2),
        ("a: @x\n", 1),
    ],
)
def test_syntax_errors_become_yaml_errors_with_a_line(text: str, line: int) -> None:
    error = refused(text)
    assert error.line == line, str(error)
    assert error.col >= 1
    assert error.message.startswith("invalid YAML: ")


# ---------------------------------------------------------------------------------------------
# The error value


def test_yaml_error_value() -> None:
    error = YamlError("grants/x.yaml", 3, 7, "something is wrong")
    assert isinstance(error, InvalidInput)
    assert (error.path, error.line, error.col, error.message) == ("grants/x.yaml", 3, 7, "something is wrong")
    assert str(error) == "grants/x.yaml:3:7: something is wrong"
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own object
    assert (copy.path, copy.line, copy.col, copy.message, str(copy)) == (
        error.path,
        error.line,
        error.col,
        error.message,
        str(error),
    )


def test_error_names_the_given_path() -> None:
    with pytest.raises(YamlError) as info:
        load_yaml("a: no\n", "grants/team/x.yaml")
    assert str(info.value).startswith("grants/team/x.yaml:1:4: ")


# ---------------------------------------------------------------------------------------------
# Files


def test_load_file(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text("a: 1\nb: [x]\n", encoding="utf-8")
    doc = load_yaml_file(path)
    assert doc.path == str(path)
    assert doc.data == {"a": 1, "b": ["x"]}
    assert doc.mark("b", 0) == (2, 5)
    assert load_yaml_file(path, "grants/g.yaml").path == "grants/g.yaml"


def test_load_file_errors_use_display_path(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text("a: 1\nb: yes\n", encoding="utf-8")
    with pytest.raises(YamlError) as info:
        load_yaml_file(path, "grants/g.yaml")
    assert str(info.value).startswith("grants/g.yaml:2:4: unquoted value 'yes'")


def test_load_file_passes_limits(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text("a: {b: {c: 1}}\n", encoding="utf-8")
    with pytest.raises(YamlError, match="deeper than 2 levels"):
        load_yaml_file(path, max_depth=2)
    with pytest.raises(YamlError, match="more than 6 values"):  # {}, a, {}, b, {}, c, 1
        load_yaml_file(path, max_nodes=6)
    with pytest.raises(YamlError, match="larger than the limit of 14 bytes"):
        load_yaml_file(path, max_bytes=14)
    assert load_yaml_file(path, max_depth=3, max_nodes=7, max_bytes=15).data == {"a": {"b": {"c": 1}}}


def test_load_file_refuses_oversized_file_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("wb") as handle:
        handle.truncate(50_000_000)  # sparse NULs: reading them would report U+0000, not the size
    with pytest.raises(YamlError) as info:
        load_yaml_file(path, "big.yaml")
    assert str(info.value) == (
        "big.yaml:1:1: file is larger than the limit of 1000000 bytes (50000000); split it"
    )
    with pytest.raises(YamlError, match="larger than the limit of 10 bytes"):
        load_yaml_file(tmp_path / "big.yaml", max_bytes=10)


def test_load_file_refuses_symlinks(tmp_path: Path) -> None:
    target = tmp_path / "real.yaml"
    target.write_text("a: 1\n", encoding="utf-8")
    link = tmp_path / "link.yaml"
    link.symlink_to(target)
    with pytest.raises(YamlError, match="is a symbolic link"):
        load_yaml_file(link, "grants/link.yaml")
    dangling = tmp_path / "dangling.yaml"
    dangling.symlink_to(tmp_path / "missing.yaml")
    with pytest.raises(YamlError, match="is a symbolic link"):
        load_yaml_file(dangling)


def test_load_file_refuses_directories_and_fifos(tmp_path: Path) -> None:
    with pytest.raises(YamlError, match="is not a regular file"):
        load_yaml_file(tmp_path)
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(YamlError, match="is not a regular file"):  # and does not hang
        load_yaml_file(fifo)


def test_load_file_missing_or_unreadable(tmp_path: Path) -> None:
    with pytest.raises(YamlError) as info:
        load_yaml_file(tmp_path / "missing.yaml", "grants/missing.yaml")
    assert str(info.value) == "grants/missing.yaml:1:1: cannot read the file: No such file or directory"


def test_load_file_with_bom_and_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_bytes(b"\xef\xbb\xbfa: 1\n")
    assert load_yaml_file(path).data == {"a": 1}
    path.write_bytes(b"a: 1\nb: \x80\n")
    with pytest.raises(YamlError, match=re.escape(":2:4: not valid UTF-8")):
        load_yaml_file(path)


# ---------------------------------------------------------------------------------------------
# Properties

_BIDI_CHARS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"  # refused on purpose
_TEXT = st.text(
    st.characters(exclude_categories=["Cs", "Cc", "Cn", "Zl", "Zp"], exclude_characters=_BIDI_CHARS), max_size=12
)
_SCALARS = st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63) | _TEXT
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=25,
)
_DOCUMENTS = st.dictionaries(_TEXT, _VALUES, min_size=0, max_size=6)
_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_SETTINGS
@given(
    data=_DOCUMENTS,
    indent=st.sampled_from([None, 2]),
    separators=st.sampled_from([None, (",", ":")]),
)
def test_json_documents_load_to_the_same_values(
    data: dict[str, Any], indent: int | None, separators: tuple[str, str] | None
) -> None:
    text = json.dumps(data, ensure_ascii=False, indent=indent, separators=separators)
    if not data and indent is None:
        assert text == "{}"
    assert load_yaml(text, "f.json").data == data
    assert load_yaml(text.encode(), "f.json").data == data


_BMP_TEXT = st.text(
    st.characters(max_codepoint=0xFFFF, exclude_categories=["Cs"], exclude_characters=_BIDI_CHARS), max_size=12
)


@_SETTINGS
@given(
    data=st.dictionaries(
        _BMP_TEXT, st.none() | st.booleans() | st.integers(-(2**63), 2**63) | _BMP_TEXT, max_size=6
    )
)
def test_ascii_json_with_escapes_loads_to_the_same_values(data: dict[str, Any]) -> None:
    # ensure_ascii writes every non-ASCII and control character as \uXXXX; within the BMP YAML
    # reads those escapes the same (beyond it JSON uses surrogate pairs: refused, see above).
    assert load_yaml(json.dumps(data), "f.json").data == data


# A YAML 1.2 core-schema resolver written from the spec, as an independent oracle.
def core12(raw: str) -> Any:
    if raw in ("", "~", "null", "Null", "NULL"):
        return None
    if raw in ("true", "True", "TRUE"):
        return True
    if raw in ("false", "False", "FALSE"):
        return False
    if re.fullmatch(r"[-+]?[0-9]+", raw):
        return int(raw)
    if re.fullmatch(r"0o[0-7]+", raw):
        return int(raw[2:], 8)
    if re.fullmatch(r"0x[0-9a-fA-F]+", raw):
        return int(raw[2:], 16)
    if re.fullmatch(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?", raw):
        return float(raw)
    if re.fullmatch(r"[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)", raw):
        return float(raw.replace(".", ""))
    return raw


_SCALAR_ALPHABET = "0123456789:-+._eExXoObB~tTfFnNyYuslrIiAa "
_WORDS = ["yes", "no", "on", "off", "y", "n", "true", "false", "null", "~", ".inf", ".nan", "<<", "="]


@_SETTINGS
@given(raw=st.text(_SCALAR_ALPHABET, min_size=1, max_size=10) | st.sampled_from(_WORDS))
def test_accepted_plain_scalars_mean_the_same_in_yaml_11_and_12(raw: str) -> None:
    """Whatever load_yaml accepts unquoted, PyYAML (YAML 1.1) and the 1.2 core schema agree on."""
    text = f"a: {raw}\n"
    try:
        value = load_yaml(text, "f.yaml").data["a"]
    except YamlError:
        return  # refusing is always safe
    try:
        yaml11 = yaml.load(text, Loader=yaml.SafeLoader)["a"]  # SafeLoader
    except yaml.YAMLError:
        pytest.fail(f"accepted {raw!r}, which PyYAML cannot read")
    yaml12 = core12(raw.strip())
    for other in (yaml11, yaml12):
        assert type(value) is type(other), (raw, value, other)
        assert value == other or (isinstance(value, float) and math.isnan(value) and math.isnan(other))


@_SETTINGS
@given(raw=st.text(_SCALAR_ALPHABET, min_size=1, max_size=10) | st.sampled_from(_WORDS))
def test_keys_are_strings_or_refused(raw: str) -> None:
    try:
        data = load_yaml(f"{raw}: 1\n", "f.yaml").data
    except YamlError:
        return
    (key,) = data
    assert isinstance(key, str)
    assert yaml.load(f"{raw}: 1\n", Loader=yaml.SafeLoader) == data  # SafeLoader


@pytest.mark.parametrize("ch", ["\u202e", "\u2066", "\u2069"])
def test_bidi_controls_are_refused(ch: str) -> None:
    with pytest.raises(YamlError) as err:
        load_yaml(f"a: b\nc: \"x{ch}y\"\n", "f.yaml")
    assert (err.value.line, err.value.col) == (2, 6) and "bidirectional" in err.value.message


def test_the_refused_characters_are_the_complement_of_those_pyyaml_allows_minus_nel_ls_ps() -> None:
    import re

    from jitpol.load import yamlstrict

    allowed = re.compile("[\x09\x0a\x0d\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
    differ = [c for c in range(0x110000)
              if bool(yamlstrict._FORBIDDEN_CHAR.match(chr(c))) == bool(allowed.match(chr(c)))]
    assert differ == []
