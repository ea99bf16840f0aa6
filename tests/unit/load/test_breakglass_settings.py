"""Loading a workflow's break-glass limits (maxUses, per, cooldown): defaults, schema, and the
rule that break-glass cannot be chained into lasting unapproved access."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from jitpol.load.repository import NAME_PATTERN, load_repository
from jitpol.load.schema import load_schema
from jitpol.load.yamlstrict import load_yaml_file
from tests.helpers.repo import RepoBuilder


@pytest.fixture
def rb(tmp_path: Path) -> RepoBuilder:
    return RepoBuilder(tmp_path / "repo", tmp_path / "keys").standard()


def messages(rb: RepoBuilder) -> list[str]:
    return [str(d) for d in load_repository(rb.root).diagnostics]


def glass(rb: RepoBuilder, **settings: Any) -> None:
    rb.workflow("prod", breakglass={"allowed": True, "deadline": "30m", **settings})


def test_safe_defaults_one_use_per_day_no_cooldown(rb: RepoBuilder) -> None:
    glass(rb)
    loaded = load_repository(rb.root)
    assert loaded.ok, loaded.diagnostics
    wf = loaded.policy.workflows["prod"]
    assert (wf.breakglass_max_uses, wf.breakglass_per, wf.breakglass_cooldown) == (1, timedelta(hours=24), None)
    schema = load_schema("Workflow")["properties"]["spec"]["properties"]["breakglass"]["properties"]
    assert (schema["maxUses"]["default"], schema["per"]["default"]) == (1, "24h")


def test_settings_are_read(rb: RepoBuilder) -> None:
    glass(rb, maxUses=3, per="7d", cooldown="4h")
    wf = load_repository(rb.root).policy.workflows["prod"]
    assert (wf.breakglass_max_uses, wf.breakglass_per, wf.breakglass_cooldown) == (
        3, timedelta(days=7), timedelta(hours=4))


@pytest.mark.parametrize(("settings", "expect"), [
    ({"maxUses": 0}, "spec.breakglass.maxUses"),
    ({"per": "a day"}, "spec.breakglass.per"),
    ({"coolDown": "1h"}, "unknown field 'coolDown'"),
])
def test_schema_refuses_bad_settings(rb: RepoBuilder, settings: dict[str, Any], expect: str) -> None:
    glass(rb, **settings)
    assert any(expect in m for m in messages(rb)), messages(rb)


def test_break_glass_that_chains_into_lasting_access_is_refused(rb: RepoBuilder) -> None:
    # 6 uses of up to 4h each within 24h: back to back, that never ends
    rb.workflow("prod", maxDuration="4h", breakglass={"allowed": True, "deadline": "4h", "maxUses": 6, "per": "24h"})
    (msg,) = messages(rb)
    line, col = load_yaml_file(rb.root / "workflows/prod.yaml").mark("spec", "breakglass")
    assert msg.startswith(f"workflows/prod.yaml:{line}:{col}: breakglass allows 6 use(s) of up to 4h unapproved")
    assert "lower maxUses or deadline, or make per longer" in msg
    # the deadline alone is the default cap's problem too: 1 use of 1d per 1d
    rb.workflow("prod", maxDuration="7d", breakglass={"allowed": True, "deadline": "1d"})
    assert any("breakglass allows 1 use(s) of up to 1d unapproved each within 1d" in m for m in messages(rb))
    # the unapproved stretch is the shorter of deadline and maxDuration
    rb.workflow("prod", maxDuration="4h", breakglass={"allowed": True, "deadline": "2d", "maxUses": 5})
    assert messages(rb) == []


def test_zero_period_is_refused(rb: RepoBuilder) -> None:
    glass(rb, per="0s")
    assert any("'0s': a duration must be longer than zero" in m for m in messages(rb))


def test_grant_name_rule_is_the_schemas() -> None:
    pattern = load_schema("Grant")["$defs"]["name"]["pattern"]
    assert f"^{NAME_PATTERN.pattern}$" == pattern
