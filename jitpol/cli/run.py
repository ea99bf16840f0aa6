"""apply and reconcile: the commands that change targets."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from jitpol.cli.common import Exit, at_option, emit_json, format_option, handle_errors, now_from, repo_option
from jitpol.errors import InvalidInput, LockHeld, VcsError
from jitpol.execute.lock import RunLock
from jitpol.fsutil import fs_now
from jitpol.ledger.chain import CHAIN_KEYS, canonical_json
from jitpol.ledger.checkpoint import CHECKPOINT_DIR
from jitpol.ledger.checkpoint import parse as parse_checkpoint
from jitpol.ledger.store import Ledger
from jitpol.model.times import utc_text
from jitpol.plan.diff import Plan
from jitpol.plan.render import plan_text
from jitpol.run import RunSummary, run_apply
from jitpol.scope import AUDIT_DIR, Part, Shard, ledger_path
from jitpol.trust.ledger import sign_checkpoint
from jitpol.vcs.git import Change, Rebase, Repo


class ClickReporter:
    """What a run says, on the terminal: the plan and the summary on stdout (not with --format
    json), everything else on stderr; progress only on an interactive terminal."""

    def __init__(self, quiet: bool = False) -> None:
        self._quiet = quiet

    def plan(self, plan: Plan) -> None:
        if not self._quiet:
            click.echo(plan_text(plan))

    def progress(self, line: str) -> None:
        if sys.stderr.isatty():  # quiet in CI logs
            click.echo(f"  {line}", err=True)

    def note(self, text: str) -> None:
        click.echo(text, err=True)

    def summary(self, text: str) -> None:
        if not self._quiet:
            click.echo(text)

    def error(self, text: str) -> None:
        click.secho(text, fg="red", err=True)

    def unrecorded(self, body: Mapping[str, Any]) -> None:
        click.echo("unrecorded " + json.dumps(dict(body), sort_keys=True), err=True)


def _ledger_paths(repo: Path) -> list[str]:
    """What a run writes: audit/ — the ledger, policy snapshots, delivered credentials (added
    and removed)."""
    return [AUDIT_DIR.as_posix()]


OWED_MESSAGE = "jitpol: ledger lines an interrupted run left uncommitted"
_SEE_DOCS = 'see docs/operations.md, "Git faults and killed runs"'


def _commit(repo: Path, summary: RunSummary, quiet: bool = False) -> str | None:
    """Commit what the ledger owes, decided from the repository, not from this run's events:
    everything under audit/ that differs from HEAD — this run's lines and whatever an earlier run
    wrote but was killed before committing. First puts the repository in order after a killed run
    (stale git locks, a half-done re-base, an index left behind HEAD)."""
    git = Repo.find(repo)
    if git is None:
        return None
    heal_git(repo, git)
    return commit_owed(repo, git, summary.message if summary.events else OWED_MESSAGE, quiet)


def _warn(text: str) -> None:
    click.secho(f"warning: {text}", fg="yellow", err=True)


def heal_git(repo: Path, git: Repo) -> None:
    """What a run killed inside git's own steps left behind, put right before anything is
    committed: stale lock files, a re-base stopped inside `git reset --keep`, index entries for
    audit/ left behind HEAD."""
    _clear_stale_git_locks(repo, git)
    done = git.recover_interrupted_rebase()
    if done is not None:
        _warn(done)
    try:
        healed = git.heal_index(_ledger_paths(repo))
    except VcsError as exc:
        _warn(f"the git index could not be checked against HEAD: {exc}")
        return
    if healed:
        shown = ", ".join(healed[:5]) + (" ..." if len(healed) > 5 else "")
        _warn(f"the git index lagged behind HEAD for {shown} (an interrupted commit); reset those entries to HEAD")


def _clear_stale_git_locks(repo: Path, git: Repo) -> None:
    """Remove git lock files a killed run left, saying so. Only while this process holds jitpol's
    exclusive run lock (no other jitpol run is applying here), and only locks no live process may
    hold (Repo.clear_stale_locks has the rule)."""
    if not git.leftovers():
        return
    try:
        with RunLock(repo):
            result = git.clear_stale_locks()
    except LockHeld:
        _warn("git lock files are present and another jitpol run is active in this repository: left alone")
        return
    for path, age in result.removed:
        _warn(f"removed the stale git lock {path} ({age:.0f}s old): no process holds it and no other jitpol run is "
              "active (a killed run left it)")
    for path, why in result.kept:
        _warn(f"the git lock {path} was left alone: {why}")


def _is_ledger_file(rel: str) -> bool:
    folder, _, name = rel.partition("/")
    return folder == AUDIT_DIR.as_posix() and "/" not in name and name.endswith(".jsonl")


def _not_owed(repo: Path, git: Repo, change: Change) -> str | None:
    """Why a changed path under audit/ is not the ledger's to commit, or None when it is. jitpol
    writes no symbolic links, never deletes a ledger file, and only appends to one: anything else
    in the work tree is damage, which stays out of the branch."""
    rel = change.path
    path = repo / rel
    here = repo
    for part in rel.split("/"):
        here = here / part
        if here.is_symlink():
            return "a symbolic link (jitpol writes none)"
    if not _is_ledger_file(rel):
        return None
    if change.status == "D":
        return f"deleted in the work tree; jitpol never deletes a ledger file (restore it: git checkout HEAD -- {rel})"
    problem = Ledger(path).verify()
    if problem is not None:
        return f"line {problem.line}: {problem.message}"
    if change.status == "M" and change.was is not None:
        try:  # HEAD's entry must be a file the work tree's begins with (not a link, not a submodule)
            extends = change.was[0] in _FILE_MODES and git.blob_starts(change.was[1], path.read_bytes())
        except VcsError as exc:
            return f"cannot be compared with the committed file ({exc})"
        if not extends:
            return "does not extend the committed file (jitpol only appends to a ledger)"
    return None


_FILE_MODES = ("100644", "100755")


# the temporary file of one of jitpol's atomic writes (jitpol.fsutil.replace_at) that a kill left
_TEMPORARY = re.compile(r"\..+-[0-9a-f]{12}\.tmp")
_TEMPORARY_AGE = 60.0  # seconds: younger ones may belong to a write in progress


def _owed_changes(repo: Path, git: Repo) -> list[Change]:
    """The changes under audit/ to commit, their contents already in git's object store; warns
    about each change that stays out. A temporary file a killed write left is never committed:
    removed once it is old enough not to be another run's write in progress."""
    keep: list[Change] = []
    for change in git.changes(_ledger_paths(repo), store=True):
        rel = change.path
        path = repo / rel
        if change.status == "A" and _TEMPORARY.fullmatch(path.name) and not path.is_symlink():
            with contextlib.suppress(OSError):
                if fs_now(git.git_dir) - path.lstat().st_mtime >= _TEMPORARY_AGE:
                    path.unlink()
                    _warn(f"removed {rel}: the temporary file of a write a killed run left")
            continue
        problem = _not_owed(repo, git, change)
        if problem is None:
            keep.append(change)
        else:
            _warn(f"{rel}: {problem}; not committed ({_SEE_DOCS})")
    return keep


