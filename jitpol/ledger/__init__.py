"""The audit ledger: hash-chained JSON Lines files under `audit/` (SPEC section 5).

`chain` is pure (canonical JSON, sealing, verifying lines); `store` reads and appends files and
refuses to extend a chain that does not verify.
"""

from jitpol.ledger.chain import ChainProblem, canonical_json, event_hash, seal, verify_lines
from jitpol.ledger.store import Ledger, ledger_files

__all__ = ["ChainProblem", "Ledger", "canonical_json", "event_hash", "ledger_files", "seal", "verify_lines"]
