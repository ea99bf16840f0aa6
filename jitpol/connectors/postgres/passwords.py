"""Stored password verifiers: whether a role's SCRAM-SHA-256 or md5 verifier already verifies a
password (so the same action applied again does not set it again). Needs no psycopg."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

_B64 = r"[A-Za-z0-9+/]+={0,2}"
_SCRAM_VERIFIER = re.compile(rf"SCRAM-SHA-256\$([0-9]{{1,7}}):({_B64})\$({_B64}):({_B64})")
# a stored verifier with more iterations is not re-derived (it would stall the run): the
# password is set again instead
_MAX_SCRAM_ITERATIONS = 100_000


def password_matches(stored: str | None, password: str, role: str) -> bool:
    """True only when `stored` (pg_authid.rolpassword of `role`) is known to verify `password`:
    a SCRAM-SHA-256 verifier (RFC 5802/7677) or an md5 hash. False when it does not, when there
    is none, and when this cannot tell (a non-ASCII password, which the server would SASLprep;
    an unknown format; an absurd iteration count) — the caller then sets the password again."""
    if not stored or not password.isascii():
        # ASCII needs no SASLprep: the server hashes exactly these bytes
        return False
    if stored.startswith("md5") and len(stored) == 35:
        expected = "md5" + hashlib.md5((password + role).encode(), usedforsecurity=False).hexdigest()
        return hmac.compare_digest(stored, expected)
    match = _SCRAM_VERIFIER.fullmatch(stored)
    if match is None:
        return False
    iterations = int(match.group(1))
    if not 0 < iterations <= _MAX_SCRAM_ITERATIONS:
        return False
    try:
        salt, stored_key, server_key = (base64.b64decode(match.group(i), validate=True) for i in (2, 3, 4))
    except binascii.Error:
        return False
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return hmac.compare_digest(hashlib.sha256(client_key).digest(), stored_key) and hmac.compare_digest(
        server, server_key
    )
