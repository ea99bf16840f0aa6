"""Authenticating the ledger: the reconciler signs what it wrote, and checks it next time.

Keys (secrets only from the environment):
- JITPOL_LEDGER_KEY: the reconciler's private SSH key (the text, as a CI secret). A run that has
  it signs a checkpoint (jitpol.ledger.checkpoint) of the ledger file it appended to.
- The public half, which every run checks the checkpoints against: the trust root's `ledgerKey`
  (jitpol.policy.root), else JITPOL_LEDGER_PUBKEY. Without one the ledger is not authenticated
  (a laptop, the demo) and the plan says so.
- JITPOL_STATE_FILE (optional): a file outside the repository where the reconciler remembers the
  newest checkpoint it signed per ledger file. The repository cannot vouch for its own freshness:
  with this file, rolling the whole branch back to an older, validly signed state is detected too
  (the role TUF gives its timestamp/snapshot metadata, and a Terraform backend its serial).

A ledger that fails these checks stops adoptions and additions, never revocations.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from jitpol.errors import InvalidInput, SignatureError
from jitpol.ledger.checkpoint import (
    CHECKPOINT_DIR,
    Checkpoint,
    LineFacts,
    build,
    extends,
    line_facts,
    message,
    parse,
)
from jitpol.ledger.nofollow import UnsafePath, entries, read_bytes, replace_file
from jitpol.ledger.store import ledger_files
from jitpol.model.sshkey import checked_key, fingerprint
from jitpol.policy.approvals import Verifier
from jitpol.policy.root import TrustRoot
from jitpol.trust.pinned import outside_repository
from jitpol.vcs import sshsig
from jitpol.vcs.git import Repo

__all__ = ["KEY_ENV", "NAMESPACE", "PUBKEY_ENV", "STATE_ENV", "LedgerAuth", "authenticate", "ledger_public_key",
           "sign_checkpoint"]

_AGENT_FILE = re.compile(r"agent-(.+)\.jsonl")
KEY_ENV = "JITPOL_LEDGER_KEY"
PUBKEY_ENV = "JITPOL_LEDGER_PUBKEY"
STATE_ENV = "JITPOL_STATE_FILE"
NAMESPACE = "jitpol-ledger"
AUDIT = "audit"


@dataclass(frozen=True, slots=True)
class LedgerAuth:
    public_key: str | None  # None: the ledger is not authenticated
    problems: tuple[str, ...]
    checkpoints: Mapping[str, Checkpoint]

    agent_keys: Mapping[str, str] = field(default_factory=dict)  # host -> key (agent-<host>.jsonl)

    def key_for(self, ledger_name: str) -> str | None:
        """The key that must sign `ledger_name`: its agent's, if the root names one, else the
        reconciler's ledger key."""
        m = _AGENT_FILE.fullmatch(ledger_name)
        return self.agent_keys.get(m[1], self.public_key) if m else self.public_key

    @property
    def trusted(self) -> bool:
        """May this run extend the ledger's signed state (adopt, add, sign)?"""
        return not self.problems


def ledger_public_key(trust: TrustRoot | None, env: Mapping[str, str]) -> str | None:
    """The trust root's ledgerKey, else $JITPOL_LEDGER_PUBKEY. InvalidInput if that is no key."""
    if trust is not None and trust.ledger_key is not None:
        return trust.ledger_key
    text = env.get(PUBKEY_ENV, "").strip()
    if not text:
        return None
    try:
        return checked_key(text)
    except ValueError as exc:
        raise InvalidInput(f"${PUBKEY_ENV}: not an SSH public key ({exc})") from None


def _history_had_checkpoints(git: Repo | None) -> str | None:
    """The newest commit in HEAD's history that had signed checkpoints under audit/ (a deleted
    audit/ is then tampering, not a new repository); None outside git or when none did."""
    return git.last_commit(f"{AUDIT}/{CHECKPOINT_DIR}") if git is not None else None


def _committed_lines(git: Repo | None, name: str) -> int | None:
    """How many lines audit/NAME has in HEAD's commit: 0 when HEAD does not have it; None when
    the repository is not in git (nothing tells the reconciler's own lines from anyone's)."""
    if git is None:
        return None
    data = git.file_at("HEAD", f"{AUDIT}/{name}") if git.head_commit() is not None else None
    return data.count(b"\n") if data is not None else 0


def _read_state(env: Mapping[str, str], root: Path) -> dict[str, dict[str, object]]:
    path = env.get(STATE_ENV, "").strip()
    if not path:
        return {}
    p = Path(path)
    if not p.is_absolute() or not outside_repository(p, root):
        raise InvalidInput(f"${STATE_ENV}: {path} must be an absolute path outside the repository")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"${STATE_ENV}: cannot read {path}: {exc}") from None
    files = data.get("ledgers", {}) if isinstance(data, dict) else {}
    return {str(k): v for k, v in files.items() if isinstance(v, dict)}


