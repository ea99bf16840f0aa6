"""SSH signatures for approvals: `ssh-keygen -Y sign/verify` plus pure parsing of keys and SSHSIG.

An approval is an SSHSIG signature (namespace "jitpol-approval") over the grant's approval
message. Signing and verifying run the `ssh-keygen` binary, never through a shell, with every
file in a private temporary directory (mode 0700). Reading key lines and signatures is pure
Python, so a malformed one is reported without running anything.

Public key lines are "type base64 [comment]"; accepted types are in KEY_TYPES (no DSA, no
certificates). The blob must hold exactly the fields its type has, the first being the type.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import struct
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from jitpol.errors import InvalidInput, SignatureError
from jitpol.model import sshkey

NAMESPACE = "jitpol-approval"

# Key type -> how many SSH wire strings its public blob holds (the type name included).
KEY_TYPES: dict[str, int] = {
    "ssh-ed25519": 2,
    "ssh-rsa": 3,
    "ecdsa-sha2-nistp256": 3,
    "ecdsa-sha2-nistp384": 3,
    "ecdsa-sha2-nistp521": 3,
    "sk-ssh-ed25519@openssh.com": 3,
    "sk-ecdsa-sha2-nistp256@openssh.com": 4,
}

_BEGIN = "-----BEGIN SSH SIGNATURE-----"
_END = "-----END SSH SIGNATURE-----"
_MAGIC = b"SSHSIG"
_MAX_SIGNATURE_CHARS = 64 * 1024
_NAMESPACE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9@._-]{0,127}")
_PRINCIPAL = "approver"
_PROMPT = re.compile(r"Enter passphrase[^:\n]*: ?")
_SIGN_TIMEOUT = 120.0  # a security key waits for a touch
_VERIFY_TIMEOUT = 30.0


# --- public keys (pure) -----------------------------------------------------------------------


def _parse_key_line(line: str) -> tuple[str, bytes]:
    """(type, blob) of a public key line. Raises InvalidInput."""
    parts = line.strip().split(maxsplit=2)
    if len(parts) < 2:
        raise InvalidInput("not an SSH public key line (expected 'type base64 [comment]')")
    kind, encoded = parts[0], parts[1]
    if kind not in KEY_TYPES:
        raise InvalidInput(f"unsupported SSH key type {kind[:60]!r}")
    try:
        blob = base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise InvalidInput(f"{kind} key is not valid base64") from exc
    problem = _blob_problem(kind, blob)
    if problem:
        raise InvalidInput(f"{kind} key: {problem}")
    return kind, blob


def _blob_problem(kind: str, blob: bytes) -> str | None:
    """Why `blob` is not a well-formed public key of type `kind`; None when it is."""
    try:
        fields = _split_strings(blob)
    except ValueError as exc:
        return f"malformed key data ({exc})"
    if not fields or fields[0] != kind.encode():
        return "the key data is of a different type than the line says"
    if len(fields) != KEY_TYPES[kind]:
        return "malformed key data (wrong number of fields)"
    if kind in ("ssh-ed25519", "sk-ssh-ed25519@openssh.com") and len(fields[1]) != 32:
        return "malformed key data (an Ed25519 key is 32 bytes)"
    return None


def _split_strings(data: bytes) -> list[bytes]:
    """A buffer of SSH wire strings (uint32 length + bytes), entirely consumed."""
    fields: list[bytes] = []
    offset = 0
    while offset < len(data):
        value, offset = _read_string(data, offset)
        fields.append(value)
    return fields


def _read_string(data: bytes, offset: int) -> tuple[bytes, int]:
    if offset + 4 > len(data):
        raise ValueError("truncated length")
    (length,) = struct.unpack_from(">I", data, offset)
    start = offset + 4
    if start + length > len(data):
        raise ValueError("truncated string")
    return data[start : start + length], start + length


def _key_line(kind: str, blob: bytes) -> str:
    return f"{kind} {base64.b64encode(blob).decode('ascii')}"


def normalize_public_key(public_key_line: str) -> str:
    """The line as "type base64", without its comment, after checking it. Raises InvalidInput."""
    return _key_line(*_parse_key_line(public_key_line))


def fingerprint(public_key_line: str) -> str:
    """OpenSSH's SHA256 fingerprint ("SHA256:" + unpadded base64 of the blob's SHA-256), as
    `ssh-keygen -lf` prints it. Raises InvalidInput for a malformed line."""
    _parse_key_line(public_key_line)  # validates more than the pure helper does
    return sshkey.fingerprint(public_key_line)


def key_type(public_key_line: str) -> str:
    """The key's type, e.g. "ssh-ed25519" or "sk-ssh-ed25519@openssh.com". Raises InvalidInput."""
    return _parse_key_line(public_key_line)[0]


