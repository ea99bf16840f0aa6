"""Stage 6 of a run, execute: carry out the plan (`apply.py`: revocations on every target before
any addition, each addition's intent recorded before it is applied), hand out checked-out
credentials (`delivery.py`), ask for MFA pushes (`mfa.py`), and hold the run lock (`lock.py`).
"""