def commit_owed(repo: Path, git: Repo, message: str, quiet: bool = False) -> str | None:
    changes = _owed_changes(repo, git)
    if not changes:
        return None
    sha = git.commit_changes(changes, message)
    if sha and not quiet:
        click.echo(f"Committed ledger: {sha[:12]}")
    return sha


def _sealed(data: bytes | None) -> list[dict[str, Any]]:
    """The complete, parseable lines of a ledger file's bytes that carry a hash."""
    out: list[dict[str, Any]] = []
    for raw in (data or b"").split(b"\n")[:-1]:
        try:
            event = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue
        if isinstance(event, dict) and isinstance(event.get("hash"), str):
            out.append(event)
    return out


def _body(event: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k not in CHAIN_KEYS}


def _checkpoint_seq(data: bytes | None, rel: str) -> int:
    if data is None:
        return 0
    try:
        return parse_checkpoint(data.decode("utf-8"), rel).seq
    except (ValueError, UnicodeDecodeError):
        return 0


def _reapply(repo: Path, git: Repo, rebase: Rebase) -> list[Path]:
    """Re-apply to the work tree, on top of HEAD (now `rebase.onto` or later), everything the
    dropped local commits (`rebase.onto..rebase.old`) held under audit/: every ledger line the
    remote lacks — this run's, and those of earlier runs that were committed or left uncommitted
    but never pushed — re-sealed in order onto the current file, and the other files they wrote
    (policy snapshots, delivered credentials). Lines already re-applied by a run killed half-way
    through this are not repeated. Returns the ledger files appended to; commits nothing."""
    dropped = git.commits_between(rebase.onto, rebase.old)
    if not dropped:
        return []
    base = git.merge_base(rebase.old, rebase.onto)
    audit = AUDIT_DIR.as_posix()
    names = sorted({rel for commit in dropped for rel in git.files_at(commit, audit) if _is_ledger_file(rel)})
    touched: list[Path] = []
    for rel in names:
        onto_hashes = {e["hash"] for e in _sealed(git.file_at(rebase.onto, rel))}
        known = onto_hashes | ({e["hash"] for e in _sealed(git.file_at(base, rel))} if base else set())
        owed: list[dict[str, Any]] = []
        for commit in dropped:
            for event in _sealed(git.file_at(commit, rel)):
                if event["hash"] not in known:
                    known.add(event["hash"])
                    owed.append(_body(event))
        path = repo / rel
        present = Counter(canonical_json(_body(e)) for e in _sealed(path.read_bytes() if path.is_file() else None)
                          if e["hash"] not in onto_hashes)
        todo: list[dict[str, Any]] = []
        for body in owed:
            key = canonical_json(body)
            if present[key] > 0:
                present[key] -= 1
            else:
                todo.append(body)
        if todo:
            Ledger(path).append(todo)
            touched.append(path)
    for rel in git.files_changed(base, rebase.old, audit):
        if _is_ledger_file(rel) or rel.startswith(f"{audit}/{CHECKPOINT_DIR}/"):
            continue
        path = repo / rel
        inside = [parent for parent in path.parents if parent != repo and parent.is_relative_to(repo)]
        if path.is_symlink() or any(parent.is_symlink() for parent in inside):
            continue
        mine, theirs = git.file_at(rebase.old, rel), git.file_at(rebase.onto, rel)
        current = path.read_bytes() if path.is_file() else None
        if current == mine or current != theirs:
            continue  # carried over already, or changed since: leave it
        if mine is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(mine)
    return touched


