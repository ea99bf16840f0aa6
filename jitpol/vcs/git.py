"""A thin git wrapper for what jitpol needs: find the repository, commit the ledger, push it.

The policy repository may be the git work tree itself or a directory inside it (`--repo
policies`). A Repo remembers which: every path it takes or returns is relative to that policy
root (`Repo.base`), never to the git root, unless a method says otherwise.

Every git failure surfaces as VcsError carrying git's own message, with credentials removed from
any URL in it. Commands run through jitpol.vcs.gitrun.run_git: GIT_TERMINAL_PROMPT=0 (a missing
credential fails instead of waiting for a prompt nobody answers), literal pathspecs (a file named
`*` is just a file) and git's messages in English.

Killed runs. jitpol's own commit moves HEAD and the real index together under git's index lock
(commit_changes), so HEAD and the index never disagree for another git user; a run killed in
between leaves `index.lock` behind, which keeps a user's ordinary commit from recording the
stale index until the next run clears it (clear_stale_locks) and heals the index (heal_index).
A re-base of ledger commits onto a moved remote is journaled in `refs/jitpol/rebase/{old,onto}`
until the re-chained commit exists, so a run killed half-way loses nothing
(recover_interrupted_rebase, pending_rebase).

Stale git locks (`index.lock`, `HEAD.lock`, `refs/heads/<b>.lock`, ...) are removed only by
clear_stale_locks, whose caller must hold jitpol's exclusive run lock for the repository (no other
jitpol run is applying in it), and only when no process on this machine has the lock file open
and no git process works in this repository (read from /proc). Where /proc cannot tell (not
Linux), a lock must also be older than STALE_LOCK_SECONDS. A lock that may belong to a live git
process is never removed.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from jitpol.errors import VcsError
from jitpol.fsutil import fs_now
from jitpol.vcs.gitrun import command, git_message, parent_pid, redact, run_git, run_git_bytes

# Network operations give up after this long instead of hanging a scheduled run.
NETWORK_TIMEOUT_SECONDS = 300.0

# Where /proc cannot tell whether a process still uses a git lock file, it must be this old
# before clear_stale_locks removes it.
STALE_LOCK_SECONDS = 60.0
# git's lock files that a killed jitpol run can leave: in the (per-work-tree) git directory ...
_GIT_DIR_LOCKS = ("index.lock", "HEAD.lock", "ORIG_HEAD.lock", "FETCH_HEAD.lock", "AUTO_MERGE.lock")
# ... and in the common directory (shared by linked work trees), besides refs/**/*.lock
_COMMON_DIR_LOCKS = ("packed-refs.lock", "shallow.lock")
_PRIVATE_INDEX = "jitpol-index-"  # the private index files of commit_changes (and _install)
_JOURNAL_OLD = "refs/jitpol/rebase/old"
_JOURNAL_ONTO = "refs/jitpol/rebase/onto"
_JOURNAL_DIR = "refs/jitpol/rebase/"
_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
# a push refused because the remote ref moved (or was being moved) while we pushed: worth a
# fetch, re-base and retry; anything else (a hook, branch protection, permissions) is not
_MOVED = re.compile(
    r"fetch first|non-fast-forward|stale info|failed to update ref|failed to lock|cannot lock ref"
    r"|is at [0-9a-f]{7,64} but expected|incorrect old value|reference already exists",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Rebase:
    """Local commits being re-based onto a moved remote: `old` was HEAD (its commits not in
    `onto` are dropped and must be re-applied on top of `onto`), `onto` the remote's head."""

    old: str
    onto: str


@dataclass(frozen=True, slots=True)
class Change:
    """A file whose work-tree state differs from HEAD (Repo.changes)."""

    status: str  # "A" new, "M" changed, "D" deleted
    path: str  # relative to the policy root
    git_path: str  # relative to the git root
    now: tuple[str, str] | None  # (mode, blob id) in the work tree; None when deleted (or not a file)
    was: tuple[str, str] | None  # (mode, blob id) in HEAD; None when new


@dataclass(frozen=True, slots=True)
class StaleLocks:
    """What clear_stale_locks did: `removed` (path, age in seconds) and `kept` (path, why)."""

    removed: tuple[tuple[Path, float], ...]
    kept: tuple[tuple[Path, str], ...]


