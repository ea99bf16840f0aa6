"""The code that reads ledger events reads only fields the shared definition gives each kind
(schemas/ledger-event.json, jitpol.ledger.events): inside every branch on an event's kind
(`kind == "grant.activated"`, `e.get("event") == SENT_EVENT`, ...), each `.get("field")`,
`g("field")` and `ev["field"]` must name a field of that kind. A reader that asks for a field
no writer writes (a typo, a renamed field) fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from jitpol.ledger.events import schema
from jitpol.notify.messages import SENT_EVENT

PKG = Path(__file__).resolve().parents[3] / "jitpol"
READERS = ["policy/history.py", "report/timeline.py", "notify/messages.py"]
CONSTANTS = {"SENT_EVENT": SENT_EVENT}
EVENT_NAMES = {"ev", "e", "event", "body"}  # what the readers call the event they read


def _kind_of(test: ast.expr) -> str | None:
    """The event kind a branch condition tests for (`x == "k"`, possibly inside an `and`)."""
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        for value in test.values:
            kind = _kind_of(value)
            if kind is not None:
                return kind
        return None
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq):
        right = test.comparators[0]
        if isinstance(right, ast.Constant) and isinstance(right.value, str) and "." in right.value:
            return right.value
        if isinstance(right, ast.Name) and right.id in CONSTANTS:
            return CONSTANTS[right.id]
    return None


def _fields_read(nodes: list[ast.AST]) -> set[str]:
    out: set[str] = set()
    for node in nodes:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call) and sub.args and isinstance(sub.args[0], ast.Constant) \
                    and isinstance(sub.args[0].value, str):
                func = sub.func
                on_event = isinstance(func, ast.Attribute) and func.attr == "get" \
                    and isinstance(func.value, ast.Name) and func.value.id in EVENT_NAMES
                if on_event or (isinstance(func, ast.Name) and func.id == "g"):  # g = ev.get
                    out.add(sub.args[0].value)
            if isinstance(sub, ast.Subscript) and isinstance(sub.value, ast.Name) and sub.value.id in EVENT_NAMES \
                    and isinstance(sub.slice, ast.Constant) and isinstance(sub.slice.value, str):
                out.add(sub.slice.value)
    return out


def reads(path: Path) -> list[tuple[int, str, set[str]]]:
    """(line, kind, fields) of every branch on a kind in `path`, including comprehension filters."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[int, str, set[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            kind = _kind_of(node.test)
            if kind is not None:
                found.append((node.lineno, kind, _fields_read(list(node.body)) | _fields_read([node.test])))
        elif isinstance(node, ast.comprehension):
            for cond in node.ifs:
                kind = _kind_of(cond)
                if kind is not None:
                    found.append((cond.lineno, kind, _fields_read([cond])))
    return found


def test_the_readers_branch_on_kinds() -> None:
    """The scan finds what it must (so the test below cannot pass by finding nothing)."""
    kinds = {kind for rel in READERS for _, kind, _ in reads(PKG / rel)}
    assert {"grant.activated", "grant.revoked", "credential.rotated", "policy.adopted", SENT_EVENT} <= kinds


@pytest.mark.parametrize("rel", READERS)
def test_readers_ask_only_for_defined_fields(rel: str) -> None:
    defs = schema()["$defs"]
    bad = []
    for line, kind, fields in reads(PKG / rel):
        if kind not in defs:
            bad.append(f"{rel}:{line}: {kind!r} is not an event kind")
            continue
        known = set(defs[kind]["properties"])
        bad += [f"{rel}:{line}: {kind} has no field {f!r}" for f in sorted(fields - known)]
    assert not bad, "\n".join(bad)


def test_a_reader_asking_for_an_undefined_field_is_caught(tmp_path: Path) -> None:
    source = tmp_path / "reader.py"
    source.write_text('def f(ev):\n    if ev.get("event") == "grant.revoked":\n        return ev.get("untill")\n')
    ((_, kind, fields),) = reads(source)
    assert kind == "grant.revoked" and "untill" in fields
    assert "untill" not in schema()["$defs"]["grant.revoked"]["properties"]
