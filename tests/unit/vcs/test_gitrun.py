"""jitpol.vcs.gitrun: the one git runner."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from jitpol.errors import PermanentTargetError, VcsError
from jitpol.vcs.gitrun import command, git_output, redact, run_git, run_git_bytes
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


def test_a_timeout_stops_git_and_every_process_it_started(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    marker = tmp_path / "child-pid"
    # an alias runs a shell that starts a long child: both belong to git's own session
    alias = f"!sh -c 'sleep 30 & echo $! > {marker}; wait'"
    done = run_git("-c", f"alias.hang={alias}", "hang", cwd=tmp_path, timeout=1)
    assert not done.ok and "timed out after 1 s" in done.message
    child = int(marker.read_text())
    for _ in range(50):  # the kill is asynchronous: give the kernel a moment to reap it
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("git's child outlived the timeout")


def test_bytes_come_back_exactly(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    data = b"\x00\xff\r\nno trailing newline"
    oid = run_git_bytes("hash-object", "-w", "--stdin", cwd=tmp_path, stdin=data).strip().decode()
    assert run_git_bytes("cat-file", "blob", oid, cwd=tmp_path) == data
    with pytest.raises(VcsError, match="git cat-file failed: fatal"):
        run_git_bytes("cat-file", "blob", "0" * 40, cwd=tmp_path)
    with pytest.raises(VcsError, match="git is not installed"):
        run_git("status", cwd=tmp_path, env={"PATH": str(tmp_path / "nowhere")})


def test_git_stays_in_the_callers_process_group(tmp_path: Path) -> None:
    """What stops jitpol's process group (a cancelled CI job, a killed run) stops git too: a git
    left running could hold index.lock against the next run."""
    git(tmp_path, "init", "-q")
    marker = tmp_path / "group"
    done = run_git("-c", f"alias.group=!sh -c 'cut -d\" \" -f5 /proc/$$/stat > {marker}'", "group", cwd=tmp_path)
    assert done.ok, done.message
    assert int(marker.read_text()) == os.getpgrp()


def test_a_push_finishes_alone(tmp_path: Path) -> None:
    """finish_alone: a session of its own, which a kill of jitpol's process group does not reach
    (a push stopped half-way can leave a lock in the remote that no later run can clear)."""
    git(tmp_path, "init", "-q")
    marker = tmp_path / "session"
    alias = f"alias.session=!sh -c 'cut -d\" \" -f6 /proc/$$/stat > {marker}'"
    assert run_git("-c", alias, "session", cwd=tmp_path, finish_alone=True).ok
    assert int(marker.read_text()) != os.getsid(0)
    assert run_git("-c", alias, "session", cwd=tmp_path).ok
    assert int(marker.read_text()) == os.getsid(0)


def test_a_failure_names_the_command_after_its_config_options(tmp_path: Path) -> None:
    assert command(("-c", "core.looseCompression=1", "hash-object", "-w")) == "hash-object"
    assert command(("status",)) == "status"
    with pytest.raises(VcsError, match="git cat-file failed"):
        run_git_bytes("-c", "core.bigFileThreshold=1m", "cat-file", "-p", "0" * 40, cwd=tmp_path)
