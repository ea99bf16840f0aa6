"""The architecture rules of DESIGN.md, enforced mechanically.

The import rules are import-linter contracts (.importlinter, run by `make lint` and by
test_import_contracts_hold below); the tests here check the same rules on the AST with relative
imports and `from package import module` resolved, and check what import-linter cannot see: who
reads the wall clock and who ends the process. References are resolved through imports, aliases
and relative imports (tests/meta/references.py), and the checker's own tests below show that each
way of spelling a clock read is caught and that ordinary code passes.
"""

from __future__ import annotations

import ast
import configparser
import os
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.meta.references import imported_modules, module_name, references

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "jitpol"
SDKS = ("psycopg", "boto3", "botocore", "ldap3", "paramiko", "okta", "azure", "google", "git", "click")


def imports(path: Path) -> set[str]:
    """The modules `path` imports, absolute (relative imports resolved; `from p import m` gives p.m)."""
    return imported_modules(path.read_text(), module_name(path, ROOT), is_package=path.name == "__init__.py")


def modules(sub: str) -> list[Path]:
    return sorted((PKG / sub).rglob("*.py"))


def _within(name: str, prefixes: tuple[str, ...] | str) -> bool:
    """Whether `name` is one of `prefixes` or inside one of them (module or attribute path)."""
    return any(name == p or name.startswith(p + ".") for p in ((prefixes,) if isinstance(prefixes, str) else prefixes))


@pytest.mark.parametrize("path", modules("model"), ids=lambda p: p.name)
def test_model_imports_nothing_of_ours_but_model(path: Path) -> None:
    bad = {m for m in imports(path) if _within(m, "jitpol") and not _within(m, "jitpol.model")}
    assert not bad, f"{path}: {bad}"


# the pure rules and the pure parts of the stages (plan/build.py adds the run's context: it reads the
# registry's principal forms, so it is a stage driver, not pure)
PURE = [*modules("policy"), PKG / "plan" / "diff.py", PKG / "plan" / "render.py", PKG / "observe" / "scopes.py",
        PKG / "report" / "timeline.py", PKG / "connectors" / "sudoers.py"]
# the ledger's event definitions (issue 13 point 3): shared by the code that writes events and the
# pure code that reads them (policy.history); definitions, not storage
EVENTS = "jitpol.ledger.events"
PURE += [p for p in [PKG / "ledger" / "events.py"] if p.exists()]


