"""A software stand-in for a FIDO security key: makes sk-ssh-ed25519@openssh.com public keys and
SSHSIG signatures in exactly the wire format a hardware key produces (flags byte with user
presence, counter), so that the REAL `ssh-keygen -Y verify` accepts them. Test use only: the
point of sk- keys is that the private half never leaves hardware."""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

KEY_TYPE = b"sk-ssh-ed25519@openssh.com"
APPLICATION = b"ssh:"


def _s(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


@dataclass
class SoftSecurityKey:
    private: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    counter: int = 0

    def _pub_raw(self) -> bytes:
        return self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def blob(self) -> bytes:
        return _s(KEY_TYPE) + _s(self._pub_raw()) + _s(APPLICATION)

    def public_line(self, comment: str = "soft-sk") -> str:
        return f"{KEY_TYPE.decode()} {base64.b64encode(self.blob()).decode()} {comment}"

    def sign(self, message: bytes, namespace: str = "jitpol-approval") -> str:
        self.counter += 1
        flags = 0x01  # user presence
        signed_data = (b"SSHSIG" + _s(namespace.encode()) + _s(b"") + _s(b"sha512")
                       + _s(hashlib.sha512(message).digest()))
        to_sign = (hashlib.sha256(APPLICATION).digest() + bytes([flags]) + struct.pack(">I", self.counter)
                   + hashlib.sha256(signed_data).digest())
        raw = self.private.sign(to_sign)
        sig = _s(KEY_TYPE) + _s(raw) + bytes([flags]) + struct.pack(">I", self.counter)
        blob = (b"SSHSIG" + struct.pack(">I", 1) + _s(self.blob()) + _s(namespace.encode()) + _s(b"")
                + _s(b"sha512") + _s(sig))
        text = base64.b64encode(blob).decode()
        lines = [text[i:i + 70] for i in range(0, len(text), 70)]
        return "-----BEGIN SSH SIGNATURE-----\n" + "\n".join(lines) + "\n-----END SSH SIGNATURE-----\n"
