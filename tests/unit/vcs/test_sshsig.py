"""SSH approval signatures with the real ssh-keygen: round trips, every way a signature can be
wrong, key parsing, and fingerprints that match ssh-keygen's."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from jitpol.errors import InvalidInput, SignatureError
from jitpol.vcs import sshsig
from jitpol.vcs.sshsig import (
    NAMESPACE,
    SshKeygenVerifier,
    fingerprint,
    is_hardware_backed,
    key_type,
    parse_signature,
    public_key,
    sign,
    signature_key,
)

MESSAGE = b"jitpol-grant:4f1c0e8d1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5\n"
SK_ED25519 = (
    "sk-ssh-ed25519@openssh.com "
    "AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIK6JnWdGJQIY7qtADCJErhLRYKvxNQQYbQboQjnwniDYAAAABHNzaDo= "
    "alice@yubikey"
)
SK_ECDSA = (
    "sk-ecdsa-sha2-nistp256@openssh.com AAAAInNrLWVjZHNhLXNoYTItbmlzdHAyNTZAb3BlbnNzaC5jb20AAAAIbmlzdHAy"
    "NTYAAABBBC1xFkK3JrBEAWJ8qfusMvXIUw+xkDzE2wIlhxeSGkiBofzkNjhU/4iM/0uOeHXWAMJoI5BBKoz3mzfQsRFIsPoAAAAEc3NoOg=="
)
PASSPHRASE = "correct horse battery"


def keygen(directory: Path, name: str, *args: str, passphrase: str = "") -> Path:
    path = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-N", passphrase, "-C", f"{name}@test", "-f", str(path), *args],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return path


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("keys")
    return {
        "ed25519": keygen(directory, "ed25519", "-t", "ed25519"),
        "ecdsa": keygen(directory, "ecdsa", "-t", "ecdsa", "-b", "256"),
        "rsa": keygen(directory, "rsa", "-t", "rsa", "-b", "2048"),
        "other": keygen(directory, "other", "-t", "ed25519"),
        "locked": keygen(directory, "locked", "-t", "ed25519", passphrase=PASSPHRASE),
    }


@pytest.fixture
def no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


@pytest.fixture(scope="module")
def signatures(keys: dict[str, Path]) -> dict[str, str]:
    return {name: sign(MESSAGE, keys[name]) for name in ("ed25519", "ecdsa", "rsa")}


def pub(key: Path) -> str:
    return public_key(key)


def resign_blob(signature: str, edit: Callable[[bytes], bytes]) -> str:
    body = "".join(signature.strip().splitlines()[1:-1])
    data = edit(base64.b64decode(body))
    encoded = base64.b64encode(data).decode()
    return "-----BEGIN SSH SIGNATURE-----\n" + encoded + "\n-----END SSH SIGNATURE-----\n"


# --- signing and verifying --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ed25519", "ecdsa", "rsa"])
def test_round_trip(keys: dict[str, Path], signatures: dict[str, str], name: str) -> None:
    signature = signatures[name]
    assert signature.startswith("-----BEGIN SSH SIGNATURE-----\n")
    assert signature.endswith("-----END SSH SIGNATURE-----\n")
    assert SshKeygenVerifier().verify(MESSAGE, signature, pub(keys[name]))
    assert signature_key(signature) == pub(keys[name])
    info = parse_signature(signature)
    assert info.namespace == NAMESPACE and info.hash_algorithm == "sha512"


def test_public_key_line_with_comment_verifies(keys: dict[str, Path], signatures: dict[str, str]) -> None:
    line = (keys["ed25519"].parent / "ed25519.pub").read_text()
    assert line.strip().endswith("ed25519@test")
    assert SshKeygenVerifier().verify(MESSAGE, signatures["ed25519"], line)


def test_wrong_message(keys: dict[str, Path], signatures: dict[str, str]) -> None:
    assert not SshKeygenVerifier().verify(MESSAGE + b"x", signatures["ed25519"], pub(keys["ed25519"]))
    assert not SshKeygenVerifier().verify(b"", signatures["ecdsa"], pub(keys["ecdsa"]))


def test_wrong_key(keys: dict[str, Path], signatures: dict[str, str]) -> None:
    assert not SshKeygenVerifier().verify(MESSAGE, signatures["ed25519"], pub(keys["other"]))
    assert not SshKeygenVerifier().verify(MESSAGE, signatures["ed25519"], pub(keys["ecdsa"]))


def test_wrong_namespace(keys: dict[str, Path], signatures: dict[str, str]) -> None:
    verifier = SshKeygenVerifier()
    assert not verifier.verify(MESSAGE, signatures["ed25519"], pub(keys["ed25519"]), namespace="git")
    other_ns = sign(MESSAGE, keys["ed25519"], namespace="file")
    assert not verifier.verify(MESSAGE, other_ns, pub(keys["ed25519"]))
    assert verifier.verify(MESSAGE, other_ns, pub(keys["ed25519"]), namespace="file")


def test_tampered_signature_bytes(keys: dict[str, Path], signatures: dict[str, str]) -> None:
    tampered = resign_blob(signatures["ed25519"], lambda d: d[:-1] + bytes([d[-1] ^ 1]))
    assert signature_key(tampered) == pub(keys["ed25519"])  # still parses
    assert not SshKeygenVerifier().verify(MESSAGE, tampered, pub(keys["ed25519"]))


def test_signature_claiming_another_key_fails(keys: dict[str, Path], signatures: dict[str, str]) -> None:
    """Swap the signer key inside the SSHSIG blob: the claim now matches, the math does not."""
    mine = base64.b64decode(pub(keys["ed25519"]).split()[1])
    theirs = base64.b64decode(pub(keys["other"]).split()[1])
    forged = resign_blob(signatures["ed25519"], lambda d: d.replace(mine, theirs))
    assert signature_key(forged) == pub(keys["other"])
    assert not SshKeygenVerifier().verify(MESSAGE, forged, pub(keys["other"]))


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "hello",
        "-----BEGIN SSH SIGNATURE-----\n!!!!\n-----END SSH SIGNATURE-----\n",
        "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n",  # just "SSHSIG"
        "-----BEGIN SSH SIGNATURE-----\nQUJDREVGR0g=\n-----END SSH SIGNATURE-----\n",
        "-----BEGIN PGP SIGNATURE-----\nAAAA\n-----END PGP SIGNATURE-----\n",
        "x" * 100_000,
    ],
)
def test_garbage_signatures_are_false_not_errors(keys: dict[str, Path], garbage: str) -> None:
    assert not SshKeygenVerifier().verify(MESSAGE, garbage, pub(keys["ed25519"]))
    with pytest.raises(SignatureError):
        signature_key(garbage)


def test_truncated_signature(keys: dict[str, Path], signatures: dict[str, str]) -> None:
    truncated = resign_blob(signatures["ed25519"], lambda d: d[:40])
    assert not SshKeygenVerifier().verify(MESSAGE, truncated, pub(keys["ed25519"]))
    with pytest.raises(SignatureError, match="malformed"):
        signature_key(truncated)


def test_malformed_public_key_is_false(signatures: dict[str, str]) -> None:
    assert not SshKeygenVerifier().verify(MESSAGE, signatures["ed25519"], "ssh-ed25519 not-base64!")
    assert not SshKeygenVerifier().verify(MESSAGE, signatures["ed25519"], "")


def test_signature_reformatted_in_yaml_still_verifies(
    keys: dict[str, Path], signatures: dict[str, str]
) -> None:
    lines = signatures["ed25519"].strip().splitlines()
    reflowed = "  " + lines[0] + "\n" + "".join(lines[1:-1]) + "\n" + lines[-1]  # one long body line
    assert SshKeygenVerifier().verify(MESSAGE, reflowed, pub(keys["ed25519"]))


def test_results_are_cached(
    keys: dict[str, Path], signatures: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier = SshKeygenVerifier()
    assert verifier.verify(MESSAGE, signatures["ed25519"], pub(keys["ed25519"]))
    assert not verifier.verify(MESSAGE + b"!", signatures["ed25519"], pub(keys["ed25519"]))
    monkeypatch.setenv("PATH", "/nonexistent")  # ssh-keygen can no longer run
    assert verifier.verify(MESSAGE, signatures["ed25519"], pub(keys["ed25519"]))
    assert not verifier.verify(MESSAGE + b"!", signatures["ed25519"], pub(keys["ed25519"]))
    with pytest.raises(SignatureError, match="not installed"):
        verifier.verify(MESSAGE, signatures["ecdsa"], pub(keys["ecdsa"]))


def test_verify_many_keeps_order(keys: dict[str, Path], signatures: dict[str, str]) -> None:
    good_ed = (MESSAGE, signatures["ed25519"], pub(keys["ed25519"]))
    good_ec = (MESSAGE, signatures["ecdsa"], pub(keys["ecdsa"]))
    bad = (MESSAGE, signatures["ecdsa"], pub(keys["ed25519"]))
    items = [good_ed, bad, good_ec, good_ed, (b"other", signatures["rsa"], pub(keys["rsa"])), bad]
    assert SshKeygenVerifier().verify_many(items) == [True, False, True, True, False, False]
    assert SshKeygenVerifier().verify_many(items, workers=1) == [True, False, True, True, False, False]
    assert SshKeygenVerifier().verify_many([]) == []


# --- signing failures and the agent -----------------------------------------------------------


def test_sign_missing_key(tmp_path: Path) -> None:
    with pytest.raises(SignatureError, match="not found"):
        sign(MESSAGE, tmp_path / "nope")


@pytest.mark.usefixtures("no_agent")
def test_sign_with_a_passphrase_key_and_no_agent_fails_fast(keys: dict[str, Path]) -> None:
    start = time.monotonic()
    with pytest.raises(SignatureError, match="passphrase"):
        sign(MESSAGE, keys["locked"])
    assert time.monotonic() - start < 10


def test_public_key_of_a_passphrase_key(keys: dict[str, Path], tmp_path: Path) -> None:
    assert key_type(public_key(keys["locked"])) == "ssh-ed25519"  # from locked.pub
    alone = tmp_path / "locked-copy"
    alone.write_bytes(keys["locked"].read_bytes())
    alone.chmod(0o600)
    with pytest.raises(SignatureError, match="passphrase"):
        public_key(alone)


def test_public_key_without_a_pub_file(keys: dict[str, Path], tmp_path: Path) -> None:
    alone = tmp_path / "id"
    alone.write_bytes(keys["ecdsa"].read_bytes())
    alone.chmod(0o600)
    assert public_key(alone) == public_key(keys["ecdsa"])
    assert public_key(Path(str(keys["ecdsa"]) + ".pub")) == public_key(keys["ecdsa"])
    assert "@test" not in public_key(keys["ecdsa"])  # comment dropped


def test_public_key_missing(tmp_path: Path) -> None:
    with pytest.raises(SignatureError, match="not found"):
        public_key(tmp_path / "nope")


def test_sign_through_ssh_agent(
    keys: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A passphrase key loaded into ssh-agent signs without any prompt."""
    socket_path = tmp_path / "agent.sock"
    agent = subprocess.run(
        ["ssh-agent", "-s", "-a", str(socket_path)], check=True, capture_output=True, text=True
    )
    pid = int(agent.stdout.split("SSH_AGENT_PID=")[1].split(";")[0])
    try:
        askpass = tmp_path / "askpass.sh"
        askpass.write_text(f"#!/bin/sh\necho '{PASSPHRASE}'\n")
        askpass.chmod(0o700)
        env = {
            **os.environ,
            "SSH_AUTH_SOCK": str(socket_path),
            "SSH_ASKPASS": str(askpass),
            "SSH_ASKPASS_REQUIRE": "force",
            "DISPLAY": ":0",
        }
        subprocess.run(["ssh-add", "-q", str(keys["locked"])], check=True, env=env, stdin=subprocess.DEVNULL)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(socket_path))
        signature = sign(MESSAGE, keys["locked"])
        assert SshKeygenVerifier().verify(MESSAGE, signature, public_key(keys["locked"]))
    finally:
        os.kill(pid, signal.SIGTERM)