@pytest.mark.parametrize("path", PURE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_pure_core_has_no_io_layers(path: Path) -> None:
    forbidden = ("jitpol.connectors", "jitpol.vcs", "jitpol.cli", "jitpol.load", "jitpol.trust", "jitpol.evaluate",
                 "jitpol.observe.targets", "jitpol.plan.build", "jitpol.execute", "jitpol.record", "jitpol.run",
                 "jitpol.ledger", "jitpol.fsutil", *SDKS)
    bad = {m for m in imports(path) if _within(m, forbidden) and not _within(m, EVENTS)}
    assert not bad, f"{path}: {bad}"


def _connector_modules() -> tuple[str, ...]:
    """jitpol.connectors.X for each module or package X under connectors that defines a connector class
    (a class named ...Connector other than the Protocol), whatever the registry looks like."""
    found = set()
    for path in modules("connectors"):
        tree = ast.parse(path.read_text())
        if any(isinstance(n, ast.ClassDef) and n.name.endswith("Connector") and n.name != "Connector"
               for n in tree.body):
            found.add(".".join(module_name(path, ROOT).split(".")[:3]))
    return tuple(sorted(found))


CONNECTOR_MODULES = _connector_modules()


def _connector_of(name: str) -> str | None:
    """The connector module `name` is (or is inside), if any."""
    return next((c for c in CONNECTOR_MODULES if _within(name, c)), None)


def test_the_connector_modules_are_found() -> None:
    assert {"jitpol.connectors.fake", "jitpol.connectors.postgres", "jitpol.connectors.ssh"} <= set(CONNECTOR_MODULES)
    assert not {"jitpol.connectors.base", "jitpol.connectors.registry", "jitpol.connectors.sudoers"} & set(
        CONNECTOR_MODULES)


@pytest.mark.parametrize("path", modules("connectors"), ids=lambda p: p.name)
def test_connectors_do_not_import_each_other(path: Path) -> None:
    mine = _connector_of(module_name(path, ROOT))
    bad = {m for m in imports(path) if _connector_of(m) not in (None, mine)}
    if path.name == "registry.py":
        bad = set()  # the registry names modules as strings and imports them lazily
    assert not bad, f"{path}: {bad}"


# -- the wall clock ------------------------------------------------------------------------------

# reading any of these is reading the wall clock (monotonic, perf_counter and sleep are not: they
# measure or wait for a duration and cannot stand in for `--at`)
WALL_CLOCK = frozenset({
    "datetime.datetime.now", "datetime.datetime.utcnow", "datetime.datetime.today", "datetime.date.today",
    "time.time", "time.time_ns", "time.clock_gettime", "time.clock_gettime_ns",
    "jitpol.clock.SystemClock",
})
# these read the wall clock when called without their time argument (the number of arguments that
# includes it); a bare reference (passed as a callable) counts as a read
WALL_CLOCK_UNLESS_GIVEN = {
    "time.localtime": 1, "time.gmtime": 1, "time.ctime": 1, "time.asctime": 1, "time.strftime": 2,
    "email.utils.formatdate": 1, "email.utils.localtime": 1,
}

# (module, or a package and everything in it; what it reads) -> why it may
CLOCK_ALLOWED: dict[tuple[str, str], str] = {
    ("jitpol.clock", "datetime.datetime.now"): "SystemClock.now: the one read of the wall clock (DESIGN: clock / --at)",
    ("jitpol.cli.common", "jitpol.clock.SystemClock"): "the `--at` option: SystemClock unless --at gives a FixedClock",
}


def clock_reads(source: str, module: str, *, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, qualified name) of each read of the wall clock in `source`, the text of `module`."""
    out: list[tuple[int, str]] = []
    for ref in references(source, module, is_package=is_package):
        name = ref.name
        if name.endswith(".*"):  # a star import of a module that has a clock
            if any(c.startswith(name[:-1]) for c in (*WALL_CLOCK, *WALL_CLOCK_UNLESS_GIVEN)):
                out.append((ref.line, name))
        elif name in WALL_CLOCK:
            out.append((ref.line, name))
        elif name in WALL_CLOCK_UNLESS_GIVEN:
            given = ref.call is not None and (
                len(ref.call.args) >= WALL_CLOCK_UNLESS_GIVEN[name] or bool(ref.call.keywords))
            if not given:
                out.append((ref.line, name))
    return sorted(set(out))


# ending the process (the CLI maps errors to exit codes in one place)
EXITS = frozenset({"sys.exit", "os._exit", "os.abort", "builtins.exit", "builtins.quit", "builtins.SystemExit"})


def _allowed(module: str, name: str, table: dict[tuple[str, str], str]) -> bool:
    return any(_within(module, m) and name == n for m, n in table)


def package_sources() -> list[tuple[Path, str, str]]:
    return [(p, p.read_text(), module_name(p, ROOT)) for p in sorted(PKG.rglob("*.py"))]


def test_clock_and_exit_only_in_cli() -> None:
    """The wall clock is read in jitpol.clock and chosen in cli.common (SystemClock or --at's FixedClock);
    only the CLI ends the process."""
    clock, exits = [], []
    for path, text, mod in package_sources():
        init = path.name == "__init__.py"
        clock += [f"{path.relative_to(ROOT)}:{line}: {name}" for line, name in clock_reads(text, mod, is_package=init)
                  if not _allowed(mod, name, CLOCK_ALLOWED)]
        if not _within(mod, "jitpol.cli"):
            exits += [f"{path.relative_to(ROOT)}:{r.line}: {r.name}" for r in references(text, mod, is_package=init)
                      if r.name in EXITS]
    assert not clock, "wall clock read outside jitpol.clock / cli.common:\n" + "\n".join(clock)
    assert not exits, "only the CLI ends the process:\n" + "\n".join(exits)


def test_the_clock_check_sees_the_real_clock() -> None:
    """The scan is not vacuous: it finds the one allowed read where it is."""
    found = clock_reads((PKG / "clock.py").read_text(), "jitpol.clock")
    assert "datetime.datetime.now" in {name for _, name in found}


# -- the checker itself, on snippets -------------------------------------------------------------

EVASIONS = {
    "plain": ("from datetime import datetime\nx = datetime.now()", "datetime.datetime.now"),
    "utcnow": ("import datetime\nx = datetime.datetime.utcnow()", "datetime.datetime.utcnow"),
    "class alias": ("from datetime import datetime as D\nx = D.now()", "datetime.datetime.now"),
    "module alias": ("import datetime as dt\nx = dt.datetime.now()", "datetime.datetime.now"),
    "date.today": ("from datetime import date\nx = date.today()", "datetime.date.today"),
    "datetime.today": ("import datetime\nx = datetime.datetime.today()", "datetime.datetime.today"),
    "time.time": ("import time\nx = time.time()", "time.time"),
    "time_ns": ("import time as clock\nx = clock.time_ns()", "time.time_ns"),
    "function alias": ("from time import time as t\nx = t()", "time.time"),
    "assignment alias": ("import datetime\nnow = datetime.datetime.now\nx = now()", "datetime.datetime.now"),
    "alias of an alias": ("import datetime as a\nb = a.datetime\nc = b\nx = c.now()", "datetime.datetime.now"),
    "annotated alias": ("import time\nf: object = time.time", "time.time"),
    "passed as a callable": ("import time\ndef f(clock=time.time):\n    return clock()", "time.time"),
    "import inside a function": ("def f():\n    from time import time_ns\n    return time_ns()", "time.time_ns"),
    "subclass": ("from datetime import datetime\nclass D(datetime):\n    pass\nx = D.now()", "datetime.datetime.now"),
    "getattr with a constant": ("import time\nx = getattr(time, 'time')()", "time.time"),
    "__import__": ("x = __import__('time').time()", "time.time"),
    "import_module": ("import importlib\nx = importlib.import_module('time').time()", "time.time"),
    "star import": ("from time import *\nx = time()", "time.*"),
    "localtime without seconds": ("import time\nx = time.localtime()", "time.localtime"),
    "strftime without a time": ("import time\nx = time.strftime('%Y')", "time.strftime"),
    "SystemClock constructed": ("from jitpol.clock import SystemClock\nx = SystemClock().now()",
                                "jitpol.clock.SystemClock"),
    "SystemClock, relative import": ("from ..clock import SystemClock\nx = SystemClock()", "jitpol.clock.SystemClock"),
    "SystemClock, from the package": ("from jitpol import clock\nx = clock.SystemClock()", "jitpol.clock.SystemClock"),
    "SystemClock, dotted import": ("import jitpol.clock\nx = jitpol.clock.SystemClock()", "jitpol.clock.SystemClock"),
    "SystemClock, relative module": ("from .. import clock as c\nx = c.SystemClock()", "jitpol.clock.SystemClock"),
}


@pytest.mark.parametrize("source, read", EVASIONS.values(), ids=EVASIONS.keys())
def test_checker_catches_each_spelling_of_a_clock_read(source: str, read: str) -> None:
    found = clock_reads(source, "jitpol.execute.example")
    assert read in {name for _, name in found}, found


LEGITIMATE = {
    "parsing": "from datetime import UTC, datetime\nx = datetime.fromisoformat('1999-01-01T00:00:00+00:00')",
    "constructing": "from datetime import UTC, datetime\nx = datetime(1999, 1, 1, tzinfo=UTC)",
    "the injected clock": "from jitpol.clock import Clock\ndef f(clock: Clock):\n    return clock.now()",
    "a fixed clock": "from jitpol.clock import FixedClock\ndef f(at):\n    return FixedClock(at).now()",
    "monotonic deadline": "import time\ndeadline = time.monotonic() + 5\ntime.sleep(1)",
    "perf counter": "from time import perf_counter as pc\nx = pc()",
    "conversions": "import time\nx = time.gmtime(0), time.localtime(0), time.strftime('%Y', time.gmtime(0))",
    "a parameter named time": "def f(time):\n    return time.time",
    "a method named now": "class C:\n    def now(self):\n        return 1\nx = C().now()",
    "a local named datetime": "def f(datetime):\n    return datetime.now()",
    "timedelta": "from datetime import timedelta\nx = timedelta(seconds=1)",
}


@pytest.mark.parametrize("source", LEGITIMATE.values(), ids=LEGITIMATE.keys())
def test_checker_passes_code_that_reads_no_clock(source: str) -> None:
    assert clock_reads(source, "jitpol.execute.example") == []


def test_checker_allowlist_is_per_module() -> None:
    src = "from jitpol.clock import SystemClock\nx = SystemClock()"
    found = clock_reads(src, "jitpol.cli.common")
    assert found and all(_allowed("jitpol.cli.common", n, CLOCK_ALLOWED) for _, n in found)
    assert not all(_allowed("jitpol.cli.run", n, CLOCK_ALLOWED) for _, n in clock_reads(src, "jitpol.cli.run"))
    found = clock_reads("from datetime import datetime\nx = datetime.now()", "jitpol.clockwork")
    assert found and not any(_allowed("jitpol.clockwork", n, CLOCK_ALLOWED) for _, n in found)


@pytest.mark.parametrize("source, name", [
    ("import sys\nsys.exit(1)", "sys.exit"),
    ("from sys import exit as bye\nbye(1)", "sys.exit"),
    ("import os\nos._exit(1)", "os._exit"),
    ("raise SystemExit(2)", "builtins.SystemExit"),
    ("exit(3)", "builtins.exit"),
], ids=["sys.exit", "alias", "os._exit", "SystemExit", "builtin exit"])
def test_checker_finds_process_exits(source: str, name: str) -> None:
    assert name in {r.name for r in references(source, "jitpol.execute.example")}


def test_a_shadowed_builtin_is_not_the_builtin() -> None:
    assert "builtins.exit" not in {r.name for r in references("def f(exit):\n    exit(1)", "jitpol.x")}


@pytest.mark.parametrize("source, module, is_package, expected", [
    ("from ..model import times", "jitpol.plan.diff", False, {"jitpol.model", "jitpol.model.times"}),
    ("from ..model.times import utc_text", "jitpol.plan.diff", False, {"jitpol.model.times",
                                                                        "jitpol.model.times.utc_text"}),
    ("from . import sudoers", "jitpol.connectors.ssh", False, {"jitpol.connectors", "jitpol.connectors.sudoers"}),
    ("from .base import shown", "jitpol.connectors", True, {"jitpol.connectors.base", "jitpol.connectors.base.shown"}),
    ("from jitpol import connectors", "jitpol.load.repository", False, {"jitpol", "jitpol.connectors"}),
    ("import jitpol.connectors.aws as a", "jitpol.execute.mfa", False, {"jitpol.connectors.aws"}),
    ("def f():\n    from jitpol.connectors import okta", "jitpol.execute.mfa", False,
     {"jitpol.connectors", "jitpol.connectors.okta"}),
], ids=["relative package", "relative module", "sibling", "from a package's __init__", "from jitpol import",
        "dotted", "inside a function"])
def test_imports_are_resolved(source: str, module: str, is_package: bool, expected: set[str]) -> None:
    assert imported_modules(source, module, is_package=is_package) == expected


def test_a_relative_import_of_another_connector_is_caught() -> None:
    found = imported_modules("from .aws import AwsConnector\nfrom . import base", "jitpol.connectors.gcp")
    assert {_connector_of(m) for m in found} - {None} == {"jitpol.connectors.aws"}


# -- import-linter -------------------------------------------------------------------------------

def _contracts() -> dict[str, configparser.SectionProxy]:
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    return {s.removeprefix("importlinter:contract:"): config[s] for s in config.sections()
            if s.startswith("importlinter:contract:")}


def _listed(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip() and not line.strip().startswith("#")]


def _lint_imports() -> str:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert exe, "import-linter is a dev dependency"
    return exe


def test_import_contracts_hold() -> None:
    """`lint-imports` (as `make lint` runs it) keeps every contract of .importlinter."""
    run = subprocess.run([_lint_imports(), "--no-cache"], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr


# one import that breaks each contract, planted in a copy of the package (module, line)
PLANTED = {
    "proposed-policy-stays-behind-the-engine": ("jitpol.policy", "from jitpol.load import repository"),
    "layers": ("jitpol.model", "from jitpol.connectors import base"),
    "pure-core": ("jitpol.plan", "import jitpol.ledger"),
    "target-sdks-only-in-connectors": ("jitpol.cli", "import boto3"),
    "connector-modules-only-through-the-registry": ("jitpol.report", "from jitpol.connectors import aws"),
    "connectors-independent": ("jitpol.connectors.fake", "from jitpol.connectors import gcp"),
    "sudoers-is-a-leaf-helper": ("jitpol.connectors.sudoers", "from jitpol.connectors import registry"),
    "registry-reaches-no-connector-or-sdk": ("jitpol.connectors.base", "import jitpol.connectors.ldap"),
}


def test_each_contract_breaks_on_a_planted_violation(tmp_path: Path) -> None:
    """The contracts can fail: with one violating import planted for each, every contract is broken."""
    assert set(PLANTED) == set(_contracts()), "plant a violation for each contract"
    shutil.copytree(PKG, tmp_path / "jitpol", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path)
    for module, line in PLANTED.values():
        path = tmp_path.joinpath(*module.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        path.write_text(path.read_text() + f"\n{line}\n")
    run = subprocess.run([_lint_imports(), "--no-cache"], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert f"Contracts: 0 kept, {len(PLANTED)} broken." in run.stdout, run.stdout + run.stderr


def test_the_contracts_the_design_asks_for_are_declared() -> None:
    kinds = {c["type"] for c in _contracts().values()}
    assert {"layers", "forbidden", "independence"} <= kinds


def test_every_registered_connector_is_independent_and_reached_only_through_the_registry() -> None:
    contracts = _contracts()
    independent = _listed(contracts["connectors-independent"]["modules"])
    hidden = _listed(contracts["connector-modules-only-through-the-registry"]["protected_modules"])
    for module in CONNECTOR_MODULES:
        assert any(_within(module, m) for m in independent), f"{module} is missing from connectors-independent"
        assert any(_within(module, m) for m in hidden), f"{module} is missing from the registry-only contract"


TARGET_EXTRAS = ("postgres", "ldap", "ssh", "aws", "azure", "gcp", "okta")


def test_every_target_sdk_is_forbidden_outside_connectors() -> None:
    """Each package a target extra installs (pyproject) is named in the SDK contract by its import name."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    tops: dict[str, set[str]] = {}
    for top, dists in packages_distributions().items():
        for dist in dists:
            tops.setdefault(dist.lower().replace("_", "-"), set()).add(top)
    forbidden = set(_listed(_contracts()["target-sdks-only-in-connectors"]["protected_modules"]))
    missing = {}
    for extra in TARGET_EXTRAS:
        for requirement in extras[extra]:
            dist = Requirement(requirement).name.lower().replace("_", "-")
            names = {t for t in tops.get(dist, set()) if not t.startswith("_")}
            assert names, f"{dist} (extra {extra}) is not installed"
            if not names & forbidden:
                missing[dist] = names
    assert not missing, f"target SDKs importable outside connectors: {missing}"


def test_validate_does_not_import_target_sdks() -> None:
    code = (
        "import sys; from pathlib import Path; from jitpol.load.repository import load_repository;"
        "r = load_repository(Path('policies')); assert r.ok, r.diagnostics;"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {SDKS[:-2]!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PKG.parent).stdout.strip()
    assert out == "[]"
