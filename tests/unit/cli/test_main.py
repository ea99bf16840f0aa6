"""The `jitpol` group imports each command's module only when that command runs, and still lists
every command with its help text."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from jitpol.cli import main as cli_main
from jitpol.cli.main import COMMANDS, cli

ROOT = Path(__file__).resolve().parents[3]


def _defined_commands() -> dict[str, click.Command]:
    """Every top-level click command defined in a jitpol/cli module (a group's subcommands are not
    top-level), imported here on purpose."""
    import importlib

    found: dict[str, click.Command] = {}
    sub: set[int] = set()
    for path in sorted((ROOT / "jitpol" / "cli").glob("*.py")):
        if path.stem in ("__main__", "main"):
            continue
        module = importlib.import_module(f"jitpol.cli.{path.stem}")
        for value in vars(module).values():
            if isinstance(value, click.Group):
                sub.update(id(c) for c in value.commands.values())
        for name, value in vars(module).items():
            # defined here, not imported from another command module
            if isinstance(value, click.Command) and getattr(value.callback, "__module__", None) == module.__name__:
                found[f"{path.stem}.{name}"] = value
    return {c.name or "": c for c in found.values() if id(c) not in sub}


def test_every_command_defined_in_the_cli_package_is_registered_under_its_own_name() -> None:
    defined = _defined_commands()
    assert set(defined) == set(COMMANDS)
    for name, load in COMMANDS.items():
        assert load() is defined[name], name


def test_help_lists_every_command_with_its_short_help() -> None:
    result = CliRunner().invoke(cli, ["--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    listed = result.output.split("Commands:\n", 1)[1]
    lines = {line.split()[0]: line.split(None, 1)[1] for line in listed.splitlines() if line.strip()}
    assert sorted(lines) == sorted(COMMANDS)
    for name, load in COMMANDS.items():
        expected = load().get_short_help_str(limit=100 - 6 - max(map(len, COMMANDS)))
        assert expected, name
        assert lines[name].strip() == expected.strip(), name


def test_an_unknown_command_is_refused_as_before() -> None:
    result = CliRunner().invoke(cli, ["no-such-command"])
    assert result.exit_code == 2
    assert "No such command 'no-such-command'" in result.output


def test_a_loader_returning_another_command_is_a_programming_error() -> None:
    group = cli_main.LazyGroup(name="g", lazy={"x": lambda: click.Command("y")})
    with pytest.raises(RuntimeError, match="command 'x' loads 'y'"):
        group.get_command(click.Context(group), "x")


# A real process through main(): which of jitpol.cli's modules were imported, the exit status,
# and that the output was written in full (main() freezes the garbage collector at the end).
PROBE = """
import atexit, json, sys
atexit.register(lambda: print(json.dumps(sorted(m for m in sys.modules if m.startswith("jitpol.cli.")
                                                 or m in ("git", "jinja2", "http.client", "jsonschema", "jitpol.run",
                                                          "jitpol.policy.evaluate", "jitpol.trust.decide"))),
                              file=sys.stderr))
from jitpol.cli.main import main
sys.argv[0] = "jitpol"
main()
"""


def _run(*args: str) -> tuple[int, str, list[str]]:
    """main() in a new interpreter: exit status, stdout, and the jitpol.cli modules (and git,
    Jinja, http.client) imported by the time it exited."""
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    loaded: list[str] = json.loads(done.stderr.strip().splitlines()[-1])
    return done.returncode, done.stdout, loaded


def test_validate_imports_only_its_own_command_module_and_exits_zero(tmp_path: Path) -> None:
    status, out, loaded = _run("validate", "--repo", str(ROOT / "policies"), "--format", "json")
    assert status == 0
    assert json.loads(out)["valid"] is True  # the whole document was written and flushed
    assert "jitpol.cli.validate" in loaded
    for other in ("agent", "audit", "check", "credentials", "notify", "report", "review", "run", "inspect"):
        assert f"jitpol.cli.{other}" not in loaded, other
    # validate runs no git and imports no GitPython (jitpol no longer uses it); no Jinja, no HTTP
    # client; nothing of the run; and no jsonschema while every file passes the fast schema check
    assert not {"git", "jinja2", "http.client", "jsonschema", "jitpol.run", "jitpol.policy.evaluate",
                "jitpol.trust.decide"} & set(loaded), loaded


def test_a_failing_command_keeps_its_exit_status(tmp_path: Path) -> None:
    (tmp_path / "jitpol.yaml").write_text("kind: [unclosed\n")
    status, _out, loaded = _run("validate", "--repo", str(tmp_path))
    assert status == 1
    assert "jitpol.cli.validate" in loaded


def test_help_through_main_exits_zero_and_lists_every_command() -> None:
    status, out, _loaded = _run("--help")
    assert status == 0
    for name in COMMANDS:
        assert f"\n  {name} " in out, name
