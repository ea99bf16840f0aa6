"""The ledger read for a run: every file under audit/, each chain verified, replayed into a
History; what a damaged file still gives, and only what the reconciler signed."""

from __future__ import annotations

from pathlib import Path

from jitpol.errors import JitpolError
from jitpol.ledger.store import Ledger, ledger_files
from jitpol.policy.history import History, merge, replay
from jitpol.scope import AUDIT_DIR
from jitpol.trust.ledger import LedgerAuth


def read_history(root: Path) -> History:
    """Every ledger file under audit/ (the main one, shards, agents), each chain verified.
    Raises LedgerBroken if one does not verify (see read_history_safely)."""
    files = ledger_files(root / AUDIT_DIR)
    return merge([replay(Ledger(f).events()) for f in files]) if files else History()


def read_history_safely(root: Path) -> tuple[History, tuple[str, ...]]:
    """Like read_history, but a damaged file never stops the run: what can still be read of it
    (Ledger.readable), and the problems, which make the run adopt and add nothing."""
    files = ledger_files(root / AUDIT_DIR)
    parts: list[History] = []
    problems: list[str] = []
    for f in files:
        events, problem = Ledger(f).readable()
        replayed = replay(events)
        parts.append(replayed)
        if problem is not None:
            problems.append(f"{AUDIT_DIR.as_posix()}/{f.name}:{problem.line}: {problem.message}")
        # a line jitpol would not write (the chain cannot tell): ignored, and the ledger damaged
        problems += [f"{AUDIT_DIR.as_posix()}/{f.name}:{seq}: not an event jitpol writes ({why}); ignored"
                     for seq, why in replayed.ignored]
    return (merge(parts) if parts else History()), tuple(problems)


def signed_history(root: Path, auth: LedgerAuth) -> History | None:
    """The history of only what the reconciler signed (each file's checkpointed prefix); None
    when no ledger key is pinned."""
    if auth.public_key is None:
        return None
    parts = []
    for name, cp in auth.checkpoints.items():
        try:
            # what still verifies of it (a damaged tail must not hide the signed prefix)
            parts.append(replay(Ledger(root / AUDIT_DIR / name).readable()[0][:cp.lines]))
        except JitpolError:
            continue
    return merge(parts) if parts else History()