class Repo:
    """A git work tree, seen from a policy root inside it. Construct it with Repo.find().

    `root` is the git work tree; `prefix` is the policy root relative to it, in git's spelling
    ("" at the git root, else e.g. "policies/"); `base` is the policy root as a path.
    """

    def __init__(self, root: Path, git_dir: Path, prefix: str = "", common_dir: Path | None = None) -> None:
        self.root = root
        self.git_dir = git_dir
        self._common = common_dir  # the common git folder of linked work trees (None: ask git)
        self.prefix = _normal_prefix(prefix)
        self.base = self.root / self.prefix if self.prefix else self.root
        # ls-tree results by (object id, paths): what a commit holds never changes
        self._trees: dict[tuple[str, tuple[str, ...]], dict[str, tuple[str, str]]] = {}

    _found: dict[str, Repo] = {}  # noqa: RUF012 - per process: the same folder gives the same answer

    @classmethod
    def find(cls, path: Path) -> Repo | None:
        """The work tree containing `path`, or None when `path` is not inside one (or only in a
        bare repository or a .git folder). `path` (a directory) becomes the policy root that
        every path is relative to. One git command."""
        start = path if path.is_dir() else path.parent
        known = cls._found.get(os.fspath(start.absolute()))
        if known is not None and known.git_dir.is_dir():
            return known  # found before in this process (a run asks twice: to load, to commit)
        try:
            done = run_git("rev-parse", "--is-bare-repository", "--absolute-git-dir", "--git-common-dir",
                           "--show-toplevel", "--show-prefix", cwd=start.absolute())
        except VcsError:
            return None  # no such folder
        lines = done.out.split("\n")
        if not done.ok or len(lines) < 4 or lines[0] != "false" or not lines[3]:
            return None
        common = Path(lines[2])
        common = common if common.is_absolute() else (start.absolute() / common).resolve()
        prefix = lines[4] if len(lines) > 4 else ""
        repo = cls(Path(lines[3]), Path(lines[1]), prefix, common)
        if len(cls._found) >= 16:
            cls._found.clear()
        cls._found[os.fspath(start.absolute())] = repo
        return repo

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

    def _head_and_tree(self) -> tuple[str | None, str | None]:
        """HEAD's commit and its tree with one git command; (HEAD, None) by head_commit() when
        that does not answer with two object ids (no commit yet, or anything unexpected)."""
        status, out, _ = self._run("rev-parse", "HEAD^{commit}", "HEAD^{tree}", check=False)
        ids = out.split()
        if status == 0 and len(ids) == 2 and all(_OBJECT_ID.fullmatch(i) for i in ids):
            return ids[0], ids[1]
        return self.head_commit(), None

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
        blobs = self._blobs([e.partition("\t")[0].split(" ")[2] for e in out.split("\0")
                             if e and e.partition("\t")[0].split(" ")[1] == "blob"])
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
            data = blobs[sha]
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
        HEAD: commit_changes(changes(paths, store=True), ...). New, changed and deleted files
        under `paths` are all recorded. Returns the new commit's id, or None when `paths` hold no
        change."""
        if not paths:
            raise ValueError("commit_paths needs at least one path")
        return self.commit_changes(self.changes(paths, store=True), message, author_name=author_name,
                                   author_email=author_email)

    def commit_changes(
        self,
        changes: Sequence[Change],
        message: str,
        *,
        author_name: str = "jitpol",
        author_email: str = "jitpol@localhost",
    ) -> str | None:
        """Commit exactly `changes` (from changes(..., store=True): their contents are already in
        git's object store) on top of HEAD, whatever the work tree holds by now: the contents
        hashed when the changes were taken are what is committed. Returns the new commit's id, or
        None when they change nothing.

        Other changes, staged or not, are neither committed nor disturbed: the tree is built in a
        private index (HEAD's tree with `changes` put in by `update-index --index-info`, so no
        file is hashed again). The identity is used for author and committer; hooks do not run
        (this is jitpol's own bookkeeping commit).

        HEAD moves and the real index's entries for the committed files follow it under git's
        own index lock (see _install), so whatever fails or is killed, the index is never left
        behind HEAD for another git user: the commit either does not happen, or `index.lock`
        stays until the next run clears it and heals the index. VcsError when the index is locked
        (nothing changes), or when a change's content is not in the object store.
        """
        if not changes:
            return None
        head, head_tree = self._head_and_tree()
        info = _index_info(changes, len(head or "") or 40)
        fd, index_name = tempfile.mkstemp(prefix=_PRIVATE_INDEX, dir=self.git_dir)
        os.close(fd)
        index = Path(index_name)
        index.unlink()  # git wants to create it; a missing index file is an empty index
        private = {"GIT_INDEX_FILE": str(index)}
        try:
            if head is not None:
                self._run("read-tree", head, env=private)
            self._run("update-index", "-z", "--index-info", env=private, stdin=info)
            tree = self._run("write-tree", env=private)[1].strip()
            if head is not None:
                if tree == (head_tree or self._run("rev-parse", f"{head}^{{tree}}")[1].strip()):
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
        subject = message.splitlines()[0] if message else ""
        self._install(head, commit, info, subject)
        return commit

    def _install(self, head: str | None, commit: str, info: bytes, subject: str) -> None:
        """Move HEAD from `head` to `commit` and set the real index's entries for the committed
        files (`info`, as `update-index -z --index-info` reads it) as git itself commits: take
        `index.lock`, write the new index into it, update the ref (compare-and-swap: if HEAD
        moved meanwhile, fail rather than drop someone's commit), rename the lock over the index.
        A failure before the ref moved changes nothing; a kill after it leaves `index.lock`,
        which stops every git writer until it is cleared.

        The new entries are then refreshed (`update-index --refresh`: file metadata recorded
        where the work tree holds exactly the committed content, never anything else), since
        git commands that move the work tree (`reset --keep`, the re-base) trust an entry's
        recorded metadata and refuse files that have none."""
        index = self.git_dir / "index"
        lock = self.git_dir / "index.lock"
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            raise VcsError(_locked(lock)) from None
        tmp_fd, tmp_name = tempfile.mkstemp(prefix=_PRIVATE_INDEX, dir=self.git_dir)
        os.close(tmp_fd)
        tmp = Path(tmp_name)
        installed = False
        try:
            if index.is_file():
                shutil.copyfile(index, tmp)
            else:
                tmp.unlink()  # no index yet: an empty one
            private = {"GIT_INDEX_FILE": str(tmp)}
            self._run("update-index", "-z", "--index-info", env=private, stdin=info)
            # exit 1 when some other entry differs from its file: not ours to mind
            self._run("update-index", "-q", "--refresh", env=private, check=False)
            data = tmp.read_bytes()
            os.ftruncate(fd, 0)
            view = memoryview(data)
            while view:  # into the lock file we hold open (the open descriptor shows it is in use)
                view = view[os.write(fd, view):]
            os.fsync(fd)
            self._run("update-ref", "-m", f"jitpol: {subject}", "HEAD", commit, head or "")
            os.replace(lock, index)
            installed = True
        finally:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            Path(f"{tmp}.lock").unlink(missing_ok=True)
            if not installed:
                lock.unlink(missing_ok=True)

    def heal_index(self, paths: Sequence[str]) -> list[str]:
        """Reset the real index's entries under `paths` (relative to the policy root) that match
        neither HEAD nor the work tree to HEAD: what an interrupted commit of them left behind
        (the next ordinary commit would otherwise record the old state and undo the ledger).
        Entries someone staged on purpose (matching the work tree) are left alone. Returns the
        healed paths (policy-relative). VcsError when the index is locked."""
        head = self.head_commit()
        if head is None:
            return []
        scope = [self.git_path(p) for p in paths]
        in_head = self._tree_entries(head, scope)
        in_index = self._index_entries(scope)
        differ = sorted(p for p in set(in_head) | set(in_index) if in_head.get(p) != in_index.get(p))
        if not differ:
            return []
        work = self._work_blobs(differ)
        stale = [p for p in differ if work.get(p) != (in_index[p][1] if p in in_index else None)]
        if stale:
            self._run("reset", "-q", head, "--", *stale)
        return [rel for rel in (self.policy_path(p) for p in stale) if rel is not None]

    def changed_paths(self, paths: Sequence[str]) -> list[tuple[str, str]]:
        """(status, path relative to the policy root) of every file under `paths` whose work-tree
        state differs from HEAD: "A" new (untracked or staged), "D" deleted, "M" changed."""
        return [(c.status, c.path) for c in self.changes(paths)]

    def changes(self, paths: Sequence[str], *, store: bool = False) -> list[Change]:
        """Every file under `paths` (relative to the policy root) whose work-tree state differs
        from HEAD (untracked files count, ignored ones do not), sorted by path; what is neither a
        regular file nor a symbolic link (a submodule, a fifo) is left out. `store`: write
        their contents into git's object store, ready for commit_changes (quickly compressed:
        `git gc` packs them later)."""
        head = self.head_commit()
        scope = [self.git_path(p) for p in paths]
        in_head = self._tree_entries(head, scope) if head is not None else {}
        args = ["ls-files", "--cached", "--others", "--exclude-standard", "--full-name", "-z", "--", *scope]
        present = {p for p in self._run(*args)[1].split("\0") if p and os.path.lexists(self.root / p)}
        work = self._work_objects(sorted(present), in_head, store=store)
        out: list[Change] = []
        for name in sorted(set(in_head) | present):
            was = in_head.get(name)
            now = work.get(name) if name in present else None
            if now is None and name in present:
                if os.path.lexists(self.root / name):
                    continue  # neither a file nor a link (a submodule's folder, a fifo): nothing to record
                present.discard(name)  # gone since it was listed
            if name not in present:
                if was is None:
                    continue
                status = "D"
            elif was is None:
                status = "A"
            elif now != was:
                status = "M"
            else:
                continue
            rel = self.policy_path(name)
            if rel is not None:
                out.append(Change(status, rel, name, now, was))
        return out

    def blob_starts(self, blob: str, data: bytes) -> bool:
        """Whether `data` begins with the content of the blob `blob` (an object id from a
        Change), decided by hashing that much of `data` as git would: the blob is never read."""
        if not _OBJECT_ID.fullmatch(blob):
            raise VcsError("not an object id")
        answer = self._run("cat-file", "--batch-check=%(objecttype) %(objectsize)", stdin=f"{blob}\n".encode())[1]
        kind, _, size_text = answer.strip().partition(" ")
        if kind != "blob" or not size_text.isdigit():
            raise VcsError(f"git cat-file: {blob} is not a blob ({answer.strip()[:80]!r})")
        size = int(size_text)
        if size > len(data):
            return False
        # the repository's own object id (SHA-1, or SHA-256 in a sha256 repository): git names
        # the committed content by it, so equal ids are git's own notion of equal content
        digest = hashlib.sha1() if len(blob) == 40 else hashlib.sha256()  # noqa: S324
        digest.update(b"blob %d\0" % size)
        digest.update(memoryview(data)[:size])
        return digest.hexdigest() == blob

    def last_commit(self, path: str) -> str | None:
        """The newest commit in HEAD's history that touched `path` (relative to the policy
        root); None when none did or there is no commit yet."""
        if self.head_commit() is None:
            return None
        out = self._run("log", "-1", "--format=%H", "--", self.git_path(path))[1].strip()
        return out or None

    def file_at(self, rev: str, path: str) -> bytes | None:
        """The bytes of `path` (relative to the policy root) in commit `rev`, as git stores
        them; None when `rev` has no such file."""
        entries = self._tree_entries(rev, [self.git_path(path)])
        entry = entries.get(self.git_path(path))
        if entry is None or entry[0] in ("120000", "160000"):
            return None
        return self._blobs([entry[1]])[entry[1]]

    def _blobs(self, ids: Sequence[str]) -> dict[str, bytes]:
        """{blob id: its bytes} of `ids` (object ids from ls-tree), read by one `git cat-file
        --batch`."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        if not all(_OBJECT_ID.fullmatch(i) for i in wanted):
            raise VcsError("not an object id")
        out = run_git_bytes("cat-file", "--batch", cwd=self.root, stdin="".join(f"{i}\n" for i in wanted).encode())
        blobs: dict[str, bytes] = {}
        at = 0
        for oid in wanted:
            end = out.index(b"\n", at)
            header = out[at:end].split(b" ")
            if len(header) != 3 or header[0].decode() != oid or header[1] != b"blob":
                raise VcsError(f"git cat-file: unexpected answer for {oid}: {out[at:end][:80]!r}")
            size = int(header[2])
            blobs[oid] = out[end + 1:end + 1 + size]
            at = end + 1 + size + 1  # the content is followed by a newline
        return blobs

    def files_at(self, rev: str, folder: str) -> list[str]:
        """Every file under `folder` (relative to the policy root) in commit `rev`, relative to
        the policy root."""
        entries = self._tree_entries(rev, [self.git_path(folder)])
        return sorted(rel for rel in (self.policy_path(p) for p in entries) if rel is not None)

    def files_changed(self, old: str | None, new: str, folder: str) -> list[str]:
        """Files under `folder` (relative to the policy root) that differ between commits `old`
        (None: the empty tree) and `new`, relative to the policy root."""
        if old is None:
            return self.files_at(new, folder)
        out = self._run("diff", "--name-only", "--no-renames", "-z", old, new, "--", self.git_path(folder))[1]
        return sorted(rel for rel in (self.policy_path(p) for p in out.split("\0") if p) if rel is not None)

    def commits_between(self, base: str, tip: str) -> list[str]:
        """The commits reachable from `tip` but not from `base`, oldest first."""
        out = self._run("rev-list", "--reverse", "--topo-order", tip, f"^{base}")[1]
        return out.split()

    def merge_base(self, a: str, b: str) -> str | None:
        status, out, _ = self._run("merge-base", a, b, check=False)
        return out.strip() if status == 0 and out.strip() else None

    def unpushed(self, remote: str, branch: str, paths: Sequence[str]) -> bool:
        """Whether HEAD has commits touching `paths` (relative to the policy root) that the last
        known state of `branch` on `remote` (its remote-tracking ref) lacks. Without a tracking
        ref: True when `remote` is a configured remote or a URL or path (a push will tell), False
        for an unknown remote name."""
        status, out, _ = self._run("rev-parse", "--verify", "--quiet", f"refs/remotes/{remote}/{branch}^{{commit}}",
                                   check=False)
        if status != 0:
            return self.config_value(f"remote.{remote}.url") is not None or "/" in remote or ":" in remote
        if self.head_commit() is None:
            return False
        scope = [self.git_path(p) for p in paths]
        return bool(self._run("rev-list", "-n", "1", "HEAD", f"^{out.strip()}", "--", *scope)[1].strip())

    # -- killed runs ---------------------------------------------------------------------------

    def lock_files(self) -> list[Path]:
        """git's lock files present in this repository (see clear_stale_locks)."""
        common = self._common_dir()
        found = [self.git_dir / n for n in _GIT_DIR_LOCKS] + [common / n for n in _COMMON_DIR_LOCKS]
        out = [p for p in found if p.is_file()]
        out += sorted(self.git_dir.glob(f"{_PRIVATE_INDEX}*.lock"))  # the lock of a killed commit's own index
        refs = common / "refs"
        if refs.is_dir():
            for folder, _, names in os.walk(refs, followlinks=False):
                out += [Path(folder) / n for n in names if n.endswith(".lock")]
        return sorted(dict.fromkeys(out))

    def leftovers(self) -> list[Path]:
        """git lock files and the private index files of jitpol's own commits a killed run may
        have left (what clear_stale_locks looks at)."""
        return sorted({*self.lock_files(), *self.git_dir.glob(f"{_PRIVATE_INDEX}*")})

    def clear_stale_locks(self, *, older_than: float = STALE_LOCK_SECONDS) -> StaleLocks:
        """Remove git lock files nobody holds. THE CALLER MUST HOLD jitpol's exclusive run lock for
        the repository, so that no other jitpol run is applying in it. A lock is removed only when
        no process on this machine has it open and no git process works in this repository (read
        from /proc; this process and its children do not count); where /proc cannot tell, only
        when it is also `older_than` seconds old. Leftover private index files of jitpol's own
        commits go too. Everything else is kept, with the reason."""
        removed: list[tuple[Path, float]] = []
        kept: list[tuple[Path, str]] = []
        now = fs_now(self.git_dir)
        places = [self.root, self.git_dir, self._common_dir()]
        for lock in self.lock_files():
            try:
                age = max(now - lock.stat().st_mtime, 0.0)
            except FileNotFoundError:
                continue  # its owner finished meanwhile
            users = _lock_users(lock, places)
            if users:
                kept.append((lock, "in use by " + ", ".join(users[:3])))
                continue
            if users is None and age < older_than:
                kept.append((lock, f"only {age:.0f}s old and this machine cannot tell who holds it; it is removed "
                                   f"once it is {older_than:.0f}s old"))
                continue
            try:
                lock.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                kept.append((lock, f"cannot be removed: {exc.strerror or exc}"))
                continue
            removed.append((lock, age))
        for leftover in self.git_dir.glob(f"{_PRIVATE_INDEX}*"):
            if leftover.name.endswith(".lock"):
                continue  # a lock: done above
            try:
                old = now - leftover.stat().st_mtime >= older_than
                users = _lock_users(leftover, places)
                if not users and (users is not None or old):  # nobody has it open (or it is old)
                    leftover.unlink()
            except OSError:
                continue
        return StaleLocks(tuple(removed), tuple(kept))

    def pending_rebase(self) -> Rebase | None:
        """The re-base a killed run left unfinished (see push_with_retry), or None."""
        # one git command for the usual case, no journal at all (loose or packed)
        status, listed, _ = self._run("for-each-ref", "--format=%(refname)", _JOURNAL_DIR, check=False)
        if status == 0 and not {_JOURNAL_OLD, _JOURNAL_ONTO} & set(listed.split("\n")):
            return None
        old = self._resolve(_JOURNAL_OLD)
        onto = self._resolve(_JOURNAL_ONTO)
        return Rebase(old, onto) if old is not None and onto is not None else None

    def end_rebase(self) -> None:
        """Forget the re-base journal: what it owed is now in HEAD's history."""
        for ref in (_JOURNAL_OLD, _JOURNAL_ONTO):
            self._run("update-ref", "-d", ref, check=False)

    def recover_interrupted_rebase(self) -> str | None:
        """When a run was killed inside `git reset --keep` (which writes the work tree and index
        before it moves HEAD), put things in order: if the index already holds the remote's
        tree, finish the move (HEAD to `onto`; the journal stays: the caller re-chains what the
        dropped commits owed); otherwise undo the files the reset had already written (each only
        when it still holds exactly what the reset wrote) and forget the journal: the local
        commits are still on the branch. What was done, or None when there was nothing to do."""
        pending = self.pending_rebase()
        if pending is None:
            return None
        head = self.head_commit()
        if head != pending.old:
            return None  # the reset completed: the caller re-chains the dropped commits' lines
        changed = [p for p in self._run("diff", "--name-only", "--no-renames", "-z", pending.old, pending.onto)[1]
                   .split("\0") if p]
        old_entries = self._tree_entries(pending.old, changed) if changed else {}
        onto_entries = self._tree_entries(pending.onto, changed) if changed else {}
        in_index = self._index_entries(changed) if changed else {}
        if all(in_index.get(name) == onto_entries.get(name) for name in changed):
            # git wrote the index last: the reset had finished everything but moving HEAD
            self._run("update-ref", "-m", "jitpol: finish an interrupted re-base", "HEAD", pending.onto, pending.old)
            return (f"finished a re-base onto {pending.onto[:12]} that a killed run left half-done "
                    "(the work tree and index had moved, HEAD had not)")
        undone: list[str] = []
        if changed:
            work = self._work_blobs(changed)
            for name in changed:
                written = onto_entries.get(name)
                if written is None or work.get(name) != written[1] or in_index.get(name) != old_entries.get(name):
                    continue
                if name in old_entries:
                    self._run("checkout", pending.old, "--", name)
                else:
                    (self.root / name).unlink()
                undone.append(name)
        self.end_rebase()
        return (f"undid a re-base a killed run left half-done ({len(undone)} file(s) restored to HEAD); the ledger "
                "commits it was moving are still on the branch")

    def push_with_retry(
        self,
        remote: str,
        branch: str,
        *,
        rebuild: Callable[[], object] | None = None,
        rechain: Callable[[Rebase], object] | None = None,
        attempts: int = 6,
        owned_paths: Sequence[str] = ("audit",),
        backoff: float = 0.25,
    ) -> None:
        """Push HEAD to `branch` on `remote`; when the remote moved, re-base our work and retry.

        A push refused because the remote moved (or was being moved) while we pushed — `fetch
        first`, `non-fast-forward`, `stale info`, `failed to update ref`, `cannot lock ref ...: is
        at X but expected Y` (two jobs pushing at the same moment) — is retried after a jittered,
        growing pause: fetch the remote head; if HEAD already contains it, push again; else move
        the current branch (or detached HEAD) to it with `git reset --keep` (which refuses to
        overwrite local changes, and leaves the old head in ORIG_HEAD), let the caller re-apply
        its work on top and commit it, and push again. `rechain(Rebase(old, onto))` gets the old
        head, so it can re-apply everything the dropped commits held; `rebuild()` (older callers)
        gets nothing. Until that returns, the re-base is journaled (pending_rebase), so a run
        killed half-way loses nothing. The dropped commits may only touch `owned_paths`
        (relative to the policy root); anything else (someone's unpushed work) makes this fail
        instead. Gives up after `attempts` pushes. Raises VcsError for every git failure; whatever
        the callback raises passes through.
        """
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        if (rebuild is None) == (rechain is None):
            raise ValueError("pass exactly one of rebuild and rechain")
        target = f"HEAD:refs/heads/{branch}"
        why = ""
        for attempt in range(1, attempts + 1):
            # finish_alone: a push killed half-way can leave a lock in the remote that no later
            # run can clear (see jitpol.vcs.gitrun)
            status, out, err = self._run(
                "push", "--porcelain", remote, target, check=False, timeout=NETWORK_TIMEOUT_SECONDS, finish_alone=True
            )
            if status == 0:
                return
            if not _remote_moved(out, err):
                raise VcsError(f"git push to {redact(remote)} {branch} failed: {git_message(err or out)}")
            why = _reason(out, err)
            if attempt == attempts:
                break
            if backoff > 0:
                # jittered: two jobs that collided do not collide again in lockstep
                time.sleep(min(backoff * 2 ** (attempt - 1), 8.0) * secrets.SystemRandom().uniform(0.5, 1.5))
            self._run("fetch", "--quiet", remote, f"refs/heads/{branch}", timeout=NETWORK_TIMEOUT_SECONDS)
            upstream = self._run("rev-parse", "--verify", "FETCH_HEAD^{commit}")[1].strip()
            if self._run("merge-base", "--is-ancestor", upstream, "HEAD", check=False)[0] == 0:
                continue  # the remote has nothing we lack (a ref update raced ours): push again
            self._check_discardable(upstream, owned_paths, remote, branch)
            self._rebase_onto(upstream, rechain, rebuild)
        raise VcsError(
            f"git push to {redact(remote)} {branch} was rejected {attempts} times because the remote "
            f"kept moving ({why}); run again later"
        )

    def _rebase_onto(self, upstream: str, rechain: Callable[[Rebase], object] | None,
                     rebuild: Callable[[], object] | None) -> None:
        """Move HEAD to `upstream` (`reset --keep`) and let the caller re-apply its work, the
        re-base journaled until the callback returns (a run killed half-way loses nothing)."""
        old = self.head_commit()
        assert old is not None  # we pushed it
        self._run("update-ref", _JOURNAL_OLD, old)
        self._run("update-ref", _JOURNAL_ONTO, upstream)
        try:
            self._run("reset", "--quiet", "--keep", upstream)
        except VcsError:
            self.end_rebase()  # refused before touching anything
            raise
        if rechain is not None:
            rechain(Rebase(old, upstream))
        elif rebuild is not None:
            rebuild()
        self.end_rebase()

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

    def _tree_entries(self, rev: str, git_paths: Sequence[str]) -> dict[str, tuple[str, str]]:
        """{path relative to the git root: (mode, blob id)} of the files under `git_paths` in `rev`
        (remembered when `rev` is an object id: heal_index and changed_paths read the same tree)."""
        key = (rev, tuple(git_paths))
        if key in self._trees:
            return dict(self._trees[key])
        _, out, _ = self._run("ls-tree", "-r", "-z", "--full-tree", rev, "--", *git_paths)
        entries: dict[str, tuple[str, str]] = {}
        for entry in out.split("\0"):
            if entry:
                meta, _, name = entry.partition("\t")
                mode, _, sha = meta.split(" ")
                entries[name] = (mode, sha)
        if _OBJECT_ID.fullmatch(rev):
            self._trees[key] = dict(entries)
        return entries

    def _index_entries(self, git_paths: Sequence[str]) -> dict[str, tuple[str, str]]:
        """{path: (mode, blob id)} of the real index's entries under `git_paths` (a conflicted
        path shows its last stage, which never equals a tree entry's)."""
        _, out, _ = self._run("ls-files", "-s", "-z", "--full-name", "--", *git_paths)
        entries: dict[str, tuple[str, str]] = {}
        for entry in out.split("\0"):
            if entry:
                meta, _, name = entry.partition("\t")
                mode, sha, stage = meta.split(" ")
                entries[name] = (mode, sha if stage == "0" else f"stage-{stage}")
        return entries

    def _work_blobs(self, git_paths: Sequence[str]) -> dict[str, str | None]:
        """{path: the blob id git would store for the work-tree file or link} (None: neither)."""
        return {p: None if found is None else found[1]
                for p, found in self._work_objects(git_paths, {}, store=False).items()}

    def _hash(self, git_paths: Sequence[str], *, store: bool) -> dict[str, str]:
        """{path: blob id} of regular files, hashed as `git add` would (.gitattributes filters
        apply); `store`: written into the object store too, quickly compressed."""
        blobs: dict[str, str] = {}
        write = ["-c", "core.looseCompression=1", "hash-object", "-w"] if store else ["hash-object"]
        for i in range(0, len(git_paths), 500):
            chunk = git_paths[i:i + 500]
            blobs.update(zip(chunk, self._run(*write, "--", *chunk)[1].split(), strict=True))
        return blobs

    def _work_objects(self, git_paths: Sequence[str], in_head: Mapping[str, tuple[str, str]], *,
                      store: bool) -> dict[str, tuple[str, str] | None]:
        """{path: (mode, blob id) git would record for the work-tree file} (None: neither a
        regular file nor a symbolic link). A file keeps HEAD's executable bit (jitpol never
        changes one: on a file system without one, every file would look executable)."""
        objects: dict[str, tuple[str, str] | None] = dict.fromkeys(git_paths)
        files: dict[str, int] = {}  # regular file -> its st_mode
        for name in git_paths:
            try:
                mode = os.lstat(self.root / name).st_mode
            except OSError:
                continue
            if stat.S_ISREG(mode):
                files[name] = mode
            elif stat.S_ISLNK(mode):
                target = os.fsencode(os.readlink(self.root / name))
                write = ["-w"] if store else []
                blob = self._run("hash-object", *write, "--stdin", stdin=target)[1].strip()
                objects[name] = ("120000", blob)
        for name, blob in self._hash(list(files), store=store).items():
            was = in_head.get(name)
            if was is not None and was[0] in ("100644", "100755"):
                mode_text = was[0]
            else:
                mode_text = "100755" if files[name] & stat.S_IXUSR else "100644"
            objects[name] = (mode_text, blob)
        return objects

    def _common_dir(self) -> Path:
        if self._common is None:
            out = self._run("rev-parse", "--git-common-dir")[1].strip()
            path = Path(out)
            self._common = path if path.is_absolute() else (self.root / path).resolve()
        return self._common

    def _resolve(self, ref: str) -> str | None:
        status, out, _ = self._run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        return out.strip() if status == 0 and out.strip() else None

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
        finish_alone: bool = False,
        stdin: bytes | None = None,
    ) -> tuple[int, str, str]:
        """Run `git args...` in the work tree (see jitpol.vcs.gitrun): (status, stdout, stderr).
        check=True raises VcsError on a non-zero status."""
        done = run_git(*args, cwd=self.root, env=env, timeout=timeout, finish_alone=finish_alone, stdin=stdin)
        if check and not done.ok:
            raise VcsError(f"git {command(args)} failed: {done.message}")
        return done.status, done.out, done.err