def _sign_reapplied(repo: Path, git: Repo, rebase: Rebase, files: list[Path], summary: RunSummary,
                    env: Mapping[str, str], at: str | None) -> None:
    """Sign a checkpoint of each re-applied ledger file, when this run may sign (its ledger was
    trusted at the start), numbering on from the newest checkpoint either side signed (a state
    file remembers the highest; a lower one would read as a rollback)."""
    if not summary.signable:
        return
    now_text = utc_text(now_from(at))
    for path in files:
        cp_rel = f"{AUDIT_DIR.as_posix()}/{CHECKPOINT_DIR}/{path.name}.json"
        cp_path = repo / cp_rel
        before = cp_path.read_bytes() if cp_path.is_file() and not cp_path.is_symlink() else None
        mine = git.file_at(rebase.old, cp_rel)
        if mine is not None and _checkpoint_seq(mine, cp_rel) > _checkpoint_seq(before, cp_rel):
            cp_path.parent.mkdir(parents=True, exist_ok=True)
            cp_path.write_bytes(mine)
        try:
            sign_checkpoint(repo, path, env, now_text, summary.signing)
        except BaseException:
            if before is None:
                cp_path.unlink(missing_ok=True)
            else:
                cp_path.write_bytes(before)
            raise


def _rechain(repo: Path, git: Repo, rebase: Rebase, summary: RunSummary, env: Mapping[str, str],
             at: str | None) -> str | None:
    """After push_with_retry moved the branch onto the remote: re-apply what the dropped commits
    held, sign it, commit it."""
    touched = _reapply(repo, git, rebase)
    _sign_reapplied(repo, git, rebase, touched, summary, env, at)
    return commit_owed(repo, git, (summary.message if summary.events else OWED_MESSAGE) + " (re-chained)")


@dataclass(frozen=True, slots=True)
class _Recovered:
    rebase: Rebase
    files: tuple[Path, ...]


