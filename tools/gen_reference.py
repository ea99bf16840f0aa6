"""Generate docs/reference.md, the field reference of every kind, from schemas/*.schema.json.

    .venv/bin/python tools/gen_reference.py            # rewrite docs/reference.md
    .venv/bin/python tools/gen_reference.py --check    # exit 1 if it is out of date

The schemas are the single source of truth for validation, so the reference is rendered from
them rather than written by hand: a field added to a schema shows up here with its type,
whether it is required, its default/enum/pattern and its description. tests/meta/test_reference.py
fails when the committed file differs from what this renders.

Contract of `render(schema_dir)`: deterministic (same schemas, same text; no time stamps), one
section per kind in the order of KIND_ORDER (unknown kinds after, by name), one table row per
field path, conditional fields (`if`/`then`/`else`) in their own tables or as rules, and the
shared `$defs` once at the end. Raises ValueError for a schema it cannot describe faithfully
(an unresolvable `$ref`, two different `$defs` under one name).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"
OUTPUT = ROOT / "docs" / "reference.md"
COMMAND = "python tools/gen_reference.py"

# the order in which a reader meets the kinds (README: the policy repository)
KIND_ORDER = ("Config", "Person", "Team", "Workflow", "Resource", "Grant", "PolicyApproval")
# keywords that are shown as constraints, in this order; the rest are structure or noise
_HIDDEN = frozenset({"$schema", "$id", "$ref", "$defs", "title", "description", "type", "properties",
                     "required", "additionalProperties", "items", "allOf", "oneOf", "anyOf", "if", "then",
                     "else", "propertyNames", "const", "enum", "default"})

_JSON_TYPES = {"str": "string", "bool": "boolean", "int": "integer", "float": "number", "NoneType": "null"}

Schema = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Row:
    """One table row: a field path and what the schema says about it."""

    path: str
    type: str
    required: str
    constraints: str
    description: str


@dataclass(frozen=True, slots=True)
class Kind:
    """One schema file, resolved enough to render."""

    name: str
    file: str
    schema: Schema

    @property
    def defs(self) -> Mapping[str, Schema]:
        defs: Mapping[str, Schema] = self.schema.get("$defs", {})
        return defs


# ---------------------------------------------------------------------------------------------
# small renderers


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell: one line, pipes escaped (also inside code spans)."""
    return " ".join(text.split()).replace("|", "\\|")