def _index_info(changes: Sequence[Change], id_length: int) -> bytes:
    """`changes` as `git update-index -z --index-info` reads them: mode, object id and path, or
    mode 0 for a removal."""
    records = []
    for c in changes:
        if c.status == "D":
            mode, blob = "0", "0" * id_length
        elif c.now is None:
            raise VcsError(f"cannot commit {c.git_path}: neither a regular file nor a symbolic link")
        else:
            mode, blob = c.now
        records.append(f"{mode} {blob}\t{c.git_path}\0")
    return os.fsencode("".join(records))


def _remote_moved(porcelain: str, stderr: str = "") -> bool:
    """Whether `git push --porcelain` says the ref was refused because the remote moved: the
    remote has commits we lack (`[rejected]`), or it could not update the ref because another
    push moved it at the same moment (`[remote rejected] (failed to update ref)`, with `cannot
    lock ref 'refs/heads/main': is at X but expected Y` on stderr). A hook, branch protection or
    permissions saying no is not that."""
    refused = [line for line in porcelain.splitlines() if line.startswith("!")]
    for line in refused:
        if "[rejected]" in line:
            return True
        if "[remote rejected]" in line and _MOVED.search(line.partition("[remote rejected]")[2]):
            return True
    if not refused:  # some git versions say it only on stderr
        return any(_MOVED.search(line) and ("rejected" in line or "cannot lock ref" in line)
                   for line in stderr.splitlines())
    return False