def authenticate(root: Path, public_key: str | None, verifier: Verifier, env: Mapping[str, str],
                 agent_keys: Mapping[str, str] | None = None) -> LedgerAuth:
    """Check every ledger file under audit/ against the reconciler's signed checkpoints (an
    agent's file against its own key when `agent_keys` names one)."""
    if public_key is None:
        return LedgerAuth(None, (), {})
    keys = LedgerAuth(public_key, (), {}, dict(agent_keys or {}))
    git = Repo.find(root)
    # nothing under audit/ is read through a symbolic link (jitpol.ledger.nofollow): a link is a problem
    try:
        entries(root, AUDIT)
    except UnsafePath as exc:
        return LedgerAuth(public_key, (str(exc),), {})
    problems: list[str] = []
    files = _ledger_facts(root, problems)
    checkpoints = _verified_checkpoints(root, keys, verifier, problems)
    problems += _unsigned_lines(files, checkpoints, git)
    problems += _missing_lines(files, checkpoints)
    if not checkpoints and not files:
        sha = _history_had_checkpoints(git)
        if sha is not None:
            problems.append(f"audit/ is gone, but commit {sha[:12]} had ledger checkpoints signed by the reconciler: "
                            "restore it from git history")
    problems += _rolled_back(env, root, checkpoints)
    return LedgerAuth(public_key, tuple(dict.fromkeys(problems)), checkpoints, keys.agent_keys)


def _ledger_facts(root: Path, problems: list[str]) -> dict[str, LineFacts]:
    """Each ledger file's line facts (count, hash of each prefix), read without following links."""
    files: dict[str, LineFacts] = {}
    for p in ledger_files(root / AUDIT):
        try:
            data = read_bytes(root, f"{AUDIT}/{p.name}")
        except UnsafePath as exc:
            problems.append(str(exc))
            continue
        if data is not None:
            files[p.name] = line_facts(data)
    return files


def _verified_checkpoints(root: Path, keys: LedgerAuth, verifier: Verifier,
                          problems: list[str]) -> dict[str, Checkpoint]:
    """The checkpoints under audit/checkpoints/ whose signature verifies with the key that must
    sign their ledger file (one batch of verifications); every other file there is a problem."""
    try:
        listing = entries(root, f"{AUDIT}/{CHECKPOINT_DIR}")
    except UnsafePath as exc:
        problems.append(str(exc))
        return {}
    if listing is None:
        return {}
    found: list[tuple[str, Checkpoint]] = []
    for name, kind in listing:
        rel = f"audit/{CHECKPOINT_DIR}/{name}"
        if kind != "file" or not name.endswith(".json"):
            problems.append(f"{rel}: not a checkpoint file")
            continue
        try:
            text = read_bytes(root, rel)
            if text is None:
                continue
            cp = parse(text.decode("utf-8"), rel)
        except UnsafePath as exc:
            problems.append(str(exc))
            continue
        except (ValueError, UnicodeDecodeError) as exc:
            problems.append(str(exc))
            continue
        if name != f"{cp.ledger}.json":
            problems.append(f"{rel}: signs {cp.ledger}, not the file its name says")
            continue
        found.append((rel, cp))
    public_key = keys.public_key or ""
    results = verifier.verify_many(
        [(message(cp.body()), cp.signature, keys.key_for(cp.ledger) or public_key) for _, cp in found],
        namespace=NAMESPACE) if found else []
    checkpoints: dict[str, Checkpoint] = {}
    for (rel, cp), ok in zip(found, results, strict=True):
        if ok:
            checkpoints[cp.ledger] = cp
        else:
            problems.append(f"{rel}: its signature does not verify with the key "
                            f"{fingerprint(keys.key_for(cp.ledger) or public_key)} that must sign it")
    return checkpoints


def _unsigned_lines(files: Mapping[str, LineFacts], checkpoints: Mapping[str, Checkpoint],
                    git: Repo | None) -> list[str]:
    """Ledger files, or lines of them, that no checkpoint signs and someone committed. Lines
    nobody committed were written here, by a run of the reconciler that died before signing
    (only commits reach its work tree): they are its own."""
    problems: list[str] = []
    for name, facts in sorted(files.items()):
        rel = f"audit/{name}"
        signed = checkpoints.get(name)
        committed = _committed_lines(git, name)
        if signed is None:
            if facts.lines and (committed is None or committed > 0):
                problems.append(f"{rel}: no checkpoint signed by the reconciler: an extra or unsigned ledger file")
            continue
        bad = extends(signed, facts, rel)
        if bad is not None:
            problems.append(bad)
        elif facts.lines > signed.lines and (committed is None or committed > signed.lines):
            problems.append(f"{rel}: lines {signed.lines + 1}-{facts.lines} follow checkpoint {signed.seq} but the "
                            "reconciler did not sign them")
    return problems