def _code(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    tick = "``" if "`" in text else "`"
    pad = " " if tick == "``" else ""
    return f"{tick}{pad}{text}{pad}{tick}"


def _anchor(def_name: str) -> str:
    return f"value-type-{def_name.lower()}"


def _ref_name(ref: str) -> str:
    prefix = "#/$defs/"
    if not ref.startswith(prefix):
        raise ValueError(f"$ref {ref!r}: only local #/$defs/ references are supported")
    return ref[len(prefix):]


def _resolve(kind: Kind, schema: Schema) -> tuple[Schema, str | None]:
    """The schema with its `$ref` merged in (local keys win), and the name of the def it used."""
    ref = schema.get("$ref")
    if ref is None:
        return schema, None
    name = _ref_name(str(ref))
    if name not in kind.defs:
        raise ValueError(f"{kind.file}: $ref {ref!r} names no $defs entry")
    target, _ = _resolve(kind, kind.defs[name])
    merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return merged, name


def _base_type(kind: Kind, schema: Schema, links: bool = True) -> str:
    """A short type: `string`, `integer`, `array of string`, `map of key → object`, `a or b`,
    followed by a link to the value type (`$def`) it uses. Inside a linked value type, inner
    links are left out: the value type's own row names them."""
    resolved, def_name = _resolve(kind, schema)
    core = _core_type(kind, resolved, links and def_name is None)
    return f"{core} ([{def_name}](#{_anchor(def_name)}))" if def_name and links else core


def _core_type(kind: Kind, resolved: Schema, links: bool) -> str:
    if "const" in resolved:
        return f"constant {_code(resolved['const'])}"
    for combinator in ("oneOf", "anyOf"):
        if combinator in resolved and any(_is_typed(kind, alt) for alt in resolved[combinator]):
            return " or ".join(_base_type(kind, alt, links) for alt in resolved[combinator])
    raw = resolved.get("type")
    if "enum" in resolved and raw is None:
        raw = sorted({_JSON_TYPES.get(type(v).__name__, "any") for v in resolved["enum"]})
    types = [raw] if isinstance(raw, str) else list(raw or [])
    if types == ["array"]:
        items = resolved.get("items")
        return "array of " + _base_type(kind, items, links) if isinstance(items, Mapping) else "array"
    if types == ["object"] and isinstance(resolved.get("additionalProperties"), Mapping) \
            and not resolved.get("properties"):
        value = _base_type(kind, resolved["additionalProperties"], links)
        return f"map of key → {f'({value})' if ' or ' in value else value}"
    return " or ".join(types) or "any"


def _is_typed(kind: Kind, schema: Schema) -> bool:
    resolved, _ = _resolve(kind, schema)
    return any(k in resolved for k in ("type", "const", "enum", "oneOf", "anyOf"))


def _constraints(kind: Kind, schema: Schema) -> str:
    """default / enum / pattern and the other limits. A field that uses a `$def` shows only what
    it adds: the def's own limits are listed once, in the value types section."""
    local = {k: v for k, v in schema.items() if k != "$ref"}
    parts: list[str] = []
    if "default" in local:
        parts.append(f"default {_code(local['default'])}")
    if "enum" in local:
        parts.append("one of " + ", ".join(_code(v) for v in local["enum"]))
    if "pattern" in local:
        parts.append(f"pattern {_code(local['pattern'])}")
    if "format" in local:
        parts.append(f"format {local['format']}")
    for key, word in (("minLength", "min length"), ("maxLength", "max length"), ("minimum", "≥"),
                      ("exclusiveMinimum", ">"), ("maximum", "≤"), ("minItems", "min items"),
                      ("maxItems", "max items"), ("minProperties", "min keys"), ("maxProperties", "max keys")):
        if key in local:
            parts.append(f"{word} {local[key]}")
    if local.get("uniqueItems"):
        parts.append("unique items")
    items = local.get("items")
    if isinstance(items, Mapping) and "$ref" not in items and not _worth_a_row(kind, items):
        inner = _constraints(kind, items)
        if inner:
            parts.append(f"items: {inner}")
    names = local.get("propertyNames")
    if isinstance(names, Mapping):
        parts.append("keys: " + _key_rule(kind, names))
    if local.get("additionalProperties") is False and local.get("properties"):
        parts.append("no other keys")
    unknown = sorted(k for k in local if k not in _HIDDEN and k not in {
        "pattern", "format", "minLength", "maxLength", "minimum", "exclusiveMinimum", "maximum", "minItems",
        "maxItems", "minProperties", "maxProperties", "uniqueItems"})
    if unknown:
        raise ValueError(f"{kind.file}: keyword(s) {unknown} are not described by {COMMAND}; teach it")
    return "; ".join(parts)


def _key_rule(kind: Kind, names: Schema) -> str:
    if "$ref" in names:
        def_name = _ref_name(str(names["$ref"]))
        return f"[{def_name}](#{_anchor(def_name)})"
    return _constraints(kind, names) or "any"


def _condition(if_schema: Schema, prefix: str) -> str:
    """`if` schemas of the form {properties: {p: {...}}, required: [p]} as words."""
    words: list[str] = []
    for name, sub in if_schema.get("properties", {}).items():
        field = _code(prefix + name)
        if "const" in sub:
            words.append(f"{field} is {_code(sub['const'])}")
        elif "enum" in sub:
            words.append(f"{field} is one of " + ", ".join(_code(v) for v in sub["enum"]))
        elif "minimum" in sub:
            words.append(f"{field} is set to at least {sub['minimum']}")
        else:
            words.append(f"{field} matches {_code(json.dumps(sub, sort_keys=True))}")
    if not words:
        raise ValueError(f"cannot describe the condition {json.dumps(if_schema)}")
    return " and ".join(words)


# ---------------------------------------------------------------------------------------------
# walking a schema


@dataclass(frozen=True, slots=True)
class Section:
    """A table under a heading: the main fields of a kind, or the fields one condition allows."""

    title: str
    rows: tuple[Row, ...]
    rules: tuple[str, ...]


class _Walker:
    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self.rows: list[Row] = []
        self.rules: list[str] = []
        self.extra: list[Section] = []

    def field(self, path: str, schema: Schema, required: str) -> None:
        resolved, _ = _resolve(self.kind, schema)
        desc = str(schema.get("description") or resolved.get("description") or "")
        self.rows.append(Row(path, _base_type(self.kind, schema), required, _constraints(self.kind, schema), desc))
        self.children(path, resolved)

    def children(self, path: str, schema: Schema) -> None:
        """The fields inside `schema` (an object's properties, a map's values, an array's items)."""
        required = set(schema.get("required", ()))
        props: Mapping[str, Schema] = schema.get("properties", {})
        for name, sub in props.items():
            self.field(f"{path}.{name}" if path else name, sub, "yes" if name in required else "no")
        values = schema.get("additionalProperties")
        if isinstance(values, Mapping) and _worth_a_row(self.kind, values):
            self.field(f"{path}.<key>", values, "—")
        items = schema.get("items")
        if isinstance(items, Mapping) and _worth_a_row(self.kind, items):
            self.field(f"{path}[]", items, "—")
        self.combinations(path, schema)
        for branch in schema.get("allOf", ()):
            self.conditional(path, schema, branch)

    def combinations(self, path: str, schema: Schema) -> None:
        """oneOf/anyOf whose branches only require fields: "exactly one of" / "at least one of"."""
        for combinator, words in (("oneOf", "exactly one of"), ("anyOf", "at least one of")):
            branches = schema.get(combinator, ())
            if branches and all(set(b) == {"required"} for b in branches):
                names = ", ".join(_code(f"{path}.{n}" if path else n) for b in branches for n in b["required"])
                self.rules.append(f"{words} {names}")

    def conditional(self, path: str, schema: Schema, branch: Schema) -> None:
        if "if" not in branch:
            self.children(path, branch)
            return
        prefix = f"{path}." if path else ""
        cond, short = _condition(branch["if"], prefix), _condition(branch["if"], "")
        base = set(schema.get("properties", {}))
        for key, when, title in (("then", f"when {cond}", f"when {short}"),
                                 ("else", f"unless {cond}", f"unless {short}")):
            sub = branch.get(key)
            if not isinstance(sub, Mapping):
                continue
            new = {n: s for n, s in sub.get("properties", {}).items() if n not in base}
            if new:
                inner = _Walker(self.kind)
                inner.children(path, {"required": sub.get("required", ()), "properties": new})
                rules = ["No other keys are allowed."] if sub.get("additionalProperties") is False else []
                self.extra.append(Section(f"{_code(path)} {title}", tuple(inner.rows), tuple(rules + inner.rules)))
                self.extra.extend(inner.extra)
                continue
            said: list[str] = []
            if sub.get("required"):
                said.append("requires " + ", ".join(_code(prefix + n) for n in sub["required"]))
            for name, limits in sub.get("properties", {}).items():
                text = _constraints(self.kind, limits)
                if text:
                    said.append(f"{_code(prefix + name)}: {text}")
            if said:
                self.rules.append(f"{when}: " + "; ".join(said))


def _worth_a_row(kind: Kind, schema: Schema) -> bool:
    """Map values and array items get their own row when they say something of their own."""
    resolved, def_name = _resolve(kind, schema)
    return def_name is None and ("description" in schema or bool(resolved.get("properties")))


# ---------------------------------------------------------------------------------------------
# the document


def load_kinds(schema_dir: Path) -> list[Kind]:
    """Every `*.schema.json` in `schema_dir`, in reading order."""
    kinds: list[Kind] = []
    for path in sorted(schema_dir.glob("*.schema.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        const = schema.get("properties", {}).get("kind", {}).get("const")
        if not isinstance(const, str):
            raise ValueError(f"{path.name}: properties.kind.const names no kind")
        kinds.append(Kind(const, path.name, schema))
    rank = {name: i for i, name in enumerate(KIND_ORDER)}
    return sorted(kinds, key=lambda k: (rank.get(k.name, len(rank)), k.name))


def _shared_defs(kinds: Sequence[Kind]) -> dict[str, tuple[Schema, list[str]]]:
    seen: dict[str, tuple[Schema, list[str]]] = {}
    for kind in kinds:
        for name, schema in kind.defs.items():
            if name in seen:
                if json.dumps(seen[name][0], sort_keys=True) != json.dumps(schema, sort_keys=True):
                    raise ValueError(f"$defs/{name} differs between {seen[name][1][0]} and {kind.file}; "
                                     "rename one so the reference can name both")
                seen[name][1].append(kind.name)
            else:
                seen[name] = (schema, [kind.name])
    return dict(sorted(seen.items()))


def _table(rows: Sequence[Row]) -> Iterator[str]:
    yield "| field | type | required | default / allowed values | description |"
    yield "|---|---|---|---|---|"
    for r in rows:
        yield f"| {_code(r.path)} | {_cell(r.type)} | {r.required} | {_cell(r.constraints)} | {_cell(r.description)} |"


def render(schema_dir: Path = SCHEMAS) -> str:
    """The whole of docs/reference.md for the schemas in `schema_dir`."""
    kinds = load_kinds(schema_dir)
    out = [
        "<!-- GENERATED FILE - do not edit. Source: schemas/*.schema.json; "
        f"regenerate with `{COMMAND}`. -->",
        "",
        "# Reference: every kind and field",
        "",
        f"> Generated from the JSON Schemas in `schemas/` by `{COMMAND}`; edit the schemas, not this",
        "> file (a test fails when it is out of date). The schemas are what `jitpol validate` checks;",
        "> editors can use them too (see [editors.md](editors.md)).",
        "",
        "Field paths are dotted: `spec.window.start`; `<key>` stands for a key you choose in a map",
        "(a target name, a role name); `[]` for each item of a list. *required* is relative to the",
        "enclosing object; `—` marks map values and list items. Value types such as",
        "[name](#value-type-name) are described once, [at the end](#value-types).",
        "",
    ]
    out += [f"- [{k.name}](#{k.name.lower()}) — {_cell(str(k.schema.get('description', '')))}" for k in kinds]
    out.append("- [Value types](#value-types)")
    for kind in kinds:
        walker = _Walker(kind)
        walker.children("", kind.schema)
        out += ["", f"## {kind.name}", "", str(kind.schema.get("description", "")), "",
                f"Schema: [`schemas/{kind.file}`](../schemas/{kind.file})", ""]
        out += _table(walker.rows)
        if walker.rules:
            out += ["", "Rules:", ""] + [f"- {rule}" for rule in walker.rules]
        for section in walker.extra:
            out += ["", f"### {kind.name}: {section.title}", ""]
            out += _table(section.rows)
            if section.rules:
                out += [""] + [f"- {rule}" for rule in section.rules]
    out += ["", "## Value types", "", "Shared by several fields (the `$defs` of the schemas).", "",
            "| name | type | constraints | description | used in |", "|---|---|---|---|---|"]
    for name, (schema, users) in _shared_defs(kinds).items():
        kind = next(k for k in kinds if name in k.defs)
        out.append(f'| <a id="{_anchor(name)}"></a>{_code(name)} | {_cell(_base_type(kind, schema))} | '
                   f"{_cell(_constraints(kind, schema))} | {_cell(str(schema.get('description', '')))} | "
                   f"{', '.join(users)} |")
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is out of date; write nothing")
    parser.add_argument("--schemas", type=Path, default=SCHEMAS)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    text = render(args.schemas)
    current = args.output.read_text(encoding="utf-8") if args.output.is_file() else None
    if args.check:
        if current != text:
            print(f"{args.output} is out of date: run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    if current != text:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
