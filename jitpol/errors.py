"""Exceptions jitpol raises, and what they mean to a caller.

    JitpolError                       base; never raised itself
    ├── InvalidInput                  a file or flag is wrong; message names file:line:col
    ├── LedgerBroken                  the audit chain does not verify; nothing is appended
    ├── LockHeld                      another run holds the repository lock
    ├── VcsError                      git refused (commit, push after retries)
    ├── SignatureError                signing or verifying an approval failed
    └── TargetError                   a connector could not do its work
        ├── TargetUnavailable         temporary: unreachable, timed out; retry next run
        └── PermanentTargetError      permission denied, bad configuration, missing object

The CLI maps these to exit codes in one place (jitpol.cli.errors).
"""

from __future__ import annotations


class JitpolError(Exception):
    """Base of every error jitpol raises on purpose."""


class InvalidInput(JitpolError):
    """Input (a policy file, a flag, a key file) is not acceptable."""


class LedgerBroken(JitpolError):
    """The ledger's hash chain does not verify; appending is refused."""


class LockHeld(JitpolError):
    """Another jitpol run holds the lock on this repository."""


class VcsError(JitpolError):
    """A git operation failed."""


class SignatureError(JitpolError):
    """An SSH signature could not be made or checked."""


class TargetError(JitpolError):
    """A connector failed to observe or change its target."""


class TargetUnavailable(TargetError):
    """Temporary failure: the target is unreachable or timed out. The next run retries."""


class PermanentTargetError(TargetError):
    """Permanent failure: permission denied, bad configuration, missing object."""