def _recover_before_run(repo: Path, git: Repo, shard: Part | None) -> _Recovered | None:
    """Before a reconcile reads the ledger: put git in order after a killed run and, when a
    re-base was left half-done, re-apply the lines it was carrying to the work tree (left
    uncommitted, they are the reconciler's own to the ledger's authentication), so the run sees
    them and repeats nothing they record."""
    heal_git(repo, git)
    pending = git.pending_rebase()
    if pending is None:
        return None
    with RunLock(repo, shard.lock_scope if shard else ""):
        files = _reapply(repo, git, pending)
    _warn("re-applied the ledger lines of a re-base a killed run left half-done")
    return _Recovered(pending, tuple(files))


def push_owed(repo: Path, git: Repo, summary: RunSummary, remote: str, branch: str | None,
               env: Mapping[str, str], at: str | None, own: Path, recovered: _Recovered | None) -> None:
    """Commit and push what the ledger owes, decided from the repository: audit/ dirty against
    HEAD, a re-base a killed run left half-done, local ledger commits the remote lacks."""
    heal_git(repo, git)
    if recovered is not None:  # the run signed its own file already
        others = [f for f in recovered.files if f != own]
        _sign_reapplied(repo, git, recovered.rebase, others, summary, env, at)
    sha = commit_owed(repo, git, summary.message if summary.events else OWED_MESSAGE)
    if recovered is not None and git.pending_rebase() == recovered.rebase:
        left = {rel for _, rel in git.changed_paths(_ledger_paths(repo))}
        if not any(f.relative_to(repo).as_posix() in left for f in recovered.files):
            git.end_rebase()  # what it owed is committed
    branch = branch or git.current_branch()
    if branch is None:
        if sha is None:
            return
        raise InvalidInput("HEAD is detached: pass --branch to say where the ledger commit goes")
    if sha is None and not git.unpushed(remote, branch, _ledger_paths(repo)):
        return
    git.push_with_retry(remote, branch, rechain=lambda rebase: _rechain(repo, git, rebase, summary, env, at))
    click.echo(f"Pushed ledger to {remote}/{branch}")


shard_option = click.option(
    "--shard", "shard_text", metavar="K/N", default=None,
    help="Only targets in shard K of N (stable hash of the target name); ledger audit/ledger-K-of-N.jsonl.")


@click.command()
@repo_option
@at_option
@shard_option
@click.option("--no-commit", is_flag=True, help="Append the ledger but do not commit it.")
@format_option("text", "json")
@click.pass_context
@handle_errors
def apply(ctx: click.Context, repo: Path, at: str | None, shard_text: str | None, no_commit: bool,
          fmt: str) -> None:
    """Make the targets match the active grants; append and commit the ledger."""
    debug = bool(ctx.find_root().params.get("debug"))
    quiet = fmt == "json"
    summary = run_apply(repo, now_from(at), dict(os.environ), ClickReporter(quiet), debug=debug,
                        shard=Shard.parse(shard_text) if shard_text else None)
    sha = None if no_commit else _commit(repo, summary, quiet)
    if quiet:
        emit_json(summary.as_json(sha))
    if not summary.ok:
        raise Exit(1)


@click.command()
@repo_option
@click.option("--remote", default="origin", show_default=True)
@click.option("--branch", default=None, help="Branch to push (default: the current branch).")
@click.option("--at", "at", hidden=True)
@shard_option
@click.pass_context
@handle_errors
def reconcile(ctx: click.Context, repo: Path, remote: str, branch: str | None, at: str | None,
              shard_text: str | None) -> None:
    """apply, then push the ledger commit (re-chaining and retrying when the remote moved)."""
    debug = bool(ctx.find_root().params.get("debug"))
    shard = Shard.parse(shard_text) if shard_text else None
    env = dict(os.environ)
    # the scheduled CI run: without a pinned trust root it adopts nothing unless told to trust on
    # first use (revocations still run)
    in_ci = env.get("CI", "").strip().lower() not in ("", "0", "false")
    git = Repo.find(repo)
    recovered = _recover_before_run(repo, git, shard) if git is not None else None
    # the scheduled run acts on committed content only: an uncommitted file adds nothing
    summary = run_apply(repo, now_from(at), env, ClickReporter(), debug=debug, shard=shard, require_root=in_ci,
                        committed_only=True)  # notes say why
    if git is not None:
        # what is owed comes from the repository, so a run that appended nothing still commits and
        # pushes what a killed run left behind
        push_owed(repo, git, summary, remote, branch, env, at, repo / ledger_path(shard), recovered)
    if not summary.ok:
        raise Exit(1)
