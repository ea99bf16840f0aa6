"""jitpol's ownership marker on Azure: the fixed text "jitpol: grant=<grant name>" written into a
role assignment's description (plain) or a PIM schedule request's justification, and how a text
read back is recognised as one. Only fixed text and an allow-listed grant name ever go there."""

from __future__ import annotations

import re

from jitpol.connectors.kit import GRANT_MARKER as MARKER
from jitpol.connectors.kit import GRANT_NAME as _GRANT_NAME
from jitpol.connectors.kit import grant_marker as marker

__all__ = ["MARKER", "is_marked", "marker"]
# what counts as marked: the marker, alone or with a grant name; also the justification PIM
# requests carried before markers existed ("jitpol: <grant>, <grant>")
_MARKED = re.compile(
    rf"{MARKER}(?:: grant={_GRANT_NAME.pattern}|: {_GRANT_NAME.pattern}(?:, {_GRANT_NAME.pattern})*)?"
)


def is_marked(text: str | None) -> bool:
    """Does a description or justification carry jitpol's marker?"""
    return text is not None and _MARKED.fullmatch(text) is not None
