"""Benchmarks of jitpol with peers side by side; see README.md. Scripts, not tests."""
