"""OktaConnector and send_push_and_wait with the real okta SDK against tests/doubles/okta.py:
names, pagination, sessions on revoke, errors without the token, outages, group types, the
Okta Verify push, and the lazy SDK import."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from jitpol.connectors.okta import NATIVE_EXPIRY, OktaConnector, check_name, send_push_and_wait
from jitpol.errors import InvalidInput, PermanentTargetError, TargetUnavailable
from jitpol.model.assignment import Action, Assignment, Op, Scope
from tests.doubles.okta import PushAnswer, okta_id
from tests.doubles.server import closed_port
from tests.okta_fixtures import *  # noqa: F403 (the `okta` fixture)
from tests.okta_fixtures import OKTA_TARGET, TOKEN_ENV, OktaWorld

MODEL = "idp-elevation"
REPO = Path(__file__).resolve().parents[2]


def act(op: Op, user: str, group: str) -> Action:
    return Action(op=op, assignment=Assignment(OKTA_TARGET, MODEL, user, group), resource="r", grants=("g",))


def scope(*groups: str) -> Scope:
    return Scope(target=OKTA_TARGET, model=MODEL, privileges=frozenset(groups))


def sent(world: OktaWorld) -> list[str]:
    return [f"{r.method} {r.path}" for r in world.double.requests]


# -- names and settings, without the SDK --------------------------------------------------------


def test_importing_the_module_does_not_import_the_sdk() -> None:
    code = (
        "import sys, jitpol.connectors.okta as m\n"
        "m.check_name('00g1abcdEFGH2345ijk7', 'privilege')\n"
        "m.check_name('00ub0oNGTSWTBKOLGLNR', 'principal')\n"
        "m.OktaConnector('t', {'org_url': 'https://acme.okta.com', 'token_env': 'T'}, {})\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('okta', 'aiohttp', 'pydantic'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


@pytest.mark.parametrize(
    ("value", "what", "says"),
    [
        ("alice@example.com", "principal", "Okta user id"),
        ("00g1abcdEFGH2345ijk7", "principal", "Okta user id"),  # a group id where a user belongs
        ("00u1/../../groups", "principal", "Okta user id"),
        ("00u1abc\n", "principal", "Okta user id"),
        ({"id": "00u1"}, "principal", "Okta user id"),
        ("prod-admins", "privilege", "Okta group id"),
        ("00ub0oNGTSWTBKOLGLNR", "privilege", "Okta group id"),
        ("00g1abcd?x=1", "privilege", "Okta group id"),
        ("00g", "privilege", "Okta group id"),
    ],
)
def test_names_that_are_no_okta_ids_are_refused(value: object, what: str, says: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_name(value, what)
    assert says in str(info.value)


@pytest.mark.parametrize(
    "settings",
    [
        {"token_env": "T"},
        {"org_url": "acme.okta.com", "token_env": "T"},
        {"org_url": "https://acme.okta.com"},
        {"org_url": "https://acme.okta.com", "token_env": "T", "clear_sessions": "no"},
        {"org_url": "https://acme.okta.com", "token_env": "T", "page_size": 0},
        {"org_url": "https://acme.okta.com", "token_env": "T", "page_size": 1001},
    ],
)
def test_bad_settings_are_refused_without_io(settings: dict[str, object]) -> None:
    with pytest.raises(PermanentTargetError):
        OktaConnector(OKTA_TARGET, settings, {})


def test_no_native_expiry_and_sessions_end() -> None:
    assert NATIVE_EXPIRY is False
    assert OktaConnector.capabilities.native_expiry == frozenset()
    assert OktaConnector.capabilities.ends_sessions


# -- membership ---------------------------------------------------------------------------------


def test_observe_follows_more_than_two_pages(okta: OktaWorld) -> None:
    group = okta.double.add_group("admins")
    users = [okta.double.add_user(f"u{i}@example.com") for i in range(7)]
    for user in users:
        okta.double.add_member(group, user)
    observed = okta.connector(page_size=2).observe(scope(group))
    assert {a.principal for a in observed} == set(users)
    assert {a.privilege for a in observed} == {group}
    assert all(a.expires is None for a in observed)
    pages = [p for p in sent(okta) if p.startswith(f"GET /api/v1/groups/{group}/users")]
    assert len(pages) == 4  # 2 + 2 + 2 + 1
    assert pages[0] == f"GET /api/v1/groups/{group}/users?limit=2"
    assert all(f"after={users[i]}" in pages[n] for n, i in ((1, 1), (2, 3), (3, 5)))


def test_drift_made_outside_jitpol_is_observed_and_missing_groups_are_empty(okta: OktaWorld) -> None:
    group = okta.double.add_group("admins")
    someone = okta.double.add_user("standing@example.com")
    okta.double.add_member(group, someone)
    observed = okta.connector().observe(scope(group, okta_id("00g"), "not-an-okta-id"))
    assert {(a.principal, a.privilege) for a in observed} == {(someone, group)}


def test_grant_and_revoke_send_exactly_the_documented_requests(okta: OktaWorld) -> None:
    group, user = okta.double.add_group("admins"), okta.double.add_user("alice@example.com")
    connector = okta.connector()
    granted = connector.apply(act("grant", user, group))
    assert granted.operations == (f"PUT /api/v1/groups/{group}/users/{user}",)
    assert okta.double.members(group) == [user]
    okta.double.clear_log()
    revoked = connector.apply(act("revoke", user, group))
    assert revoked.operations == (
        f"DELETE /api/v1/users/{user}/sessions?oauthTokens=true",
        f"DELETE /api/v1/groups/{group}/users/{user}",
    )
    assert okta.double.members(group) == []
    writes = [r for r in sent(okta) if not r.startswith("GET ")]
    assert writes == list(revoked.operations)  # sessions end first, then the membership
    assert okta.double.state.sessions[user] == 0 and okta.double.state.oauth_tokens[user] == 0


def test_clear_sessions_false_leaves_sessions(okta: OktaWorld) -> None:
    group, user = okta.double.add_group("admins"), okta.double.add_user("alice@example.com")
    okta.double.add_member(group, user)
    out = okta.connector(clear_sessions=False).apply(act("revoke", user, group))
    assert out.operations == (f"DELETE /api/v1/groups/{group}/users/{user}",)
    assert okta.double.state.sessions[user] == 1


def test_check_mode_only_reads(okta: OktaWorld) -> None:
    group, user = okta.double.add_group("admins"), okta.double.add_user("alice@example.com")
    okta.double.add_member(group, user)
    out = okta.connector().apply(act("revoke", user, group), check=True)
    assert out.changed and not out.after and len(out.operations) == 2
    assert all(r.startswith("GET ") for r in sent(okta))
    assert okta.double.state.sessions[user] == 1 and okta.double.members(group) == [user]


def test_missing_group_or_user(okta: OktaWorld) -> None:
    group, user = okta.double.add_group("admins"), okta.double.add_user("alice@example.com")
    connector = okta.connector()
    for check in (True, False):
        with pytest.raises(PermanentTargetError, match=r"Okta group 00g.* does not exist"):
            connector.apply(act("grant", user, okta_id("00g")), check=check)
        with pytest.raises(PermanentTargetError, match=r"Okta user 00u.* does not exist"):
            connector.apply(act("grant", okta_id("00u"), group), check=check)
    out = connector.apply(act("revoke", okta_id("00u"), group))
    assert not out.changed and out.operations == ()
    out = connector.apply(act("revoke", user, okta_id("00g")))
    assert not out.changed and out.operations == ()
    assert not any(r.startswith(("PUT ", "DELETE ")) for r in sent(okta))


def test_groups_okta_does_not_manage_are_refused(okta: OktaWorld) -> None:
    app_group = okta.double.add_group("ad-admins", kind="APP_GROUP")
    user, other = okta.double.add_user("alice@example.com"), okta.double.add_user("bob@example.com")
    okta.double.add_member(app_group, other)
    connector = okta.connector()
    with pytest.raises(PermanentTargetError, match="APP_GROUP"):
        connector.apply(act("grant", user, app_group))
    with pytest.raises(PermanentTargetError, match="APP_GROUP"):
        connector.apply(act("revoke", other, app_group))
    assert okta.double.members(app_group) == [other]
    assert okta.double.state.sessions[other] == 1  # nothing half-done


def test_hostile_ids_are_refused_before_any_request(okta: OktaWorld) -> None:
    connector = okta.connector()
    for user, group in (("00u1/../../x", okta_id("00g")), (okta_id("00u"), "00g1?limit=1"), ("alice", "admins")):
        with pytest.raises(PermanentTargetError):
            connector.apply(act("grant", user, group))
    assert okta.double.requests == []


def test_the_double_is_idempotent_like_okta(okta: OktaWorld) -> None:
    """PUT of an existing membership and DELETE of an absent one both answer 204 at Okta; the
    connector still reads first, so it reports "no change" without sending either."""
    group, user = okta.double.add_group("admins"), okta.double.add_user("alice@example.com")
    for method in ("PUT", "PUT", "DELETE", "DELETE"):
        request = urllib.request.Request(  # noqa: S310 (the local double)
            f"{okta.double.url}/api/v1/groups/{group}/users/{user}",
            method=method,
            headers={"Authorization": f"SSWS {okta.token}"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (the local double)
            assert response.status == 204


# -- errors -------------------------------------------------------------------------------------


def test_the_token_goes_in_the_documented_ssws_header(okta: OktaWorld) -> None:
    # The SDK's request executor writes "SSWS <token>" as Okta documents; only its generated
    # methods drop the space (the double accepts both).
    okta.connector().observe(scope(okta.double.add_group("admins")))
    assert {r.authorization for r in okta.double.requests} == {f"SSWS {okta.token}"}


def test_a_bad_token_is_permanent_and_never_shown(okta: OktaWorld) -> None:
    wrong = "00" + "x" * 40
    connector = okta.connector(env={TOKEN_ENV: wrong})
    group, user = okta.double.add_group("admins"), okta.double.add_user("alice@example.com")
    for call in (lambda: connector.observe(scope(group)), lambda: connector.apply(act("grant", user, group))):
        with pytest.raises(PermanentTargetError, match=r"rejected the API token .*E0000011") as info:
            call()
        assert wrong not in str(info.value) and okta.token not in str(info.value)
    with pytest.raises(PermanentTargetError, match="E0000011") as push:
        send_push_and_wait(okta.double.url, wrong, user, 5)
    assert wrong not in str(push.value)


def test_a_missing_token_variable_is_named(okta: OktaWorld) -> None:
    with pytest.raises(PermanentTargetError, match=f"{TOKEN_ENV} \\(token_env\\) is not set"):
        okta.connector(env={}).observe(scope(okta.double.add_group("admins")))


def test_unreachable_okta_is_temporary(okta: OktaWorld) -> None:
    down = f"http://127.0.0.1:{closed_port()}"
    connector = okta.connector(org_url=down)
    group, user = okta_id("00g"), okta_id("00u")
    for call in (
        lambda: connector.observe(scope(group)),
        lambda: connector.apply(act("grant", user, group)),
        lambda: send_push_and_wait(down, okta.token, user, 5),
    ):
        with pytest.raises(TargetUnavailable, match="cannot reach Okta") as info:
            call()
        assert okta.token not in str(info.value)


@pytest.mark.parametrize("status", [500, 503])
def test_server_side_failures_are_temporary(okta: OktaWorld, status: int) -> None:
    """(429s are waited out: tests/integration/test_okta_batch.py)"""
    group = okta.double.add_group("admins")
    okta.double.fail_next(status, status, status)
    with pytest.raises(TargetUnavailable):
        okta.connector().observe(scope(group))


def test_forbidden_is_permanent(okta: OktaWorld) -> None:
    group = okta.double.add_group("admins")
    okta.double.fail_next(403)
    with pytest.raises(PermanentTargetError, match="may not GET"):
        okta.connector().observe(scope(group))


def test_a_next_link_to_another_host_is_not_followed(okta: OktaWorld) -> None:
    group = okta.double.add_group("admins")
    for i in range(3):
        okta.double.add_member(group, okta.double.add_user(f"u{i}@example.com"))
    okta.double.state.link_origin = "http://198.51.100.7"
    with pytest.raises(PermanentTargetError, match="leaves the org"):
        okta.connector(page_size=1).observe(scope(group))


def test_plain_http_needs_the_sdks_testing_switch(okta: OktaWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OKTA_TESTING_TESTINGDISABLEHTTPSCHECK")
    with pytest.raises(PermanentTargetError, match="refuses the settings") as info:
        okta.connector().observe(scope(okta.double.add_group("admins")))
    assert okta.token not in str(info.value)


def test_close_is_safe_twice(okta: OktaWorld) -> None:
    connector = okta.connector()
    group = okta.double.add_group("admins")
    connector.observe(scope(group))
    connector.close()
    connector.close()
    assert connector.observe(scope(group)) == frozenset()


# -- Okta Verify push ---------------------------------------------------------------------------


@pytest.mark.parametrize(("answer", "result"), [("accept", "SUCCESS"), ("reject", "REJECTED"), ("expire", "TIMEOUT")])
def test_push_results(okta: OktaWorld, answer: PushAnswer, result: str) -> None:
    user = okta.double.add_user("alice@example.com")
    okta.double.set_push(user, answer, after_polls=2)
    assert send_push_and_wait(okta.double.url, okta.token, user, 10, poll_interval_s=0.01) == result
    calls = sent(okta)
    factor = okta.double.state.factors[user][0]["id"]
    assert calls[0] == f"GET /api/v1/users/{user}/factors"
    assert calls[1] == f"POST /api/v1/users/{user}/factors/{factor}/verify"  # the push factor, not TOTP
    assert len([c for c in calls if "/transactions/" in c]) == 3  # WAITING, WAITING, result


def test_the_connector_is_the_mfa_push_capability_the_registry_names(okta: OktaWorld) -> None:
    """execute.mfa reaches the push through the registry (mfa_factors) and base.MfaPush, with the
    target's own settings and token."""
    from jitpol.connectors import registry
    from jitpol.connectors.base import MfaPush

    assert registry.mfa_types("okta-push") == {"okta"}
    user = okta.double.add_user("alice@example.com")
    okta.double.set_push(user, "accept")
    connector = okta.connector()
    assert isinstance(connector, MfaPush)
    assert connector.push(user, 10) == "SUCCESS"
    with pytest.raises(PermanentTargetError, match="is not set"):
        okta.connector(env={}).push(user, 10)


def test_an_unanswered_push_times_out_and_is_cancelled(okta: OktaWorld) -> None:
    user = okta.double.add_user("alice@example.com")
    okta.double.set_push(user, "ignore")
    assert send_push_and_wait(okta.double.url, okta.token, user, 0.3, poll_interval_s=0.05) == "TIMEOUT"
    assert okta.double.cancelled_transactions() == 1
    assert sent(okta)[-1].startswith("DELETE ") and "/transactions/" in sent(okta)[-1]


def test_push_needs_an_active_push_factor_and_a_user(okta: OktaWorld) -> None:
    no_push = okta.double.add_user("bob@example.com", push=False)
    with pytest.raises(PermanentTargetError, match="no active Okta Verify push factor"):
        send_push_and_wait(okta.double.url, okta.token, no_push, 5)
    with pytest.raises(PermanentTargetError, match="does not exist"):
        send_push_and_wait(okta.double.url, okta.token, okta_id("00u"), 5)
    with pytest.raises(InvalidInput):
        send_push_and_wait(okta.double.url, okta.token, "bob@example.com", 5)
