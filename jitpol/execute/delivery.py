"""Handing a secret to exactly one holder: encrypted with age to the SSH public keys in their
person file, stored as ASCII-armored ciphertext in the repository (audit/credentials/GRANT.age).
Plain text exists only in memory, on its way to the target and to the holder's terminal.
Nothing is written, read or removed through a symbolic link (jitpol.ledger.nofollow): a link in
place of audit/, audit/credentials/ or a delivered file makes the delivery fail, naming the link."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from jitpol.connectors import registry
from jitpol.connectors.base import SecretEscrow
from jitpol.errors import InvalidInput
from jitpol.ledger.nofollow import UnsafePath, read_bytes, remove_file, replace_file
from jitpol.model.assignment import Action
from jitpol.model.documents import PolicySet, Target
from jitpol.model.times import utc_text

CREDENTIALS_DIR = Path("audit") / "credentials"
_BEGIN = "-----BEGIN AGE ENCRYPTED FILE-----"
_END = "-----END AGE ENCRYPTED FILE-----"
# age encrypts to these SSH key types; security keys (sk-) and ECDSA keys it cannot use
AGE_KEY_TYPES = ("ssh-ed25519", "ssh-rsa")


def new_secret() -> str:
    """A fresh random password: 192 bits, URL-safe, with an upper-case letter, a lower-case
    letter and a digit (drawn again until it has them: Active Directory's default complexity rule
    wants three character classes and refused about one random secret in 800 without this)."""
    while True:
        secret = secrets.token_urlsafe(24)
        if any(c.isupper() for c in secret) and any(c.islower() for c in secret) and any(c.isdigit() for c in secret):
            return secret


def fingerprint(secret: str) -> str:
    """Names a secret's version in the ledger without revealing anything usable about it (the
    secret has 192 random bits, so its hash cannot be reversed by guessing)."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:16]


def delivery_path(root: Path, grant: str) -> Path:
    return root / CREDENTIALS_DIR / f"{grant}.age"


def _rel(grant: str, *, pending: bool = False) -> PurePosixPath:
    if not grant or "/" in grant or "\\" in grant or grant.startswith(".") or "\0" in grant or "." in grant:
        raise InvalidInput(f"{grant!r} is not a grant name")
    # GRANT.pending.age: a secret not yet accepted by the target (grant names have no ".")
    return PurePosixPath(CREDENTIALS_DIR.as_posix(), f"{grant}.pending.age" if pending else f"{grant}.age")


def armor(data: bytes) -> str:
    text = base64.b64encode(data).decode()
    return "\n".join([_BEGIN, *(text[i:i + 64] for i in range(0, len(text), 64)), _END]) + "\n"


def dearmor(text: str) -> bytes:
    lines = [x.strip() for x in text.strip().splitlines()]
    if len(lines) < 2 or lines[0] != _BEGIN or lines[-1] != _END:
        raise InvalidInput("not an age-armored file")
    return base64.b64decode("".join(lines[1:-1]), validate=True)


def encrypt_for(keys: Iterable[str], payload: dict[str, Any]) -> str:
    """Armored age ciphertext of `payload` (JSON) that only the holders of `keys` can open."""
    import pyrage

    recipients = []
    for line in keys:
        if line.split(" ", 1)[0] in AGE_KEY_TYPES:
            recipients.append(pyrage.ssh.Recipient.from_str(" ".join(line.split()[:2])))
    if not recipients:
        raise InvalidInput("the holder has no ssh-ed25519 or ssh-rsa key in their person file to encrypt "
                           "the credential to (age cannot encrypt to sk- or ECDSA keys)")
    return armor(pyrage.encrypt(json.dumps(payload, sort_keys=True).encode(), recipients))


def write_delivery(root: Path, grant: str, keys: Iterable[str], payload: dict[str, Any], *,
                   pending: bool = False) -> Path:
    """Store the encrypted payload for `grant`; `pending`: as GRANT.pending.age, which nobody can
    open with `jitpol credentials` until confirm_delivery() (the target accepted the secret).
    UnsafePath (nothing written) when audit/, audit/credentials/ or the grant's file is a link."""
    rel = _rel(grant, pending=pending)
    replace_file(root, rel, encrypt_for(keys, payload).encode("utf-8"), mode=0o600, prefix=f".{grant}-")
    return root / rel


def confirm_delivery(root: Path, grant: str) -> bool:
    """The target accepted the pending secret of `grant`: it becomes the grant's delivery
    (GRANT.age, replacing what was there). False when nothing was pending."""
    data = read_bytes(root, _rel(grant, pending=True))
    if data is None:
        return False
    replace_file(root, _rel(grant), data, mode=0o600, prefix=f".{grant}-")
    remove_file(root, _rel(grant, pending=True))
    return True


def remove_delivery(root: Path, grant: str) -> bool:
    """Remove what was delivered for `grant` (and a secret still pending for it); False when
    nothing was. A link in the file's place is removed itself; when a folder above it is a link,
    nothing of jitpol's is there to remove (the writes name the link) and nothing is followed."""
    try:
        pending = remove_file(root, _rel(grant, pending=True))
        return remove_file(root, _rel(grant)) or pending
    except UnsafePath:
        return False


