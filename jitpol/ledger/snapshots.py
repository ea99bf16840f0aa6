"""Snapshots of adopted policies: audit/policies/<digest>.json, written when the ledger records
`policy.adopted`. The file's content must hash to its name, so an edit is detected. Nothing is
read or written through a symbolic link (jitpol.ledger.nofollow): a link in place of audit/,
audit/policies/ or a snapshot is refused as damage (UnsafePath, a LedgerBroken)."""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

from jitpol.errors import LedgerBroken
from jitpol.ledger.nofollow import read_bytes, replace_file
from jitpol.model.canonical import canonical_json, policy_digest

SNAPSHOT_DIR = "policies"
_DIGEST = re.compile(r"[0-9a-f]{64}")


def snapshot_path(audit_dir: Path, digest: str) -> Path:
    return audit_dir / SNAPSHOT_DIR / f"{digest}.json"


def _rel(audit_dir: Path, digest: str) -> PurePosixPath:
    """The snapshot's path below the repository root (the folder above `audit_dir`)."""
    return PurePosixPath(audit_dir.name, SNAPSHOT_DIR, f"{digest}.json")


def write_snapshot(audit_dir: Path, digest: str, entries: list[dict[str, Any]]) -> Path:
    """Store the policy documents whose digest is `digest` (idempotent). UnsafePath (nothing
    written) when audit/, audit/policies/ or the snapshot is a symbolic link."""
    if policy_digest([e["data"] for e in entries]) != digest:
        raise ValueError("snapshot entries do not match the digest")
    # a temporary file of a unique name, renamed: concurrent shards may write it too
    replace_file(audit_dir.parent, _rel(audit_dir, digest), (canonical_json(entries) + "\n").encode("utf-8"),
                 prefix=f".{digest[:12]}-")
    return snapshot_path(audit_dir, digest)


def read_snapshot(audit_dir: Path, digest: str) -> list[dict[str, Any]]:
    """The stored policy documents for `digest`. LedgerBroken if missing or altered, or when a
    symbolic link is in the way (UnsafePath; it is not followed)."""
    path = snapshot_path(audit_dir, digest)
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        # the digest comes from a ledger line: never let it name another path
        raise LedgerBroken(f"{audit_dir / SNAPSHOT_DIR}: {digest!r} is not a policy digest (SHA-256, hex)")
    try:
        data = read_bytes(audit_dir.parent, _rel(audit_dir, digest))
        if data is None:
            raise FileNotFoundError(path)
        entries: list[dict[str, Any]] = json.loads(data.decode("utf-8"))
    except FileNotFoundError:
        raise LedgerBroken(f"{path}: the snapshot of the adopted policy {digest[:12]} is missing") from None
    except ValueError as exc:
        raise LedgerBroken(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(entries, list) or policy_digest([e.get("data", {}) for e in entries]) != digest:
        raise LedgerBroken(f"{path}: content does not match digest {digest[:12]} — the snapshot was altered")
    return entries
