"""jitpol.model, called directly: the value types and pure functions every layer shares —
canonical JSON and the digests approvals sign, references, durations, instants, SSH key lines,
assignments and actions. Table-driven."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from jitpol.model.assignment import Action, Assignment
from jitpol.model.canonical import (
    approval_message,
    canonical_json,
    grant_digest,
    policy_digest,
    policy_message,
)
from jitpol.model.documents import Person, Source, Target
from jitpol.model.duration import format_duration, parse_duration
from jitpol.model.refs import Ref
from jitpol.model.sshkey import checked_key, fingerprint, is_hardware_backed, split_key
from jitpol.model.times import EARLIEST, LATEST, clamped, in_range, shifted, utc_text
from tests.helpers.policyset import key_line

# -- canonical JSON and digests --------------------------------------------------------------------

CANONICAL: dict[str, tuple[Any, str]] = {
    "keys sorted, no whitespace": ({"b": 1, "a": [1, 2]}, '{"a":[1,2],"b":1}'),
    "UTF-8 kept": ({"name": "Zoë"}, '{"name":"Zoë"}'),
    "nested": ({"x": {"z": None, "y": True}}, '{"x":{"y":true,"z":null}}'),
}


@pytest.mark.parametrize(("value", "text"), CANONICAL.values(), ids=CANONICAL.keys())
def test_canonical_json(value: Any, text: str) -> None:
    assert canonical_json(value) == text


@pytest.mark.parametrize(("value", "error"), [(float("nan"), ValueError), ({1, 2}, TypeError)], ids=["nan", "set"])
def test_canonical_json_refuses(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        canonical_json(value)


GRANT = {"apiVersion": "jitpol/v1", "kind": "Grant", "metadata": {"name": "g", "labels": {"x": "y"}},
         "spec": {"requester": "alice", "approvals": [{"by": "lead"}]}}
GRANT_DIGEST = hashlib.sha256(b'{"apiVersion":"jitpol/v1","kind":"Grant","metadata":{"name":"g"},'
                              b'"spec":{"requester":"alice"}}').hexdigest()


@pytest.mark.parametrize(("change", "same"), [
    ({}, True),
    ({"spec": {"requester": "alice", "approvals": []}}, True),  # approvals are not signed
    ({"metadata": {"name": "g"}}, True),  # only the name of the metadata is
    ({"spec": {"requester": "bob", "approvals": [{"by": "lead"}]}}, False),
    ({"metadata": {"name": "h", "labels": {"x": "y"}}}, False),
    ({"kind": "Other"}, False),
], ids=["itself", "approvals changed", "other metadata", "spec edited", "renamed", "another kind"])
def test_grant_digest(change: dict[str, Any], same: bool) -> None:
    assert grant_digest(GRANT) == GRANT_DIGEST
    assert (grant_digest({**GRANT, **change}) == GRANT_DIGEST) is same


def test_policy_digest_ignores_order_and_sees_any_change() -> None:
    a = {"kind": "Person", "metadata": {"name": "alice"}, "spec": {"email": "a@example.com"}}
    b = {"kind": "Team", "metadata": {"name": "eng"}, "spec": {"members": ["alice"]}}
    assert policy_digest([a, b]) == policy_digest([b, a])
    assert policy_digest([a, b]) != policy_digest([a, {**b, "spec": {"members": []}}])
    items = [["Person", "alice", canonical_json(a)], ["Team", "eng", canonical_json(b)]]
    assert policy_digest([b, a]) == hashlib.sha256(canonical_json(items).encode()).hexdigest()


def test_the_signed_messages() -> None:
    assert approval_message("ab12") == b"jitpol-grant:ab12\n"
    assert policy_message("ab12") == b"jitpol-policy:ab12\n"


# -- references, durations, instants ---------------------------------------------------------------

@pytest.mark.parametrize(("text", "ref"), [
    ("person:alice", Ref("person", "alice")), ("team:sre", Ref("team", "sre")), ("team:a:b", Ref("team", "a:b")),
], ids=["person", "team", "colon in the name"])
def test_ref_parse(text: str, ref: Ref) -> None:
    assert Ref.parse(text) == ref and str(ref) == text


@pytest.mark.parametrize("text", ["alice", "group:ops", "person:", ":alice", ""])
def test_ref_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="is not a reference; write person:NAME or team:NAME"):
        Ref.parse(text)


DURATIONS: dict[str, tuple[str, timedelta, str]] = {
    "minutes": ("90m", timedelta(minutes=90), "1h30m"),
    "hours": ("4h", timedelta(hours=4), "4h"),
    "mixed": ("1d2h30m", timedelta(days=1, hours=2, minutes=30), "1d2h30m"),
    "seconds": ("45s", timedelta(seconds=45), "45s"),
    "days": ("7d", timedelta(days=7), "7d"),
}


@pytest.mark.parametrize(("text", "delta", "shortest"), DURATIONS.values(), ids=DURATIONS.keys())
def test_durations(text: str, delta: timedelta, shortest: str) -> None:
    assert parse_duration(text) == delta
    assert format_duration(delta) == shortest


@pytest.mark.parametrize(("text", "message"), [
    ("0h", "a duration must be longer than zero"), ("1h1d", "each unit once, largest first"),
    ("1h1h", "each unit once, largest first"), ("4 hours", "is not a duration"), ("", "is not a duration"),
    ("1w", "is not a duration"),
], ids=["zero", "smaller unit first", "a unit twice", "words", "empty", "weeks"])
def test_durations_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


def test_format_duration_of_nothing() -> None:
    assert format_duration(timedelta(0)) == "0s" and format_duration(timedelta(seconds=-5)) == "0s"


TIMES: dict[str, tuple[datetime | None, str]] = {
    "UTC": (datetime(1999, 3, 1, 10, 0, 5, 999, tzinfo=UTC), "1999-03-01T10:00:05Z"),
    "another offset": (datetime(1999, 3, 1, 12, tzinfo=timezone(timedelta(hours=2))), "1999-03-01T10:00:00Z"),
    "none": (None, ""),
    "a year before 1000": (datetime(999, 1, 2, tzinfo=UTC), "0999-01-02T00:00:00Z"),
}


@pytest.mark.parametrize(("t", "text"), TIMES.values(), ids=TIMES.keys())
def test_utc_text(t: datetime | None, text: str) -> None:
    assert utc_text(t) == text


def test_range_shift_and_clamp() -> None:
    assert in_range(EARLIEST) and in_range(LATEST) and not in_range(LATEST + timedelta(seconds=1))
    assert not in_range(EARLIEST - timedelta(seconds=1))
    t = datetime(1999, 3, 1, tzinfo=UTC)
    assert shifted(t, timedelta(days=1)) == datetime(1999, 3, 2, tzinfo=UTC)
    assert shifted(t, timedelta(days=9_000 * 366)) == datetime.max.replace(tzinfo=UTC)
    assert shifted(t, -timedelta(days=9_000 * 366)) == datetime.min.replace(tzinfo=UTC)
    assert clamped(t) == t
    assert clamped(datetime.min.replace(tzinfo=UTC)) == datetime(1, 1, 5, tzinfo=UTC)
    assert clamped(datetime.max.replace(tzinfo=UTC)) == datetime(9999, 12, 27, tzinfo=UTC)


# -- SSH key lines ---------------------------------------------------------------------------------

def test_fingerprint_is_openssh_sha256_of_the_blob() -> None:
    line = key_line("alice")
    blob = base64.b64decode(line.split()[1])
    assert split_key(line) == ("ssh-ed25519", blob)
    assert fingerprint(line) == "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    assert fingerprint(line) == fingerprint(line.rsplit(" ", 1)[0] + " another comment")


@pytest.mark.parametrize(("line", "message"), [
    ("ssh-ed25519", "not an SSH public key line"),
    ("ssh-ed25519 !!!notbase64", "not valid base64"),
    ("ssh-rsa " + key_line("alice").split()[1], "not an SSH public key of type ssh-rsa"),
    ("ssh-ed25519 " + base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519").decode(), "not an SSH public key of type"),
], ids=["no blob", "not base64", "blob of another type", "type without key"])
def test_checked_key_refuses(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        checked_key(line)


@pytest.mark.parametrize(("kind", "hardware"), [
    ("ssh-ed25519", False), ("sk-ssh-ed25519@openssh.com", True), ("sk-ecdsa-sha2-nistp256@openssh.com", True),
    ("ecdsa-sha2-nistp256", False),
])
def test_security_keys(kind: str, hardware: bool) -> None:
    line = key_line("alice", kind)
    assert checked_key(line) == line
    assert is_hardware_backed(line) is hardware


# -- documents, assignments, actions ---------------------------------------------------------------

ACCOUNTS: dict[str, tuple[dict[str, Any], Target, Any]] = {
    "by target name first": ({"db": "a1", "postgres": "a2"}, Target("db", "postgres", {}, Source("x")), "a1"),
    "then by type": ({"postgres": "a2"}, Target("db", "postgres", {}, Source("x")), "a2"),
    "none": ({"ldap": "a3"}, Target("db", "postgres", {}, Source("x")), None),
    "a local target falls back to ssh": ({"ssh": "alice"}, Target("host1", "local", {}, Source("x")), "alice"),
    "a local account wins over ssh": ({"ssh": "alice", "local": "al"}, Target("h", "local", {}, Source("x")), "al"),
}


@pytest.mark.parametrize(("accounts", "target", "account"), ACCOUNTS.values(), ids=ACCOUNTS.keys())
def test_person_account_for(accounts: dict[str, Any], target: Target, account: Any) -> None:
    assert Person("alice", "a@example.com", (), accounts, Source("x")).account_for(target) == account


def test_an_assignments_identity_leaves_out_its_end_and_owner() -> None:
    a = Assignment("db", "role-membership", "alice", "app_read")
    b = Assignment("db", "role-membership", "alice", "app_read", datetime(1999, 3, 1, tzinfo=UTC), True)
    assert a == b and hash(a) == hash(b) and a.key == ("db", "role-membership", "alice", "app_read")
    assert a != Assignment("db", "role-membership", "alice", "app_write")


@pytest.mark.parametrize(("op", "revoking"), [
    ("grant", False), ("create-account", False), ("revoke", True), ("delete-account", True), ("rotate", True),
])
def test_which_ops_revoke(op: Any, revoking: bool) -> None:
    assert Action(op, Assignment("db", "m", "p", "x"), "r", ()).revoking is revoking


def test_action_details() -> None:
    action = Action("grant", Assignment("db", "m", "alice", "x"), "r", ("g",),
                    details=(("person", "alice"), ("privileged", "allowed")))
    assert (action.detail("person"), action.detail("missing"), action.detail("missing", "-")) == ("alice", "", "-")
    assert action.privileged_allowed and (action.target, action.principal) == ("db", "alice")
    assert not Action("grant", Assignment("db", "m", "alice", "x"), "r", ()).privileged_allowed
