"""Stage 4 of a run, observe: the live state of every target the policy or the ledger involves,
in parallel, through connectors opened lazily by the registry (`targets.py`).
"""