def is_hardware_backed(public_key_line: str) -> bool:
    """Whether the key lives on a FIDO security key (the sk- types). Raises InvalidInput."""
    return key_type(public_key_line).startswith("sk-")


# --- signatures (pure) ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignatureInfo:
    """What an SSHSIG signature says about itself (not yet checked against anything)."""

    public_key: str  # "type base64" of the signer
    namespace: str
    hash_algorithm: str


def parse_signature(signature: str) -> SignatureInfo:
    """Read an armored SSHSIG signature. Raises SignatureError when it is not one."""
    kind, blob, namespace, hash_algorithm = _parse_sshsig(signature)
    return SignatureInfo(_key_line(kind, blob), namespace, hash_algorithm)


def signature_key(signature: str) -> str:
    """The signer's public key line ("type base64") inside an armored SSHSIG signature.

    Only says which key claims to have signed; SshKeygenVerifier checks that it did.
    Raises SignatureError for anything that is not a well-formed SSHSIG signature.
    """
    return parse_signature(signature).public_key


def _armor_body(signature: str) -> bytes:
    if len(signature) > _MAX_SIGNATURE_CHARS:
        raise SignatureError("signature is too long to be an SSH signature")
    lines = [line.strip() for line in signature.strip().splitlines()]
    if len(lines) < 3 or lines[0] != _BEGIN or lines[-1] != _END:
        raise SignatureError(f"not an SSH signature (expected {_BEGIN} ... {_END})")
    body = "".join("".join(lines[1:-1]).split())
    try:
        return base64.b64decode(body, validate=True)
    except binascii.Error as exc:
        raise SignatureError("SSH signature is not valid base64") from exc


def _parse_sshsig(signature: str) -> tuple[str, bytes, str, str]:
    """(key type, key blob, namespace, hash algorithm). Raises SignatureError."""
    data = _armor_body(signature)
    if not data.startswith(_MAGIC) or len(data) < len(_MAGIC) + 4:
        raise SignatureError("not an SSH signature (no SSHSIG header)")
    (version,) = struct.unpack_from(">I", data, len(_MAGIC))
    if version != 1:
        raise SignatureError(f"unsupported SSH signature version {version}")
    try:
        fields = _split_strings(data[len(_MAGIC) + 4 :])
    except ValueError as exc:
        raise SignatureError(f"malformed SSH signature ({exc})") from exc
    if len(fields) != 5:  # public key, namespace, reserved, hash algorithm, signature
        raise SignatureError("malformed SSH signature (wrong number of fields)")
    key_blob, namespace, _reserved, hash_algorithm, _sig = fields
    try:
        kind = _split_strings(key_blob)[0].decode("ascii")
        namespace_text = namespace.decode("utf-8")
        hash_text = hash_algorithm.decode("ascii")
    except (ValueError, IndexError) as exc:
        raise SignatureError("malformed SSH signature (unreadable fields)") from exc
    if kind not in KEY_TYPES or _blob_problem(kind, key_blob):
        raise SignatureError(f"SSH signature carries an unsupported or malformed key ({kind[:60]!r})")
    return kind, key_blob, namespace_text, hash_text


def _armor(data: bytes) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    wrapped = "\n".join(encoded[i : i + 70] for i in range(0, len(encoded), 70))
    return f"{_BEGIN}\n{wrapped}\n{_END}\n"


