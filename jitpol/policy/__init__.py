"""The policy core: pure functions of (PolicySet, now, ledger view). No I/O, no clock."""
