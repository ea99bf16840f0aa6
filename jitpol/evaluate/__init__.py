"""Stage 3 of a run, evaluate: the grants under the effective policy, turned into the assignments
that should exist now (`prepare.py`: load -> trust -> evaluate, the `Prepared` value every later
stage reads). The pure rules live in `jitpol.policy.evaluate`.
"""
