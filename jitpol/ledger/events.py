"""The ledger's event kinds: one typed definition per kind, shared by the code that writes them
(jitpol.execute, notify) and the code that reads them (policy.history, report, notify).

`schemas/ledger-event.json` is the same contract as a JSON Schema (for tools outside jitpol and
for the tests, which check that the two agree and that every line a run writes conforms). The
bodies here are what a writer hands to the ledger: the chain keys (seq, prev, hash) are added
when the line is sealed, `time` and `policy_commit` by the run. Fields that older runs did not
write are NotRequired, and readers must tolerate their absence.

No `from __future__ import annotations` here: Python 3.11 computes a TypedDict's required keys
correctly only from evaluated annotations (NotRequired inside a string is not seen).
"""


import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal, NotRequired, TypedDict

SCHEMA_FILE = "ledger-event.json"

OpName = Literal["grant", "revoke", "create-account", "delete-account", "rotate"]


class AssignmentRef(TypedDict):
    target: str
    model: str
    principal: str
    privilege: str


class Escrow(TypedDict):
    target: str
    secret: str
    version: str | int | None


class _Body(TypedDict):
    """What every event's writer gives (the run adds `time` and `policy_commit`, the ledger the
    chain keys)."""

    event: str
    grant: str | None


class ActionStarted(_Body):
    op: OpName
    target: str
    model: str
    principal: str
    privilege: str
    grants: list[str]


class ActionFailed(ActionStarted):
    error: str


class DriftCorrected(_Body):
    op: OpName
    target: str
    model: str
    principal: str
    privilege: str
    resource: NotRequired[str]
    changed: bool


class _Delivery(TypedDict, total=False):
    fingerprint: str
    delivered: bool
    delivered_to: list[str]
    escrow: Escrow


class CredentialRotated(_Body, _Delivery):
    target: str
    account: str
    holders: list[str]
    until: NotRequired[str | None]


class AccountCreated(_Body, _Delivery):
    target: str
    account: str
    groups: NotRequired[str]
    until: NotRequired[str | None]


class AccountDeleted(_Body):
    target: str
    account: str


class GrantActivated(_Body):
    digest: str
    requester: NotRequired[str]
    resource: NotRequired[str]
    role: NotRequired[str | None]
    start: NotRequired[str]
    end: NotRequired[str]
    until: str
    approvals: NotRequired[list[dict[str, Any]]]
    breakglass: NotRequired[bool]
    justification: NotRequired[str]
    assignments: list[AssignmentRef]
    standing: NotRequired[list[AssignmentRef]]


class GrantRevoked(_Body):
    final: bool
    reason: str
    assignments: list[AssignmentRef]


class GrantRejected(_Body):
    reason: str
    digest: NotRequired[str | None]


class PolicyApproval(TypedDict):
    by: str
    key: str


class TrustRootRef(TypedDict, total=False):
    version: int
    digest: str
    signers: list[str]


class PolicyAdopted(_Body):
    digest: str
    previous: NotRequired[str | None]
    bootstrap: NotRequired[bool]
    approvals: list[PolicyApproval]
    summary: NotRequired[str]
    trust_root: NotRequired[TrustRootRef | None]


class MfaChecked(_Body):
    digest: str
    factor: str
    result: str
    error: NotRequired[str]


class NotificationSent(_Body):
    kind: str
    key: str
    channel: str
    to: NotRequired[list[str]]


# event name -> its definition (the schema's $defs carry the same names)
KINDS: dict[str, type] = {
    "action.started": ActionStarted,
    "action.failed": ActionFailed,
    "drift.corrected": DriftCorrected,
    "credential.rotated": CredentialRotated,
    "account.created": AccountCreated,
    "account.deleted": AccountDeleted,
    "grant.activated": GrantActivated,
    "grant.revoked": GrantRevoked,
    "grant.rejected": GrantRejected,
    "policy.adopted": PolicyAdopted,
    "mfa.checked": MfaChecked,
    "notification.sent": NotificationSent,
}


def assignment_ref(key: tuple[str, str, str, str]) -> AssignmentRef:
    return {"target": key[0], "model": key[1], "principal": key[2], "privilege": key[3]}


@cache
def schema() -> dict[str, Any]:
    """schemas/ledger-event.json, read once."""
    path = Path(__file__).resolve().parent.parent / "schemas" / SCHEMA_FILE
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def problems(event: Mapping[str, Any]) -> list[str]:
    """Where a sealed ledger line departs from the schema ([] when it conforms): for `audit`
    tools and the tests. Never used to decide access: readers tolerate what older runs wrote."""
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(event)'}: {e.message}"
            for e in sorted(_validator().iter_errors(dict(event)), key=lambda e: list(e.absolute_path))]


@cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema(), format_checker=Draft202012Validator.FORMAT_CHECKER)
