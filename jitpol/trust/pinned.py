"""Reading the pinned trust root (jitpol.policy.root) from the reconciler's environment.

JITPOL_TRUST_ROOT holds either the root document itself (JSON, e.g. a CI variable) or the
absolute path of a file outside the repository. Rotations come from trust/root-<N>.json in the
repository and count only when they chain (policy.root.walk). Without JITPOL_TRUST_ROOT the
first policy is trusted on first use: fine on a laptop and in the demo, refused by `reconcile`
in CI unless JITPOL_TRUST_ON_FIRST_USE=1 says so explicitly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from jitpol.errors import InvalidInput
from jitpol.ledger.nofollow import UnsafePath, entries, read_bytes
from jitpol.policy.approvals import Verifier
from jitpol.policy.root import ROOT_DIR, TrustRoot, parse_root, walk
from jitpol.vcs.git import Repo

__all__ = ["ROOT_ENV", "TOFU_ENV", "load_trust_root", "outside_repository", "pinned_root", "tofu_allowed"]

ROOT_ENV = "JITPOL_TRUST_ROOT"
TOFU_ENV = "JITPOL_TRUST_ON_FIRST_USE"
_ROTATION = re.compile(r"root-([1-9][0-9]{0,5})\.json")
MAX_ROOT_BYTES = 256 * 1024


def tofu_allowed(env: Mapping[str, str]) -> bool:
    return env.get(TOFU_ENV, "").strip().lower() in ("1", "true", "yes")


def outside_repository(path: Path, repo: Path) -> bool:
    """Whether `path` lies outside the policy root and outside the git work tree around it (a
    policy in a subdirectory: the whole work tree is writable by the same pull requests)."""
    resolved = path.resolve()
    git = Repo.find(repo)
    for inside in {repo.resolve(), *([git.root.resolve()] if git is not None else [])}:
        if resolved == inside or inside in resolved.parents:
            return False
    return True


def pinned_root(repo: Path, env: Mapping[str, str]) -> TrustRoot | None:
    """The root the environment pins, or None. InvalidInput when it is set but unusable."""
    value = env.get(ROOT_ENV, "").strip()
    if not value:
        return None
    if value.startswith("{"):
        return parse_root(value, f"${ROOT_ENV}")
    path = Path(value)
    if not path.is_absolute():
        raise InvalidInput(f"${ROOT_ENV}: give the root document (JSON) or an absolute path, not {value!r}")
    if not outside_repository(path, repo):
        raise InvalidInput(f"${ROOT_ENV}: {value} is inside the repository; the trust root must live outside it "
                           "(anyone who can merge a change could rewrite it)")
    try:
        with path.open("rb") as f:
            data = f.read(MAX_ROOT_BYTES + 1)
    except OSError as exc:
        raise InvalidInput(f"${ROOT_ENV}: cannot read {value}: {exc.strerror}") from None
    if len(data) > MAX_ROOT_BYTES:
        raise InvalidInput(f"${ROOT_ENV}: {value} is larger than {MAX_ROOT_BYTES} bytes")
    return parse_root(data.decode("utf-8", errors="replace"), value)


def load_trust_root(repo: Path, env: Mapping[str, str], verifier: Verifier) -> tuple[TrustRoot | None, list[str]]:
    """The root in force: the pinned one, advanced through the repository's rotations that chain.
    Returns (None, []) when nothing is pinned. Raises InvalidInput when the pin is unusable."""
    pinned = pinned_root(repo, env)
    if pinned is None:
        return None, []
    candidates: dict[int, tuple[str, str]] = {}
    notes: list[str] = []
    try:  # never through a link (jitpol.ledger.nofollow): a rotation is read where it is committed
        listing = entries(repo, ROOT_DIR) or []
        for name, kind in sorted(listing):
            m = _ROTATION.fullmatch(name)
            data = read_bytes(repo, f"{ROOT_DIR}/{name}") if m is not None and kind == "file" else None
            if m is not None and data is not None and len(data) <= MAX_ROOT_BYTES:
                candidates[int(m[1])] = (data.decode("utf-8", errors="replace"), f"{ROOT_DIR}/{name}")
    except UnsafePath as exc:
        notes.append(f"{exc}; rotations are ignored")
    root, walked = walk(pinned, candidates, verifier)
    return root, [*notes, *walked]
