"""Okta names: user ids (a person's `accounts.okta`), group ids (a resource role's `grants`
entry), factor ids, check_name (the policy loader's hook) and quoting of a path segment. Pure."""

from __future__ import annotations

import re
import urllib.parse

from jitpol.connectors.kit import name_check, shown
from jitpol.errors import InvalidInput

MODEL = "idp-elevation"
OPS = {MODEL: ("grant", "revoke")}
NATIVE_EXPIRY = False  # Okta has no expiring group memberships: the reconciler must run

# Okta object ids: a type prefix (00u user, 00g group) and letters/digits, 20 characters in practice
USER_ID = re.compile(r"00u[A-Za-z0-9]{1,61}")
GROUP_ID = re.compile(r"00g[A-Za-z0-9]{1,61}")
FACTOR_ID = re.compile(r"[A-Za-z0-9]{1,64}")


def check_user(value: object) -> None:
    """InvalidInput unless `value` is an Okta user id."""
    _check(value, USER_ID, "an Okta user id (00u + letters/digits, e.g. 00ub0oNGTSWTBKOLGLNR), not a login")


def check_group(value: object) -> None:
    """InvalidInput unless `value` is an Okta group id."""
    _check(value, GROUP_ID, "an Okta group id (00g + letters/digits, e.g. 00g1abcdEFGH2345ijk7), not a name")


# the policy loader's hook: `what` is "principal" for a person's `accounts.okta` (an Okta user
# id), anything else for a resource's grants entry (an Okta group id). Needs no SDK.
check_name = name_check(check_user, check_group)


def _check(value: object, pattern: re.Pattern[str], allowed: str) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidInput(f"{shown(value)} is not valid: use {allowed}")


def q(segment: str) -> str:
    """`segment` quoted for one path segment of an Okta URL (no / left)."""
    return urllib.parse.quote(segment, safe="")
