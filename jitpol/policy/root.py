"""The trust root: who may approve policy, pinned outside the repository (SPEC section 2).

In the spirit of TUF's root role. The reconciler's environment pins a root document (JSON):

    {"version": 1, "threshold": 2,
     "keys": ["ssh-ed25519 AAAA... ann", "ssh-ed25519 AAAA... ben", "ssh-ed25519 AAAA... cho"],
     "ledgerKey": "ssh-ed25519 AAAA... jitpol-reconciler"}

- every adoption of a policy, the first included, needs valid policy approvals (`jitpol approve
  --policy`) made with at least `threshold` distinct keys of the root;
- `ledgerKey` (optional) is the public half of the key the reconciler signs its ledger with;
  `agentKeys` (optional, host -> public key) the keys endpoint agents sign their own ledger
  files (audit/agent-<host>.jsonl) with, so no endpoint needs the reconciler's key;
- the root rotates without touching the pinned copy: `trust/root-<N>.json` in the repository,
  version N = current + 1, carrying `signatures` by `threshold` keys of the current root AND
  `threshold` keys of its own, becomes the root; the walk goes on while such files chain. A file
  that does not chain is reported and ignored: the last root that chains stays in force.

Pure: the caller reads the pinned text and the repository's files, and passes a Verifier.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jitpol.errors import InvalidInput
from jitpol.model.canonical import canonical_json
from jitpol.model.sshkey import checked_key, fingerprint
from jitpol.policy.approvals import Verifier

__all__ = ["ROOT_DIR", "RootSignature", "TrustRoot", "parse_root", "root_message", "walk"]

_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}")
ROOT_DIR = "trust"  # trust/root-<N>.json: rotations, each signed by the root before it
MAX_KEYS = 64


@dataclass(frozen=True, slots=True)
class RootSignature:
    key: str  # SHA256:... fingerprint
    signature: str


@dataclass(frozen=True, slots=True)
class TrustRoot:
    version: int
    threshold: int
    keys: tuple[str, ...]  # public key lines
    ledger_key: str | None
    signatures: tuple[RootSignature, ...]
    source: str  # where it came from: "$JITPOL_TRUST_ROOT", a file, trust/root-2.json
    agent_keys: Mapping[str, str] = field(default_factory=dict)  # host -> key its agent signs with

    @property
    def fingerprints(self) -> frozenset[str]:
        return frozenset(fingerprint(k) for k in self.keys)

    def key_for(self, fp: str) -> str | None:
        return next((k for k in self.keys if fingerprint(k) == fp), None)

    @property
    def digest(self) -> str:
        """SHA-256 of the canonical JSON of the root without its signatures."""
        body: dict[str, Any] = {"version": self.version, "threshold": self.threshold, "keys": list(self.keys)}
        if self.ledger_key is not None:
            body["ledgerKey"] = self.ledger_key
        if self.agent_keys:
            body["agentKeys"] = dict(sorted(self.agent_keys.items()))
        return hashlib.sha256(canonical_json(body).encode()).hexdigest()

    def describe(self) -> str:
        return f"trust root v{self.version} ({self.threshold} of {len(self.keys)} keys, from {self.source})"


def root_message(digest: str) -> bytes:
    """The bytes a root key holder signs to approve a root document."""
    return f"jitpol-root:{digest}\n".encode()


def parse_root(text: str, source: str) -> TrustRoot:
    """A root document from JSON text; InvalidInput naming `source` for anything malformed."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{source}: the trust root is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{source}: the trust root must be a JSON object")
    unknown = set(data) - {"version", "threshold", "keys", "ledgerKey", "agentKeys", "signatures"}
    if unknown:
        raise InvalidInput(f"{source}: unknown trust root field(s): {', '.join(sorted(unknown))}")
    version, threshold, keys = data.get("version", 1), data.get("threshold"), data.get("keys")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidInput(f"{source}: version must be a positive integer")
    if not isinstance(keys, list) or not keys or len(keys) > MAX_KEYS or not all(isinstance(k, str) for k in keys):
        raise InvalidInput(f"{source}: keys must be a list of 1 to {MAX_KEYS} SSH public key lines")
    fps = []
    for k in keys:
        try:
            fps.append(fingerprint(checked_key(k)))
        except ValueError as exc:
            raise InvalidInput(f"{source}: not an SSH public key: {k[:40]!r} ({exc})") from None
    if len(set(fps)) != len(fps):
        raise InvalidInput(f"{source}: a key is listed twice")
    if not isinstance(threshold, int) or isinstance(threshold, bool) or not 1 <= threshold <= len(keys):
        raise InvalidInput(f"{source}: threshold must be an integer from 1 to the number of keys ({len(keys)})")
    ledger_key = data.get("ledgerKey")
    if ledger_key is not None:
        if not isinstance(ledger_key, str):
            raise InvalidInput(f"{source}: ledgerKey must be an SSH public key line")
        try:
            checked_key(ledger_key)
        except ValueError as exc:
            raise InvalidInput(f"{source}: ledgerKey is not an SSH public key ({exc})") from None
    agents = data.get("agentKeys", {})
    if not isinstance(agents, dict) or not all(
            isinstance(h, str) and _HOST.fullmatch(h) and isinstance(k, str) for h, k in agents.items()):
        raise InvalidInput(f"{source}: agentKeys must map host names to SSH public key lines")
    for host, key in agents.items():
        try:
            checked_key(key)
        except ValueError as exc:
            raise InvalidInput(f"{source}: agentKeys.{host} is not an SSH public key ({exc})") from None
    sigs = data.get("signatures", [])
    if not isinstance(sigs, list) or not all(
        isinstance(s, dict) and isinstance(s.get("key"), str) and isinstance(s.get("signature"), str) for s in sigs
    ):
        raise InvalidInput(f"{source}: signatures must be a list of {{key, signature}}")
    return TrustRoot(version, threshold, tuple(str(k).strip() for k in keys),
                     ledger_key.strip() if isinstance(ledger_key, str) else None,
                     tuple(RootSignature(s["key"], s["signature"]) for s in sigs), source,
                     {h: k.strip() for h, k in agents.items()})