# --- keys and fingerprints --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ed25519", "ecdsa", "rsa", "locked"])
def test_fingerprint_matches_ssh_keygen(keys: dict[str, Path], name: str) -> None:
    listed = subprocess.run(
        ["ssh-keygen", "-lf", str(keys[name]) + ".pub"], check=True, capture_output=True, text=True
    ).stdout.split()[1]
    assert listed.startswith("SHA256:")
    assert fingerprint(pub(keys[name])) == listed
    assert fingerprint((keys[name].parent / f"{name}.pub").read_text()) == listed


def test_fingerprint_of_a_security_key_matches_ssh_keygen(tmp_path: Path) -> None:
    line = tmp_path / "sk.pub"
    line.write_text(SK_ED25519 + "\n")
    listed = subprocess.run(["ssh-keygen", "-lf", str(line)], check=True, capture_output=True, text=True)
    assert fingerprint(SK_ED25519) == listed.stdout.split()[1]


def test_key_types_and_hardware_backing(keys: dict[str, Path]) -> None:
    assert key_type(pub(keys["ed25519"])) == "ssh-ed25519"
    assert key_type(pub(keys["ecdsa"])) == "ecdsa-sha2-nistp256"
    assert key_type(pub(keys["rsa"])) == "ssh-rsa"
    assert key_type(SK_ED25519) == "sk-ssh-ed25519@openssh.com"
    assert is_hardware_backed(SK_ED25519)
    assert is_hardware_backed(SK_ECDSA)
    assert not is_hardware_backed(pub(keys["ed25519"]))
    assert not is_hardware_backed(pub(keys["ecdsa"]))


