"""Shared test helpers (not fixtures): repository builders, key generation."""
