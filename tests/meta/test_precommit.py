"""The pre-commit hook this repository offers (.pre-commit-hooks.yaml) and the configs in docs/ci.md.

The hook's entry must resolve to the `jitpol` console script that pip installs from this
repository (pre-commit installs it with `language: python`) and to a real subcommand; run as
pre-commit runs it (entry + args, no file names, at the repository root) it passes on a valid
policy repository and fails on a broken one. pre-commit's own schema checks the manifest and
the `.pre-commit-config.yaml` examples (pre-commit is in the dev extra; without it that part
skips on a laptop and FAILS in CI).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from jitpol.cli.main import cli
from tests.services import require_service

ROOT = Path(__file__).resolve().parents[2]
HOOKS = ROOT / ".pre-commit-hooks.yaml"
BIN = Path(sys.executable).parent


def hooks() -> list[dict[str, Any]]:
    data = yaml.safe_load(HOOKS.read_text(encoding="utf-8"))
    assert isinstance(data, list)
    return data


def hook() -> dict[str, Any]:
    found = [h for h in hooks() if h["id"] == "jitpol-validate"]
    assert len(found) == 1
    return found[0]


def test_hook_declaration() -> None:
    h = hook()
    assert h["name"] and h["description"]
    assert h["language"] == "python", "pre-commit pip-installs this repository and its console script"
    assert h["pass_filenames"] is False, "jitpol validates the whole repository, never a list of files"
    files = re.compile(h["files"])
    for path in ("jitpol.yaml", "people/alice.yaml", "grants/1998-12/a.yml"):
        assert files.search(path), path
    for path in ("README.md", "audit/ledger.jsonl", "notifications/activated.j2", "x.yaml.bak"):
        assert not files.search(path), path


def test_entry_resolves_to_the_console_script_and_a_real_command() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    argv = shlex.split(hook()["entry"]) + list(hook().get("args", ()))
    assert argv[0] in scripts, f"{argv[0]} is not a console script of pyproject.toml"
    assert scripts[argv[0]] == "jitpol.cli.main:main"
    ctx = click.Context(cli)
    command = cli.get_command(ctx, argv[1])
    assert command is not None, f"jitpol has no command {argv[1]!r}"
    # the remaining words must parse as that command's options
    command.make_context(argv[1], argv[2:], parent=ctx, resilient_parsing=False)


def _run_hook(repo: Path) -> subprocess.CompletedProcess[str]:
    """Run the hook as pre-commit does: entry + args, no file names, at the repository root,
    with the console script from the environment jitpol is installed in."""
    argv = shlex.split(hook()["entry"]) + list(hook().get("args", ()))
    exe = shutil.which(argv[0], path=str(BIN))
    assert exe, f"the console script {argv[0]} is not installed in {BIN}"
    return subprocess.run([exe, *argv[1:]], cwd=repo, capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"})


def test_hook_passes_on_a_valid_repository_and_fails_on_a_broken_one(tmp_path: Path) -> None:
    repo = tmp_path / "policy"
    shutil.copytree(ROOT / "policies", repo)
    done = _run_hook(repo)
    assert done.returncode == 0, done.stdout + done.stderr
    (repo / "teams" / "ghosts.yaml").write_text(
        "apiVersion: jitpol/v1\nkind: Team\nmetadata: {name: ghosts}\nspec: {members: [nobody]}\n", encoding="utf-8")
    done = _run_hook(repo)
    assert done.returncode == 1
    assert "teams/ghosts.yaml:4:18: member 'nobody' is not a person" in done.stdout + done.stderr


def _clientlib() -> Any:
    try:
        from pre_commit import clientlib  # type: ignore[import-untyped]  # pre-commit ships no type information
    except ModuleNotFoundError:
        require_service(False, "pre-commit", "pre-commit is not installed (pip install -e '.[dev]' brings it)")
    return clientlib


def test_manifest_passes_pre_commits_own_schema() -> None:
    loaded = _clientlib().load_manifest(str(HOOKS))
    assert [h["id"] for h in loaded] == ["jitpol-validate"]


def test_manifest_schema_check_is_live(tmp_path: Path) -> None:
    bad = tmp_path / "hooks.yaml"
    bad.write_text("- id: x\n  name: x\n  entry: jitpol validate\n  language: pythonn\n", encoding="utf-8")
    clientlib = _clientlib()
    with pytest.raises(clientlib.InvalidManifestError):
        clientlib.load_manifest(str(bad))


def _doc_configs() -> list[str]:
    text = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```yaml\n(.*?)^```", text, re.S | re.M)
    return [b for b in blocks if isinstance(yaml.safe_load(b), dict) and "repos" in yaml.safe_load(b)]


def test_docs_show_pre_commit_configs_that_pre_commit_accepts(tmp_path: Path) -> None:
    configs = _doc_configs()
    assert len(configs) >= 2, "docs/ci.md shows the remote and the local hook configuration"
    clientlib = _clientlib()
    for i, text in enumerate(configs):
        path = tmp_path / f"config-{i}.yaml"
        path.write_text(text, encoding="utf-8")
        loaded = clientlib.load_config(str(path))
        ids = [h["id"] for repo in loaded["repos"] for h in repo["hooks"]]
        assert ids == ["jitpol-validate"]
    remote = yaml.safe_load(configs[0])["repos"][0]
    assert remote["rev"], "a pinned rev"
    local = yaml.safe_load(configs[1])["repos"][0]["hooks"][0]
    for key in ("entry", "pass_filenames", "files"):
        assert local[key] == hook()[key], f"the local variant's {key} matches the shipped hook"
