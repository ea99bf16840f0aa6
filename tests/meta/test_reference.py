"""docs/reference.md is generated from the schemas and up to date; editors find the schemas.

- the committed reference equals what tools/gen_reference.py renders now, and names every field
  path of every schema (walked here independently of the generator);
- every YAML file of the example repository starts with a `yaml-language-server` line whose
  schema exists and describes the file's kind;
- the VS Code `yaml.schemas` snippet in docs/editors.md maps every example file to that same schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from tools.gen_reference import OUTPUT, SCHEMAS, load_kinds, main, render

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
MODELINE = re.compile(r"# yaml-language-server: \$schema=(\S+)\n")


def test_reference_is_up_to_date() -> None:
    assert OUTPUT.read_text(encoding="utf-8") == render(SCHEMAS), (
        "docs/reference.md is out of date: run `.venv/bin/python tools/gen_reference.py`")


def test_reference_says_it_is_generated() -> None:
    first = OUTPUT.read_text(encoding="utf-8").splitlines()[0]
    assert "GENERATED" in first and "tools/gen_reference.py" in first and "do not edit" in first


def _paths(schema: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Every property path reachable through properties, map values and array items, including
    the properties of if/then/else branches."""
    for name, sub in schema.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        yield path
        yield from _paths(sub, path)
    values = schema.get("additionalProperties")
    if isinstance(values, Mapping):
        yield from _paths(values, f"{prefix}.<key>")
    items = schema.get("items")
    if isinstance(items, Mapping):
        yield from _paths(items, f"{prefix}[]")
    for branch in schema.get("allOf", ()):
        for key in ("then", "else"):
            if key in branch:
                yield from _paths(branch[key], prefix)


@pytest.mark.parametrize("path", sorted(SCHEMAS.glob("*.schema.json")), ids=lambda p: p.name)
def test_reference_names_every_field(path: Path) -> None:
    schema = json.loads(path.read_text(encoding="utf-8"))
    text = render(SCHEMAS)
    kind = schema["properties"]["kind"]["const"]
    section = text.split(f"\n## {kind}\n", 1)[1].split("\n## ", 1)[0]
    missing = sorted({p for p in _paths(schema) if f"`{p}`" not in section})
    assert not missing, f"{kind}: not in docs/reference.md: {missing}"
    assert schema["description"] in section


def test_every_kind_has_a_section_and_each_value_type_an_anchor() -> None:
    text = render(SCHEMAS)
    for kind in load_kinds(SCHEMAS):
        assert f"\n## {kind.name}\n" in text
        for name in kind.defs:
            assert f'<a id="value-type-{name.lower()}"></a>' in text
    for link in re.findall(r"\]\(#(value-type-[a-z]+)\)", text):
        assert f'<a id="{link}"></a>' in text, f"dangling link #{link}"


def test_generator_renders_a_new_field_and_refuses_what_it_cannot_describe(tmp_path: Path) -> None:
    schema = json.loads((SCHEMAS / "team.schema.json").read_text(encoding="utf-8"))
    schema["properties"]["spec"]["properties"]["color"] = {
        "enum": ["red", "blue"], "default": "red", "description": "A new field, for the test."}
    (tmp_path / "team.schema.json").write_text(json.dumps(schema), encoding="utf-8")
    text = render(tmp_path)
    assert "| `spec.color` | string | no | default `red`; one of `red`, `blue` | A new field, for the test. |" in text
    schema["properties"]["spec"]["properties"]["color"]["examples"] = ["red"]
    (tmp_path / "team.schema.json").write_text(json.dumps(schema), encoding="utf-8")
    with pytest.raises(ValueError, match="examples"):
        render(tmp_path)


def test_check_mode_reports_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "reference.md"
    assert main(["--check", "--output", str(out)]) == 1
    assert main(["--output", str(out)]) == 0
    assert main(["--check", "--output", str(out)]) == 0
    out.write_text(out.read_text(encoding="utf-8") + "edited by hand\n", encoding="utf-8")
    assert main(["--check", "--output", str(out)]) == 1
    assert "out of date" in capsys.readouterr().err


# -- editors --------------------------------------------------------------------------------


def policy_files() -> list[Path]:
    return sorted(p for p in POLICIES.rglob("*") if p.suffix in {".yaml", ".yml"} and "audit" not in p.parts)


def _kind_of_schema(path: Path) -> str:
    kind: str = json.loads(path.read_text(encoding="utf-8"))["properties"]["kind"]["const"]
    return kind


@pytest.mark.parametrize("path", policy_files(), ids=lambda p: p.relative_to(POLICIES).as_posix())
def test_policy_file_names_its_schema(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    match = MODELINE.match(text)
    assert match, f"{path}: the first line must be `# yaml-language-server: $schema=...`"
    schema = (path.parent / match.group(1)).resolve()
    assert schema.is_file(), f"{path}: {match.group(1)} does not exist"
    assert schema.parent == SCHEMAS.resolve()
    assert _kind_of_schema(schema) == yaml.safe_load(text)["kind"]


def test_there_are_policy_files() -> None:
    assert len(policy_files()) >= 7


def _glob_regex(glob: str) -> re.Pattern[str]:
    """yaml-language-server style glob, rooted at the workspace: `**/` any directories, `*` within one."""
    out = ""
    rest = glob.lstrip("/")
    while rest:
        if rest.startswith("**/"):
            out, rest = out + "(?:.*/)?", rest[3:]
        elif rest[0] == "*":
            out, rest = out + "[^/]*", rest[1:]
        else:
            out, rest = out + re.escape(rest[0]), rest[1:]
    return re.compile(out)


def _vscode_settings() -> dict[str, Any]:
    text = (ROOT / "docs" / "editors.md").read_text(encoding="utf-8")
    for block in re.findall(r"^```json\n(.*?)^```", text, re.S | re.M):
        data = json.loads(block)
        if "yaml.schemas" in data:
            settings: dict[str, Any] = data
            return settings
    raise AssertionError("docs/editors.md has no yaml.schemas snippet")


def test_editor_settings_map_every_policy_file_to_its_schema() -> None:
    mapping: dict[str, list[str]] = _vscode_settings()["yaml.schemas"]
    kinds = {_kind_of_schema(p) for p in SCHEMAS.glob("*.schema.json")}
    mapped = {_kind_of_schema(ROOT / PurePosixPath(s)) for s in mapping}
    assert mapped == kinds, "every kind's schema is mapped"
    for path in policy_files():
        rel = path.relative_to(POLICIES).as_posix()
        hits = [s for s, globs in mapping.items() for g in globs if _glob_regex(g).fullmatch(rel)]
        assert len(hits) == 1, f"{rel}: matched by {hits}"
        assert _kind_of_schema(ROOT / PurePosixPath(hits[0])) == yaml.safe_load(path.read_text())["kind"], rel


def test_glob_translation() -> None:
    assert _glob_regex("/grants/**/*.yaml").fullmatch("grants/1998-12/a.yaml")
    assert _glob_regex("/grants/**/*.yaml").fullmatch("grants/a.yaml")
    assert not _glob_regex("/people/*.yaml").fullmatch("people/x/a.yaml")
    assert not _glob_regex("/jitpol.yaml").fullmatch("jitpolXyaml")
