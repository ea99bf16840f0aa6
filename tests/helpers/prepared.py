"""evaluate.prepare.Prepared values built by hand (no repository on disk, no git, no connector):
what make_plan and lifecycle_events read, for unit tests of the run's pure stages."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from jitpol.evaluate.prepare import Prepared
from jitpol.load.repository import Diagnostic, LoadResult
from jitpol.model.assignment import Assignment, AssignmentKey
from jitpol.model.documents import PolicySet
from jitpol.observe.targets import Observation
from jitpol.policy.approvals import Reviews
from jitpol.policy.evaluate import evaluate
from jitpol.policy.history import History
from jitpol.policy.trust import PolicyCheck
from jitpol.scope import Part
from tests.helpers.policyset import Signatures

NOWHERE = Path("/nonexistent/jitpol-unit")  # the pure stages never read the repository
DIGEST = "ab" * 32
INVALID = (Diagnostic("grants/broken.yaml", 1, 1, "not a grant"),)


def prepared(ps: PolicySet, now: datetime, history: History | None = None, *, check: PolicyCheck | None = None,
             reviews: Mapping[str, Reviews] | None = None, shard: Part | None = None,
             notes: tuple[str, ...] = ()) -> Prepared:
    """A valid run: `ps` in force (unchanged unless `check` says otherwise), evaluated at `now`."""
    h = history if history is not None else History()
    ev = evaluate(ps, now, h, Signatures(), reviews)
    targets = dict(ps.config.targets) if ps.config is not None else {}
    return Prepared(NOWHERE, now, LoadResult(ps, ()), h, ev, None, targets,
                    check if check is not None else PolicyCheck(DIGEST, DIGEST, 1, ()), shard, effective=ps,
                    notes=notes, reviews=dict(reviews or {}))


def revocations_only(ps: PolicySet, now: datetime, history: History, *, loaded_ok: bool = False,
                     ended: Mapping[str, str] | None = None, backed: frozenset[AssignmentKey] = frozenset(),
                     keeping: History | None = None) -> Prepared:
    """A run that adds nothing: an invalid repository (or, with `loaded_ok`, no trusted policy)."""
    targets = dict(ps.config.targets) if ps.config is not None else {}
    return Prepared(NOWHERE, now, LoadResult(ps, () if loaded_ok else INVALID), history, None, None, targets,
                    ended=dict(ended or {}), backed=backed, keeping=keeping)


def observed(*assignments: Assignment, target: str = "db") -> Observation:
    return Observation({target: frozenset(assignments)}, {})


def unobservable(target: str = "db", error: str = "connection refused") -> Observation:
    return Observation({target: None}, {target: error})