def _signers(root: TrustRoot, by: TrustRoot, verifier: Verifier) -> set[str]:
    """Fingerprints of `by`'s keys that validly signed `root`."""
    todo: list[tuple[str, tuple[bytes, str, str]]] = []
    message = root_message(root.digest)
    for sig in root.signatures:
        key = by.key_for(sig.key)
        if key is not None:
            todo.append((sig.key, (message, sig.signature, key)))
    ok = verifier.verify_many([t[1] for t in todo]) if todo else []
    return {fp for (fp, _), good in zip(todo, ok, strict=True) if good}


def walk(pinned: TrustRoot, candidates: Mapping[int, tuple[str, str]], verifier: Verifier,
         ) -> tuple[TrustRoot, Sequence[str]]:
    """From the pinned root, follow `candidates` (version -> (text, source)) while each next
    version is signed by the threshold of the root before it and of its own keys. Returns the
    root reached and a note for each candidate that did not chain."""
    root, notes = pinned, []
    while root.version + 1 in candidates:
        text, source = candidates[root.version + 1]
        try:
            nxt = parse_root(text, source)
        except InvalidInput as exc:
            notes.append(f"{exc}; {root.describe()} stays in force")
            break
        if nxt.version != root.version + 1:
            notes.append(f"{source}: says version {nxt.version}, expected {root.version + 1}; ignored")
            break
        old, new = len(_signers(nxt, root, verifier)), len(_signers(nxt, nxt, verifier))
        if old < root.threshold or new < nxt.threshold:
            notes.append(f"{source}: signed by {old} of the {root.threshold} keys needed from v{root.version} and "
                         f"{new} of the {nxt.threshold} needed from itself; ignored, {root.describe()} stays in force")
            break
        root = nxt
    return root, notes
