"""Fixtures of the load tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """jitpol's cache in a folder of this test's own, under a key file made there, files read in
    this process (no worker processes)."""
    path = tmp_path / "cache"
    monkeypatch.setenv("JITPOL_CACHE_DIR", str(path))
    monkeypatch.delenv("JITPOL_CACHE_KEY", raising=False)
    monkeypatch.delenv("JITPOL_CACHE", raising=False)
    monkeypatch.setenv("JITPOL_LOAD_WORKERS", "1")
    return path
