"""Pure facts about SSH public key lines ("type base64 [comment]")."""

from __future__ import annotations

import base64
import binascii
import hashlib


def split_key(line: str) -> tuple[str, bytes]:
    """(key type, key blob). Raises ValueError for anything that is not a public key line."""
    parts = line.strip().split()
    if len(parts) < 2:
        raise ValueError("not an SSH public key line")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except binascii.Error as exc:
        raise ValueError("SSH public key is not valid base64") from exc
    return parts[0], blob


def checked_key(line: str) -> str:
    """`line` if its blob names the same key type as the line does (a real key encoding, not just
    any base64). Raises ValueError otherwise."""
    kind, blob = split_key(line)
    size = int.from_bytes(blob[:4], "big") if len(blob) >= 4 else -1
    if size <= 0 or blob[4:4 + size] != kind.encode() or len(blob) <= 4 + size:
        raise ValueError(f"not an SSH public key of type {kind}")
    return line


def fingerprint(line: str) -> str:
    """OpenSSH's SHA256 fingerprint, e.g. "SHA256:abc..." (no padding)."""
    _, blob = split_key(line)
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def is_hardware_backed(line: str) -> bool:
    """FIDO/U2F security-key types (sk-ssh-ed25519@openssh.com, sk-ecdsa-...)."""
    return line.strip().startswith("sk-")
