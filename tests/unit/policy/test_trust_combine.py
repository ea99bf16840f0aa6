"""trust.combine: while a policy change waits for the admins, what an assignment carries (the
keys a secret is delivered to, the keys written to authorized_keys, the privileged opt-in) comes
from the effective policy's evaluation, and an opt-in holds only where both policies give it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jitpol.model.assignment import Assignment
from jitpol.policy.evaluate import Desired, Evaluation, GrantStatus
from jitpol.policy.trust import PolicyCheck, combine

T0 = datetime(1998, 12, 1, 10, tzinfo=UTC)
END = T0 + timedelta(hours=2)


def evaluation(details: tuple[tuple[str, str], ...]) -> Evaluation:
    status = GrantStatus("g", "active", "ok", "alice", "res", "read", T0, END, approvals=("lead",))
    a = Assignment("t", "ephemeral-account", "jit-alice-1", "[]", END)
    return Evaluation((status,), {a.key: Desired(a, "res", ("g",), END, details)})


CHECK = PolicyCheck("new", "old", 1, ())


def test_details_come_from_the_effective_evaluation() -> None:
    approved = evaluation((("ssh_keys", "ssh-ed25519 AAAA alice"),))
    proposed = evaluation((("ssh_keys", "ssh-ed25519 AAAA alice\nssh-ed25519 BBBB mallory"), ("privileged", "allowed")))
    (only,) = combine(approved, proposed, CHECK).desired.values()
    assert only.details == (("ssh_keys", "ssh-ed25519 AAAA alice"),)


def test_an_opt_in_holds_only_where_both_policies_give_it() -> None:
    both = combine(evaluation((("privileged", "allowed"),)), evaluation((("privileged", "allowed"),)), CHECK)
    assert next(iter(both.desired.values())).details == (("privileged", "allowed"),)
    removed = combine(evaluation((("privileged", "allowed"),)), evaluation(()), CHECK)
    assert next(iter(removed.desired.values())).details == ()
