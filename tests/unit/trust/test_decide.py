"""trust.decide, called directly: which policy decides a run (decide_policy), and when a run
adopts and adds nothing for want of a trust root (root_required). Table-driven; the ledger and
trust-root I/O (authenticate_run, untrusted_ledger) are exercised end to end in
tests/e2e/test_ledger_auth.py and tests/e2e/test_ownership_markers.py."""

from __future__ import annotations

import pytest

from jitpol.load.repository import LoadResult
from jitpol.model.documents import PolicyApproval, PolicySet
from jitpol.policy.history import History
from jitpol.policy.root import TrustRoot
from jitpol.trust.decide import decide_policy, root_required
from jitpol.trust.pinned import ROOT_ENV, TOFU_ENV
from tests.helpers.policyset import Signatures, config, key_line, person, policy, policy_approval

FOLKS = ("alice", "admin", "admin2")
TEAMS = {"admins": ("admin", "admin2")}
OLD = "0123456789ab" + "0" * 52  # the digest the ledger says is in force
NEW = LoadResult(PolicySet.empty(), ()).policy_digest  # the proposed digest (no documents in these tests)
ROOT = TrustRoot(1, 2, (key_line("r1"), key_line("r2"), key_line("r3")), None, (), "test")


def in_force() -> PolicySet:
    return policy(people=[person(n) for n in FOLKS], teams=TEAMS, cfg=config(required=1))


def proposed(*approvals: PolicyApproval) -> LoadResult:
    ps = policy(people=[person(n) for n in FOLKS], teams=TEAMS, cfg=config(required=1), policy_approvals=approvals)
    return LoadResult(ps, ())


def adopted(digest: str | None) -> History:
    return History(adopted_digest=digest)


def test_bootstrap_without_a_root_puts_the_proposed_policy_in_force() -> None:
    got = decide_policy(proposed(), adopted(None), None, None, Signatures())
    assert got.check.approved and got.in_force is None and got.notes == ()
    assert got.effective is not None and got.effective.proposed_in_force


def test_an_unapproved_change_decides_only_combined_with_the_policy_in_force() -> None:
    force = in_force()
    got = decide_policy(proposed(), adopted(OLD), force, None, Signatures())
    assert not got.check.approved and got.in_force is force
    assert got.effective is not None and not got.effective.proposed_in_force


def test_an_approved_change_is_in_force() -> None:
    got = decide_policy(proposed(policy_approval("a", NEW, "admin")), adopted(OLD), in_force(), None, Signatures())
    assert got.check.approved
    assert got.effective is not None and got.effective.proposed_in_force


def test_with_a_root_a_ledger_that_names_an_unsigned_policy_puts_nothing_in_force() -> None:
    """A forged `policy.adopted` line cannot put a policy in force: the root never signed it."""
    got = decide_policy(proposed(), adopted(OLD), in_force(), ROOT, Signatures())
    assert got.in_force is None and got.effective is None and not got.check.approved
    assert any("carries no signatures of the trust root" in n for n in got.notes)


def test_with_a_root_its_quorum_puts_the_proposed_policy_in_force() -> None:
    sigs = (policy_approval("a", NEW, "ann", key_owner="r1"), policy_approval("b", NEW, "ben", key_owner="r2"))
    got = decide_policy(proposed(*sigs), adopted(None), None, ROOT, Signatures())
    assert got.check.approved and got.effective is not None and got.effective.proposed_in_force


def test_with_a_root_one_key_of_two_is_not_enough() -> None:
    got = decide_policy(proposed(policy_approval("a", NEW, "ann", key_owner="r1")), adopted(None), None, ROOT,
                        Signatures())
    assert not got.check.approved and got.effective is None


@pytest.mark.parametrize(("trust", "require", "env", "refused"), [
    (None, True, {}, True),
    (None, True, {TOFU_ENV: "1"}, False),
    (None, True, {TOFU_ENV: "no"}, True),
    (None, False, {}, False),
    (ROOT, True, {}, False),
], ids=["ci without a root", "trust on first use allowed", "tofu set to no", "laptop", "root pinned"])
def test_root_required(trust: TrustRoot | None, require: bool, env: dict[str, str], refused: bool) -> None:
    why = root_required(trust, require, env)
    assert (why is not None) is refused
    if why is not None:
        assert ROOT_ENV in why and "revocations go on" in why
