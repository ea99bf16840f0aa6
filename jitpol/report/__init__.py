"""`jitpol report`: the access timeline as one self-contained HTML page.

    gather(root, now, env) -> Inputs        reads the repository and every ledger file (the only
                                            I/O of this package; raises LedgerBroken like prepare)
    build(inputs, days, limit) -> Report    pure: jitpol.report.timeline
    render(report) -> str                   pure: jitpol.report.html
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from jitpol.ledger.store import Ledger, ledger_files
from jitpol.policy.trust import PolicyCheck
from jitpol.report.html import render
from jitpol.report.timeline import DEFAULT_DAYS, DEFAULT_LIMIT, Inputs, LedgerFile, Report, build
from jitpol.run import prepare_run
from jitpol.scope import AUDIT_DIR

__all__ = ["DEFAULT_DAYS", "DEFAULT_LIMIT", "Inputs", "LedgerFile", "Report", "build", "gather", "policy_note",
           "render", "report_html"]


def gather(root: Path, now: datetime, env: Mapping[str, str] | None = None) -> Inputs:
    """Everything the report needs at `now`: grant states under the policy in force (None when
    the repository is invalid) and the verified events of every ledger file in audit/."""
    prep = prepare_run(root, now, env)
    ledgers = tuple(LedgerFile(p.name, Ledger(p).events()) for p in ledger_files(root / AUDIT_DIR))
    policy = prep.effective if prep.effective is not None else prep.loaded.policy  # display only
    name = policy.config.name if policy.config is not None else root.resolve().name
    return Inputs(
        name=name, now=now, policy=policy,
        statuses=prep.evaluation.statuses if prep.evaluation is not None else None,
        ledgers=ledgers, policy_in_force=prep.history.adopted_digest,
        policy_note=policy_note(prep.policy), problems=tuple(str(d) for d in prep.diagnostics),
    )


def policy_note(check: PolicyCheck | None) -> str:
    """What a reader should know about the policy files versus the policy in force."""
    if check is None or check.unchanged:
        return ""
    if check.in_force is None:
        return f"No policy adopted yet: the next apply adopts policy {check.digest[:12]} as found (bootstrap)."
    who = ", ".join(str(a) for a in check.admins)
    head = (f"The policy files ({check.digest[:12]}) differ from the policy in force ({check.in_force[:12]}): "
            f"{len(check.counted)} of {check.required} admin approval(s) from {who}")
    if check.approved:
        return head + "; the next apply adopts the change."
    return head + ("; until approved, grants are live only where both the policy in force and the proposed "
                   "one allow them.")


def report_html(root: Path, now: datetime, env: Mapping[str, str] | None = None, days: int = DEFAULT_DAYS,
                limit: int = DEFAULT_LIMIT) -> str:
    """gather, build and render in one call."""
    return render(build(gather(root, now, env), days, limit))
