"""jitpol's generated secrets satisfy Active Directory's default complexity rule (three of: upper
case, lower case, digit, other), which refused about one plain token_urlsafe(24) in 800."""

from __future__ import annotations

from jitpol.execute.delivery import new_secret


def test_every_secret_has_upper_lower_and_digit_and_they_differ() -> None:
    drawn = [new_secret() for _ in range(3000)]
    assert len(set(drawn)) == len(drawn)
    for secret in drawn:
        assert len(secret) == 32 and all(c.isalnum() or c in "-_" for c in secret)
        assert any(c.isupper() for c in secret), secret
        assert any(c.islower() for c in secret), secret
        assert any(c.isdigit() for c in secret), secret
