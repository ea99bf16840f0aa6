"""Shared by the git tests: keep the host's git configuration out, give tests an identity and a
default branch; `commands` records the git commands the wrapper runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from jitpol.vcs import gitrun


@pytest.fixture(autouse=True)
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "gitconfig"
    config.write_text("[user]\n\tname = Tester\n\temail = tester@example.com\n[init]\n\tdefaultBranch = main\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


@pytest.fixture
def commands(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """Every git command the wrapper runs from now on (they still run)."""
    seen: list[tuple[str, ...]] = []
    real = gitrun.run_git

    def spy(*args: str, **kwargs: object) -> gitrun.Done:
        seen.append(args)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("jitpol.vcs.git.run_git", spy)
    return seen
