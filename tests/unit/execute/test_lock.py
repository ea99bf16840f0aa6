"""The run lock across real processes: contention names the holder; death releases it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import jitpol
from jitpol.errors import InvalidInput, LockHeld
from jitpol.execute.lock import RunLock, lock_path

HOLDER = """
import sys
from pathlib import Path
from jitpol.execute.lock import RunLock
with RunLock(Path(sys.argv[1])):
    print("locked", flush=True)
    sys.stdin.read()  # hold until the parent closes our stdin (or kills us)
"""


class Holder:
    """Another process holding the lock on `repo_dir`."""

    def __init__(self, repo_dir: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(Path(jitpol.__file__).parents[1])}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(repo_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == "locked\n"

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(timeout=10) == 0

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    started: list[Holder] = []
    yield started
    for holder in started:
        if holder.proc.poll() is None:
            holder.kill()


def test_second_process_is_refused_and_told_who_holds_the_lock(tmp_path: Path, holders: list[Holder]) -> None:
    holder = Holder(tmp_path)
    holders.append(holder)
    with pytest.raises(LockHeld) as held:
        with RunLock(tmp_path):
            pytest.fail("entered a held lock")
    assert str(held.value) == (
        f"another jitpol run holds {tmp_path / '.jitpol.lock'} "
        f"(pid {holder.proc.pid} on {socket.gethostname()}); wait for it to finish"
    )
    holder.release()
    with RunLock(tmp_path):
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path, holders: list[Holder]) -> None:
    holder = Holder(tmp_path)
    holders.append(holder)
    with pytest.raises(LockHeld):
        RunLock(tmp_path).__enter__()
    holder.kill()
    with RunLock(tmp_path) as lock:
        assert lock.path.read_text() == f"pid={os.getpid()} host={socket.gethostname()}\n"


def test_a_holder_in_this_process_blocks_a_second_lock(tmp_path: Path) -> None:
    with RunLock(tmp_path):
        with pytest.raises(LockHeld, match=f"pid {os.getpid()} "):
            RunLock(tmp_path).__enter__()
    with RunLock(tmp_path):  # released on exit
        pass


def test_released_on_exception(tmp_path: Path) -> None:
    with pytest.raises(ZeroDivisionError), RunLock(tmp_path):
        _ = 1 / 0
    with RunLock(tmp_path):
        pass


def test_not_reentrant(tmp_path: Path) -> None:
    lock = RunLock(tmp_path)
    with lock, pytest.raises(RuntimeError):
        lock.__enter__()


def test_lock_lives_in_the_git_directory_of_a_work_tree(tmp_path: Path, holders: list[Holder]) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert lock_path(tmp_path) == tmp_path / ".git" / "jitpol.lock"
    holders.append(Holder(tmp_path))
    with pytest.raises(LockHeld, match=r"\.git/jitpol\.lock"):
        RunLock(tmp_path).__enter__()
    assert not (tmp_path / ".jitpol.lock").exists()


def test_gitdir_file_points_to_the_lock(tmp_path: Path) -> None:
    real = tmp_path / "real-git-dir"
    real.mkdir()
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / ".git").write_text(f"gitdir: {real}\n")
    assert lock_path(tree) == real.resolve() / "jitpol.lock"
    plain = tmp_path / "plain"
    plain.mkdir()
    assert lock_path(plain) == plain / ".jitpol.lock"


def test_unreadable_holder_text_still_gives_a_clear_message(tmp_path: Path) -> None:
    with RunLock(tmp_path) as lock:
        lock.path.write_text("garbage")
        with pytest.raises(LockHeld, match=r"\(holder unknown\); wait for it to finish"):
            RunLock(tmp_path).__enter__()


def test_scoped_runs_share_the_repository_but_exclude_a_whole_run(tmp_path: Path) -> None:
    from jitpol.errors import LockHeld
    from jitpol.execute.lock import RunLock

    with RunLock(tmp_path, "1-of-2"), RunLock(tmp_path, "2-of-2"):
        with pytest.raises(LockHeld):  # a whole-repository run waits for the shards
            RunLock(tmp_path).__enter__()
        with pytest.raises(LockHeld):  # the same shard twice: no
            RunLock(tmp_path, "1-of-2").__enter__()
    with RunLock(tmp_path):
        with pytest.raises(LockHeld):  # and shards wait for a whole-repository run
            RunLock(tmp_path, "1-of-2").__enter__()
    with RunLock(tmp_path, "1-of-2"):
        pass  # everything was released


def test_in_a_subdirectory_of_a_work_tree_the_lock_is_in_the_git_directory(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    policy = tmp_path / "policies"
    policy.mkdir()
    assert lock_path(policy) == tmp_path / ".git" / "jitpol.lock"
    assert lock_path(policy, "1-of-2") == tmp_path / ".git" / "jitpol-1-of-2.lock"
    with RunLock(policy):
        with pytest.raises(LockHeld):  # one lock for the work tree, whichever folder a run names
            RunLock(tmp_path).__enter__()
    assert not (policy / ".jitpol.lock").exists()


def test_a_committed_lock_link_in_a_subdirectory_is_never_followed(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    policy = tmp_path / "policies"
    (policy / "audit").mkdir(parents=True)
    ledger = policy / "audit" / "ledger.jsonl"
    ledger.write_bytes(b'{"seq":1}\n')
    (policy / ".jitpol.lock").symlink_to("audit/ledger.jsonl")
    with RunLock(policy):
        pass
    assert ledger.read_bytes() == b'{"seq":1}\n'


def test_a_link_in_place_of_the_lock_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    precious = tmp_path / "ledger.jsonl"
    precious.write_bytes(b'{"seq":1}\n')
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / ".jitpol.lock").symlink_to(precious)
    with pytest.raises(InvalidInput, match=r"\.jitpol\.lock is a symbolic link: .*remove"):
        RunLock(repo).__enter__()
    assert precious.read_bytes() == b'{"seq":1}\n'
    (repo / ".jitpol.lock").unlink()
    (repo / ".jitpol.lock").symlink_to(tmp_path / "nowhere")  # dangling: not created through either
    with pytest.raises(InvalidInput, match="symbolic link"):
        RunLock(repo).__enter__()
    assert not (tmp_path / "nowhere").exists()


def test_a_hard_link_or_fifo_in_place_of_the_lock_is_refused(tmp_path: Path) -> None:
    precious = tmp_path / "ledger.jsonl"
    precious.write_bytes(b'{"seq":1}\n')
    repo = tmp_path / "repo"
    repo.mkdir()
    os.link(precious, repo / ".jitpol.lock")
    with pytest.raises(InvalidInput, match="hard link"):
        RunLock(repo).__enter__()
    assert precious.read_bytes() == b'{"seq":1}\n'
    (repo / ".jitpol.lock").unlink()
    os.mkfifo(repo / ".jitpol.lock")
    with pytest.raises(InvalidInput, match="not a regular file"):
        RunLock(repo).__enter__()
