"""One reconcile run's stages, for callers that import them from one place. Each stage lives in
its own module, in run order:

    scope     what one run covers (all targets, a shard, one host) and its ledger file
    prepare   load -> trust -> evaluate
    observe   live state of the targets
    planning  the plan (pure)
    apply     execute the plan
    record    adoption and lifecycle events

execute.run orchestrates them. Level-triggered: every run recomputes everything from (repository,
now, live state, ledger), so a run that died half-way is finished by the next one. Revocations
never wait for anything: an invalid repository, an unreachable target or a failed addition only
stops additions.
"""

from jitpol.execute.apply import Append as Append
from jitpol.execute.apply import Issuer as Issuer
from jitpol.execute.apply import Result as Result
from jitpol.execute.apply import execute as execute
from jitpol.execute.observe import Connections as Connections
from jitpol.execute.observe import Observation as Observation
from jitpol.execute.observe import Progress as Progress
from jitpol.execute.observe import observe as observe
from jitpol.execute.planning import make_plan as make_plan
from jitpol.execute.prepare import READ_DIRS as READ_DIRS
from jitpol.execute.prepare import Prepared as Prepared
from jitpol.execute.prepare import normalized as normalized
from jitpol.execute.prepare import prepare as prepare
from jitpol.execute.prepare import read_history as read_history
from jitpol.execute.prepare import read_history_safely as read_history_safely
from jitpol.execute.record import STANDING_MODELS as STANDING_MODELS
from jitpol.execute.record import adopt_policy as adopt_policy
from jitpol.execute.record import counted_approvals as counted_approvals
from jitpol.execute.record import lifecycle_events as lifecycle_events
from jitpol.execute.scope import AUDIT_DIR as AUDIT_DIR
from jitpol.execute.scope import LEDGER_PATH as LEDGER_PATH
from jitpol.execute.scope import PULL_TYPES as PULL_TYPES
from jitpol.execute.scope import HostScope as HostScope
from jitpol.execute.scope import Part as Part
from jitpol.execute.scope import Shard as Shard
from jitpol.execute.scope import ledger_path as ledger_path