# --- running ssh-keygen -----------------------------------------------------------------------


def _check_namespace(namespace: str) -> None:
    if not _NAMESPACE_RE.fullmatch(namespace):
        raise ValueError(f"invalid signature namespace {namespace!r}")


@contextmanager
def _private_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="jitpol-sshsig-") as name:
        path = Path(name)
        path.chmod(0o700)  # mkdtemp already does; say it so it does not depend on that
        yield path


def _stderr_summary(stderr: bytes | str | None) -> str:
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else (stderr or "")
    text = _PROMPT.sub("", text)  # the passphrase prompt lands on stderr when there is no terminal
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("Signing file")]
    return "; ".join(lines[-3:]) if lines else "no message from ssh-keygen"


def _no_prompt_env() -> dict[str, str]:
    # ssh-keygen asks for a passphrase on the terminal, else through SSH_ASKPASS: forbid the latter.
    return {**os.environ, "SSH_ASKPASS_REQUIRE": "never"}


def sign(message: bytes, key_file: Path, *, namespace: str = NAMESPACE, interactive: bool = False) -> str:
    """Sign `message` with the private key in `key_file`: the armored SSHSIG text, ending in "\\n".

    A key held by ssh-agent is used from there (key_file may then be just its .pub). With
    `interactive`, ssh-keygen may ask for a passphrase or a security-key touch on the terminal
    and print its messages there; without it, it runs detached from any terminal and fails at
    once when it would have to ask. Raises SignatureError (missing key, wrong or missing
    passphrase, ssh-keygen absent) with ssh-keygen's own reason.
    """
    _check_namespace(namespace)
    key_file = key_file.absolute()  # an absolute path can never be read as an option
    if not key_file.is_file():
        raise SignatureError(f"key file {key_file} not found")
    with _private_dir() as tmp:
        data = tmp / "message"
        data.write_bytes(message)
        command = ["ssh-keygen", "-Y", "sign", "-f", str(key_file), "-n", namespace, str(data)]
        try:
            done = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,  # a passphrase read from stdin would be empty, so it fails
                stdout=subprocess.PIPE,
                stderr=None if interactive else subprocess.PIPE,
                start_new_session=not interactive,  # no controlling terminal: no prompt
                env=None if interactive else _no_prompt_env(),
                timeout=None if interactive else _SIGN_TIMEOUT,
                check=False,
            )
        except FileNotFoundError as exc:
            raise SignatureError("ssh-keygen is not installed or not on PATH") from exc
        except subprocess.TimeoutExpired as exc:
            raise SignatureError(f"ssh-keygen did not finish signing with {key_file} in time") from exc
        if done.returncode != 0:
            reason = "see ssh-keygen's message above" if interactive else _stderr_summary(done.stderr)
            hint = "" if interactive else " (a key with a passphrase must be loaded into ssh-agent)"
            raise SignatureError(f"could not sign with {key_file}: {reason}{hint}")
        signature = (tmp / "message.sig").read_text(encoding="ascii")
    parse_signature(signature)  # what ssh-keygen wrote must read back
    return signature


