"""Canonical JSON and the grant digest that approvals sign (SPEC section 2)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept: the same bytes for the same value everywhere.

    Raises ValueError for NaN/Infinity (not JSON) and TypeError for values JSON cannot hold.
    """
    return _ENCODE(obj)


# one encoder for every call: json.dumps with options builds a new one each time (a fifth of the cost)
_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def grant_digest(document: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of apiVersion, kind, metadata.name and spec without
    approvals. Any edit to the grant but its approvals changes it, voiding earlier signatures."""
    spec = {k: v for k, v in dict(document.get("spec") or {}).items() if k != "approvals"}
    body = {
        "apiVersion": document.get("apiVersion"),
        "kind": document.get("kind"),
        "metadata": {"name": (document.get("metadata") or {}).get("name")},
        "spec": spec,
    }
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def approval_message(digest: str) -> bytes:
    """The bytes an approver signs for a grant digest."""
    return f"jitpol-grant:{digest}\n".encode()


POLICY_KINDS: tuple[str, ...] = ("Config", "Person", "Team", "Workflow", "Resource")


def policy_digest(documents: list[Mapping[str, Any]]) -> str:
    """SHA-256 (hex) over every policy document (all kinds but Grant and PolicyApproval), in a
    stable order, excluding comments and formatting. Admins approve exactly this value."""
    items = sorted(
        (str(d.get("kind")), str((d.get("metadata") or {}).get("name")), canonical_json(d)) for d in documents
    )
    return hashlib.sha256(canonical_json(items).encode()).hexdigest()


def policy_message(digest: str) -> bytes:
    """The bytes an admin signs to approve a policy digest."""
    return f"jitpol-policy:{digest}\n".encode()
