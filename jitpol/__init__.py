"""jitpol: just-in-time privileged access as code."""

__version__ = "0.1.0"
