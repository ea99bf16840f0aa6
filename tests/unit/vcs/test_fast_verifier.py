"""FastVerifier must agree with `ssh-keygen -Y verify` on every case, valid or forged."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from jitpol.vcs.sshsig import FastVerifier, SshKeygenVerifier, sign
from tests.helpers.sk import SoftSecurityKey


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("k")
    out = {}
    for kind in ("ed25519", "ecdsa"):
        p = d / kind
        subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(p)], check=True)
        out[kind] = p
    return out


def cases(keys: dict[str, Path]) -> list[tuple[bytes, str, str, str]]:
    ed = Path(str(keys["ed25519"]) + ".pub").read_text().strip()
    ec = Path(str(keys["ecdsa"]) + ".pub").read_text().strip()
    s_ed = sign(b"msg", keys["ed25519"])
    s_ec = sign(b"msg", keys["ecdsa"])
    sk = SoftSecurityKey()
    s_sk = sk.sign(b"msg")
    other = SoftSecurityKey()
    tampered = s_ed.replace(s_ed.splitlines()[3][:4], "AAAA", 1)
    return [
        (b"msg", s_ed, ed, "jitpol-approval"), (b"msx", s_ed, ed, "jitpol-approval"),
        (b"msg", s_ed, ed, "other-ns"), (b"msg", tampered, ed, "jitpol-approval"),
        (b"msg", s_ec, ec, "jitpol-approval"), (b"msg", s_ec, ed, "jitpol-approval"),
        (b"msg", s_sk, sk.public_line(), "jitpol-approval"), (b"msg!", s_sk, sk.public_line(), "jitpol-approval"),
        (b"msg", s_sk, other.public_line(), "jitpol-approval"), (b"msg", "garbage", ed, "jitpol-approval"),
        (b"msg", s_sk, ed, "jitpol-approval"),
    ]


def test_fast_verifier_agrees_with_ssh_keygen(keys: dict[str, Path]) -> None:
    slow, fast = SshKeygenVerifier(), FastVerifier()
    results = []
    for message, signature, key, ns in cases(keys):
        expected = slow.verify(message, signature, key, namespace=ns)
        assert fast.verify(message, signature, key, namespace=ns) == expected, (message, key[:20], ns)
        results.append(expected)
    assert results.count(True) == 3  # ed25519, ecdsa (via ssh-keygen) and the security key
    items = [(m, s, k) for m, s, k, ns in cases(keys) if ns == "jitpol-approval"]
    assert fast.verify_many(items) == slow.verify_many(items)


def test_security_key_without_user_presence_is_refused() -> None:
    sk = SoftSecurityKey()
    sig = sk.sign(b"m")
    import base64
    body = "".join(sig.splitlines()[1:-1])
    raw = bytearray(base64.b64decode(body))
    raw[-5] = 0  # the flags byte sits before the 4-byte counter at the very end
    text = base64.b64encode(bytes(raw)).decode()
    forged = "-----BEGIN SSH SIGNATURE-----\n" + text + "\n-----END SSH SIGNATURE-----\n"
    assert SshKeygenVerifier().verify(b"m", forged, sk.public_line()) is False
    assert FastVerifier().verify(b"m", forged, sk.public_line()) is False
