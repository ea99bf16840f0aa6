"""connectors.kit: the helpers every connector shares, table-driven."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from jitpol.connectors import kit
from jitpol.errors import PermanentTargetError, TargetUnavailable

# -- shown -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("alice", "'alice'"),
        (42, "42"),
        (None, "None"),
        ("a'b\"c", repr("a'b\"c")),
        ("line\nbreak\x00", "'line\\nbreak\\x00'"),  # control characters escaped, one line
        ("x" * 118, "'" + "x" * 118 + "'"),  # exactly SHOWN_MAX characters: whole
    ],
)
def test_shown_is_the_repr(value: object, expected: str) -> None:
    assert kit.shown(value) == expected


@pytest.mark.parametrize("length", [119, 200, 10_000])
def test_shown_cuts_a_long_value_to_one_length(length: int) -> None:
    text = kit.shown("x" * length)
    assert len(text) == kit.SHOWN_MAX == 120
    assert text.startswith("'xxx") and text.endswith("...")


def test_every_connector_shows_values_through_the_kit() -> None:
    from jitpol.connectors import base, sudoers

    assert base.shown is kit.shown
    for value in ("short", "y" * 500, {"k": "v" * 300}):  # the pure helper's copy agrees
        assert sudoers.shown(value) == kit.shown(value)


# -- redacted ----------------------------------------------------------------------------------

_TOKENS = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


@pytest.mark.parametrize(
    ("text", "secrets", "pattern", "limit", "expected"),
    [
        ("nothing secret", (), None, None, "nothing secret"),
        ("pw hunter2 rejected", ("hunter2",), None, None, "pw *** rejected"),
        ("a hunter2 b hunter2", ("hunter2",), None, None, "a *** b ***"),
        ("empty and None are no secrets", ("", None), None, None, "empty and None are no secrets"),
        ("dsn postgres://u:pw@h and pw", ("postgres://u:pw@h", "pw"), None, None, "dsn *** and ***"),
        ("many   spaces\nand\tlines", (), None, None, "many spaces and lines"),
        ("secret across\nlines", ("across\nlines",), None, None, "secret ***"),  # before collapsing
        ("Authorization: Bearer abc.def-123", (), _TOKENS, None, "Authorization: Bearer ***"),
        ("token eyJhbGciOiJI.eyJzdWIi.sig here", (), _TOKENS, None, "token *** here"),
        ("x" * 600, (), None, 500, "x" * 497 + "..."),
        ("short", (), None, 500, "short"),
    ],
)
def test_redacted(text: str, secrets: tuple[str | None, ...], pattern: re.Pattern[str] | None, limit: int | None,
                  expected: str) -> None:
    assert kit.redacted(text, secrets, pattern=pattern, limit=limit) == expected


# -- ceil_second -------------------------------------------------------------------------------

_T = datetime(1998, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (_T, _T),
        (_T + timedelta(microseconds=1), _T + timedelta(seconds=1)),
        (_T + timedelta(seconds=59, microseconds=999_999), _T + timedelta(minutes=1)),
        (_T.astimezone(timezone(timedelta(hours=2))) + timedelta(microseconds=5), _T + timedelta(seconds=1)),
    ],
)
def test_ceil_second_rounds_up_in_utc(given: datetime, expected: datetime) -> None:
    got = kit.ceil_second(given)
    assert got == expected and got.tzinfo == UTC and got.microsecond == 0
    assert got >= given  # never an end earlier than asked


# -- HTTP status -> error ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "also", "temporary"),
    [
        (429, (), True), (500, (), True), (502, (), True), (503, (), True), (504, (), True), (507, (), True),
        (400, (), False), (401, (), False), (403, (), False), (404, (), False), (409, (), False),
        (408, (), False), (408, (408,), True),  # Azure counts 408 (ARM's own timeout) as temporary
        (0, (), False),  # no status at all
    ],
)
def test_status_error(status: int, also: tuple[int, ...], temporary: bool) -> None:
    assert kit.temporary_status(status, also=also) is temporary
    error = kit.status_error(status, "target t: boom", also=also)
    assert type(error) is (TargetUnavailable if temporary else PermanentTargetError)
    assert str(error) == "target t: boom"


# -- the apply guard ---------------------------------------------------------------------------

_OPS = {"role-membership": ("grant", "revoke"), "credential-checkout": ("rotate",)}


@pytest.mark.parametrize(
    ("model", "op", "error"),
    [
        ("role-membership", "grant", None),
        ("role-membership", "revoke", None),
        ("credential-checkout", "rotate", None),
        ("credential-checkout", "grant",
         "target t: operation 'grant' is not supported for credential-checkout (only rotate)"),
        ("role-membership", "rotate",
         "target t: operation 'rotate' is not supported for role-membership (only grant and revoke)"),
        ("sudo-rule", "grant",
         "target t: model 'sudo-rule' is not supported (only credential-checkout, role-membership)"),
    ],
)
def test_check_apply(model: str, op: str, error: str | None) -> None:
    if error is None:
        kit.check_apply("t", model, op, _OPS)
        kit.check_model("t", model, _OPS)
    else:
        with pytest.raises(PermanentTargetError) as raised:
            kit.check_apply("t", model, op, _OPS)
        assert str(raised.value) == error


# -- name checks -------------------------------------------------------------------------------


def test_name_check_sends_principals_and_grants_to_their_own_check() -> None:
    seen: list[tuple[str, object]] = []
    check = kit.name_check(lambda v: seen.append(("principal", v)), lambda v: seen.append(("privilege", v)))
    check("alice", "principal")
    check("app_read", "privilege")
    check({"k": "v"}, "grants")  # anything but "principal" is a grants entry
    assert seen == [("principal", "alice"), ("privilege", "app_read"), ("privilege", {"k": "v"})]


@pytest.mark.parametrize("module", ["aws", "azure", "gcp"])
def test_the_cloud_name_checks_are_made_by_the_kit(module: str) -> None:
    import importlib

    from jitpol.errors import InvalidInput

    connector = importlib.import_module(f"jitpol.connectors.{module}")
    with pytest.raises(InvalidInput, match="principal"):
        connector.check_name("not an account", "principal")
    with pytest.raises(InvalidInput):
        connector.check_name("not a grant", "privilege")
