"""Snapshots of adopted policies: audit/policies/<digest>.json, written when the ledger records
`policy.adopted`. The file's content must hash to its name, so an edit is detected."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from jitpol.errors import LedgerBroken
from jitpol.model.canonical import canonical_json, policy_digest

SNAPSHOT_DIR = "policies"


def snapshot_path(audit_dir: Path, digest: str) -> Path:
    return audit_dir / SNAPSHOT_DIR / f"{digest}.json"


def write_snapshot(audit_dir: Path, digest: str, entries: list[dict[str, Any]]) -> Path:
    """Store the policy documents whose digest is `digest` (idempotent)."""
    if policy_digest([e["data"] for e in entries]) != digest:
        raise ValueError("snapshot entries do not match the digest")
    path = snapshot_path(audit_dir, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{digest[:12]}-", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as out:  # unique name: concurrent shards may write it too
        out.write(canonical_json(entries) + "\n")
    os.replace(tmp, path)
    return path


def read_snapshot(audit_dir: Path, digest: str) -> list[dict[str, Any]]:
    """The stored policy documents for `digest`. LedgerBroken if missing or altered."""
    path = snapshot_path(audit_dir, digest)
    try:
        entries: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LedgerBroken(f"{path}: the snapshot of the adopted policy {digest[:12]} is missing") from None
    except ValueError as exc:
        raise LedgerBroken(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(entries, list) or policy_digest([e.get("data", {}) for e in entries]) != digest:
        raise LedgerBroken(f"{path}: content does not match digest {digest[:12]} — the snapshot was altered")
    return entries