def _blob(line: str) -> bytes:
    return base64.b64decode(line.split()[1])


@pytest.mark.parametrize(
    "line",
    [
        "",
        "ssh-ed25519",
        "ssh-ed25519 not*base64",
        "ssh-dss AAAAB3NzaC1kc3M=",  # DSA is not accepted
        "ssh-ed25519-cert-v01@openssh.com AAAA",
        # the type on the line differs from the type inside the blob
        "ssh-rsa " + SK_ED25519.split()[1],
        # trailing bytes after the key fields
        "sk-ssh-ed25519@openssh.com "
        + base64.b64encode(base64.b64decode(SK_ED25519.split()[1]) + b"\0").decode(),
        # a truncated blob
        "sk-ssh-ed25519@openssh.com "
        + base64.b64encode(base64.b64decode(SK_ED25519.split()[1])[:30]).decode(),
    ],
)
def test_malformed_key_lines(line: str) -> None:
    with pytest.raises(InvalidInput):
        fingerprint(line)
    with pytest.raises(InvalidInput):
        key_type(line)


def test_namespace_is_checked(keys: dict[str, Path]) -> None:
    with pytest.raises(ValueError):
        sign(MESSAGE, keys["ed25519"], namespace="-O evil")
    with pytest.raises(ValueError):
        SshKeygenVerifier().verify(MESSAGE, "x", "y", namespace="")


def test_module_constant() -> None:
    assert sshsig.NAMESPACE == "jitpol-approval"
