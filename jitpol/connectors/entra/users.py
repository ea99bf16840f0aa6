"""Ending a person's sign-in sessions when jitpol takes access away:
`POST /users/{id}/revokeSignInSessions`, which "invalidates all the refresh tokens issued to
applications for a user (as well as session cookies in a user's browser)".

What it cannot do, said in the outcome's operations instead of failing the revocation (the
access itself is already gone): access tokens already issued stay valid until they expire
(about an hour; sooner where continuous access evaluation applies), Entra may take a few minutes
to apply it, it "doesn't revoke sign-in sessions for external users, because external users sign
in through their home tenant" (userType Guest), and Graph refuses it for an identity that may not
(403, e.g. a user holding a more privileged role than the app may manage). An object that is no
user (a group or service principal member) has no sign-in sessions.
"""

from __future__ import annotations

from typing import Any

from jitpol.connectors.entra.session import GraphSession, graph_error

TOKENS_NOTE = "access tokens already issued stay valid until they expire"


def revoke_sessions(session: GraphSession, principal: str, *, check: bool) -> str:
    """End the user's sign-in sessions; the operation line (with what could not be done)."""
    operation = f"POST /users/{principal}/revokeSignInSessions"
    if check:
        return operation

    async def work(client: Any) -> str:
        from kiota_abstractions.api_error import APIError
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder

        user = client.users.by_user_id(principal)
        try:
            query = UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(select=["id", "userType"])
            found = await user.get(request_configuration=RequestConfiguration(query_parameters=query))
            if found is not None and str(found.user_type or "").lower() == "guest":
                return (f"{operation} not sent: {principal} is an external (guest) user, whose sessions Entra "
                        "does not revoke (they sign in at their home tenant)")
            await user.revoke_sign_in_sessions.post()
        except APIError as exc:
            status, code, message = graph_error(exc)
            if status == 404:
                return f"{operation} not done: {principal} is no user (no sign-in sessions)"
            detail = session.redact(" ".join(p for p in (f"HTTP {status}" if status else "", code or "", message) if p))
            return (f"{operation} not done ({detail}): the user's refresh tokens and browser sessions stay valid "
                    "until they expire")
        return f"{operation} ({TOKENS_NOTE})"

    try:
        return session.run(f"revoke the sign-in sessions of {principal}", work)
    except Exception as exc:  # noqa: BLE001 - access is already gone; say what was not done instead of failing
        return (f"{operation} not done ({exc}): the user's refresh tokens and browser sessions stay valid "
                "until they expire")
