"""Stage 7 of a run, record: the ledger events a run writes besides each action's own — a
policy's adoption (its snapshot first) and the grants' lifecycle (`lifecycle.py`). Each event
kind is defined once in `jitpol.ledger.events`.
"""