def public_key(key_file: Path) -> str:
    """The public key line ("type base64") of the key in `key_file`.

    Read from `key_file` itself when it is a .pub file, else from `<key_file>.pub` beside it,
    else derived with `ssh-keygen -y` (which fails for a passphrase-protected key). Raises
    SignatureError when none of these yields a valid key.
    """
    key_file = key_file.absolute()
    pub = key_file if key_file.name.endswith(".pub") else key_file.with_name(key_file.name + ".pub")
    if pub.is_file():
        try:
            return normalize_public_key(pub.read_text(encoding="utf-8").partition("\n")[0])
        except (OSError, UnicodeDecodeError, InvalidInput) as exc:
            raise SignatureError(f"cannot read the public key in {pub}: {exc}") from exc
    if not key_file.is_file():
        raise SignatureError(f"key file {key_file} not found")
    try:
        done = subprocess.run(
            ["ssh-keygen", "-y", "-f", str(key_file)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            start_new_session=True,
            env=_no_prompt_env(),
            timeout=_VERIFY_TIMEOUT,
            check=False,
        )
    except FileNotFoundError as exc:
        raise SignatureError("ssh-keygen is not installed or not on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise SignatureError(f"ssh-keygen -y on {key_file} did not finish") from exc
    if done.returncode != 0:
        raise SignatureError(
            f"cannot derive the public key of {key_file}: {_stderr_summary(done.stderr)} "
            f"(for a passphrase-protected key, keep {pub.name} beside it)"
        )
    try:
        return normalize_public_key(done.stdout.decode("utf-8", "replace"))
    except InvalidInput as exc:
        raise SignatureError(f"ssh-keygen -y gave no usable key for {key_file}: {exc}") from exc


class SshKeygenVerifier:
    """Checks approval signatures with `ssh-keygen -Y verify`; results are cached in memory.

    A signature verifies only if it is by exactly the given key, for this namespace, over these
    bytes. Security-key signatures must carry the user-presence flag (ssh-keygen's default).
    Thread-safe.
    """

    def __init__(self) -> None:
        self._cache: dict[tuple[bytes, str, str, str], bool] = {}
        self._lock = threading.Lock()

    def verify(
        self, message: bytes, signature: str, public_key_line: str, *, namespace: str = NAMESPACE
    ) -> bool:
        """True iff `signature` is `public_key_line`'s signature over `message` in `namespace`.

        Malformed signatures or keys give False, not an exception. Raises SignatureError only
        when ssh-keygen itself cannot run.
        """
        _check_namespace(namespace)
        cache_key = (message, signature, public_key_line, namespace)
        with self._lock:
            cached = self._cache.get(cache_key)
        if cached is not None:
            return cached
        result = self._verify(message, signature, public_key_line, namespace)
        with self._lock:
            self._cache[cache_key] = result
        return result

    def verify_many(
        self,
        items: Sequence[tuple[bytes, str, str]],
        *,
        namespace: str = NAMESPACE,
        workers: int = 8,
    ) -> list[bool]:
        """verify() for each (message, signature, public key line), in order, `workers` at a time."""
        unique = list(dict.fromkeys(items))
        if len(unique) <= 1 or workers <= 1:
            results = {item: self.verify(*item, namespace=namespace) for item in unique}
        else:
            with ThreadPoolExecutor(max_workers=min(workers, len(unique))) as pool:
                verdicts = pool.map(lambda item: self.verify(*item, namespace=namespace), unique)
                results = dict(zip(unique, verdicts, strict=True))
        return [results[item] for item in items]

    def _verify(self, message: bytes, signature: str, public_key_line: str, namespace: str) -> bool:
        try:
            kind, blob, signed_namespace, _ = _parse_sshsig(signature)
            wanted_kind, wanted_blob = _parse_key_line(public_key_line)
        except (SignatureError, InvalidInput):
            return False
        # Cheap refusals first; ssh-keygen checks both again.
        if (kind, blob) != (wanted_kind, wanted_blob) or signed_namespace != namespace:
            return False
        with _private_dir() as tmp:
            allowed = tmp / "allowed_signers"
            # Rebuilt from the parsed key, so nothing in the caller's line reaches this file.
            allowed.write_text(f"{_PRINCIPAL} {_key_line(wanted_kind, wanted_blob)}\n", encoding="ascii")
            sig = tmp / "signature"
            sig.write_text(_armor(_armor_body(signature)), encoding="ascii")
            command = [
                "ssh-keygen", "-Y", "verify",
                "-f", str(allowed), "-I", _PRINCIPAL, "-n", namespace, "-s", str(sig),
            ]  # fmt: skip
            try:
                done = subprocess.run(
                    command,
                    input=message,
                    capture_output=True,
                    start_new_session=True,
                    timeout=_VERIFY_TIMEOUT,
                    check=False,
                )
            except FileNotFoundError as exc:
                raise SignatureError("ssh-keygen is not installed or not on PATH") from exc
            except subprocess.TimeoutExpired as exc:
                raise SignatureError("ssh-keygen -Y verify did not finish in time") from exc
        return done.returncode == 0


class FastVerifier:
    """Verifies Ed25519 signatures (ssh-ed25519 and sk-ssh-ed25519@openssh.com) in-process with
    the `cryptography` library, following the SSHSIG format exactly as `ssh-keygen -Y verify`
    does (same key, namespace, hash algorithm, and for security keys the user-presence flag);
    every other key type goes to ssh-keygen. Spawning ssh-keygen costs milliseconds per
    signature, which dominates `plan` on repositories with many approvals."""

    _HASHES: ClassVar[dict[bytes, Callable[[bytes], Any]]] = {
        b"sha256": hashlib.sha256, b"sha512": hashlib.sha512}

    def __init__(self, fallback: SshKeygenVerifier | None = None) -> None:
        self._fallback = fallback or SshKeygenVerifier()

    def verify(self, message: bytes, signature: str, public_key_line: str, *, namespace: str = NAMESPACE) -> bool:
        try:
            kind, key_blob = _parse_key_line(public_key_line)
        except InvalidInput:
            return False
        if kind not in ("ssh-ed25519", "sk-ssh-ed25519@openssh.com"):
            return self._fallback.verify(message, signature, public_key_line, namespace=namespace)
        try:
            return self._verify_ed25519(message, signature, kind, key_blob, namespace)
        except (SignatureError, ValueError, IndexError, struct.error):
            return False

    def verify_many(self, items: Sequence[tuple[bytes, str, str]], *, namespace: str = NAMESPACE,
                    workers: int = 8) -> list[bool]:
        fast = [self.verify(m, s, k, namespace=namespace) if _is_ed25519(k) else None for m, s, k in items]
        slow_idx = [i for i, r in enumerate(fast) if r is None]
        slow = self._fallback.verify_many([items[i] for i in slow_idx], namespace=namespace, workers=workers) \
            if slow_idx else []
        for i, r in zip(slow_idx, slow, strict=True):
            fast[i] = r
        return [bool(r) for r in fast]

    def _verify_ed25519(self, message: bytes, signature: str, kind: str, key_blob: bytes, namespace: str) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        data = _armor_body(signature)
        if not data.startswith(_MAGIC) or struct.unpack_from(">I", data, len(_MAGIC))[0] != 1:
            return False
        fields = _split_strings(data[len(_MAGIC) + 4:])
        if len(fields) != 5:
            return False
        sig_key, sig_namespace, reserved, hash_name, sig_blob = fields
        if sig_key != key_blob or sig_namespace != namespace.encode() or hash_name not in self._HASHES:
            return False
        signed = (_MAGIC + _wire(namespace.encode()) + _wire(reserved) + _wire(hash_name)
                  + _wire(self._HASHES[hash_name](message).digest()))
        sig_type, offset = _read_string(sig_blob, 0)
        raw, offset = _read_string(sig_blob, offset)
        if sig_type != kind.encode() or len(raw) != 64:
            return False
        key_fields = _split_strings(key_blob)
        public = Ed25519PublicKey.from_public_bytes(key_fields[1])
        if kind == "ssh-ed25519":
            if offset != len(sig_blob):
                return False
            to_check = signed
        else:
            if len(sig_blob) != offset + 5:
                return False
            flags = sig_blob[offset]
            counter = sig_blob[offset + 1: offset + 5]
            if not flags & 0x01:  # user presence, required by ssh-keygen unless no-touch-required
                return False
            application = key_fields[2]
            to_check = (hashlib.sha256(application).digest() + bytes([flags]) + counter
                        + hashlib.sha256(signed).digest())
        try:
            public.verify(raw, to_check)
        except InvalidSignature:
            return False
        return True


def _wire(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def _is_ed25519(line: str) -> bool:
    return line.lstrip().startswith(("ssh-ed25519 ", "sk-ssh-ed25519@openssh.com "))