def _missing_lines(files: Mapping[str, LineFacts], checkpoints: Mapping[str, Checkpoint]) -> list[str]:
    """Ledger files a checkpoint signed, or saw in another file's checkpoint, that are gone or
    no longer extend what was signed."""
    problems: list[str] = []
    for name, cp in sorted(checkpoints.items()):
        if name not in files:
            problems.append(f"audit/{name}: deleted (checkpoint {cp.seq} signed {cp.lines} line(s))")
        for other, (lines, head) in sorted(cp.others.items()):
            seen = files.get(other)
            if seen is None:
                problems.append(f"audit/{other}: deleted (the reconciler saw {lines} line(s) in it at checkpoint "
                                f"{cp.seq} of {name})")
            elif seen.lines < lines or (lines and seen.head(lines) != head):
                problems.append(f"audit/{other}: does not extend what the reconciler saw at checkpoint {cp.seq} of "
                                f"{name} ({lines} line(s))")
    return problems


def _rolled_back(env: Mapping[str, str], root: Path, checkpoints: Mapping[str, Checkpoint]) -> list[str]:
    """Ledger files whose checkpoint is older than the newest the reconciler remembers signing
    ($JITPOL_STATE_FILE, outside the repository): the whole branch was rolled back."""
    problems: list[str] = []
    for name, remembered in sorted(_read_state(env, root).items()):
        held = checkpoints.get(name)
        newest = remembered.get("seq")
        if isinstance(newest, int) and (held is None or held.seq < newest):
            problems.append(f"audit/{name}: the reconciler last signed checkpoint {newest} "
                            f"(${STATE_ENV}), the repository holds {held.seq if held else 'none'}: rolled back")
    return problems


def sign_checkpoint(root: Path, ledger: Path, env: Mapping[str, str], now_text: str,
                    public_key: str | None) -> Checkpoint | None:
    """Sign a checkpoint of `ledger` as it is now, with $JITPOL_LEDGER_KEY; None without a key.
    Raises SignatureError when the key cannot sign or is not the pinned ledger key, and UnsafePath
    (a LedgerBroken; nothing written) when a symbolic link is in place of the ledger, audit/,
    audit/checkpoints/ or the checkpoint."""
    key_text = env.get(KEY_ENV, "")
    if not key_text.strip():
        return None
    # read and written without following a symbolic link: one in the way raises UnsafePath
    ledger_bytes = read_bytes(root, f"{AUDIT}/{ledger.name}")
    if ledger_bytes is None:
        return None
    audit = root / AUDIT
    target = f"{AUDIT}/{CHECKPOINT_DIR}/{ledger.name}.json"
    seq = 1
    previous = read_bytes(root, target)
    if previous is not None:
        try:
            seq = parse(previous.decode("utf-8"), target).seq + 1
        except (ValueError, UnicodeDecodeError):
            seq = 1
    others: dict[str, LineFacts] = {}
    for p in ledger_files(audit):
        if p.name != ledger.name:
            try:
                data = read_bytes(root, f"{AUDIT}/{p.name}")
            except UnsafePath:
                continue  # authenticate() reports it
            if data is not None:
                others[p.name] = line_facts(data)
    cp = build(ledger.name, line_facts(ledger_bytes), seq=seq, time=now_text, others=others)
    with tempfile.TemporaryDirectory(prefix="jitpol-ledger-key-") as tmp:
        keyfile = Path(tmp) / "key"
        fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(key_text.strip() + "\n")
        if public_key is not None:
            mine = sshsig.public_key(keyfile)
            if fingerprint(mine) != fingerprint(public_key):
                raise SignatureError(f"${KEY_ENV} is not the ledger key {fingerprint(public_key)} the trust root "
                                     f"(or ${PUBKEY_ENV}) names; the ledger was not signed")
        signature = sshsig.sign(message(cp.body()), keyfile, namespace=NAMESPACE)
    signed = replace(cp, signature=signature)
    replace_file(root, target, signed.to_json().encode("utf-8"), prefix=f".{ledger.name}-")
    _write_state(env, root, signed)
    return signed


def _write_state(env: Mapping[str, str], root: Path, cp: Checkpoint) -> None:
    path = env.get(STATE_ENV, "").strip()
    if not path:
        return
    state = _read_state(env, root)
    state[cp.ledger] = {"seq": cp.seq, "lines": cp.lines, "head": cp.head}
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    replace_file(p.parent, p.name, json.dumps({"ledgers": state}, sort_keys=True).encode())
