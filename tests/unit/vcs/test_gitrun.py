"""jitpol.vcs.gitrun: the one git runner."""

from __future__ import annotations

from pathlib import Path

import pytest

from jitpol.errors import PermanentTargetError, VcsError
from jitpol.vcs.gitrun import git_output, redact, run_git
from tests.unit.vcs.gitcase import git


def test_git_runs_in_the_folder_with_literal_pathspecs_no_prompt_and_english(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "*").write_text("star")
    (tmp_path / "other").write_text("other")
    done = run_git("ls-files", "--others", "--", "*", cwd=tmp_path)
    assert done.ok and done.out == "*"  # the file named *, not a pattern; no trailing newline
    env = run_git("var", "GIT_EDITOR", cwd=tmp_path, env={"GIT_EDITOR": "mine"})
    assert env.out == "mine"  # the caller's variables reach git
    failed = run_git("rev-parse", "--verify", "no-such-ref", cwd=tmp_path)
    assert not failed.ok and "fatal: Needed a single revision" in failed.message


def test_a_failure_message_never_shows_a_credential(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    failed = run_git("fetch", "https://user:s3cret@127.0.0.1:9/repo.git", cwd=tmp_path, timeout=30)
    assert not failed.ok and "s3cret" not in failed.message
    assert redact("see https://u:p@host/x and ssh://git@h/y") == "see https://host/x and ssh://h/y"


def test_git_never_runs_anywhere_but_the_named_folder(tmp_path: Path) -> None:
    with pytest.raises(VcsError, match="not an accessible folder"):
        run_git("status", cwd=tmp_path / "missing")


def test_git_output_is_a_permanent_error_for_the_git_host_clients(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    assert git_output("symbolic-ref", "--quiet", "--short", "HEAD", cwd=tmp_path) == "main"
    with pytest.raises(PermanentTargetError, match=r"git rev-parse failed in .*: fatal"):
        git_output("rev-parse", "--verify", "no-such-ref", cwd=tmp_path)
    assert git_output("rev-parse", "--verify", "no-such-ref", cwd=tmp_path, allow_fail=True) == ""
    with pytest.raises(PermanentTargetError, match="not an accessible folder"):
        git_output("status", cwd=tmp_path / "missing")
