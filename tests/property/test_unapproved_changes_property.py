"""Property: an unapproved change never gives, widens or redirects access (SPEC section 2).

For random unapproved mutations of the policy files (people, keys, account mappings, teams,
workflows, resources, exclusive, target settings) together with random grant files, what a run
would add is a subset of what BOTH would add: the approved policy judging the same grants, and
the proposed policy once approved. It connects only to targets as the approved policy configures
them, and it takes away no access jitpol did not give unless the approved policy does.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jitpol.cli.main import cli
from jitpol.evaluate.prepare import prepare
from jitpol.model.times import utc_text
from jitpol.vcs.sshsig import FastVerifier
from tests.helpers.repo import RepoBuilder, write_yaml

START, AT = "1998-12-01T10:00:00Z", "1998-12-01T10:30:00Z"
PEOPLE = ("alice", "bob", "lead", "admin")
_KEYS: dict[str, Path] = {}


def extra_key(base: Path) -> str:
    """A key only the attacker holds (made once per test session)."""
    if "k" not in _KEYS:
        path = Path(tempfile.mkdtemp(prefix="jitpol-prop-")) / "mallory"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
        _KEYS["k"] = path
    return Path(f"{_KEYS['k']}.pub").read_text().strip()


def spec_of(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def change(path: Path, fn: Callable[[dict[str, Any]], None]) -> None:
    data = spec_of(path)
    fn(data["spec"])
    write_yaml(path, data)


def m_add_key(rb: RepoBuilder) -> None:
    change(rb.root / "people" / "lead.yaml", lambda s: s["keys"].append(extra_key(rb.root)))


def m_remap_account(rb: RepoBuilder) -> None:
    change(rb.root / "people" / "alice.yaml", lambda s: s["accounts"].update(fake="mallory"))


def m_new_person(rb: RepoBuilder) -> None:
    rb.person("mallory")
    rb.team("eng", ["alice", "bob", "mallory"])


def m_join_approvers(rb: RepoBuilder) -> None:
    rb.team("leads", ["lead", "bob", "alice"])


def m_relax_workflow(rb: RepoBuilder) -> None:
    rb.workflow("prod", approvals={"required": 0}, maxDuration="24h")


def m_widen_role(rb: RepoBuilder) -> None:
    change(rb.root / "resources" / "db-prod.yaml",
           lambda s: s["roles"]["read"].update(grants=["app_read", "app_admin"]))


def m_exclusive(rb: RepoBuilder) -> None:
    change(rb.root / "resources" / "db-prod.yaml", lambda s: s.update(exclusive=True))


def m_new_resource(rb: RepoBuilder) -> None:
    rb.resource("ops", roles={"read": {"grants": ["ops_root"]}}, exclusive=True)


def m_redirect_target(rb: RepoBuilder) -> None:
    change(rb.root / "jitpol.yaml",
           lambda s: s["targets"]["db"].update(state_file=str(rb.root.parent / "elsewhere.json")))


def m_remove_person(rb: RepoBuilder) -> None:
    (rb.root / "people" / "bob.yaml").unlink()
    rb.team("eng", ["alice"])
    rb.team("leads", ["lead"])


MUTATIONS = (m_add_key, m_remap_account, m_new_person, m_join_approvers, m_relax_workflow, m_widen_role,
             m_exclusive, m_new_resource, m_redirect_target, m_remove_person)

grant_specs = st.lists(st.tuples(st.sampled_from(("alice", "bob", "mallory")), st.sampled_from(("read", "write")),
                                 st.sampled_from((None, "lead", "bob", "alice")), st.sampled_from(("2h", "20h"))),
                       max_size=3)


def base_repo(root: Path) -> RepoBuilder:
    rb = RepoBuilder(root / "repo", root / "keys").standard()
    rb.set_fake_state({"members": {"app_read": ["carol-unmanaged"], "ops_root": ["dave-unmanaged"]}})
    rb.grant("alice-base", "alice", START, "4h", approvers=("lead",))
    res = CliRunner().invoke(cli, ["apply", "--at", START, "--repo", str(rb.root)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return rb


def add_grants(rb: RepoBuilder, grants: list[tuple[str, str, str | None, str]]) -> None:
    for i, (who, role, approver, length) in enumerate(grants):
        if who == "mallory" and not (rb.root / "people" / "mallory.yaml").exists():
            continue
        if not (rb.root / "people" / f"{who}.yaml").exists():
            continue
        rb.grant(f"g{i}-{who}", who, START, length, role=role, approvers=(approver,) if approver else ())


def effects(root: Path) -> tuple[set[tuple[str, str, str, str]], set[tuple[str, str, str]], dict[str, Any]]:
    """(additions, revocations, target settings) a run at AT would use, from the plan."""
    prep = prepare(root, _at(), FastVerifier())
    desired = prep.evaluation.desired if prep.evaluation is not None else {}
    adds = {(k[0], k[1], k[2], k[3]) for k in desired}
    targets = {name: dict(t.settings) for name, t in prep.targets.items()}
    res = CliRunner().invoke(cli, ["plan", "--at", AT, "--format", "json", "--repo", str(root)],
                             catch_exceptions=False)
    plan = json.loads(res.stdout)
    revokes = {(a["target"], a["principal"], a.get("privilege", "")) for a in plan["actions"]
               if a["op"] in ("revoke", "delete-account")}
    return adds, revokes, targets


def _at() -> datetime:
    from jitpol.cli.common import parse_time

    return parse_time(AT)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(st.sampled_from(MUTATIONS), max_size=4, unique=True), grants=grant_specs)
def test_an_unapproved_change_adds_only_what_both_policies_allow(
    mutations: list[Callable[[RepoBuilder], None]], grants: list[tuple[str, str, str | None, str]]
) -> None:
    work = Path(tempfile.mkdtemp(prefix="jitpol-prop-"))
    try:
        rb = base_repo(work / "w")
        # (1) the approved policy judging the same grants: no policy file changed
        approved_only = work / "approved"
        shutil.copytree(rb.root.parent, approved_only)
        add_grants(RepoBuilder(approved_only / "repo", approved_only / "keys", dict(rb.keys)), grants)
        # (2) the attacker's repository: unapproved mutations and the same grants
        for mutate in mutations:
            mutate(rb)
        add_grants(rb, grants)
        # (3) the proposed policy once approved: the same files, adopted on a fresh ledger
        proposed = work / "proposed"
        shutil.copytree(rb.root.parent, proposed)
        shutil.rmtree(proposed / "repo" / "audit")

        got_adds, got_revokes, got_targets = effects(rb.root)
        ok_adds, ok_revokes, ok_targets = effects(approved_only / "repo")
        pr_adds, _, _ = effects(proposed / "repo")
        assert got_adds <= ok_adds & pr_adds, (mutations, grants)
        # revoking what jitpol granted is a restriction (it bites at once); revoking what it never
        # granted ("drift" under an unapproved exclusive) happens only if the approved policy does it
        unmanaged = {r for r in got_revokes if r[1].endswith("-unmanaged")}
        assert unmanaged <= ok_revokes, (mutations, grants)
        assert {n: s for n, s in got_targets.items()} == {
            n: {k: (str(v).replace(str(approved_only), str(rb.root.parent))) for k, v in s.items()}
            for n, s in ok_targets.items()}, "the change redirected a target"
        assert "elsewhere" not in json.dumps(got_targets)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_the_timestamp_helper_is_exact() -> None:
    assert utc_text(_at()) == AT