def _reason(porcelain: str, stderr: str) -> str:
    """The most telling line of a refused push, for the final message."""
    for line in stderr.splitlines():
        if "cannot lock ref" in line or "but expected" in line:
            return redact(line.removeprefix("remote:").strip())
    for line in porcelain.splitlines():
        if line.startswith("!"):
            return redact(line.split("\t")[-1].strip())
    return git_message(stderr or porcelain)


def _locked(lock: Path) -> str:
    return (f"{lock} exists: another git process is using this repository (or one was killed and left it "
            "behind); nothing was committed. The ledger stays in the work tree and the next run commits it; a "
            "lock that no process holds is removed by the next jitpol run (see docs/operations.md)")


def _lock_users(lock: Path, places: Sequence[Path]) -> list[str] | None:
    """Processes on this machine (but this one and its children) that may be using `lock`: those
    with it open, and git processes working in one of `places`. None when /proc cannot tell."""
    proc = Path("/proc")
    if not (proc / "self" / "fd").is_dir():
        return None
    target = os.path.realpath(lock)
    roots = [os.path.realpath(p) for p in places]
    me = os.getpid()
    users: list[str] = []
    try:
        pids = [int(e.name) for e in os.scandir(proc) if e.name.isdigit()]
    except OSError:
        return None
    for pid in pids:
        if pid == me or _descends_from(pid, me):
            continue
        try:
            comm = (proc / str(pid) / "comm").read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            continue
        if comm.startswith("git"):
            try:
                cwd = os.readlink(proc / str(pid) / "cwd")
            except OSError:
                cwd = ""
            if cwd and any(cwd == r or cwd.startswith(r.rstrip("/") + "/") for r in roots):
                users.append(f"{comm} (pid {pid})")
                continue
        try:
            fds = os.listdir(proc / str(pid) / "fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(proc / str(pid) / "fd" / fd) == target:
                    users.append(f"{comm} (pid {pid})")
                    break
            except OSError:
                continue
    return users


def _descends_from(pid: int, ancestor: int) -> bool:
    for _ in range(64):
        parent = parent_pid(pid)
        if parent is None:
            return False
        pid = parent
        if pid == ancestor:
            return True
        if pid <= 1:
            return False
    return False


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
