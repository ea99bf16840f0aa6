"""What a module's source refers to, resolved to fully qualified names through its imports.

`references(source, module)` walks a module's AST and yields every reference (a name, an
attribute chain, an imported name) as the fully qualified name it stands for, however it was
spelled:

- `import datetime as dt; dt.datetime.now`           -> datetime.datetime.now
- `from datetime import datetime as D; D.now`        -> datetime.datetime.now
- `from time import time as t; t`                    -> time.time (at the import and at each use)
- `from ..clock import SystemClock` in jitpol.cli.x  -> jitpol.clock.SystemClock
- `from jitpol import connectors; connectors.aws`    -> jitpol.connectors.aws
- `now = datetime.now` (an assignment alias), `class D(datetime)` (a subclass), `getattr(m, "x")`
  with a constant name, `__import__("time")` and `importlib.import_module("time")`
- a builtin (`exit`, `SystemExit`) that no binding of the module shadows -> builtins.exit

The resolution is flow-insensitive and conservative: a name bound in several places (two imports,
an import and an alias) stands for all of them, in every scope. It cannot follow a value through
a data structure, a function's return value, or a `getattr` with a computed name.

`imported_modules(source, module)` is the set of modules an import statement names, with relative
imports resolved and `from package import name` counted as `package.name` too.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_BUILTINS = frozenset(dir(builtins))


@dataclass(frozen=True, slots=True)
class Reference:
    name: str  # fully qualified: "datetime.datetime.now", "jitpol.clock.SystemClock"
    line: int
    call: ast.Call | None  # the call whose function this reference is, if any


def module_name(path: Path, root: Path) -> str:
    """`jitpol.cli.common` for root/jitpol/cli/common.py; a package's __init__.py is the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package(module: str, is_package: bool) -> str:
    return module if is_package else module.rpartition(".")[0]


def _from_module(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a `from ... import` statement reads from."""
    if node.level == 0:
        return node.module or ""
    base = _package(module, is_package).split(".")
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imported_modules(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every module an import statement of `source` names (absolute; `from p import n` adds p and p.n)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _from_module(node, module, is_package)
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names if a.name != "*")
    return out


class _Bindings:
    """name -> the qualified names it may stand for (imports, aliases, subclasses)."""

    def __init__(self, tree: ast.Module, module: str, is_package: bool) -> None:
        self.names: dict[str, set[str]] = {}
        self.local: set[str] = set()  # names bound by anything (they shadow builtins)
        self.imports: list[tuple[str, int]] = []  # (qualified name an import statement binds, line)
        aliases: list[tuple[str, ast.expr]] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        self._bind(a.asname, a.name)
                    else:  # `import a.b.c` binds `a`; `a.b.c.x` then resolves through attributes
                        top = a.name.partition(".")[0]
                        self._bind(top, top)
                    self.imports.append((a.name, node.lineno))
            elif isinstance(node, ast.ImportFrom):
                base = _from_module(node, module, is_package)
                for a in node.names:
                    qualified = f"{base}.{a.name}"
                    if a.name != "*":
                        self._bind(a.asname or a.name, qualified)
                    self.imports.append((qualified, node.lineno))
            elif isinstance(node, ast.Assign):
                aliases.extend((t.id, node.value) for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and isinstance(node.target, ast.Name) \
                    and node.value is not None:
                aliases.append((node.target.id, node.value))
            elif isinstance(node, ast.ClassDef):
                aliases.extend((node.name, base) for base in node.bases)
            if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
                self.local.add(node.id)
            elif isinstance(node, ast.arg):
                self.local.add(node.arg)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.local.add(node.name)
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                self.local.update(node.names)
        changed = True
        while changed:  # aliases of aliases, in any order
            changed = False
            for name, value in aliases:
                new = self.resolve(value) - self.names.get(name, set())
                if new:
                    self.names.setdefault(name, set()).update(new)
                    changed = True

    def _bind(self, name: str, qualified: str) -> None:
        self.names.setdefault(name, set()).add(qualified)
        self.local.add(name)

    def resolve(self, node: ast.expr) -> set[str]:
        """The qualified names an expression may stand for (empty: not a reference to a named thing)."""
        if isinstance(node, ast.Name):
            if node.id in self.names:
                return set(self.names[node.id])
            return {f"builtins.{node.id}"} if node.id in _BUILTINS and node.id not in self.local else set()
        if isinstance(node, ast.Attribute):
            return {f"{q}.{node.attr}" for q in self.resolve(node.value)}
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[-1], ast.Constant) \
                and isinstance(node.args[-1].value, str):
            func = self.resolve(node.func)
            text = node.args[-1].value
            if "builtins.getattr" in func and len(node.args) == 2:
                return {f"{q}.{text}" for q in self.resolve(node.args[0])}
            if "builtins.__import__" in func and len(node.args) == 1:
                return {text.partition(".")[0]}
            if "importlib.import_module" in func and len(node.args) == 1:
                return {text}
        return set()


def references(source: str, module: str, *, is_package: bool = False) -> Iterator[Reference]:
    """Every reference in `source` (the text of `module`) as the qualified names it may stand for."""
    tree = ast.parse(source)
    bindings = _Bindings(tree, module, is_package)
    for qualified, line in bindings.imports:
        yield Reference(qualified, line, None)
    calls = {id(n.func): n for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Name, ast.Attribute, ast.Call)) and not isinstance(
                getattr(node, "ctx", ast.Load()), (ast.Store, ast.Del)):
            for qualified in bindings.resolve(node):
                yield Reference(qualified, node.lineno, calls.get(id(node)))
