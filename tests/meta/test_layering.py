"""The architecture rules of DESIGN.md, enforced mechanically."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "jitpol"
SDKS = ("psycopg", "boto3", "botocore", "ldap3", "paramiko", "okta", "azure", "google", "git", "click")


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def modules(sub: str) -> list[Path]:
    return sorted((PKG / sub).rglob("*.py"))


@pytest.mark.parametrize("path", modules("model"), ids=lambda p: p.name)
def test_model_imports_nothing_of_ours_but_model(path: Path) -> None:
    bad = {m for m in imports(path) if m.startswith("jitpol.") and not m.startswith("jitpol.model")}
    assert not bad, f"{path}: {bad}"


PURE = modules("policy") + modules("plan") + [PKG / "report" / "timeline.py", PKG / "connectors" / "sudoers.py"]


@pytest.mark.parametrize("path", PURE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_pure_core_has_no_io_layers(path: Path) -> None:
    forbidden = ("jitpol.connectors", "jitpol.vcs", "jitpol.cli", "jitpol.execute", "jitpol.ledger", *SDKS)
    bad = {m for m in imports(path) if m.startswith(forbidden)}
    assert not bad, f"{path}: {bad}"


@pytest.mark.parametrize("path", modules("connectors"), ids=lambda p: p.name)
def test_connectors_do_not_import_each_other(path: Path) -> None:
    allowed = {"jitpol.connectors.base", "jitpol.connectors", "jitpol.connectors.sudoers"}  # sudoers: pure helpers
    bad = {m for m in imports(path) if m.startswith("jitpol.connectors.") and m not in allowed}
    if path.name == "registry.py":
        bad = set()  # the registry names modules as strings and imports them lazily
    assert not bad, f"{path}: {bad}"


def test_clock_and_exit_only_in_cli() -> None:
    for path in PKG.rglob("*.py"):
        if path.is_relative_to(PKG / "cli") or path.name == "clock.py":
            continue
        text = path.read_text()
        assert "datetime.now(" not in text, path
        assert "sys.exit(" not in text, path


def test_validate_does_not_import_target_sdks() -> None:
    code = (
        "import sys; from pathlib import Path; from jitpol.load.repository import load_repository;"
        "r = load_repository(Path('policies')); assert r.ok, r.diagnostics;"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {SDKS[:-2]!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PKG.parent).stdout.strip()
    assert out == "[]"
