"""jitpol's ownership marker on Azure: the fixed text "jitpol: grant=<grant name>" written into a
role assignment's description (plain) or a PIM schedule request's justification, and how a text
read back is recognised as one. Only fixed text and an allow-listed grant name ever go there."""

from __future__ import annotations

import re

from jitpol.model.assignment import Action

MARKER = "jitpol"
_GRANT_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
# what counts as marked: the marker, alone or with a grant name; also the justification PIM
# requests carried before markers existed ("jitpol: <grant>, <grant>")
_MARKED = re.compile(
    rf"{MARKER}(?:: grant={_GRANT_NAME.pattern}|: {_GRANT_NAME.pattern}(?:, {_GRANT_NAME.pattern})*)?"
)


def marker(action: Action) -> str:
    """The ownership marker for what `action` grants: "jitpol: grant=<name>" for the grant it
    serves first when that name passes the allowlist, else "jitpol"."""
    name = action.detail("grant") or (action.grants[0] if action.grants else "")
    return f"{MARKER}: grant={name}" if _GRANT_NAME.fullmatch(name) else MARKER


def is_marked(text: str | None) -> bool:
    """Does a description or justification carry jitpol's marker?"""
    return text is not None and _MARKED.fullmatch(text) is not None
