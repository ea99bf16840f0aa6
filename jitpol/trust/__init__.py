"""Stage 2 of a run, trust: what may decide. The pinned trust root (`pinned.py`), the ledger read
and authenticated against the reconciler's signed checkpoints (`history.py`, `ledger.py`),
approvals proven by the git host's reviews (`reviews.py`), and from them the policy in force and
the effective policy (`decide.py`). Any doubt makes a revocations-only run. The pure rules it
applies live in `jitpol.policy` (root, trust, effective, approvals).
"""
