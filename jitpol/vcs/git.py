"""A thin git wrapper for what jitpol needs: find the repository, commit the ledger, push it.

The policy repository may be the git work tree itself or a directory inside it (`--repo
policies`). A Repo remembers which: every path it takes or returns is relative to that policy
root (`Repo.base`), never to the git root, unless a method says otherwise.

Every git failure surfaces as VcsError carrying git's own message, with credentials removed from
any URL in it. Commands run with GIT_TERMINAL_PROMPT=0 (a missing credential fails instead of
waiting for a prompt nobody answers) and literal pathspecs (a file named `*` is just a file).
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath

import git

from jitpol.errors import VcsError

# Network operations give up after this long instead of hanging a scheduled run.
NETWORK_TIMEOUT_SECONDS = 300.0

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]*@")


def redact(text: str) -> str:
    """`text` with the user:password part of every URL removed."""
    return _USERINFO.sub(r"\1", text)


class Repo:
    """A git work tree, seen from a policy root inside it. Construct it with Repo.find().

    `root` is the git work tree; `prefix` is the policy root relative to it, in git's spelling
    ("" at the git root, else e.g. "policies/"); `base` is the policy root as a path.
    """

    def __init__(self, repo: git.Repo, prefix: str = "") -> None:
        if repo.working_tree_dir is None:
            raise ValueError("a bare repository has no work tree")
        self._repo = repo
        self.root = Path(repo.working_tree_dir)
        self.git_dir = Path(repo.git_dir)
        self.prefix = _normal_prefix(prefix)
        self.base = self.root / self.prefix if self.prefix else self.root

    @classmethod
    def find(cls, path: Path) -> Repo | None:
        """The work tree containing `path`, or None when `path` is not inside one. `path` (a
        directory) becomes the policy root that every path is relative to."""
        try:
            repo = git.Repo(path, search_parent_directories=True)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            return None
        if repo.bare or repo.working_tree_dir is None:
            return None
        return cls(repo, _prefix_of(repo, Path(path)))

    # -- paths -------------------------------------------------------------------------------

    def git_path(self, path: str) -> str:
        """`path` relative to the policy root, as a path relative to the git root."""
        path = path.strip("/")
        if not self.prefix:
            return path
        return self.prefix.rstrip("/") if path in ("", ".") else self.prefix + path

    def policy_path(self, git_path: str) -> str | None:
        """A path relative to the git root, relative to the policy root instead; None when it
        lies outside the policy root."""
        if not self.prefix:
            return git_path
        return git_path[len(self.prefix):] if git_path.startswith(self.prefix) else None

    def head_commit(self) -> str | None:
        """The hex id of HEAD's commit; None in a repository without commits."""
        status, out, _ = self._run("rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
        return out.strip() if status == 0 else None

    def current_branch(self) -> str | None:
        """The checked-out branch's short name; None when HEAD is detached."""
        status, out, _ = self._run("symbolic-ref", "--quiet", "--short", "HEAD", check=False)
        return out.strip() if status == 0 else None

    def changed_files(self, base: str) -> list[tuple[str, str]]:
        """(status letter, path relative to the policy root) of every file under the policy root
        that differs between the merge base of `base` and HEAD, and the work tree (renames split
        into a deletion and an addition; untracked files that are not ignored count as added)."""
        out = []
        for status, name in self.tree_changes(base):
            rel = self.policy_path(name)
            if rel is not None:
                out.append((status, rel))
        return out

    def tree_changes(self, base: str) -> list[tuple[str, str]]:
        """As changed_files(), but for the whole work tree, with paths relative to the GIT root
        (for files outside the policy root that still matter, such as .gitattributes)."""
        mb = self._run("merge-base", self._commit(base), "HEAD")[1].strip()
        _, out, _ = self._run("diff", "--name-status", "--no-renames", "-z", mb)
        parts = [p for p in out.split("\0") if p]
        pairs = [(parts[i][:1], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]
        _, untracked, _ = self._run("ls-files", "--others", "--exclude-standard", "--full-name", "-z")
        pairs += [("A", p) for p in untracked.split("\0") if p]
        return pairs

    def work_files(self) -> list[str]:
        """Every file git sees under the policy root, relative to it: tracked ones present in the
        work tree and untracked ones that are not ignored."""
        args = ["ls-files", "--cached", "--others", "--exclude-standard", "--full-name", "-z"]
        if self.prefix:
            args += ["--", self.prefix]
        _, out, _ = self._run(*args)
        out_paths: list[str] = []
        for name in dict.fromkeys(p for p in out.split("\0") if p):
            rel = self.policy_path(name)
            if rel is not None and os.path.lexists(self.root / name):
                out_paths.append(rel)
        return out_paths

    def export_tree(self, ref: str, dest: Path) -> None:
        """Write the files under the policy root in `ref` (a commit-ish) under `dest` (which
        must be empty), as git stores them: no .gitattributes conversion, filter or
        export-ignore applies. Symbolic links are recreated only when they stay inside `dest`;
        submodules are left out. A policy root that `ref` lacks exports nothing."""
        commit = self._commit(ref)
        args = ["ls-tree", "-r", "-z", "--full-tree", commit]
        if self.prefix:
            args += ["--", self.prefix]
        _, out, _ = self._run(*args)
        top = dest.resolve()
        for entry in out.split("\0"):
            if not entry:
                continue
            meta, _, name = entry.partition("\t")
            mode, kind, sha = meta.split(" ")
            rel = self.policy_path(name)
            if kind != "blob" or rel is None or not _safe_relative(rel):
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            data = self._repo.odb.stream(bytes.fromhex(sha)).read()
            if int(mode, 8) & 0o170000 == stat.S_IFLNK:
                link = os.fsdecode(data)
                inside = posixpath.normpath(posixpath.join(posixpath.dirname(rel), link))
                if not link.startswith("/") and _safe_relative(inside) and (top / inside).is_relative_to(top):
                    os.symlink(link, target)
                continue
            target.write_bytes(data)
            if int(mode, 8) & 0o111:
                target.chmod(0o755)

    def config_value(self, key: str) -> str | None:
        """A git config value (e.g. "user.email") as git resolves it; None when unset."""
        status, out, _ = self._run("config", "--get", key, check=False)
        return out.strip() if status == 0 and out.strip() else None

    def create_branch(self, name: str) -> None:
        """Create branch `name` at HEAD and switch to it, carrying uncommitted changes along.
        Raises VcsError if the name is not a valid branch name or the branch exists."""
        status, _, _ = self._run("check-ref-format", "--branch", name, check=False)
        if status != 0 or name.startswith("-"):
            raise VcsError(f"{name!r} is not a valid branch name")
        self._run("switch", "--quiet", "--create", name)

    def is_dirty(self, paths: Sequence[str] = ()) -> bool:
        """Whether the work tree or index differs from HEAD, untracked files included (ignored
        files not), within `paths` (relative to the policy root) or anywhere in the policy root
        when `paths` is empty."""
        scope = [self.git_path(p) for p in paths] or ([self.git_path("")] if self.prefix else [])
        _, out, _ = self._run("status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *scope)
        return bool(out)

    def commit_paths(
        self,
        paths: Sequence[str],
        message: str,
        *,
        author_name: str = "jitpol",
        author_email: str = "jitpol@localhost",
    ) -> str | None:
        """Commit the work-tree state of exactly `paths` (relative to the policy root) on top of
        HEAD.

        Other changes, staged or not, are neither committed nor disturbed: the commit is built
        in a private index. New, changed and deleted files under `paths` are all recorded.
        Returns the new commit's id, or None when `paths` hold no change. The identity is used
        for author and committer; hooks do not run (this is jitpol's own bookkeeping commit).
        """
        if not paths:
            raise ValueError("commit_paths needs at least one path")
        head = self.head_commit()
        paths = [self.git_path(p) for p in paths]
        present = [p for p in paths if os.path.lexists(self.root / p)]
        absent = [p for p in paths if p not in present]
        fd, index_name = tempfile.mkstemp(prefix="jitpol-index-", dir=self.git_dir)
        os.close(fd)
        index = Path(index_name)
        index.unlink()  # git wants to create it; a missing index file is an empty index
        private = {"GIT_INDEX_FILE": str(index)}
        try:
            if head is not None:
                self._run("read-tree", head, env=private)
            if present:
                self._run("add", "--all", "--", *present, env=private)
            if absent:
                self._run("rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", *absent, env=private)
            tree = self._run("write-tree", env=private)[1].strip()
            if head is not None:
                if tree == self._run("rev-parse", f"{head}^{{tree}}")[1].strip():
                    return None
            elif not self._run("ls-files", env=private)[1]:
                return None
            identity = {
                "GIT_AUTHOR_NAME": author_name,
                "GIT_AUTHOR_EMAIL": author_email,
                "GIT_COMMITTER_NAME": author_name,
                "GIT_COMMITTER_EMAIL": author_email,
            }
            parents = ["-p", head] if head is not None else []
            commit = self._run("commit-tree", tree, *parents, "-m", message, env=identity)[1].strip()
        finally:
            index.unlink(missing_ok=True)
            Path(f"{index}.lock").unlink(missing_ok=True)
        # Compare-and-swap: if HEAD moved meanwhile, fail rather than drop someone's commit.
        subject = message.splitlines()[0] if message else ""
        self._run("update-ref", "-m", f"jitpol: {subject}", "HEAD", commit, head or "")
        # The real index still holds the old state of `paths`; make it match the new commit so
        # `git status` shows them clean.
        self._run("reset", "-q", commit, "--", *paths)
        return commit

    def push_with_retry(
        self,
        remote: str,
        branch: str,
        *,
        rebuild: Callable[[], str | None],
        attempts: int = 5,
        owned_paths: Sequence[str] = ("audit",),
    ) -> None:
        """Push HEAD to `branch` on `remote`; when the remote moved, re-base our work and retry.

        On a rejection because the remote has commits we lack: fetch them, move the current
        branch (or detached HEAD) to the remote head with `git reset --keep` (which refuses to
        overwrite local changes, and leaves the old head in ORIG_HEAD), call `rebuild()` to
        re-append this run's events to the now-current ledger and commit them, and push again.
        The commits dropped by the reset may only touch `owned_paths` (relative to the policy
        root); anything else (someone's unpushed work) makes this fail instead. Gives up after `attempts` pushes. Raises
        VcsError for every git failure; whatever `rebuild` raises passes through.
        """
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        target = f"HEAD:refs/heads/{branch}"
        for attempt in range(1, attempts + 1):
            status, out, err = self._run(
                "push", "--porcelain", remote, target, check=False, timeout=NETWORK_TIMEOUT_SECONDS
            )
            if status == 0:
                return
            if not _remote_moved(out):
                raise VcsError(f"git push to {redact(remote)} {branch} failed: {_message(err or out)}")
            if attempt == attempts:
                break
            self._run("fetch", "--quiet", remote, f"refs/heads/{branch}", timeout=NETWORK_TIMEOUT_SECONDS)
            upstream = self._run("rev-parse", "--verify", "FETCH_HEAD^{commit}")[1].strip()
            self._check_discardable(upstream, owned_paths, remote, branch)
            self._run("reset", "--quiet", "--keep", upstream)
            rebuild()
        raise VcsError(
            f"git push to {redact(remote)} {branch} was rejected {attempts} times because the remote "
            "kept moving; run again later"
        )

    def _check_discardable(self, upstream: str, owned_paths: Sequence[str], remote: str, branch: str) -> None:
        """Refuse to reset away local commits that change anything outside `owned_paths`."""
        _, out, _ = self._run("log", "--format=", "--name-only", "-z", f"{upstream}..HEAD")
        changed = sorted({name for name in out.replace("\n", "\0").split("\0") if name})
        owned_here = [self.git_path(owned) for owned in owned_paths]
        foreign = [name for name in changed if not any(_under(name, owned) for owned in owned_here)]
        if foreign:
            shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
            raise VcsError(
                f"the remote {redact(remote)} {branch} moved, and local commits not on it change {shown}; "
                "push or rebase them first (jitpol only re-bases its own ledger commits)"
            )

    def _commit(self, ref: str) -> str:
        """The commit id `ref` names; VcsError when it names none (or looks like an option)."""
        if not ref or ref.startswith("-"):
            raise VcsError(f"{ref!r} is not a commit in this repository")
        status, out, _ = self._run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        if status != 0:
            raise VcsError(f"{ref!r} is not a commit in this repository")
        return out.strip()

    def _run(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        timeout: float | None = None,
    ) -> tuple[int, str, str]:
        """Run `git args...` in the work tree: (status, stdout, stderr). check=True raises VcsError
        on a non-zero status."""
        full_env = {"GIT_TERMINAL_PROMPT": "0", "GIT_LITERAL_PATHSPECS": "1", **(env or {})}
        try:
            status, out, err = self._repo.git.execute(
                ["git", *args],
                with_extended_output=True,
                with_exceptions=False,
                env=full_env,
                kill_after_timeout=timeout,
            )
        except git.GitCommandNotFound as exc:
            raise VcsError("git is not installed or not on PATH") from exc
        assert isinstance(out, str)  # stdout_as_string defaults to True
        if check and status != 0:
            raise VcsError(f"git {args[0]} failed: {_message(err or out)}")
        return status, out, err


def _remote_moved(porcelain: str) -> bool:
    """Whether `git push --porcelain` says the ref was rejected because the remote has commits
    we lack (as opposed to `[remote rejected]`: a hook or branch protection said no)."""
    return any(line.startswith("!") and "[rejected]" in line for line in porcelain.splitlines())


def _message(stderr: str) -> str:
    text = redact(stderr.strip())
    return text if text else "no message from git"


def _prefix_of(repo: git.Repo, path: Path) -> str:
    """Where `path` lies in `repo`'s work tree, as git spells it ("" or "dir/sub/")."""
    start = path if path.is_dir() else path.parent
    status, out, _ = repo.git.execute(["git", "-C", str(start.absolute()), "rev-parse", "--show-prefix"],
                                      with_extended_output=True, with_exceptions=False)
    if status == 0 and isinstance(out, str):
        return out.strip()
    assert repo.working_tree_dir is not None
    try:
        return start.resolve().relative_to(Path(repo.working_tree_dir).resolve()).as_posix()
    except ValueError:
        return ""


def _normal_prefix(prefix: str) -> str:
    prefix = prefix.strip().strip("/")
    return "" if prefix in ("", ".") else prefix + "/"


def _safe_relative(path: str) -> bool:
    """A relative path with no empty, `.`, `..` or `.git` component."""
    parts = PurePosixPath(path).parts
    return bool(parts) and not path.startswith("/") and all(
        p not in ("", ".", "..") and p.lower() != ".git" for p in parts)


def _under(name: str, owned: str) -> bool:
    owned = owned.strip("/")
    return name == owned or name.startswith(owned + "/")
