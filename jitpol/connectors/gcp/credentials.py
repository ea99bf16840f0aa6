"""Google credentials for the connector: from the JSON (or the file it names) in the variable
`credentials_env` names, loaded by the one loader for its type (never the generic loader, which
would also run an executable named in an external account config), else Application Default
Credentials. Key material never reaches a message: `redact` cuts out what looks like it."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from jitpol.connectors.kit import redacted
from jitpol.errors import PermanentTargetError

if TYPE_CHECKING:
    from google.auth.credentials import Credentials

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)

_SECRETS = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+|ya29\.[A-Za-z0-9._-]+|-----BEGIN [A-Z ]+-----[^-]*")


def redact(text: str) -> str:
    """`text` for a message: tokens and key blocks cut out, on one line, at most 500 characters."""
    return redacted(text, pattern=_SECRETS, limit=500)


def load_credentials(target: str, credentials_env: str | None, env: Mapping[str, str]) -> Credentials:
    """The credentials for target `target`: from the variable `credentials_env` names in `env`
    (JSON, or a path to a JSON file), or Application Default Credentials when it is None.
    Raises PermanentTargetError saying what is missing or wrong."""
    import google.auth
    from google.auth import exceptions as aexc

    if credentials_env is None:
        try:
            creds, _ = google.auth.default(scopes=SCOPES)
        except aexc.DefaultCredentialsError as exc:
            raise PermanentTargetError(
                f"target {target}: no Google credentials: set credentials_env, or configure Application "
                f"Default Credentials (workload identity in CI): {redact(str(exc))}"
            ) from None
        default: Credentials = creds
        return default
    text = env.get(credentials_env)
    if not text:
        raise PermanentTargetError(
            f"target {target}: environment variable {credentials_env} (credentials_env) is not set"
        )
    if not text.lstrip().startswith("{"):  # a path to the JSON file
        try:
            with open(text.strip(), encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise PermanentTargetError(
                f"target {target}: the credentials file named in {credentials_env} cannot be read "
                f"({type(exc).__name__})"
            ) from None
    try:
        info = json.loads(text)
    except ValueError:
        raise PermanentTargetError(
            f"target {target}: {credentials_env} does not hold (or name a file of) valid JSON credentials"
        ) from None
    return _credentials_from_info(target, info, credentials_env)


def _credentials_from_info(target: str, info: object, env: str) -> Credentials:
    """Credentials of the one kind the JSON says it is. Type-specific loaders on purpose: the
    generic loader would also run an executable named in an external account config."""
    from google.auth import exceptions as aexc

    kind = info.get("type") if isinstance(info, dict) else None
    source = info.get("credential_source") if isinstance(info, dict) else None
    try:
        if kind == "service_account":
            from google.oauth2 import service_account

            sa: Credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                info, scopes=SCOPES
            )
            return sa
        if kind == "external_account" and isinstance(source, dict) and "executable" not in source:
            # workload identity federation: an OIDC token from a file or URL (CI), or AWS
            if "environment_id" in source:
                from google.auth import aws

                fed: Credentials = aws.Credentials.from_info(info, scopes=SCOPES)  # type: ignore[no-untyped-call]
            else:
                from google.auth import identity_pool

                fed = identity_pool.Credentials.from_info(info, scopes=SCOPES)  # type: ignore[no-untyped-call]
            return fed
        if kind == "authorized_user":
            from google.oauth2 import credentials as user_credentials

            user: Credentials = user_credentials.Credentials.from_authorized_user_info(  # type: ignore[no-untyped-call]
                info, scopes=list(SCOPES)
            )
            return user
    except (aexc.GoogleAuthError, ValueError, TypeError, KeyError):
        # the library's message may quote the key material: say only what kind it was
        raise PermanentTargetError(
            f"target {target}: the credentials in {env} (type {kind!r}) could not be loaded"
        ) from None
    raise PermanentTargetError(
        f"target {target}: the credentials in {env} must be a service_account key, an external_account "
        "(workload identity federation, not executable-sourced) or an authorized_user JSON"
    )