def open_delivery(root: Path, grant: str, key_file: Path) -> dict[str, Any]:
    """Decrypt the credential delivered for `grant` with the private SSH key in `key_file`.
    Raises InvalidInput when nothing was delivered or the key is not the holder's."""
    import pyrage

    text = read_bytes(root, _rel(grant))  # UnsafePath when a link is in the way: never followed
    if text is None:
        raise InvalidInput(f"no credential delivered for grant {grant} (not active, not yet reconciled, "
                           "the target refused the secret (see the run's FAILED lines), or already ended)")
    try:
        identity = pyrage.ssh.Identity.from_buffer(key_file.read_bytes())
    except (OSError, pyrage.IdentityError) as exc:
        raise InvalidInput(f"{key_file}: cannot use this private key ({type(exc).__name__}); use an unencrypted "
                           "ssh-ed25519 or ssh-rsa key from your person file") from None
    try:
        data = pyrage.decrypt(dearmor(text.decode("utf-8")), [identity])
    except pyrage.DecryptError:
        raise InvalidInput(f"grant {grant}: this key cannot open the credential — it was delivered to the "
                           "grant's holder only") from None
    payload: dict[str, Any] = json.loads(data)
    return payload


class CredentialIssuer:
    """The engine's Issuer: secrets for ephemeral accounts and checkouts on targets whose
    accounts log in with passwords (registry.NEEDS_SECRET). issue() stores the encrypted secret
    as pending before the target is changed (a delivery that cannot be written fails the action
    before the target sees it); retire(), called only once the target accepted it, makes it the
    holder's delivery. So `jitpol credentials` only ever shows a secret the target accepted: when
    the target refuses one, the holder keeps the previous delivery (or has none) and the run
    reports the failure; a run that dies in between leaves a pending file the next run replaces
    (it rotates again, or re-delivers a new secret)."""

    def __init__(self, root: Path, policy: PolicySet, targets: Mapping[str, Target],
                 holders: Mapping[tuple[str, str], tuple[str, ...]], now: datetime,
                 connector: Callable[[str], Any] | None = None) -> None:
        self._connector = connector  # target name -> connector, for escrow
        self._root = root
        self._policy = policy
        self._targets = targets
        self._holders = holders
        self._now = now
        self._pending: dict[tuple[str, str, str], list[str]] = {}  # (target, principal, secret) -> grants

    def issue(self, action: Action) -> tuple[Action, dict[str, Any]]:
        target = self._targets.get(action.target)
        if (action.op not in ("create-account", "rotate") or target is None or action.detail("mode") == "extend"
                or (target.type, action.assignment.model) not in registry.NEEDS_SECRET):
            return action, {}
        secret = new_secret()
        username = (registry.login_name(target.type, action.principal, target.settings)
                    if action.assignment.model == "ephemeral-account" else action.principal)
        delivered: list[str] = []
        for name in action.grants:
            grant = self._policy.grants.get(name)
            person = self._policy.people.get(grant.requester) if grant is not None else None
            if person is None:
                continue
            write_delivery(self._root, name, person.keys, {
                "grant": name, "target": action.target, "username": username, "password": secret,
                "issued": utc_text(self._now), "until": utc_text(action.until) if action.until else None,
            }, pending=True)
            delivered.append(name)
        self._pending[(action.target, action.principal, secret)] = delivered
        details = tuple(sorted({**dict(action.details), "password": secret}.items()))
        return replace(action, details=details), {
            "fingerprint": fingerprint(secret), "delivered": bool(delivered), "delivered_to": delivered}

    def retire(self, action: Action) -> dict[str, Any]:
        secret = action.detail("password")
        for name in self._pending.pop((action.target, action.principal, secret), []) if secret else []:
            confirm_delivery(self._root, name)  # the target accepted it
        if action.op == "rotate":
            for name in self._holders.get((action.target, action.principal), ()):
                if name not in action.grants:
                    remove_delivery(self._root, name)
        elif action.op == "delete-account":
            for name in action.grants:
                remove_delivery(self._root, name)
        resource = self._policy.resources.get(action.resource)
        escrow = ((resource.settings.get("options") or {}).get("escrow") if resource is not None else None)
        if not secret or not isinstance(escrow, dict) or self._connector is None:
            return {}
        store = self._connector(str(escrow["target"]))
        if not isinstance(store, SecretEscrow):
            raise InvalidInput(f"resource {action.resource}: escrow target {escrow['target']} cannot hold secrets")
        value = json.dumps({"target": action.target, "username": action.principal, "password": secret,
                            "holders": list(action.grants), "issued": utc_text(self._now)}, sort_keys=True)
        version = store.escrow(str(escrow["secret"]), value, f"jitpol: {action.target}/{action.principal}")
        return {"escrow": {"target": str(escrow["target"]), "secret": str(escrow["secret"]), "version": version}}
